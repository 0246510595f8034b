#!/usr/bin/env python
"""Draw a model's detections (or a results file's) on images: one PNG per image, with boxes, masks, class
names, scores and each class's frequency group (r / c / f, from the dataset's LVIS 'frequency', else from
the training images per class; coloured, with a legend). Examples::

    # a model: a YAML config (KEY VALUE overrides) or a Python one (key=value overrides), and its weights
    python tools/predict.py --config-file configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.yaml \\
        --weights output/lt_shapes_balanced_softmax/model_final.pth --input img.png photos/ --output pics/
    python tools/predict.py --config-file CFG --dataset lt_shapes_val --max-images 20 --gt --output pics/
    python tools/predict.py --config-file CFG.py --input photos/ --output pics/ train.init_checkpoint=model.pth
    python tools/predict.py --config-file CFG --output pics/ --input a.jpg b.jpg -- MODEL.WEIGHTS model.pth

    # no model: saved detections (an evaluation's lvis_instances_results.json) on a registered dataset
    python tools/predict.py --results output/inference/lvis_instances_results.json --dataset lt_shapes_val \\
        --gt --output pics/
    # ... a config's MODEL.BALMS.CUSTOM_IMPORTS registering my_val, its DATASETS.TRAIN giving groups from counts
    python tools/predict.py --results RESULTS.json --dataset my_val --config-file CFG --output pics/

The classes' names and groups come from ``--dataset``, else the config's test set (``DATASETS.TEST``,
``dataloader.test``), with ``--config-file``'s ``MODEL.BALMS.CUSTOM_IMPORTS`` imported first (a file that
registers a dataset can be named there); groups from counts use its training sets and
``TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS``. Results files use the annotation file's category ids.
"""
import argparse
import glob
import logging
import os
import sys

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

logger = logging.getLogger("balms_det.predict")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__[__doc__.index(
                                    "Examples"):])
    p.add_argument("--config-file", default="", metavar="FILE",
                   help="YAML or Python (LazyConfig) config of the model (with --results: only its datasets, "
                        "frequency thresholds and MODEL.BALMS.CUSTOM_IMPORTS are used)")
    p.add_argument("--weights", default=None,
                   help="checkpoint (default: the config's MODEL.WEIGHTS / train.init_checkpoint)")
    p.add_argument("--input", nargs="+", default=None,
                   help="images, folders of images (not recursive) or glob patterns")
    p.add_argument("--dataset", default=None, help="a registered dataset: its images (and --gt), and the class names")
    p.add_argument("--results", default=None, help="detections to draw instead of a model's (needs --dataset)")
    p.add_argument("--output", required=True, help="folder for the PNGs (made if missing)")
    p.add_argument("--score-thresh", type=float, default=0.5, help="draw detections scoring at least this")
    p.add_argument("--max-images", type=int, default=None, help="draw at most this many images")
    p.add_argument("--gt", action="store_true", help="with --dataset: the ground truth beside the detections")
    p.add_argument("--min-size", type=int, default=640,
                   help="smaller images are drawn scaled up to this many pixels on the longer side")
    p.add_argument("opts", nargs=argparse.REMAINDER,
                   help="config overrides, last: KEY VALUE pairs (YAML) or key=value (Python config); after -- "
                        "where --input is the last option")
    args = p.parse_args(argv)
    if args.opts[:1] == ["--"]:
        args.opts = args.opts[1:]
    if args.results and args.weights:
        p.error("--results draws saved detections: no --weights")
    if not args.results and not args.config_file:
        p.error("give --config-file (a model) or --results (saved detections)")
    if args.results and not args.dataset:
        p.error("--results needs --dataset: the registered dataset the detections were made on")
    if bool(args.input) == bool(args.dataset):
        p.error("give either --input (images) or --dataset (a registered dataset's images)")
    if args.gt and not args.dataset:
        p.error("--gt needs --dataset (the ground truth is the dataset's)")
    return args


def image_paths(inputs):
    """The image files of ``inputs`` (files, folders, glob patterns), in the order given, folders sorted."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
        elif os.path.isfile(item):
            paths.append(item)
        else:
            found = sorted(glob.glob(os.path.expanduser(item)))
            if not found:
                raise FileNotFoundError(f"--input {item}: no such file, folder or pattern")
            paths += [f for f in found if os.path.isfile(f)]
    if not paths:
        raise FileNotFoundError(f"--input {' '.join(inputs)}: no images (extensions {', '.join(IMAGE_EXTENSIONS)})")
    return paths


def _output_name(path, used):
    stem = os.path.splitext(os.path.basename(path))[0]
    name, k = stem, 1
    while name in used:
        k += 1
        name = f"{stem}_{k}"
    used.add(name)
    return name + ".png"


def _read_results(path):
    """{image id: [detection dict]} of a results file (a JSON list of detections)."""
    from balms_eval.results_io import load_json

    results = load_json(path, "results")
    if not isinstance(results, list):
        raise ValueError(f"{path}: a results file is a JSON list of detections, got {type(results).__name__}")
    by_image = {}
    for i, r in enumerate(results):
        if not isinstance(r, dict) or not {"image_id", "category_id", "bbox", "score"} <= set(r):
            raise ValueError(f"{path}: detection {i} is not a dict with image_id, category_id, bbox and score: "
                             f"{str(r)[:100]}")
        by_image.setdefault(r["image_id"], []).append(r)
    return by_image


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.opts and not args.config_file:
        raise ValueError(f"config overrides {args.opts} without --config-file")
    by_image = _read_results(args.results) if args.results else None  # (before the slow imports: errors at once)
    from detectron2.data import DatasetCatalog
    from detectron2.data.detection_utils import read_image

    import balms_det  # noqa: F401  registers datasets, heads, losses
    from balms_det.visualization import Objects, class_info, draw_panels, save_png

    predictor = None
    test_sets, train_sets, thresholds, num_classes = [], [], (10, 100), None
    if args.config_file:  # (with --results: its datasets, thresholds and CUSTOM_IMPORTS; no model)
        from balms_det.engine.predictor import Predictor, config_datasets, load_config

        cfg = load_config(args.config_file, args.opts)
        test_sets, train_sets, thresholds = config_datasets(cfg)
        if not args.results:
            predictor = Predictor.from_config(cfg, args.weights)
            num_classes = predictor.num_classes
    if args.dataset and args.dataset not in DatasetCatalog.list():
        raise ValueError(f"--dataset {args.dataset} is not registered (register it in a file named in "
                         "MODEL.BALMS.CUSTOM_IMPORTS, or see balms_det/data/)")
    # (a COCO-style registration sets its classes' metadata when its dicts are loaded: first)
    records = DatasetCatalog.get(args.dataset) if args.dataset else None
    named_by = [args.dataset] if args.dataset else test_sets + train_sets
    classes = class_info(named_by, train_sets, thresholds, num_classes)
    logger.info("%d classes; frequency groups: %s", len(classes), classes.group_source or "none")

    if records is not None:
        items = [(d["file_name"], d) for d in records]
    else:
        items = [(p, None) for p in image_paths(args.input)]
    if args.max_images is not None:
        items = items[:args.max_images]
    if by_image is not None:
        missing = len(set(by_image) - {d["image_id"] for d in records})
        if missing:
            logger.warning("%d images of %s are not in %s: their detections are not drawn", missing, args.results,
                           args.dataset)
        shown = {d["image_id"] for _, d in items}
        logger.info("%d detections on the %d images drawn", sum(len(by_image.get(i, [])) for i in shown), len(shown))
    note = f"score >= {args.score_thresh:g}"
    os.makedirs(args.output, exist_ok=True)
    used = set()
    for path, record in items:
        image = read_image(path, format="RGB")
        h, w = image.shape[:2]
        if predictor is not None:
            detections = Objects.from_instances(predictor(image), args.score_thresh)
        else:
            detections = Objects.from_results(by_image.get(record["image_id"], []), classes.to_contiguous(), h, w,
                                              args.score_thresh)
        title = f"{os.path.basename(path)}: {len(detections)} detections"
        panels = [(title, detections)]
        if args.gt:
            gt = Objects.from_annotations(record.get("annotations", []), h, w)
            panels.append((f"ground truth: {len(gt)} objects", gt))
        out = os.path.join(args.output, _output_name(path, used))
        save_png(out, draw_panels(image, panels, classes, min_size=args.min_size, note=note))
        logger.info("%s: %d detections -> %s", path, len(detections), out)
    print(f"{len(items)} pictures in {args.output}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, ValueError) as e:  # a file that is missing or cannot be used, a config that does not fit
        sys.exit(f"error: {e}")
