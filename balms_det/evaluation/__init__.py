"""LVIS evaluation: APr/APc/APf for boxes and masks, a fast backend (hotcoco) equal to lvis-api,
per-class JSON/CSV/plot. ``build_lvis_evaluator(cfg, dataset_name)`` is what a trainer calls."""
from .backends import BACKENDS, METRICS, LVISEvalResult, LVISGroundTruth, evaluate_lvis
from .lvis_evaluation import LVISEvaluator, build_lvis_evaluator, resolve_image_counts
from .validation import LVISResultsError

__all__ = [
    "BACKENDS",
    "METRICS",
    "LVISEvalResult",
    "LVISEvaluator",
    "LVISGroundTruth",
    "LVISResultsError",
    "build_lvis_evaluator",
    "evaluate_lvis",
    "resolve_image_counts",
]
