"""The backends: each turns checked, filtered columns into a precision array (T x R x K x A).

* fast: hotcoco (Rust), LVIS semantics (``lvis_style``) for federated ground truth, COCO's for
  exhaustive. Up to BATCH_MAX_DETECTIONS detections: one ``load_res`` + ``COCOeval`` per IoU type
  (fastest: hotcoco matches on every core). Above: ``StreamingEval`` fed SHARD_IMAGES images at a
  time, ground truth and detections together; it keeps only the matches, so memory stays bounded
  by one shard's masks (as dicts) however many images (LVIS v1 val: 20k images, 6 M detections).
* lvis: the references, on every checked detection (no filter): lvis-api's ``LVISEval`` for
  federated ground truth, pycocotools' ``COCOeval`` for exhaustive (after LVIS's per-image cap,
  which COCOeval does not have; its own max-detections setting is the same number).

Both give the same numbers (tests/test_evaluation*.py: <= 1e-6).
"""
import contextlib
import io

import numpy as np

from .filtering import cap_per_image

BATCH_MAX_DETECTIONS = 1_000_000  # kept detections (all IoU types) evaluated in one call each; above: shards
SHARD_IMAGES = 500  # images per StreamingEval update: bounds memory, amortises the per-call cost


def _max_dets(max_dets, n):
    """The backends' max-detections setting: ``max_dets``, or for -1 (no cap) more than any image has."""
    return int(max_dets) if max_dets >= 0 else max(1, int(n))


def _params(gt, iou_type, max_dets):
    import hotcoco

    params = hotcoco.Params(iou_type)  # LVIS and COCO share thresholds, recall grid and area ranges
    params.max_dets = [max_dets] if gt.labelling == "federated" else [1, 10, max_dets]
    params.cat_ids = gt.annotated_category_ids.tolist()
    return params


def evaluate_fast(gt, columns, indexes, max_dets):
    """{iou type: (precision, category ids, IoU thresholds)} for ``indexes`` {iou type: positions
    of ``columns`` to evaluate (:func:`~.filtering.evaluated_index`)}."""
    if sum(len(index) for index in indexes.values()) <= BATCH_MAX_DETECTIONS:
        return {t: _evaluate_batch(gt, columns.take(index), t, max_dets) for t, index in indexes.items()}
    return _evaluate_streaming(gt, columns, indexes, max_dets)


def _evaluate_batch(gt, columns, iou_type, max_dets):
    import hotcoco

    rows, segmentation = _rows(columns, iou_type)
    dt = gt.api.load_res(rows, segmentation=segmentation)
    lvis_style = gt.labelling == "federated"
    if lvis_style:  # (already capped; this tells hotcoco so, else it caps at 300 again)
        dt = dt.cap_detections_per_image(None if max_dets < 0 else max_dets)
    ev = hotcoco.COCOeval(gt.api, dt, iou_type, lvis_style=lvis_style)
    ev.params = _params(gt, iou_type, _max_dets(max_dets, len(columns)))
    return _precision(ev)


def _precision(ev, evaluated=False):
    """(precision at the last max-detections setting, category ids, IoU thresholds) of a hotcoco
    ``COCOeval``, after evaluate (unless ``evaluated``, as a finalized stream) and accumulate."""
    if not evaluated:
        ev.evaluate()
    with contextlib.redirect_stdout(io.StringIO()):
        ev.accumulate()
    params = ev.params
    return np.asarray(ev.eval["precision"])[..., -1], list(params.cat_ids), list(params.iou_thrs)


def _evaluate_streaming(gt, columns, indexes, max_dets):
    import hotcoco

    categories = [dict(gt.categories[c], frequency=gt.groups.of[c]) for c in gt.annotated_category_ids.tolist()]
    lvis_style = gt.labelling == "federated"
    streams, order, image_of = {}, {}, {}
    for iou_type, index in indexes.items():
        order[iou_type] = index[np.argsort(columns.image_id[index], kind="stable")]  # (positions only: no copy)
        image_of[iou_type] = columns.image_id[order[iou_type]]
        streams[iou_type] = hotcoco.StreamingEval(categories, iou_type, lvis_style=lvis_style,
                                                  params=_params(gt, iou_type, _max_dets(max_dets, len(index))))
    image_ids = sorted(gt.images)
    for begin in range(0, len(image_ids), SHARD_IMAGES):
        ids = image_ids[begin:begin + SHARD_IMAGES]
        images, anns = gt.api.load_imgs(ids), gt.annotations_of(ids)
        for iou_type, stream in streams.items():
            a, b = np.searchsorted(image_of[iou_type], [ids[0], ids[-1] + 1]).tolist()
            shard = columns.take(order[iou_type][a:b])
            rows, segmentation = _rows(shard, iou_type)
            stream.update(images, anns, rows, segmentation=segmentation)
    return {iou_type: _precision(stream.finalize(), evaluated=True) for iou_type, stream in streams.items()}


def _rows(columns, iou_type):
    """hotcoco's (and pycocotools') array form of the detections: image, x, y, w, h, score,
    category; and the masks for segm. For segm the row's box only sets the detection's
    area (hotcoco takes it as w * h; segm matching reads only the masks): it is given as
    (0, 0, mask area, 1), the mask's area, as lvis-api and pycocotools define a segm result's area."""
    rows = np.zeros((len(columns), 7))
    rows[:, 0], rows[:, 5], rows[:, 6] = columns.image_id, columns.score, columns.category_id
    if iou_type == "bbox":
        rows[:, 1:5] = columns.bbox
        return rows, None
    rows[:, 3], rows[:, 4] = columns.masks.compute_area(), 1.0
    return rows, columns.masks.rles()


def evaluate_reference(gt, columns, iou_type, max_dets):
    """(precision, category ids, IoU thresholds) from lvis-api (federated) or pycocotools (exhaustive)."""
    import warnings

    if gt.labelling == "federated":
        from lvis import LVISEval, LVISResults

        results = columns.entries(iou_type=iou_type)  # segm without "bbox": lvis-api then takes mask areas
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # lvis-api: np.float, logger.warn
            ev = LVISEval(gt.api, LVISResults(gt.api, results, max_dets=max_dets), iou_type)
            ev.run()
        return np.asarray(ev.eval["precision"]), list(ev.params.cat_ids), list(ev.params.iou_thrs)
    from pycocotools.cocoeval import COCOeval

    capped = columns.take(np.flatnonzero(cap_per_image(columns.image_id, columns.score, max_dets)))
    with contextlib.redirect_stdout(io.StringIO()):
        ev = COCOeval(gt.api, gt.api.loadRes(capped.entries(iou_type=iou_type)), iou_type)
        ev.params.maxDets = [1, 10, _max_dets(max_dets, len(capped))]
        ev.evaluate()
        ev.accumulate()
    return np.asarray(ev.eval["precision"])[..., -1], list(ev.params.catIds), list(ev.params.iouThrs)
