"""The filter: which checked detections can affect a metric, under the ground truth's labelling.

Both labellings keep each image's ``max_dets`` highest-scoring detections (LVIS's per-image cap,
over all categories; ties in results order) and drop detections of categories without ground truth
(such a category has no AP, and no mean counts it). Then:

* federated (LVIS): only (image, category) pairs LVIS scores stay, the category annotated in the
  image or listed in its ``neg_category_ids``; and detections of zero area go (lvis-api never
  evaluates them; hotcoco alone would count them as false positives);
* exhaustive (COCO): every other detection is evaluated; one of a category absent from its image is
  a false positive, as in pycocotools (zero-area detections included).

The metrics are those of evaluating everything (parity tests); the backend just does less work.
"""
import numpy as np


def cap_per_image(image_id, score, max_dets):
    """Boolean mask of each image's ``max_dets`` highest scores (ties: first in order; -1: all)."""
    n = len(image_id)
    if max_dets < 0:
        return np.ones(n, bool)
    order = np.lexsort((np.arange(n), -score, image_id))  # by image, score desc., then input order
    sorted_img = image_id[order]
    first = np.searchsorted(sorted_img, sorted_img, side="left")
    capped = np.zeros(n, bool)
    capped[order] = (np.arange(n) - first) < max_dets
    return capped


def federated_keep(gt, columns, max_dets):
    """Federated rule + cap (see the module doc), before the zero-area rule."""
    keys = columns.image_id * gt.key_stride + columns.category_id
    return cap_per_image(columns.image_id, columns.score, max_dets) & np.isin(keys, gt.scored_keys)


def evaluated_index(gt, columns, iou_type, max_dets):
    """Sorted positions of the detections the backend evaluates for ``iou_type`` (``gt`` an
    :class:`~.ground_truth.LVISGroundTruth`; ``columns`` checked)."""
    keep = np.isin(columns.category_id, gt.annotated_category_ids)
    if gt.labelling != "federated":
        return np.flatnonzero(keep & cap_per_image(columns.image_id, columns.score, max_dets))
    index = np.flatnonzero(keep & federated_keep(gt, columns, max_dets))
    if iou_type == "segm":  # decodes only the masks kept so far, unless the checks already did
        area = columns.masks.take(index).compute_area()
    else:
        area = columns.bbox[index, 2] * columns.bbox[index, 3]
    return index[area > 0]
