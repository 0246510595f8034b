#!/usr/bin/env python
"""Time LVIS evaluation, lvis-api vs the fast backend (hotcoco), on the same detections in one run.

    python benchmarks/bench_lvis_eval.py [--gt ANN.json] [--dets-per-image 300] [--replicate N]
    python benchmarks/bench_lvis_eval.py --whole-process --replicate 10 --repeats 1
    python benchmarks/bench_lvis_eval.py --scale --replicate 50     # fast path only: 5,000 images

Detections: jittered ground truth + random false positives (benchmarks/fake_detections.py), 300 per
image with RLE masks, on the real LVIS v0.5 val ground truth of 100 images
(../shared/data/lvis_v0.5_val_100.json, or BALMS_SHARED_DATA), ``--replicate`` times under new ids.

Modes:
* default: in one process, end to end from the results list (checks, cap, filter, matching,
  accumulation, summary), per IoU type; the ground truth is loaded once beforehand and timed apart.
  Target: >= 20x with the checks, metrics within 1e-6.
* --whole-process: two processes on the same files, each timed from start to exit: tools/lvis_eval.py
  (bbox + segm, per-class files written) vs lvis-api's own process (start-up, reading both files,
  bbox + segm as detectron2 runs it). Target: >= 10x, metrics within 1e-6.
* --scale: the evaluator path at scale, fast backend only, in a fresh process: LVISEvaluator built
  on the replicated ground truth file, detections added image by image as process() keeps them,
  then evaluate (results JSON written, checks, filter, bbox + segm, per-class files); prints wall
  time and peak RSS. Target: <= 4 GB and <= 2 minutes at 20,000 images.

Every timing is the best of --repeats runs. hotcoco's Rust core uses all cores (rayon); lvis-api
uses one. RAYON_NUM_THREADS=1 gives the single-thread ratio.
"""
import argparse
import json
import logging
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
import orjson

from balms_eval import METRICS, LVISGroundTruth, ResultColumns, evaluate_lvis, read_results
from fake_detections import make_fake_lvis_detections

TARGET = 20.0  # in-process speed-up target, end to end from the results list
TARGET_WHOLE_PROCESS = 10.0
TARGET_SCALE_GB, TARGET_SCALE_S = 4.0, 120.0
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# lvis-api's whole process, as detectron2 runs it: read the files, evaluate bbox, then segm without "bbox".
LVIS_API_PROCESS = """
import json, sys, warnings
warnings.filterwarnings("ignore")
from lvis import LVIS, LVISEval, LVISResults
gt = LVIS(sys.argv[1])
with open(sys.argv[2]) as f:
    results = json.load(f)
out = {}
for iou_type in ("bbox", "segm"):
    res = results if iou_type == "bbox" else [{k: v for k, v in r.items() if k != "bbox"} for r in results]
    ev = LVISEval(gt, LVISResults(gt, res, max_dets=300), iou_type)
    ev.run()
    out[iou_type] = {k: 100.0 * v for k, v in ev.get_results().items()}
with open(sys.argv[3], "w") as f:
    json.dump(out, f)
"""


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
    step_img, step_ann = image_id_step(gt), max(a["id"] for a in gt["annotations"]) + 1
    out = {k: v for k, v in gt.items() if k not in ("images", "annotations")}
    out["images"] = [dict(im, id=im["id"] + k * step_img) for k in range(n) for im in gt["images"]]
    out["annotations"] = [dict(a, id=a["id"] + k * step_ann, image_id=a["image_id"] + k * step_img)
                          for k in range(n) for a in gt["annotations"]]
    return out


def image_id_step(gt):
    return max(im["id"] for im in gt["images"]) + 1


def machine_line():
    return (f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
            f"RAYON_NUM_THREADS={os.environ.get('RAYON_NUM_THREADS', 'unset')} (hotcoco's threads; lvis-api uses one)")


def in_process(args, gt_dict, results):
    load_fast, gt_fast = timed(lambda: LVISGroundTruth(gt_dict, "fast"), 1)
    load_ref, gt_ref = timed(lambda: LVISGroundTruth(gt_dict, "lvis"), 1)
    print(f"load ground truth: lvis-api {load_ref:.3f} s, fast {load_fast:.3f} s\n")
    print("lvis-api: the reference alone (check=False); fast: hotcoco with balms_eval's input checks (the\n"
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


def run_process(cmd):
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    elapsed = time.perf_counter() - t
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout[-4000:]}")
    return elapsed


def whole_process(args, gt_dict, results, tmp):
    gt_path, res_path = os.path.join(tmp, "gt.json"), os.path.join(tmp, "results.json")
    with open(gt_path, "wb") as f:
        f.write(orjson.dumps(gt_dict))
    with open(res_path, "wb") as f:
        f.write(orjson.dumps(results))
    print(f"files: ground truth {os.path.getsize(gt_path) / 1e6:.0f} MB, results {os.path.getsize(res_path) / 1e6:.0f} MB")
    ours = [sys.executable, "tools/lvis_eval.py", "--gt", gt_path, "--results", res_path, "--iou-type", "bbox",
            "segm", "--output", os.path.join(tmp, "ours")]
    ref_out = os.path.join(tmp, "lvis_api.json")
    theirs = [sys.executable, "-c", LVIS_API_PROCESS, gt_path, res_path, ref_out]
    t_ours, _ = timed(lambda: run_process(ours), args.repeats)
    t_ref, _ = timed(lambda: run_process(theirs), args.repeats)
    with open(os.path.join(tmp, "ours", "metrics.json")) as f:
        m_ours = json.load(f)
    with open(ref_out) as f:
        m_ref = json.load(f)
    delta = max(abs(m_ours[t][k] - m_ref[t][k]) / 100.0 for t in ("bbox", "segm") for k in METRICS)
    per_class = sorted(p for p in os.listdir(os.path.join(tmp, "ours")) if p.startswith("per_class_ap"))
    print("\nwhole process, bbox + segm, from start to exit (our CLI writes metrics.json and " + ", ".join(per_class) + ")")
    print(f"lvis-api process: {t_ref:.2f} s | tools/lvis_eval.py: {t_ours:.2f} s | ratio {t_ref / t_ours:.1f}x | "
          f"max |delta| {delta:.1e} (fraction)")
    ok = t_ref / t_ours >= TARGET_WHOLE_PROCESS and delta <= 1e-6
    print(f"\ntarget (whole process >= {TARGET_WHOLE_PROCESS:.0f}x, |delta| <= 1e-6): "
          f"{'met' if ok else 'NOT met'} ({t_ref / t_ours:.1f}x)")


def scale(args, gt_dict, tmp):
    """Write the replicated ground truth, then measure the evaluator path in a fresh process."""
    gt_path = os.path.join(tmp, "gt.json")
    with open(gt_path, "wb") as f:
        f.write(orjson.dumps(replicate(gt_dict, args.replicate)))
    cmd = [sys.executable, os.path.abspath(__file__), "--scale-child", gt_path, "--gt", args.gt,
           "--replicate", str(args.replicate), "--dets-per-image", str(args.dets_per_image), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout)
    if proc.returncode != 0:
        sys.exit(f"scale run failed ({proc.returncode})")


def scale_child(args):
    """The measured process: what an LVISEvaluator does at this scale, nothing else."""
    from detectron2.data import MetadataCatalog

    from balms_det.evaluation import LVISEvaluator
    from balms_eval.columns import ColumnsBuilder

    with open(args.gt) as f:
        base = json.load(f)
    step, n_base = image_id_step(base), len(base["images"])
    base_cols = read_results(make_fake_lvis_detections(base, seed=args.seed, dets_per_image=args.dets_per_image,
                                                       skip_images=0), {im["id"]: im for im in base["images"]})
    del base
    base_cols.category_id = base_cols.category_id - 1  # contiguous class ids, as a model outputs them
    order = np.argsort(base_cols.image_id, kind="stable")
    base_cols = base_cols.take(order)
    bounds = np.flatnonzero(np.diff(base_cols.image_id)) + 1
    per_image = [base_cols.take(np.arange(a, b)) for a, b in zip(np.r_[0, bounds], np.r_[bounds, len(base_cols)])]
    name = "bench_scale_gt"
    MetadataCatalog.get(name).set(json_file=args.scale_child, evaluator_type="lvis")
    out_dir = os.path.join(os.path.dirname(args.scale_child), "evaluator")
    t0 = time.perf_counter()
    ev = LVISEvaluator(name, distributed=False, output_dir=out_dir)
    t_load = time.perf_counter() - t0
    ev.reset()
    builder = ColumnsBuilder()  # what process() fills, image by image (the masks as fresh bytes each)
    for k in range(args.replicate):
        for part in per_image:
            masks = part.masks
            builder.add(ResultColumns(part.image_id + k * step, part.category_id, part.score, part.bbox,
                                      type(masks)(bytes(masks.counts[masks.start[0]:masks.start[-1] + masks.length[-1]]),
                                                  masks.start - masks.start[0], masks.length, masks.size)))
    columns = builder.build()
    del builder, per_image, base_cols
    n_images, n_dets = args.replicate * n_base, len(columns)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    t1 = time.perf_counter()
    results = ev.evaluate_columns(columns)
    t_eval = time.perf_counter() - t1
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB
    json_size = os.path.getsize(os.path.join(out_dir, "lvis_instances_results.json")) / 1e9
    print(machine_line())
    print(f"scale: {n_images:,} images, {n_dets:,} detections with RLE masks (results JSON written: {json_size:.2f} GB)")
    print(f"evaluator path, fast backend, bbox + segm: load ground truth {t_load:.1f} s + evaluate {t_eval:.1f} s = "
          f"{t_load + t_eval:.1f} s wall; peak RSS {peak:.2f} GB (detections collected: {rss_before:.2f} GB)")
    print(f"metrics (percent): bbox AP {results['bbox']['AP']:.3f}, segm AP {results['segm']['AP']:.3f}")
    ok = peak <= TARGET_SCALE_GB and t_load + t_eval <= TARGET_SCALE_S
    print(f"\ntarget (<= {TARGET_SCALE_GB:.0f} GB, <= {TARGET_SCALE_S:.0f} s): {'met' if ok else 'NOT met'}")


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
                   help="evaluate on this many copies of the ground truth's images (new ids), as on full LVIS "
                        "val (19.8k images): --replicate 200")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--whole-process", action="store_true", help="time whole processes: tools/lvis_eval.py vs lvis-api")
    mode.add_argument("--scale", action="store_true", help="wall time and peak RSS of the evaluator path (fast only)")
    mode.add_argument("--scale-child", help=argparse.SUPPRESS)
    args = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)  # lvis-api: np.float, logger.warn
    if args.scale_child:
        return scale_child(args)
    with open(args.gt) as f:
        gt_dict = json.load(f)
    print(machine_line())
    with tempfile.TemporaryDirectory() as tmp:
        if args.scale:
            return scale(args, gt_dict, tmp)
        gt_dict = replicate(gt_dict, args.replicate)
        t = time.perf_counter()
        if args.results:
            if args.replicate != 1:
                p.error("--replicate needs generated detections (no --results)")
            with open(args.results) as f:
                results = json.load(f)
            print(f"detections: {len(results)} from {args.results}")
        else:
            results = make_fake_lvis_detections(gt_dict, seed=args.seed, dets_per_image=args.dets_per_image,
                                                skip_images=0)
            print(f"detections: {len(results)} ({args.dets_per_image}/image, with RLE masks), made in "
                  f"{time.perf_counter() - t:.1f} s")
        print(f"ground truth: {args.gt} x {args.replicate} ({len(gt_dict['images'])} images, "
              f"{len(gt_dict['annotations'])} instances, {len(gt_dict['categories'])} categories)\n")
        if args.whole_process:
            return whole_process(args, gt_dict, results, tmp)
        in_process(args, gt_dict, results)


if __name__ == "__main__":
    main()
