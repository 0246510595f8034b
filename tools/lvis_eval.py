#!/usr/bin/env python
"""Evaluate a saved LVIS results file against an LVIS-format annotation file, without a model.

    python tools/lvis_eval.py --gt ANN.json --results RESULTS.json \
        [--iou-type bbox segm] [--backend fast|lvis] [--output DIR] [--train-gt TRAIN.json]

Prints AP, AP50, AP75, APs/m/l and APr/APc/APf per IoU type (percent, as detectron2 reports
them) and per-class tables per frequency group. With --output, writes DIR/metrics.json
({"bbox": {"AP": .., "APr": .., ...}, "segm": {...}}) and DIR/per_class_ap.{json,csv,png}.
Exit status 2 with a message naming the entry when the results file is invalid.
"""
import argparse
import json
import logging
import math
import os
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gt", required=True, help="LVIS-format annotation file (e.g. lvis_v1_val.json)")
    p.add_argument("--results", required=True, help="detections: a JSON list as *_results.json / lvis_instances_results.json")
    p.add_argument("--iou-type", nargs="+", choices=("bbox", "segm"), default=None,
                   help="default: bbox, and segm when the detections have masks")
    p.add_argument("--backend", choices=("fast", "lvis"), default="fast", help="fast: hotcoco; lvis: lvis-api reference")
    p.add_argument("--max-dets", type=int, default=300, help="detections kept per image (LVIS: 300; -1: all)")
    p.add_argument("--output", default=None, help="directory for metrics.json and per-class files")
    p.add_argument("--train-gt", default=None,
                   help="training annotation file whose categories' image_count gives the per-class x-axis "
                        "(default: the image_count of --gt, i.e. val counts)")
    p.add_argument("--no-per-class", action="store_true", help="skip per-class tables and files")
    return p.parse_args(argv)


def _load_json(path, what):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        sys.exit(f"error: {what} file not found: {path}")
    except json.JSONDecodeError as e:
        sys.exit(f"error: {what} file {path} is not valid JSON: {e}")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from detectron2.utils.logger import create_small_table

    from balms_det.evaluation import LVISGroundTruth, LVISResultsError, evaluate_lvis, resolve_image_counts
    from balms_det.evaluation.per_class import format_per_class_tables, per_class_rows, write_per_class_outputs

    if not os.path.isfile(args.gt):
        sys.exit(f"error: annotation file not found: {args.gt}")
    results = _load_json(args.results, "results")
    if not isinstance(results, list):
        sys.exit(f"error: {args.results}: expected a JSON list of detections, got {type(results).__name__}")
    iou_types = args.iou_type or (["bbox"] + (["segm"] if results and all("segmentation" in r for r in results if
                                                                          isinstance(r, dict)) else []))
    t0 = time.perf_counter()
    gt = LVISGroundTruth(args.gt, args.backend)
    metrics, per_class_ap = {}, {}
    for iou_type in iou_types:
        try:
            res = evaluate_lvis(gt, results, iou_type, max_dets_per_image=args.max_dets)
        except LVISResultsError as e:
            sys.exit(f"error: invalid results file {args.results}: {e}")
        metrics[iou_type] = {k: (None if math.isnan(v) else v) for k, v in res.metrics_percent().items()}
        per_class_ap[iou_type] = res.per_class_ap
        print(f"\n{iou_type} ({args.backend} backend, {len(results)} detections, max {args.max_dets}/image):")
        print(create_small_table({k: (math.nan if v is None else v) for k, v in metrics[iou_type].items()}))
    print(f"\nevaluated in {time.perf_counter() - t0:.2f} s")

    if not args.no_per_class:
        categories = gt.categories
        if args.train_gt:
            train_cats = {c["id"]: c for c in _load_json(args.train_gt, "training annotation")["categories"]}
            counts, source = resolve_image_counts(train_cats)
            source = source and f"images per class in the training file {args.train_gt}"
        else:
            counts, source = resolve_image_counts(categories)
        rows = per_class_rows(categories, per_class_ap, counts)
        print("\n" + format_per_class_tables(rows, source))
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
        written = [os.path.join(args.output, "metrics.json")]
        if not args.no_per_class:
            written += write_per_class_outputs(rows, args.output, source)
        print("\nwrote " + ", ".join(written))
    return metrics


if __name__ == "__main__":
    main()
