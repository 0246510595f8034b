"""The report's figures: APr / APc / APf per method (``<report>.png``, a heading per block), per-class AP of
two methods (``--per-class``), and methods' detections on rare-class test images (``--figure``)."""
import json
import os
import statistics

from .methods import BLOCKS, TASKS


def plot(rows, path, suite):
    """Bars of APr / APc / APf (mean, std over seeds) per row, bbox and segm side by side, each block of rows
    under its heading; returns the figure."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    slots = []  # top to bottom: ("head", block) before each block's rows, ("row", row)
    for r in rows:
        if not slots or r["method"].block != slots[-1][1]["method"].block:
            slots.append(("head", r["method"].block))
        slots.append(("row", r))
    ys = list(range(len(slots)))[::-1]
    fig = Figure(figsize=(11, 0.34 * len(slots) + 1.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    colors = {"APr": "#d62728", "APc": "#ff7f0e", "APf": "#1f77b4"}
    bars = [(y, r) for y, (kind, r) in zip(ys, slots) if kind == "row"]
    h = 0.26
    for ax, task in zip(axes, TASKS):
        for j, k in enumerate(("APr", "APc", "APf")):
            mean = [r["cells"][f"{task}/{k}"][0] for _, r in bars]
            std = [r["cells"][f"{task}/{k}"][1] or 0 for _, r in bars]
            ax.barh([y + (1 - j) * h for y, _ in bars], mean, h, xerr=std, color=colors[k], label=k,
                    error_kw={"elinewidth": 0.8})
        for y, (kind, _) in zip(ys, slots):
            if kind == "head" and y != ys[0]:
                ax.axhline(y + 0.5, color="0.6", lw=0.6)
        ax.set_title(f"{task}: mean ± std over seeds")
        ax.set_xlabel("AP (%)")
        ax.grid(axis="x", alpha=0.3)
    labels = [f"{x}. {BLOCKS.get(x, '')}" if kind == "head" else f"{x['method'].label} (n={len(x['seeds'])})"
              for kind, x in slots]
    axes[0].set_yticks(ys, labels, fontsize=8)
    axes[0].set_ylim(-0.7, len(slots) - 0.3)
    for label, (kind, _) in zip(axes[0].get_yticklabels(), slots):
        if kind == "head":  # a block's heading: bold, no tick mark
            label.set_fontweight("bold")
            label.set_fontsize(9)
    for ax in axes:
        for tick, (kind, _) in zip(ax.yaxis.get_major_ticks(), slots):
            tick.tick1line.set_visible(kind != "head")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: no bar hidden
    fig.suptitle(f"{suite}: rare / common / frequent AP per method", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return fig


def per_class(bench, names, path, task="bbox"):
    """Per-class AP of two methods (mean over the seeds whose evaluation is in the cache), classes
    sorted by training images, with their difference: where a method's APr gain comes from."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    test = (bench.args.test or bench.base_cfg.DATASETS.TEST)[0]
    per, n_seeds = {}, {}
    for name in names:
        files = [os.path.join(bench.out_dir(bench.methods[name], s), "inference", test, "per_class_ap.json")
                 for s in bench.args.seeds]
        seeds = [{c["name"]: c for c in json.load(open(f))["categories"]} for f in files if os.path.isfile(f)]
        if not seeds:
            raise SystemExit(f"--per-class: no per_class_ap.json of {name} in {bench.cache}")
        n_seeds[name] = len(seeds)
        per[name] = {}
        for c, info in seeds[0].items():
            vals = [v for sd in seeds if (v := sd[c][f"AP_{task}"]) is not None]
            per[name][c] = dict(info, ap=statistics.mean(vals) if vals else None)
    a, b = names[:2]
    classes = sorted((c for c in per[a] if per[a][c]["ap"] is not None and per[b].get(c, {}).get("ap") is not None),
                     key=lambda c: (per[a][c]["train_image_count"], c))
    xs = range(len(classes))
    fig = Figure(figsize=(max(8, 0.28 * len(classes) + 2), 6))
    FigureCanvasAgg(fig)
    ax, dx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
    for j, name in enumerate((a, b)):
        ax.bar([x + (j - 0.5) * 0.4 for x in xs], [per[name][c]["ap"] for c in classes], 0.4,
               label=f"{bench.methods[name].label} (seeds: {n_seeds[name]})")
    diff = [per[b][c]["ap"] - per[a][c]["ap"] for c in classes]
    dx.bar(xs, diff, 0.6, color=["#2ca02c" if d >= 0 else "#d62728" for d in diff])
    dx.axhline(0, color="0.3", lw=0.6)
    for axis in (ax, dx):
        for x, c in zip(xs, classes):
            if x and per[a][c]["frequency"] != per[a][classes[x - 1]]["frequency"]:
                axis.axvline(x - 0.5, color="0.5", ls="--", lw=0.8)
    ax.set_ylabel(f"{task} AP (%)")
    ax.legend(fontsize=8)
    dx.set_ylabel("difference")
    dx.set_xticks(list(xs), [f"{c} ({per[a][c]['train_image_count']}, {per[a][c]['frequency']})" for c in classes],
                  rotation=90, fontsize=7)
    ax.set_title(f"{test}: per-class {task} AP, classes by training images (rare | common | frequent)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"written: {path}")
