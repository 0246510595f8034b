"""LVIS-style evaluation of a results list or columns, one way through:

    read (reading.py) -> columns (columns.py) -> check (validation.py)
        -> federated / exhaustive filter (filtering.py) -> backend (backends.py) -> metrics (metrics.py)
"""
import logging

from .backends import evaluate_fast, evaluate_reference
from .columns import ResultColumns
from .errors import AnnotationFileError, LVISResultsError
from .filtering import evaluated_index
from .metrics import LVISEvalResult, no_detections_result, summarize
from .reading import read_results
from .validation import check_results

logger = logging.getLogger(__name__)

IOU_TYPES = ("bbox", "segm")
LVIS_MAX_DETS_PER_IMAGE = 300


def evaluate(gt, results, iou_types=IOU_TYPES, *, max_dets_per_image=LVIS_MAX_DETS_PER_IMAGE, check=True):
    """Evaluate detections against ``gt`` (:class:`~.ground_truth.LVISGroundTruth`) for each of
    ``iou_types``; returns {iou type: :class:`~.metrics.LVISEvalResult`}.

    ``results``: a results list (dicts with image_id, category_id, score, and "bbox" [x, y, w, h]
    and/or "segmentation", an RLE or polygons) or :class:`~.columns.ResultColumns`; not modified.
    Each image keeps its ``max_dets_per_image`` highest-scoring detections (-1 or None: all). The
    ground truth's labelling decides the rules (see filtering.py): LVIS's federated ones, or
    COCO's exhaustive ones. ``check=False`` skips the checks of values against the ground truth
    (ids, finite numbers, mask sizes and counts); reading still rejects malformed entries.
    """
    iou_types = tuple(iou_types)
    for iou_type in iou_types:
        if iou_type not in IOU_TYPES:
            raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    max_dets = -1 if max_dets_per_image is None else int(max_dets_per_image)
    columns = results if isinstance(results, ResultColumns) else read_results(results, gt.images, iou_types)
    for iou_type, have in (("bbox", columns.bbox is not None), ("segm", columns.masks is not None)):
        if iou_type in iou_types and not have:
            raise LVISResultsError(f"{iou_type} evaluation needs {'boxes' if iou_type == 'bbox' else 'masks'}; "
                                   "the detections have none")
    if "segm" in iou_types and gt.without_mask is not None:
        raise AnnotationFileError(f"{gt.name}: {gt.without_mask} has no mask ('segmentation' absent, null or []): "
                                  "segm evaluation needs one for every ground-truth instance; evaluate bbox only")
    if check:
        check_results(columns, gt.images, gt.categories, iou_types)
    if len(columns) == 0:
        logger.warning("The results list is empty: no detections to evaluate for %s; every metric is NaN.",
                       ", ".join(iou_types))
        return {t: no_detections_result(t) for t in iou_types}
    if gt.num_annotations == 0:  # (the checks above passed: the detections are on its images)
        raise AnnotationFileError(f"{gt.name}: no annotations (an image-info or test-set file?): nothing to "
                                  "evaluate the detections against; give the annotated split's file")
    if gt.backend == "fast":
        indexes = {t: evaluated_index(gt, columns, t, max_dets) for t in iou_types}
        if len(gt.annotated_category_ids) == 0:
            return {t: _summary(gt, t, (None, [], [])) for t in iou_types}
        precisions = evaluate_fast(gt, columns, indexes, max_dets)
    else:
        precisions = {t: evaluate_reference(gt, columns, t, max_dets) for t in iou_types}
    return {t: _summary(gt, t, precisions[t]) for t in iou_types}


def _summary(gt, iou_type, precision_cats_thrs):
    precision, cat_ids, iou_thrs = precision_cats_thrs
    if precision is None:
        return LVISEvalResult(iou_type, no_detections_result(iou_type).metrics, {c: float("nan") for c in gt.categories})
    return summarize(iou_type, precision, cat_ids, iou_thrs, gt.groups.of, gt.categories)


def evaluate_lvis(gt, results, iou_type, *, max_dets_per_image=LVIS_MAX_DETS_PER_IMAGE, check=True):
    """:func:`evaluate` for one IoU type ("bbox" or "segm"): an :class:`~.metrics.LVISEvalResult`."""
    return evaluate(gt, results, (iou_type,), max_dets_per_image=max_dets_per_image, check=check)[iou_type]
