#!/usr/bin/env python
"""Train two configs with the same schedule and seed(s) through tools/train_net.py, then print their
LVIS-style results side by side (bbox / segm AP, APr, APc, APf; mean over seeds if several).

    OMP_NUM_THREADS=1 python benchmarks/compare_heads.py --seeds 0 --iters 600
    python benchmarks/compare_heads.py --configs A.yaml B.yaml --seeds 0 1 2 -- SOLVER.IMS_PER_BATCH 4

Default configs: the lt_shapes softmax baseline vs Balanced Softmax (they differ only in the head).
``--iters N`` shortens the schedule: MAX_ITER N, LR steps at the same fractions as the config's.
Runs already finished (``OUTPUT_DIR/metrics.json`` with final results) are not repeated.
``--summary FILE`` also writes the per-seed results and the table as JSON (for later sessions / the README);
``--plot FILE.png`` draws them: AP, APr, APc, APf per config, bbox and segm side by side (std bars if several seeds).
Stage 2 (decoupled) configs from the same stage-1 weights: ``-- MODEL.WEIGHTS path/to/model_final.pth``.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

from long_tail.records import final_results

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = [
    "configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml",
    "configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.yaml",
]
METRICS = ["AP", "AP50", "APr", "APc", "APf"]


def schedule_opts(config, iters):
    if not iters:
        return []
    sys.path.insert(0, ROOT)
    from balms_det.engine import build_config

    cfg = build_config(os.path.join(ROOT, config))
    f = iters / cfg.SOLVER.MAX_ITER
    steps = tuple(sorted({max(1, int(s * f)) for s in cfg.SOLVER.STEPS if int(s * f) < iters}))
    return ["SOLVER.MAX_ITER", str(iters), "SOLVER.STEPS", str(steps),
            "SOLVER.WARMUP_ITERS", str(min(cfg.SOLVER.WARMUP_ITERS, max(1, iters // 10))),
            "SOLVER.CHECKPOINT_PERIOD", str(iters)]


def run(config, seed, out_dir, extra, num_gpus):
    res = final_results(out_dir)
    if res is not None:
        return res
    cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file",
           os.path.join(ROOT, config), "--num-gpus", str(num_gpus),
           "SEED", str(seed), "OUTPUT_DIR", out_dir] + extra
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)
    res = final_results(out_dir)
    if res is None:
        raise RuntimeError(f"{out_dir}/metrics.json has no final evaluation (bbox/AP)")
    return res


def plot_summary(summary, path):
    """Grouped bars: for bbox and segm, AP / APr / APc / APf of every config (mean, std as error bar)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # Agg canvas, no pyplot

    names, metrics = list(summary["configs"]), ["AP", "APr", "APc", "APf"]
    prefix = os.path.commonprefix(names) if len(names) > 1 else ""
    prefix = prefix[: prefix.rfind("_") + 1]  # labels without the shared "mask_rcnn_R18_FPN_"
    rows = (len(names) + 3) // 4
    fig = Figure(figsize=(6 + 1.2 * len(names), 4.2 + 0.25 * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    width = 0.8 / len(names)
    for ax, task in zip(axes, ("bbox", "segm")):
        for i, name in enumerate(names):
            stats = [summary["configs"][name][f"{task}/{m}"] for m in metrics]
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(metrics))]
            ax.bar(xs, [s["mean"] for s in stats], width, yerr=[s["std"] or 0 for s in stats],
                   label=name[len(prefix):], color=f"C{i}")
        ax.set_xticks(range(len(metrics)), metrics)
        seeds = summary["seeds"]
        ax.set_title(f"{task}, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("AP (%)")
    fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=min(len(names), 4), fontsize=8)
    fig.tight_layout(rect=(0, 0.06 * rows + 0.02, 1, 1))
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--configs", nargs="+", default=DEFAULT)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0])
    ap.add_argument("--iters", type=int, default=0, help="shortened schedule (0 = the configs' own)")
    ap.add_argument("--num-gpus", type=int, default=1, help="processes per run (gloo on CPU)")
    ap.add_argument("--output", default=os.path.join(ROOT, "output", "compare_heads"))
    ap.add_argument("--summary", default="", help="write per-seed results and the table to this JSON file")
    ap.add_argument("--plot", default="", help="draw AP / APr / APc / APf per config to this PNG file")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="overrides for every run, after --")
    args = ap.parse_args()
    extra = [o for o in args.opts if o != "--"]

    table = {}
    for config in args.configs:
        name = os.path.splitext(os.path.basename(config))[0]
        sched = schedule_opts(config, args.iters)
        per_seed = []
        for seed in args.seeds:
            out = os.path.join(args.output, f"{name}_it{args.iters or 'full'}_s{seed}")
            per_seed.append(run(config, seed, out, sched + extra, args.num_gpus))
        table[name] = per_seed

    cols = [f"{t}/{m}" for t in ("bbox", "segm") for m in METRICS]
    print(f"\nseeds: {args.seeds}  schedule: {args.iters or 'as in config'} iterations  "
          f"(mean{' ± std' if len(args.seeds) > 1 else ''} over seeds)")
    print(f"{'config':42s} " + " ".join(f"{c:>12s}" for c in cols))
    summary = {"seeds": args.seeds, "iters": args.iters or None, "overrides": extra, "configs": {}}
    for name, runs in table.items():
        cells, stats = [], {}
        for c in cols:
            v = [r.get(c, float("nan")) for r in runs]
            stats[c] = {"mean": statistics.mean(v), "std": statistics.stdev(v) if len(v) > 1 else None, "per_seed": v}
            s = f"{statistics.mean(v):.1f}" + (f"±{statistics.stdev(v):.1f}" if len(v) > 1 else "")
            cells.append(f"{s:>12s}")
        print(f"{name:42s} " + " ".join(cells))
        summary["configs"][name] = stats
    if args.summary:
        os.makedirs(os.path.dirname(os.path.abspath(args.summary)), exist_ok=True)
        with open(args.summary, "w") as f:
            json.dump(summary, f, indent=1)
        print(f"summary written to {args.summary}")
    if args.plot:
        plot_summary(summary, args.plot)
        print(f"plot written to {args.plot}")


if __name__ == "__main__":
    main()
