"""``--figure``: the ground truth and methods' detections side by side on the test images with the most
rare-class objects (cached weights, seed ``--seeds[0]``), drawn as ``tools/predict.py`` draws
(:mod:`balms_det.visualization`: labels kept inside the picture and off each other, r/c/f colours)."""


def detections_figure(bench, names, path, per_row=4, score_thresh=0.5):
    """One row per test image with the most rare-class instances: its ground truth, then each method's
    detections (score >= ``score_thresh``); rare, common and frequent from the evaluator's thresholds."""
    import cv2
    import numpy as np
    from detectron2.data import DatasetCatalog
    from detectron2.engine import DefaultPredictor

    from balms_det.visualization import Objects, class_info, draw_panels, save_png

    seed, test = bench.args.seeds[0], (bench.args.test or bench.base_cfg.DATASETS.TEST)[0]
    cfg = bench.run_cfg(bench.methods[names[0]], seed)
    classes = class_info([test], list(cfg.DATASETS.TRAIN), tuple(cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS))
    dicts = sorted(DatasetCatalog.get(test), key=lambda d: -sum(classes.group(a["category_id"]) == "r"
                                                                  for a in d["annotations"]))[:per_row]
    images = [cv2.imread(d["file_name"])[:, :, ::-1] for d in dicts]
    panels = [[("ground truth", Objects.from_annotations(d["annotations"], *img.shape[:2]))]
              for d, img in zip(dicts, images)]
    for name in names:
        m = bench.methods[name]
        cfg = bench.run_cfg(m, seed)
        cfg.MODEL.WEIGHTS = bench.weights(bench.methods[m.stage1] if m.eval_only else m, seed)
        predictor = DefaultPredictor(cfg)
        for row, img in zip(panels, images):
            row.append((m.label, Objects.from_instances(predictor(img[:, :, ::-1].copy())["instances"], score_thresh)))
        del predictor
    note = f"{test}, seed {seed}: images with the most rare-class objects; detections with score >= {score_thresh}"
    rows = [draw_panels(img, row, classes, min_size=320, note=note if i == len(images) - 1 else None)
            for i, (img, row) in enumerate(zip(images, panels))]
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    save_png(path, np.concatenate(rows, axis=0))
    print(f"written: {path}")
