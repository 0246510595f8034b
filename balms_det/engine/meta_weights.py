"""The Meta Reweighter's learned class weights as a reader sees them: per-class table, scalars by LVIS
frequency group, and ``meta_weights.{json,csv,png}`` (weight against training images, log x, r/c/f
bands, like ``per_class_ap.png``)."""
import csv
import json
import logging
import math
import os

import torch
from detectron2.data import MetadataCatalog

from balms_eval.groups import LVIS_THRESHOLDS, check_thresholds, group_of
from balms_eval.per_class import FREQUENCY_GROUPS, GROUP_COLORS, count_axis_limits, group_bands, mean_line_span
from ..evaluation.training_counts import training_image_counts

__all__ = ["class_table", "training_image_counts_from_config", "weight_summary", "write_meta_weights"]

logger = logging.getLogger(__name__)

COLUMNS = ("stage", "contiguous_id", "category_id", "name", "frequency", "train_image_count", "theta", "weight")


def training_image_counts_from_config(cfg, predictor):
    """Training images per class for ``cfg``: the predictor's own prior when it counts them (image
    counts, not the sampler's prior: no second read of the dataset), else :func:`_training_image_counts`."""
    prior = cfg.MODEL.BALMS.PRIOR
    return _training_image_counts(predictor, list(cfg.DATASETS.TRAIN),
                                  prior_is_images=prior.COUNT == "image_count" and prior.SAMPLER == "none")


def _training_image_counts(predictor, train_datasets, prior_is_images=True):
    """(K,) training images per class, contiguous ids: the predictor's prior where it holds them, else
    the training sets' (metadata ``class_image_count``, or counted from their dicts by the one counting
    function, :func:`~balms_det.evaluation.training_image_counts`)."""
    loss = predictor.cls_loss
    if prior_is_images and hasattr(loss, "class_counts") and loss.prior_ready:
        return loss.class_counts
    counts, _ = training_image_counts(list(train_datasets))
    if counts is None:
        raise ValueError("No training image counts for the meta weights report: no training dataset given")
    id_map = dict(MetadataCatalog.get(train_datasets[0]).get("thing_dataset_id_to_contiguous_id", None) or {})
    out = torch.zeros(predictor.num_classes, dtype=torch.float64)
    for cat_id, n in counts.items():
        c = id_map.get(cat_id, -1) if id_map else cat_id - 1
        if 0 <= c < predictor.num_classes:
            out[c] = float(n)
    return out


def class_table(predictor, train_datasets=(), frequency_thresholds=LVIS_THRESHOLDS, image_counts=None):
    """``{"name", "category_id", "train_image_count", "frequency", "thresholds"}``, lists in contiguous-id
    order, for the classes of ``train_datasets[0]`` (ids and names from its metadata where it has
    them); groups by training images and ``frequency_thresholds``, as the evaluator's.
    ``image_counts``: (K,) training images per class, or a function of the predictor giving them;
    default: the predictor's prior, else counted from ``train_datasets``."""
    k = predictor.num_classes
    train_datasets = list(train_datasets)
    meta = MetadataCatalog.get(train_datasets[0]) if train_datasets else None
    names = list(meta.get("thing_classes", [])) if meta is not None else []
    id_map = dict(meta.get("thing_dataset_id_to_contiguous_id", {})) if meta is not None else {}
    to_dataset = {c: d for d, c in id_map.items()}
    if callable(image_counts):
        image_counts = image_counts(predictor)
    if image_counts is None:
        image_counts = _training_image_counts(predictor, train_datasets)
    counts = [float(c) for c in torch.as_tensor(image_counts).tolist()]
    thresholds = check_thresholds(frequency_thresholds)
    return {
        "name": [names[i] if i < len(names) else str(i) for i in range(k)],
        "category_id": [to_dataset.get(i, i) for i in range(k)],
        "train_image_count": counts,
        "frequency": [group_of(c, thresholds) for c in counts],
        "thresholds": thresholds,
    }


def weight_summary(weights, frequency):
    """Scalars of a (K,) weight vector: ``w_mean_{r,c,f}`` (groups with classes only), ``w_min``, ``w_max``."""
    w = weights.detach().float().cpu()
    out = {}
    for code, _ in FREQUENCY_GROUPS:
        idx = [i for i, f in enumerate(frequency) if f == code]
        if idx:
            out[f"w_mean_{code}"] = w[idx].mean().item()
    out["w_min"], out["w_max"] = w.min().item(), w.max().item()
    return out


def _rows(classes, reweighters):
    rows = []
    for stage, r in enumerate(reweighters):
        theta, w = r.theta.detach().cpu().tolist(), r.class_weights().detach().cpu().tolist()
        for i in range(len(theta)):
            rows.append({
                "stage": stage, "contiguous_id": i, "category_id": classes["category_id"][i],
                "name": classes["name"][i], "frequency": classes["frequency"][i],
                "train_image_count": classes["train_image_count"][i], "theta": theta[i], "weight": w[i],
            })
    return rows


def _plot(rows, path, num_stages, thresholds):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # Agg canvas, no pyplot

    fig = Figure(figsize=(6.5 * num_stages, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    x_lo, x_hi = count_axis_limits([max(r["train_image_count"], 1) for r in rows])  # the data fill the axis
    bands = group_bands(thresholds, x_lo, x_hi)
    for stage in range(num_stages):
        ax = fig.add_subplot(1, num_stages, stage + 1)
        for code, label in FREQUENCY_GROUPS:
            band = bands.get(code)
            if band is not None:
                ax.axvspan(*band, color=GROUP_COLORS[code], alpha=0.08, lw=0)
            group = [r for r in rows if r["stage"] == stage and r["frequency"] == code]
            if group:
                xs = [max(r["train_image_count"], 1) for r in group]
                ax.scatter(xs, [r["weight"] for r in group], s=14,
                           color=GROUP_COLORS[code], alpha=0.8, label=f"{label} (n={len(group)})")
                mean = sum(r["weight"] for r in group) / len(group)
                lo, hi = mean_line_span(band, xs, x_lo, x_hi)
                ax.hlines(mean, lo, hi, colors=GROUP_COLORS[code], linestyles="--", lw=1.5)
                ax.text(math.sqrt(lo * hi), mean, f"mean w={mean:.3f}", ha="center", va="bottom", fontsize=8,
                        color=GROUP_COLORS[code])
        ax.axhline(0.5, color="gray", lw=0.8, ls=":")  # the initial weight, sigmoid(0)
        ax.set_xscale("log")
        ax.set_xlim(x_lo, x_hi)
        ax.set_ylim(0, 1)
        ax.set_xlabel("training images of the class (log)")
        ax.set_ylabel("learned class weight w = sigmoid(theta)")
        ax.set_title("Meta Reweighter weights" + (f", stage {stage}" if num_stages > 1 else ""))
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)


def write_meta_weights(output_dir, classes, reweighters, iteration=None):
    """Write ``meta_weights.json`` / ``.csv`` / ``.png`` (one block / panel per reweighter, i.e. per
    cascade stage) to ``output_dir``; returns the paths."""
    os.makedirs(output_dir, exist_ok=True)
    rows = _rows(classes, reweighters)
    paths = [os.path.join(output_dir, f"meta_weights.{ext}") for ext in ("json", "csv", "png")]
    with open(paths[0], "w") as f:
        json.dump({"iteration": iteration, "weight": "sigmoid(theta)", "classes": rows}, f, indent=1)
    with open(paths[1], "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    _plot(rows, paths[2], len(reweighters), classes["thresholds"])
    return paths
