"""balms_eval: LVIS-style evaluation (AP, APs/m/l, APr/APc/APf for boxes and masks) of any COCO- or
LVIS-format dataset, without torch or detectron2 (so ``tools/lvis_eval.py`` starts in a fraction of
a second). ``balms_det.evaluation`` re-exports it and adds the detectron2 evaluator.

One way through (evaluate.py): read -> columns -> check -> federated / exhaustive filter -> backend
(hotcoco, or the references lvis-api / pycocotools) -> metrics.
"""
from .columns import Masks, ResultColumns
from .errors import AnnotationFileError, InputFileError, JSONFileError, LVISResultsError
from .evaluate import IOU_TYPES, LVIS_MAX_DETS_PER_IMAGE, evaluate, evaluate_lvis
from .ground_truth import BACKENDS, LVISGroundTruth
from .annotation_validation import read_training_counts
from .groups import LVIS_THRESHOLDS, FrequencyGroups, count_per_class, frequency_groups, image_counts_from_dataset
from .metrics import METRICS, LVISEvalResult
from .reading import read_results

__all__ = [
    "AnnotationFileError",
    "BACKENDS",
    "IOU_TYPES",
    "LVIS_MAX_DETS_PER_IMAGE",
    "LVIS_THRESHOLDS",
    "METRICS",
    "FrequencyGroups",
    "InputFileError",
    "JSONFileError",
    "LVISEvalResult",
    "LVISGroundTruth",
    "LVISResultsError",
    "Masks",
    "ResultColumns",
    "evaluate",
    "evaluate_lvis",
    "frequency_groups",
    "image_counts_from_dataset",
    "read_results",
    "read_training_counts",
    "count_per_class",
]
