#!/usr/bin/env python
"""Time LVIS evaluation, lvis-api vs the fast backend (hotcoco), on the same detections in one run.

    OMP_NUM_THREADS=1 python benchmarks/bench_lvis_eval.py [--gt ANN.json] [--dets-per-image 300]

Detections: jittered ground truth + random false positives (balms_det.evaluation.fake_detections),
300 per image with RLE masks, on the real LVIS v0.5 val ground truth of 100 images
(../shared/data/lvis_v0.5_val_100.json, or BALMS_SHARED_DATA). Each timing is end to end from the
results list: input checks, LVIS's 300-per-image cap, matching, accumulation, summary; the ground
truth is loaded once beforehand (as the evaluator does at construction) and timed separately.
Every timing is the best of --repeats runs. Also checks the metrics agree.

hotcoco's Rust core uses all cores (rayon); lvis-api uses one. RAYON_NUM_THREADS=1 gives the
single-thread ratio.
"""
import argparse
import json
import logging
import math
import os
import platform
import time

from balms_det.evaluation import METRICS, LVISGroundTruth, evaluate_lvis
from balms_det.evaluation.fake_detections import make_fake_lvis_detections

TARGET = 20.0  # the speed-up target, end to end from the results list
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(fn, repeats):
    best, out = math.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def replicate(gt, n):
    """``gt`` with its images (and their annotations) repeated ``n`` times under new ids."""
    if n == 1:
        return gt
    step_img = max(im["id"] for im in gt["images"]) + 1
    step_ann = max(a["id"] for a in gt["annotations"]) + 1
    out = {k: v for k, v in gt.items() if k not in ("images", "annotations")}
    out["images"] = [dict(im, id=im["id"] + k * step_img) for k in range(n) for im in gt["images"]]
    out["annotations"] = [dict(a, id=a["id"] + k * step_ann, image_id=a["image_id"] + k * step_img)
                          for k in range(n) for a in gt["annotations"]]
    return out


def main():
    root = os.environ.get("BALMS_SHARED_DATA") or os.path.join(REPO, "..", "shared", "data")
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--gt", default=os.path.join(root, "lvis_v0.5_val_100.json"))
    p.add_argument("--dets-per-image", type=int, default=300)
    p.add_argument("--repeats", type=int, default=5, help="each timing: best of this many runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--results", help="a saved LVIS results file (e.g. a model's "
                   "lvis_instances_results.json) instead of generated detections")
    p.add_argument("--replicate", type=int, default=1,
                   help="evaluate on this many copies of the ground truth's images (new ids): fixed "
                        "costs matter less on larger sets, as on full LVIS val (19.8k images)")
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # lvis-api: np.float, logger.warn

    with open(args.gt) as f:
        gt_dict = replicate(json.load(f), args.replicate)
    t = time.perf_counter()
    if args.results:
        with open(args.results) as f:
            results = json.load(f)
        if args.replicate != 1:
            p.error("--replicate needs generated detections (no --results)")
        print(f"detections: {len(results)} from {args.results}")
    else:
        results = make_fake_lvis_detections(gt_dict, seed=args.seed, dets_per_image=args.dets_per_image,
                                            skip_images=0)
        print(f"detections: {len(results)} ({args.dets_per_image}/image, with RLE masks), made in "
              f"{time.perf_counter() - t:.1f} s")
    print(f"ground truth: {args.gt} ({len(gt_dict['images'])} images, {len(gt_dict['annotations'])} instances, "
          f"{len(gt_dict['categories'])} categories)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')} (hotcoco's threads; lvis-api "
          f"uses one)\n")

    def load_fast():
        gt = LVISGroundTruth(gt_dict, "fast")
        gt.prepare_masks()  # else done by the first segm evaluation: timed here, as loading
        return gt

    load_fast, gt_fast = timed(load_fast, 1)
    load_ref, gt_ref = timed(lambda: LVISGroundTruth(gt_dict, "lvis"), 1)
    print(f"load ground truth: lvis-api {load_ref:.3f} s, fast {load_fast:.3f} s (incl. polygons -> RLE)\n")
    print("lvis-api: the reference alone (check=False); fast: hotcoco with balms_det's input checks (the\n"
          "default, what the evaluator and tools/lvis_eval.py run) and without them (check=False).\n")
    print(f"{'iou type':8} | {'lvis-api (s)':>12} | {'fast (s)':>9} | {'speed-up':>8} | "
          f"{'fast, no checks (s)':>19} | {'speed-up':>8} | max |delta| (fraction)")
    print("-" * 100)
    verdicts = []
    for iou_type in ("bbox", "segm"):
        t_ref, ref = timed(lambda: evaluate_lvis(gt_ref, results, iou_type, check=False), args.repeats)
        t_fast, fast = timed(lambda: evaluate_lvis(gt_fast, results, iou_type), args.repeats)
        t_raw, _ = timed(lambda: evaluate_lvis(gt_fast, results, iou_type, check=False), args.repeats)
        delta = max(abs(fast.metrics[k] - ref.metrics[k]) for k in METRICS)
        print(f"{iou_type:8} | {t_ref:12.3f} | {t_fast:9.3f} | {t_ref / t_fast:7.1f}x | {t_raw:19.3f} | "
              f"{t_ref / t_raw:7.1f}x | {delta:.2e}")
        ok = t_ref / t_fast >= TARGET and delta <= 1e-6
        verdicts.append(f"{iou_type} {'met' if ok else 'NOT met'} ({t_ref / t_fast:.1f}x, |delta| {delta:.1e})")
    print(f"\ntarget (>= {TARGET:.0f}x with the checks, |delta| <= 1e-6): " + "; ".join(verdicts))


if __name__ == "__main__":
    main()
