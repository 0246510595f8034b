#!/usr/bin/env python
"""Time and peak memory of reading the class prior from an LVIS-size training json, before / after
the streaming reader, and of a model build with ``MODEL.BALMS.PRIOR.SOURCE json``; all in one run.

    python benchmarks/bench_prior_build.py                 # LVIS v1 train size (~1 GB json)
    python benchmarks/bench_prior_build.py --scale 0.01 --out /tmp/prior_build.json   # a quick check

The training json is generated into a temporary folder (``--data-dir`` to keep / reuse it; never in
the repository): LVIS v1 train's shape and key order (info, annotations, images, licenses,
categories), 1,203 long-tailed categories with image_count / instance_count / frequency / name /
synonyms / def, 100,000 images, 1.27M annotations with one or two 20-40 point polygons and a bbox
each; ``--scale`` scales images and annotations. It is registered as an LVIS-style dataset
(``register_lvis_style_instances``) in the processes that build a model.

Each measurement runs in a fresh subprocess, imports (and registration) first. Memory columns: "step
peak", the peak resident memory while the step runs (Linux: VmHWM, reset before the step through
/proc/self/clear_refs; elsewhere the process's peak); "growth", that peak minus the resident memory just
before the step; "process peak", ``ru_maxrss`` of the whole process (imports and registration included):

* (a) ``counts_from_lvis_json`` as it was: ``json.load`` of the whole file (reproduced below);
* (b) ``counts_from_lvis_json`` now: the streaming read of ``categories`` only, and (b+) with the
  number of images counted too (``need_num_images=True``); (b0) the bare reader
  (``balms_eval.json_categories``) in a process without torch;
* (c) ``build_model`` with ``PRIOR.SOURCE json`` from the YAML config, after the dataset's registration,
  then ``resolve_priors`` (a training run's start; a model built for inference reads no prior at all),
  and (c-) the same build with (a)'s reader patched in (``balms_det.modeling.priors.counts_from_lvis_json``);
* (d) ``build_model`` with ``PRIOR.SOURCE list`` and the counts given: no prior read. The prior's share
  of a build is (c) - (d). The registration (its own read of the json) is timed in (d)'s process.

Prints a table and the before / after ratios of this run (no thresholds: the numbers vary from
machine to machine and run to run), and writes them with the machine's description to ``--out``.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from long_tail.records import cpu_model, git
from lvis_sized_json import KEY_ORDER, NUM_CATEGORIES, generate

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CONFIG = os.path.join(REPO, "configs", "LVISv1-InstanceSegmentation",
                              "mask_rcnn_R_50_FPN_1x_balanced_softmax.yaml")
DATASET_NAME = "bench_prior_lvis_train"
RESULT_TAG = "BENCH_RESULT "

# kind: (label, what is measured)
KINDS = {
    "before": ("(a) counts_from_lvis_json, json.load (before)", "read"),
    "after": ("(b) counts_from_lvis_json, streaming (after)", "read"),
    "after_images": ("(b+) same, + number of images", "read"),
    "reader": ("(b0) bare reader, no torch in process", "read"),
    "build_before": ("(c-) build_model, json prior, (a)'s reader", "build"),
    "build": ("(c) build_model, PRIOR.SOURCE json", "build"),
    "build_list": ("(d) build_model, PRIOR.SOURCE list", "build"),
}


def old_counts_from_lvis_json(json_file, count="image_count", id_map=None, need_num_images=True):
    """``counts_from_lvis_json`` before the streaming reader (``need_num_images`` did not exist: ignored)."""
    import torch
    from detectron2.utils.file_io import PathManager

    with PathManager.open(json_file) as f:
        data = json.load(f)
    cats = data["categories"]
    missing = [c["id"] for c in cats if count not in c]
    if missing:
        raise ValueError(f"{json_file}: categories {missing[:5]}... have no {count!r} field")
    if id_map is None:
        ids = sorted(c["id"] for c in cats)
        id_map = {i: r for r, i in enumerate(ids)}
    counts = torch.zeros(len(id_map), dtype=torch.float64)
    for c in cats:
        if c["id"] in id_map:
            counts[id_map[c["id"]]] = float(c[count])
    return counts, len(data.get("images", [])) or None


def _status_kb(field):
    """A memory line of /proc/self/status (VmRSS: resident now, VmHWM: its peak), in kB; None elsewhere."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_peak():
    """Reset this process's peak resident memory (VmHWM) to its current one (Linux >= 4.0); False elsewhere.
    ``ru_maxrss`` may keep the older peak (a thread that ended before recorded it), so the step's peak is
    read from VmHWM."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_kb():
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r // 1024 if sys.platform == "darwin" else r


def worker(kind, args):
    """One measurement in this (fresh) process; prints a RESULT_TAG line with its numbers."""
    sys.path.insert(0, REPO)
    out = {"kind": kind}
    if kind == "reader":
        from balms_eval.json_categories import read_json_categories
    else:
        from balms_det.modeling import priors
    if KINDS[kind][1] == "build":
        from detectron2.modeling import build_model

        from balms_det.data import register_lvis_style_instances
        from balms_det.engine import build_config

        cfg = build_config(args.config_file, list(args.opts))
        cfg.DATASETS.TRAIN = (DATASET_NAME,)
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.WEIGHTS = ""
        if kind == "build_list":
            with open(args.counts) as f:
                given = json.load(f)
            cfg.MODEL.BALMS.PRIOR.SOURCE = "list"
            cfg.MODEL.BALMS.PRIOR.COUNTS = given[cfg.MODEL.BALMS.PRIOR.COUNT]
            cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = given["num_images"]
        else:
            cfg.MODEL.BALMS.PRIOR.SOURCE = "json"
        if kind == "build_before":
            priors.counts_from_lvis_json = old_counts_from_lvis_json
        t = time.perf_counter()
        register_lvis_style_instances(DATASET_NAME, args.json, os.path.dirname(args.json) + "/")
        out["register_s"] = time.perf_counter() - t
        out["register_peak_kb"] = _maxrss_kb()
    out["imports_peak_kb"] = _maxrss_kb()
    out["peak_reset"] = _reset_peak()
    out["baseline_kb"] = _status_kb("VmRSS")
    t = time.perf_counter()
    if kind == "reader":
        from balms_eval.json_categories import count_json_images

        cats = read_json_categories(args.json)
        counts = {c["id"]: c["image_count"] for c in cats}
        n = count_json_images(args.json)
        out["result"] = {"image_count_sum": sum(counts.values()), "num_categories": len(counts), "num_images": n}
    elif KINDS[kind][1] == "read":
        fn = old_counts_from_lvis_json if kind == "before" else priors.counts_from_lvis_json
        counts, n = fn(args.json, "image_count", None, need_num_images=(kind != "after"))
        out["result"] = {"image_count_sum": float(counts.sum()), "num_categories": counts.numel(), "num_images": n}
    else:
        from balms_det.modeling import resolve_priors

        model = build_model(cfg)  # reads no prior: a model built for inference stops here
        resolve_priors(model)  # what a training run does before its first step
        out["result"] = {"parameters": sum(p.numel() for p in model.parameters())}
    out["seconds"] = time.perf_counter() - t
    out["ru_maxrss_kb"] = _maxrss_kb()
    hwm = _status_kb("VmHWM")
    out["peak_kb"] = hwm if (out["peak_reset"] and hwm is not None) else out["ru_maxrss_kb"]
    out["process_peak_kb"] = max(out["ru_maxrss_kb"], out["imports_peak_kb"], out.get("register_peak_kb", 0))
    print(RESULT_TAG + json.dumps(out), flush=True)


def run_worker(kind, args, json_path, counts_path):
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", kind, "--json", json_path, "--counts", counts_path,
           "--config-file", args.config_file, "--"] + list(args.opts)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"), PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(cmd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=REPO)
    lines = [x for x in proc.stdout.splitlines() if x.startswith(RESULT_TAG)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"worker {kind!r} failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return json.loads(lines[-1][len(RESULT_TAG):])


# -------------------------------------------------------------------------------------------- report
def machine_info():
    def mem_total_gb():
        try:
            with open("/proc/meminfo") as f:
                return round(int(next(x for x in f if x.startswith("MemTotal")).split()[1]) / 2 ** 20, 1)
        except (OSError, StopIteration):
            return None

    from importlib import metadata

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    return {
        "cpu": cpu_model(), "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "mem_total_gb": mem_total_gb(), "platform": platform.platform(), "python": platform.python_version(),
        "torch": version("torch"), "detectron2": version("sal-detectron2") or version("detectron2"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS", "1"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
    }


def _median(rows, key):
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def _ratio(a, b):
    return a / b if (a is not None and b is not None and b > 0) else None


def _fmt_ratio(r):
    return f"{r:,.1f}x" if r is not None else "n/a"


def summarize(results):
    """Medians per kind (over --repeats) and the before / after ratios."""
    med = {}
    for kind, rows in results.items():
        med[kind] = {"seconds": _median(rows, "seconds"), "peak_mb": _median(rows, "peak_kb") / 1024,
                     "process_peak_mb": _median(rows, "process_peak_kb") / 1024,
                     "growth_mb": (_median(rows, "peak_kb") - _median(rows, "baseline_kb")) / 1024,
                     "peak_reset": all(r["peak_reset"] for r in rows)}
        if any("register_s" in r for r in rows):
            med[kind]["register_s"] = _median(rows, "register_s")
            med[kind]["register_peak_mb"] = _median(rows, "register_peak_kb") / 1024
    ratios = {}
    if "before" in med and "after" in med:
        a, b = med["before"], med["after"]
        ratios["read_time_before_over_after"] = _ratio(a["seconds"], b["seconds"])
        ratios["read_peak_before_over_after"] = _ratio(a["peak_mb"], b["peak_mb"])
        ratios["read_growth_before_over_after"] = _ratio(a["growth_mb"], b["growth_mb"])
    if "after_images" in med and "before" in med:
        ratios["read_time_before_over_after_with_images"] = _ratio(med["before"]["seconds"],
                                                                   med["after_images"]["seconds"])
    if "build_list" in med:
        d = med["build_list"]
        for kind in ("build", "build_before"):
            if kind in med:
                med[kind]["prior_seconds"] = med[kind]["seconds"] - d["seconds"]
                med[kind]["prior_peak_mb"] = med[kind]["peak_mb"] - d["peak_mb"]
        if "build" in med and "build_before" in med:
            ratios["build_time_before_over_after"] = _ratio(med["build_before"]["seconds"], med["build"]["seconds"])
            ratios["build_peak_before_over_after"] = _ratio(med["build_before"]["peak_mb"], med["build"]["peak_mb"])
            ratios["build_prior_time_before_over_after"] = _ratio(med["build_before"]["prior_seconds"],
                                                                  med["build"]["prior_seconds"])
    return med, ratios


def print_table(med, ratios, record):
    d = record["data"]
    print(f"\nfile: {d['file_mb']:,.1f} MB ({d['num_images']:,} images, {d['num_annotations']:,} annotations, "
          f"{d['num_categories']:,} categories), generated in {d['generate_s']:.1f} s; "
          f"{record['repeats']} run(s) per row, medians")
    print(f"machine: {record['machine']['cpu']}, {record['machine']['cpus_usable']} usable CPUs, "
          f"{record['machine']['mem_total_gb']} GB, OMP_NUM_THREADS={record['machine']['omp_num_threads']}")
    w = max(len(KINDS[k][0]) for k in med)
    print(f"\n{'step':<{w}}  {'time s':>8}  {'step peak MB':>12}  {'growth MB':>9}  {'process peak MB':>15}")
    for kind in KINDS:
        if kind in med:
            m = med[kind]
            print(f"{KINDS[kind][0]:<{w}}  {m['seconds']:>8.3f}  {m['peak_mb']:>12,.0f}  {m['growth_mb']:>9,.1f}  "
                  f"{m['process_peak_mb']:>15,.0f}")
    if "build_list" in med:
        print("\nthe prior's share of a model build, (c) - (d):")
        for kind in ("build_before", "build"):
            if kind in med:
                m = med[kind]
                print(f"  {KINDS[kind][0]:<{w}}  {m['prior_seconds']:>+8.3f} s  {m['prior_peak_mb']:>+9,.0f} MB step peak")
        r = med["build_list"]
        print(f"registration (register_lvis_style_instances, in (d)'s process): {r['register_s']:.2f} s, "
              f"process peak {r['register_peak_mb']:,.0f} MB (not part of the build's numbers above)")
    print("\nbefore / after, this run:")
    names = {
        "read_time_before_over_after": "prior read time (a)/(b)",
        "read_time_before_over_after_with_images": "prior read time (a)/(b+)",
        "read_peak_before_over_after": "prior read step peak RSS (a)/(b)",
        "read_growth_before_over_after": "prior read memory growth (a)/(b)",
        "build_time_before_over_after": "model build time (c-)/(c)",
        "build_peak_before_over_after": "model build step peak RSS (c-)/(c)",
        "build_prior_time_before_over_after": "prior's share of build time ((c-)-(d))/((c)-(d))",
    }
    for key, name in names.items():
        if key in ratios:
            note = "" if ratios[key] is not None else " (denominator within noise of 0)"
            print(f"  {name:<50} {_fmt_ratio(ratios[key])}{note}")
    if not all(m["peak_reset"] for m in med.values()):
        print("(peak memory could not be reset before the steps here: step peaks include the imports' and "
              "registration's)")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scale", type=float, default=1.0, help="fraction of LVIS v1 train's images and annotations")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=1, help="runs of each measurement (interleaved); medians")
    p.add_argument("--out", default=None, help="JSON record (default benchmarks/results/prior_build[_scaleS].json)")
    p.add_argument("--data-dir", default=None, help="keep the generated json here (reused if already there)")
    p.add_argument("--config-file", default=DEFAULT_CONFIG)
    p.add_argument("--skip", nargs="*", default=[], choices=list(KINDS), help="measurements to leave out")
    p.add_argument("--worker", default=None, choices=list(KINDS), help=argparse.SUPPRESS)
    p.add_argument("--json", default=None, help=argparse.SUPPRESS)
    p.add_argument("--counts", default=None, help=argparse.SUPPRESS)
    p.add_argument("opts", nargs="*", help="config overrides (KEY VALUE ...) for the model builds, after --")
    args = p.parse_args()
    if args.worker:
        return worker(args.worker, args)

    out = args.out or os.path.join(REPO, "benchmarks", "results",
                                   "prior_build.json" if args.scale == 1 else f"prior_build_scale{args.scale:g}.json")
    if args.data_dir and os.path.abspath(args.data_dir).startswith(REPO + os.sep):
        p.error("--data-dir must be outside the repository")
    machine = machine_info()  # before the runs: the commit and the load they start from
    tmp = None if args.data_dir else tempfile.mkdtemp(prefix="bench_prior_build_")
    data_dir = args.data_dir or tmp
    os.makedirs(data_dir, exist_ok=True)
    try:
        tag = f"lvis_v1_train_like_scale{args.scale:g}_seed{args.seed}"
        json_path, summary_path = os.path.join(data_dir, tag + ".json"), os.path.join(data_dir, tag + ".summary.json")
        if os.path.isfile(json_path) and os.path.isfile(summary_path):
            with open(summary_path) as f:
                summary = json.load(f)
            print(f"reusing {json_path}")
        else:
            print(f"generating {json_path} ...", flush=True)
            t = time.perf_counter()
            summary = generate(json_path, args.scale, args.seed)
            summary["generate_s"] = time.perf_counter() - t
            with open(summary_path, "w") as f:
                json.dump(summary, f)
        counts_path = os.path.join(data_dir, tag + ".counts.json")
        with open(counts_path, "w") as f:
            json.dump({"image_count": summary["image_count"], "instance_count": summary["instance_count"],
                       "num_images": summary["num_images"]}, f)

        kinds = [k for k in KINDS if k not in args.skip]
        results = {k: [] for k in kinds}
        for r in range(args.repeats):
            order = kinds if r % 2 == 0 else kinds[::-1]
            for kind in order:
                print(f"  run {r + 1}/{args.repeats}: {KINDS[kind][0]} ...", flush=True)
                results[kind].append(run_worker(kind, args, json_path, counts_path))

        # the readers must agree (a correctness check, not a timing one)
        expected_sum = sum(summary["image_count"])
        for kind in ("before", "after", "after_images", "reader"):
            for row in results.get(kind, []):
                res = row["result"]
                want_n = None if kind == "after" else summary["num_images"]
                if (res["image_count_sum"], res["num_categories"], res["num_images"]) != (
                        expected_sum, NUM_CATEGORIES, want_n):
                    raise SystemExit(f"{kind}: read {res}, expected image_count sum {expected_sum}, "
                                     f"{NUM_CATEGORIES} categories, {want_n} images")

        med, ratios = summarize(results)
        record = {
            "benchmark": "bench_prior_build", "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "command": " ".join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:]),
            "scale": args.scale, "seed": args.seed, "repeats": args.repeats,
            "config_file": os.path.relpath(args.config_file, REPO), "opts": list(args.opts),
            "data": {"file_bytes": os.path.getsize(json_path), "file_mb": os.path.getsize(json_path) / 2 ** 20,
                     "key_order": list(KEY_ORDER), "generate_s": summary.get("generate_s"),
                     **{k: summary[k] for k in ("num_categories", "num_images", "num_annotations")}},
            "machine": machine,
            "labels": {k: v[0] for k, v in KINDS.items() if k in med},
            "medians": med, "ratios": ratios, "runs": results,
        }
        record["machine"]["loadavg_end"] = list(os.getloadavg()) if hasattr(os, "getloadavg") else None
        print_table(med, ratios, record)
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        with open(out, "w") as f:
            json.dump(record, f, indent=1)
        print(f"\nrecord: {out}")
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
