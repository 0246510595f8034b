"""The reported numbers from a backend's precision array: AP, AP50, AP75, APs/m/l as LVIS and COCO
summarise them, AP per category, and APr/APc/APf as the mean AP of each frequency group's
categories with ground truth (what lvis-api computes from its ``frequency`` field, for any groups)."""
import math
from dataclasses import dataclass, field

import numpy as np

# The metrics detectron2's LVISEvaluator reports, in its order.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
AREAS = ("all", "small", "medium", "large")  # the area index of every backend's precision array


@dataclass
class LVISEvalResult:
    """Summary metrics as fractions in [0, 1] (NaN where undefined, e.g. no rare category has
    ground truth) and AP per category id (NaN for categories without ground truth)."""

    iou_type: str
    metrics: dict
    per_class_ap: dict = field(default_factory=dict)

    def metrics_percent(self):
        """The metrics in percent, detectron2's convention."""
        return {k: v * 100.0 for k, v in self.metrics.items()}


def no_detections_result(iou_type):
    """Every metric NaN (lvis-api cannot load an empty results list; detectron2 reports NaN)."""
    return LVISEvalResult(iou_type, {k: math.nan for k in METRICS}, {})


def _mean_valid(precision):
    valid = precision > -1
    return float(precision[valid].mean()) if valid.any() else math.nan


def summarize(iou_type, precision, cat_ids, iou_thrs, groups, categories):
    """An :class:`LVISEvalResult` from a T x R x K x A precision array (-1: no ground truth; the
    last max-detections setting already taken), its K category ids and T IoU thresholds,
    ``groups`` {category id: "r"|"c"|"f"}, and the evaluated file's ``categories`` (every one gets
    a per-class entry, NaN where it was not evaluated)."""
    precision = np.asarray(precision, np.float64)
    thr = np.asarray(iou_thrs, np.float64)
    metrics = {"AP": _mean_valid(precision[:, :, :, 0])}
    for name, t in (("AP50", 0.5), ("AP75", 0.75)):
        metrics[name] = _mean_valid(precision[np.flatnonzero(np.isclose(thr, t)), :, :, 0])
    for a, name in enumerate(("APs", "APm", "APl"), start=1):
        metrics[name] = _mean_valid(precision[:, :, :, a])
    per_class = {c: math.nan for c in categories}
    per_class.update(per_class_ap_from_precision(precision, cat_ids))
    for code in ("r", "c", "f"):
        aps = [ap for c, ap in per_class.items() if groups.get(c) == code and not math.isnan(ap)]
        metrics["AP" + code] = float(np.mean(aps)) if aps else math.nan
    return LVISEvalResult(iou_type, {k: metrics[k] for k in METRICS}, per_class)


def per_class_ap_from_precision(precision, cat_ids, area_index=0):
    """AP per category from a T x R x K x A precision array (-1 = no ground truth): the mean
    over IoU thresholds and recall levels, as LVIS's AP. Returns {category id: AP or NaN}."""
    precision = np.asarray(precision, dtype=np.float64)[:, :, :, area_index]
    valid = precision > -1
    counts = valid.sum(axis=(0, 1))
    sums = np.where(valid, precision, 0.0).sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        ap = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {int(c): float(a) for c, a in zip(cat_ids, ap)}


def format_metrics(metrics_percent):
    """One-row table of the metrics (percent), as detectron2's ``create_small_table``."""
    from tabulate import tabulate

    return tabulate([list(metrics_percent.values())], headers=list(metrics_percent), tablefmt="pipe",
                    floatfmt=".3f", stralign="center", numalign="center")
