"""Evaluation: LVIS-style APr/APc/APf for boxes and masks on any COCO- or LVIS-format dataset.

The evaluation itself is the torch-free package ``balms_eval`` (re-exported here); this package adds
what needs detectron2: ``build_lvis_evaluator(cfg, dataset_name)`` (what a trainer calls), the
``LVISEvaluator`` it builds, and training image counts from detectron2's catalogs.
"""
from balms_eval import (
    BACKENDS,
    METRICS,
    FrequencyGroups,
    LVISEvalResult,
    LVISGroundTruth,
    LVISResultsError,
    ResultColumns,
    evaluate,
    evaluate_lvis,
)

from .lvis_evaluation import LVISEvaluator, build_lvis_evaluator, instances_to_columns
from .training_counts import training_image_counts

__all__ = [
    "BACKENDS",
    "METRICS",
    "FrequencyGroups",
    "LVISEvalResult",
    "LVISEvaluator",
    "LVISGroundTruth",
    "LVISResultsError",
    "ResultColumns",
    "build_lvis_evaluator",
    "evaluate",
    "evaluate_lvis",
    "instances_to_columns",
    "training_image_counts",
]
