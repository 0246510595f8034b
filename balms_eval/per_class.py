"""Per-class LVIS results: rows, JSON/CSV files, printed tables per frequency group, and a plot
of per-class AP against training-image count (the long-tail view)."""
import csv
import json
import math
import os
import textwrap

from .groups import LVIS_THRESHOLDS

FREQUENCY_GROUPS = (("r", "rare"), ("c", "common"), ("f", "frequent"))
GROUP_COLORS = {"r": "#d62728", "c": "#ff7f0e", "f": "#1f77b4"}
COLUMNS = ("category_id", "name", "frequency", "train_image_count", "AP_bbox", "AP_segm")


def group_edges(thresholds):
    """Where the groups meet on a training-image axis: (rare_max + 0.5, common_max + 0.5)."""
    return (thresholds[0] + 0.5, thresholds[1] + 0.5)


GROUP_EDGES = group_edges(LVIS_THRESHOLDS)  # LVIS's (10.5, 100.5)


def count_axis_limits(counts):
    """(x_lo, x_hi) of a log training-image axis for ``counts``: from 0.8 (a count below 1 is drawn
    at 1) to 1.5 x the largest count, so that the data fill the axis."""
    return 0.8, 1.5 * max(max(counts, default=1), 1)


def group_bands(thresholds, x_lo, x_hi):
    """{"r"|"c"|"f": (lo, hi)}: each group's range of training images (:func:`group_edges`) clipped to the
    axis [x_lo, x_hi]; a group wholly off the axis is left out."""
    edges = group_edges(thresholds)
    full = {"r": (x_lo, edges[0]), "c": edges, "f": (edges[1], x_hi)}
    clipped = {code: (max(lo, x_lo), min(hi, x_hi)) for code, (lo, hi) in full.items()}
    return {code: (lo, hi) for code, (lo, hi) in clipped.items() if lo < hi}


def mean_line_span(band, xs, x_lo, x_hi):
    """Where a group's mean is drawn: its band, or (a group whose points lie outside its band, e.g. LVIS
    groups plotted against other counts) the points' range widened a little, within [x_lo, x_hi]."""
    if band is not None and any(band[0] <= x <= band[1] for x in xs):
        return band
    return max(min(xs) / 1.15, x_lo), min(max(xs) * 1.15, x_hi)


def plot_footnote(groups):
    """The plots' note on where the groups and the x axis come from. Groups made from the counts on x
    say so with their thresholds (their ``source`` already quotes the counts' source in parentheses)."""
    count_source = groups.count_source
    if count_source and count_source in groups.source:
        rare_max, common_max = groups.thresholds
        notes = [f"groups: rare <= {rare_max} < common <= {common_max} < frequent, by the x counts",
                 f"x: {count_source}"]
    else:
        notes = [f"groups: {groups.source}"] + ([f"x: {count_source}"] if count_source else [])
    return "; ".join(notes)


def wrap_footnote(text, fig_width_inches, fontsize):
    """``text`` in lines that fit a figure ``fig_width_inches`` wide at ``fontsize`` points."""
    chars = max(20, int(fig_width_inches * 72 * 0.97 / (0.6 * fontsize)))  # ~0.6 em per character
    return textwrap.wrap(text, chars) or [""]


def _percent_or_none(value):
    return None if value is None or math.isnan(value) else value * 100.0


def per_class_rows(categories, ap_by_task, groups):
    """One row per ground-truth category, sorted by id.

    Args:
        categories: {category id: category dict with "name"}.
        ap_by_task: {"bbox"|"segm": {category id: AP fraction or NaN}}.
        groups: the categories' :class:`~.groups.FrequencyGroups` (group and training images).
    Returns:
        list of dicts with :data:`COLUMNS`; APs in percent, None where the category has no
        ground truth in the evaluated set or the task was not evaluated.
    """
    rows = []
    for cat_id in sorted(categories):
        cat = categories[cat_id]
        count = None if groups.image_counts is None else groups.image_counts.get(cat_id)
        rows.append({
            "category_id": cat_id,
            "name": cat.get("name", str(cat_id)),
            "frequency": groups.of.get(cat_id),
            "train_image_count": None if count is None else int(count),
            "AP_bbox": _percent_or_none(ap_by_task.get("bbox", {}).get(cat_id)),
            "AP_segm": _percent_or_none(ap_by_task.get("segm", {}).get(cat_id)),
        })
    return rows


def evaluated_rows(rows):
    """The rows with an AP for at least one task (categories with ground truth in the set)."""
    return [r for r in rows if r["AP_bbox"] is not None or r["AP_segm"] is not None]


def write_per_class_json(rows, path, groups, labelling=None):
    """The rows, where the groups and counts come from, and the groups (``frequency_groups``: thresholds,
    categories per group, the empty groups, suggested thresholds and the note: see ``FrequencyGroups``)."""
    with open(path, "w") as f:
        json.dump({"groups_source": groups.source, "image_count_source": groups.count_source, "labelling": labelling,
                   "frequency_groups": groups.summary(), "ap_unit": "percent", "categories": rows}, f, indent=1)


def write_per_class_csv(rows, path):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row[k] is None else row[k] for k in COLUMNS})


def format_per_class_tables(rows, groups, labelling=None):
    """Text tables, one per frequency group, of the categories with ground truth in the set,
    ordered by training-image count (most first), then where the groups and counts come from."""
    from tabulate import tabulate

    def fmt(v):
        return "-" if v is None else f"{v:.2f}"

    out = []
    for code, label in FREQUENCY_GROUPS:
        group = [r for r in evaluated_rows(rows) if r["frequency"] == code]
        total = sum(1 for r in rows if r["frequency"] == code)
        group.sort(key=lambda r: (-(r["train_image_count"] or 0), r["name"]))
        title = f"Per-class AP, {label} ({code}): {len(group)} of {total} categories have ground truth here"
        if not group:
            out.append(title + ".")
            continue
        table = tabulate(
            [[r["name"], r["category_id"], "-" if r["train_image_count"] is None else r["train_image_count"],
              fmt(r["AP_bbox"]), fmt(r["AP_segm"])] for r in group],
            headers=["category", "id", "#images", "AP bbox", "AP segm"], tablefmt="pipe",
        )
        out.append(f"{title}:\n{table}")
    notes = [f"groups: {groups.source}"] + ([f"#images: {groups.count_source}"] if groups.count_source else [])
    if groups.note:
        notes.append(f"empty groups: {groups.note}")
    if labelling:
        notes.append(f"labelling: {describe_labelling(labelling)}")
    out.append("\n".join(f"({n})" for n in notes))
    return "\n\n".join(out)


def describe_labelling(labelling):
    """How the ground truth's labelling was scored, in words."""
    if labelling == "federated":
        return "federated (LVIS: neg_category_ids / not_exhaustive_category_ids rules)"
    return "exhaustive (COCO: every detection of a class absent from its image is a false positive; crowd ignored)"


def plot_per_class_ap(rows, path, groups):
    """PNG of per-class AP (y, percent) against training-image count (x, log), one panel per
    task, points coloured by LVIS frequency group, r/c/f bands shaded with each group's mean AP.
    Returns False (and writes nothing) when no category has both a count and an AP."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # Agg canvas, no pyplot: no GUI backend, no global state

    tasks = [t for t in ("bbox", "segm") if any(r[f"AP_{t}"] is not None for r in rows)]
    points = {t: [r for r in rows if r[f"AP_{t}"] is not None and r["train_image_count"] is not None] for t in tasks}
    if not any(points.values()):
        return False
    fig = Figure(figsize=(6.5 * len(tasks), 4.5), dpi=110)
    FigureCanvasAgg(fig)
    counts = [max(r["train_image_count"], 1) for t in tasks for r in points[t]]
    x_lo, x_hi = count_axis_limits(counts)
    image_count_source = groups.count_source
    training = image_count_source is None or image_count_source.startswith("training")
    xlabel = "training images of the class (log)" if training else "images of the class (log; see note below)"
    bands = group_bands(groups.thresholds, x_lo, x_hi)
    for k, task in enumerate(tasks):
        ax = fig.add_subplot(1, len(tasks), k + 1)
        for code, label in FREQUENCY_GROUPS:
            band = bands.get(code)
            if band is not None:
                ax.axvspan(*band, color=GROUP_COLORS[code], alpha=0.08, lw=0)
            group = [r for r in points[task] if r["frequency"] == code]
            if group:
                xs = [max(r["train_image_count"], 1) for r in group]
                ax.scatter(xs, [r[f"AP_{task}"] for r in group],
                           s=14, color=GROUP_COLORS[code], alpha=0.8, label=f"{label} (n={len(group)})")
                mean = sum(r[f"AP_{task}"] for r in group) / len(group)
                lo, hi = mean_line_span(band, xs, x_lo, x_hi)
                ax.hlines(mean, lo, hi, colors=GROUP_COLORS[code], linestyles="--", lw=1.5)
                ax.text(math.sqrt(lo * hi), mean, f"AP{code}={mean:.1f}", ha="center", va="bottom", fontsize=8,
                        color=GROUP_COLORS[code])
        ax.set_xscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(-2, 102)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"AP {task} (%)")
        ax.set_title(f"Per-class {task} AP vs training frequency")
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    lines = wrap_footnote(plot_footnote(groups), fig.get_figwidth(), 7)
    fig.text(0.01, 0.01, "\n".join(lines), fontsize=7, color="gray", va="bottom")
    bottom = 0.13 + 0.028 * len(lines)  # the x label, then the footnote's lines (7 pt on a 4.5 in figure)
    fig.subplots_adjust(left=0.07 / len(tasks) + 0.03, right=0.98, bottom=bottom, top=0.92,
                        wspace=0.22)  # (tight_layout: ~1 s)
    fig.savefig(path)
    return True


def write_per_class_outputs(rows, output_dir, groups, labelling=None):
    """Write per_class_ap.json, per_class_ap.csv and per_class_ap.png to ``output_dir``;
    returns the paths written."""
    os.makedirs(output_dir, exist_ok=True)
    paths = [os.path.join(output_dir, f"per_class_ap.{ext}") for ext in ("json", "csv", "png")]
    write_per_class_json(rows, paths[0], groups, labelling)
    write_per_class_csv(rows, paths[1])
    if not plot_per_class_ap(rows, paths[2], groups):
        paths.pop()
    return paths
