"""A run's record: the fields read from its training outputs (``metrics.json``, ``log.txt``,
``meta_weights.json``), the machine and the commit, and the record's JSON file.

A record is ``--runs-dir/<suite>/<method>/seed<k>.json``: method, label, block, seed, suite, stage1,
eval_only, base_config, overrides, data, metrics, train_iters, s_per_iter, train_s, s_per_iter_median,
meta_weights, wall_s, commit, machine, finished, ``diverged`` ({iteration, error}) for a diverged run, and
``replaced`` (the earlier record's commit, machine, finished, metrics) for a stage 1 whose weights were trained again
without reproducing it (``Bench.check_stage1``; ``weights_from_cache`` where an earlier command trained them).
"""
import datetime
import json
import os
import platform
import re
import statistics
import subprocess

from .configs import ROOT
from .methods import TASKS


def git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    """The CPU's name (Linux: /proc/cpuinfo's "model name"), so that training times of two machines are told
    apart; "unknown CPU" elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or "unknown CPU")


def machine():
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    return (f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} CPU cores, {threads} threads, "
            f"torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}")


def final_results(out_dir):
    """The last line of ``OUTPUT_DIR/metrics.json`` with evaluation results (``bbox/AP``), or None."""
    path = os.path.join(out_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    res = None
    with open(path) as f:
        for line in f:
            d = json.loads(line)
            if "bbox/AP" in d:
                res = d
    return res


def final_metrics(out_dir):
    """The last evaluation of ``OUTPUT_DIR/metrics.json`` (bbox/..., segm/...), or None."""
    res = final_results(out_dir)
    return res and {k: v for k, v in res.items() if k.startswith(TASKS)}


def same_metrics(a, b, tol=1e-6):
    """Whether two evaluations (``final_metrics``) are the same run's: the same keys, equal values (NaN = NaN)."""
    return a.keys() == b.keys() and all(
        (a[k] != a[k] and b[k] != b[k]) or abs(a[k] - b[k]) <= tol for k in a)


def training_speed(out_dir):
    """(iterations trained, seconds per iteration or None): the last iteration in ``metrics.json``, and
    detectron2's last "Overall training speed" line in ``log.txt`` (absent for very short runs)."""
    iters = 0
    if os.path.exists(os.path.join(out_dir, "metrics.json")):
        with open(os.path.join(out_dir, "metrics.json")) as f:
            iters = max([json.loads(line).get("iteration", -1) + 1 for line in f if "total_loss" in line] or [0])
    path = os.path.join(out_dir, "log.txt")
    text = open(path).read() if os.path.exists(path) else ""
    found = re.findall(r"Overall training speed: \d+ iterations in [\d:]+ \(([\d.]+) s / it\)", text)
    return iters, (float(found[-1]) if found else None)


def divergence(log_text):
    """(iteration, message) when a run's output shows detectron2 stopping a diverged training
    (``FloatingPointError``: a NaN / Inf loss, or non-finite boxes), else None. The iteration is
    detectron2's count of iterations run ("Overall training speed: N iterations"), else the loss's
    "iteration=N", else the last logged "iter: N"."""
    errors = re.findall(r"^FloatingPointError: (.*)$", log_text, re.M)
    if not errors:
        return None
    found = (re.findall(r"Overall training speed: (\d+) iterations", log_text)
             or re.findall(r"iteration=(\d+)", log_text) or re.findall(r"iter: (\d+)", log_text))
    return (int(found[-1]) if found else None), errors[-1].strip()


def median_iteration_time(out_dir):
    """The median of the iteration times in ``metrics.json`` (each line: the median over its window), or
    None: the training cost without the time a run stood still (paused, or waiting for a busy machine)."""
    path = os.path.join(out_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        times = [d["time"] for d in map(json.loads, f) if "total_loss" in d and "time" in d]
    return statistics.median(times) if times else None


def meta_weight_groups(out_dir):
    """The Meta Reweighter's learned class weights in ``out_dir/meta_weights.json``, as the mean weight per
    frequency group ({"r": .., "c": .., "f": ..}), or None where the run has no Meta Reweighter."""
    import torch
    from balms_det.engine.meta_weights import weight_summary  # the hook's own group means

    path = os.path.join(out_dir, "meta_weights.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        classes = json.load(f)["classes"]
    summary = weight_summary(torch.tensor([c["weight"] for c in classes]), [c["frequency"] for c in classes])
    return {k[len("w_mean_"):]: round(v, 4) for k, v in summary.items() if k.startswith("w_mean_")}


def make_record(m, seed, suite, base_config, overrides, data_opts, out, metrics, wall, diverged=None):
    """The record of method ``m``'s run of ``seed`` whose outputs are in ``out``."""
    iters, s_per_iter = training_speed(out)
    if diverged:
        iters, s_per_iter = diverged[0] or iters, None
    rec = {
        "method": m.name, "label": m.label, "block": m.block, "seed": seed, "suite": suite,
        "stage1": m.stage1, "eval_only": m.eval_only,
        "base_config": base_config, "overrides": overrides, "data": data_opts,
        "metrics": metrics,
        "train_iters": iters, "s_per_iter": s_per_iter,
        "train_s": round(iters * s_per_iter, 1) if s_per_iter else None,
        "s_per_iter_median": median_iteration_time(out) if iters else None,
        "meta_weights": meta_weight_groups(out),
        "wall_s": round(wall, 1) if wall is not None else None,
        "commit": git("rev-parse", "--short", "HEAD"), "machine": machine(),
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
    }
    if diverged:
        rec["diverged"] = {"iteration": diverged[0], "error": diverged[1]}
    return rec


def write_record(path, rec):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rec, f, indent=1)
    return rec


def read_record(path):
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None
