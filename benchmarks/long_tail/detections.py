"""``--figure``: the ground truth and methods' detections side by side on the test images with the most
rare-class objects (cached weights, seed ``--seeds[0]``)."""


def detections_figure(bench, names, path, per_row=4, score_thresh=0.5):
    """Ground truth and each method's detections (score >= ``score_thresh``) on the test images with
    the most rare-class instances (rare: training images <= the evaluator's first threshold)."""
    import cv2
    import numpy as np
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.data.catalog import Metadata
    from detectron2.engine import DefaultPredictor
    from detectron2.utils.visualizer import Visualizer
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from balms_det.modeling.priors import class_prior_from_config

    seed, test = bench.args.seeds[0], (bench.args.test or bench.base_cfg.DATASETS.TEST)[0]
    meta = MetadataCatalog.get(test)
    cfg = bench.run_cfg(bench.methods[names[0]], seed)
    cfg.MODEL.BALMS.PRIOR.COUNT = "image_count"
    rare_max = cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS[0]
    rare = {c for c, n in enumerate(class_prior_from_config(cfg).counts.tolist()) if n <= rare_max}
    dicts = sorted(DatasetCatalog.get(test), key=lambda d: -sum(a["category_id"] in rare for a in d["annotations"]))
    dicts = dicts[:per_row]
    # boxes and labels only (mask overlays would change the objects' colours, which are half of a
    # class in lt_shapes); a rare class's label ends with "(r)"
    names_r = [n + " (r)" if c in rare else n for c, n in enumerate(meta.thing_classes)]
    meta = Metadata(**{k: v for k, v in meta.as_dict().items() if k not in ("name", "thing_classes")},
                    thing_classes=names_r)
    rng_state = np.random.get_state()  # the Visualizer colours boxes at random: the same picture each time
    np.random.seed(0)
    columns = [("ground truth", [
        Visualizer(cv2.imread(d["file_name"])[:, :, ::-1], meta, scale=2.0).draw_dataset_dict(
            dict(d, annotations=[{k: v for k, v in a.items() if k != "segmentation"}
                                 for a in d["annotations"]])).get_image() for d in dicts])]
    for name in names:
        m = bench.methods[name]
        cfg = bench.run_cfg(m, seed)
        cfg.MODEL.WEIGHTS = bench.weights(bench.methods[m.stage1] if m.eval_only else m, seed)
        predictor = DefaultPredictor(cfg)
        images = []
        for d in dicts:
            img = cv2.imread(d["file_name"])
            inst = predictor(img)["instances"].to("cpu")
            inst = inst[inst.scores >= score_thresh]
            if inst.has("pred_masks"):
                inst.remove("pred_masks")
            images.append(Visualizer(img[:, :, ::-1], meta, scale=2.0).draw_instance_predictions(inst).get_image())
        columns.append((m.label, images))
        del predictor
        torch.set_grad_enabled(True)
    fig = Figure(figsize=(3.2 * len(columns), 3.3 * len(dicts)))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(dicts), len(columns), squeeze=False)
    for j, (title, images) in enumerate(columns):
        for i, img in enumerate(images):
            axes[i][j].imshow(img)
            axes[i][j].axis("off")
        axes[0][j].set_title(title, fontsize=9)
    fig.suptitle(f"{test}: images with the most rare-class objects (r); detections with score >= {score_thresh} "
                 f"(seed {seed})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    np.random.set_state(rng_state)
    print(f"written: {path}")
