#!/usr/bin/env python
"""Evaluate a saved results file against a COCO- or LVIS-format annotation file, without a model.

    python tools/lvis_eval.py --gt ANN.json --results RESULTS.json [--train-gt TRAIN.json]
        [--iou-type bbox segm] [--backend fast|lvis] [--output DIR] [--frequency-thresholds 10 100]

Prints AP, AP50, AP75, APs/m/l and APr/APc/APf per IoU type (percent, as detectron2 reports
them) and per-class tables per frequency group. LVIS files carry each category's group; for other
files the groups come from --train-gt's training images per class. Ground truth with LVIS's
federated fields is scored by LVIS's rules, other ground truth exhaustively (COCO's rules). A group made
from the training counts that has no category (its AP is NaN) is said in a note, with thresholds that
would split the classes (the tertiles of their training image counts). With
--output, writes DIR/metrics.json ({"bbox": {"AP": .., "APr": .., ...}, "segm": {...}}) and
DIR/per_class_ap.{json,csv,png}. An input file that cannot be used (missing, unreadable, not JSON,
not a COCO/LVIS annotation file, an invalid detection) ends the run with exit status 1 and one line,
"error: <file>: <what is wrong>"; so does a --train-gt without some of the ground truth's categories
when the groups come from its counts (with LVIS's 'frequency' groups: a warning, and those classes'
counts left out). Imports neither torch nor detectron2 (balms_eval only).
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
    p.add_argument("--gt", required=True, help="COCO/LVIS-format annotation file (e.g. lvis_v1_val.json)")
    p.add_argument("--results", required=True, help="detections: a JSON list as *_results.json / lvis_instances_results.json")
    p.add_argument("--iou-type", nargs="+", choices=("bbox", "segm"), default=None,
                   help="default: bbox, and segm when the detections have masks")
    p.add_argument("--backend", choices=("fast", "lvis"), default="fast",
                   help="fast: hotcoco; lvis: the references (lvis-api, or pycocotools for exhaustive ground truth)")
    p.add_argument("--max-dets", type=int, default=300, help="detections kept per image (LVIS: 300; -1: all)")
    p.add_argument("--output", default=None, help="directory for metrics.json and per-class files")
    p.add_argument("--train-gt", default=None,
                   help="training annotation file: its categories' image_count, or else images per class counted "
                        "from its annotations, group categories without an LVIS 'frequency' into rare/common/"
                        "frequent and are the per-class x-axis (default: the image_count of --gt, i.e. val counts); "
                        "it must list every category of --gt, under the same names")
    p.add_argument("--frequency-thresholds", nargs=2, type=int, default=[10, 100], metavar=("RARE_MAX", "COMMON_MAX"),
                   help="training images per class: rare <= RARE_MAX < common <= COMMON_MAX < frequent (LVIS: 10 100); "
                        "used for categories without an LVIS 'frequency'")
    p.add_argument("--no-per-class", action="store_true", help="skip per-class tables and files")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from balms_eval import InputFileError, LVISGroundTruth, LVISResultsError, evaluate, read_training_counts
    from balms_eval.metrics import format_metrics
    from balms_eval.per_class import format_per_class_tables, per_class_rows, write_per_class_outputs
    from balms_eval.results_io import check_readable, load_json

    t0 = time.perf_counter()
    try:  # the annotation files can be opened at all, before a long read of the results
        check_readable(args.gt, "annotation")
        if args.train_gt:
            check_readable(args.train_gt, "training annotation")
        results = load_json(args.results, "results")
    except InputFileError as e:
        sys.exit(f"error: {e}")
    if not isinstance(results, list):
        sys.exit(f"error: {args.results}: expected a JSON list of detections, got {type(results).__name__}")
    if not results:
        sys.exit(f"error: {args.results}: the results list is empty: no detections to evaluate")
    iou_types = args.iou_type or (["bbox"] + (["segm"] if results and all(
        "segmentation" in r for r in results if isinstance(r, dict)) else []))
    try:
        counts, count_source, count_categories = (read_training_counts(args.train_gt) if args.train_gt
                                                  else (None, None, None))
        gt = LVISGroundTruth(args.gt, args.backend, image_counts=counts, count_source=count_source,
                             count_categories=count_categories, count_file=args.train_gt,
                             thresholds=args.frequency_thresholds,
                             missing_counts_hint="pass --train-gt TRAIN.json (a COCO/LVIS-format training file)",
                             thresholds_name="--frequency-thresholds")
        res = evaluate(gt, results, iou_types, max_dets_per_image=args.max_dets)
    except InputFileError as e:  # an annotation file (its path first)
        sys.exit(f"error: {e}")
    except LVISResultsError as e:
        sys.exit(f"error: {args.results}: {e}")
    except ValueError as e:
        sys.exit(f"error: {e}")
    metrics = {}
    for iou_type in iou_types:
        percent = res[iou_type].metrics_percent()
        metrics[iou_type] = {k: (None if math.isnan(v) else v) for k, v in percent.items()}
        print(f"\n{iou_type} ({args.backend} backend, {gt.labelling} labelling, {len(results)} detections, "
              f"max {args.max_dets}/image):")
        print(format_metrics(percent))
    if gt.groups.note:  # a frequency group without a category: its AP is NaN
        print(f"\nnote: {gt.groups.note}")
    print(f"\nread and evaluated in {time.perf_counter() - t0:.2f} s")

    written = []
    if args.output:
        os.makedirs(args.output, exist_ok=True)
        with open(os.path.join(args.output, "metrics.json"), "w") as f:
            json.dump(metrics, f, indent=1)
        written.append(os.path.join(args.output, "metrics.json"))
    if not args.no_per_class:
        rows = per_class_rows(gt.categories, {t: r.per_class_ap for t, r in res.items()}, gt.groups)
        print("\n" + format_per_class_tables(rows, gt.groups, gt.labelling))
        if args.output:
            written += write_per_class_outputs(rows, args.output, gt.groups, gt.labelling)
    if written:
        print("\nwrote " + ", ".join(written))
    return metrics


if __name__ == "__main__":
    main()
