"""LVIS evaluation behind one function, with two interchangeable backends.

``"fast"`` is hotcoco's LVIS evaluation (Rust, lvis-api-compatible); ``"lvis"`` is the reference
lvis-api (pure Python, ~20-40x slower). Both take the same LVIS-format ground truth and results
list and return the same numbers (tests/test_evaluation.py checks |delta| <= 1e-6).
"""
import contextlib
import copy
import io
import logging
import math
import os
from dataclasses import dataclass, field

import numpy as np

from .columns import ResultColumns, to_rle
from .validation import check_lvis_gt, check_lvis_results

logger = logging.getLogger(__name__)

BACKENDS = ("fast", "lvis")
IOU_TYPES = ("bbox", "segm")
# The metrics detectron2's LVISEvaluator reports, in its order.
METRICS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "APr", "APc", "APf")
LVIS_MAX_DETS_PER_IMAGE = 300


class LVISGroundTruth:
    """An LVIS-format annotation file (path or dict) loaded once for one backend.

    Attributes:
        backend: "fast" or "lvis".
        api: the backend's dataset object (``hotcoco.COCO`` or ``lvis.LVIS``).
        images: {image id: image dict}; categories: {category id: category dict}.
        num_annotations: number of ground-truth instances (0 for a test-set file).
        scored_keys, annotated_category_ids: see :func:`_federated_index` (fast backend only).
    """

    def __init__(self, annotations, backend="fast"):
        if backend not in BACKENDS:
            raise ValueError(f"Unknown LVIS evaluation backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        if isinstance(annotations, (str, os.PathLike)):
            annotations = os.fspath(annotations)
        if backend == "fast":
            self.api = _hotcoco_api(annotations)
        else:
            self.api = _lvis_api(annotations)
            for img in self.api.imgs.values():  # absent means empty, as in hotcoco
                img.setdefault("neg_category_ids", [])
                img.setdefault("not_exhaustive_category_ids", [])
        self.num_annotations = len(self.api.get_ann_ids())
        self.images = dict(self.api.imgs)
        self.categories = dict(self.api.cats)
        check_lvis_gt(self.images, self.categories)
        self._masks_prepared = False
        self.key_stride = max(self.categories, default=0) + 1
        if backend == "fast":  # what every fast evaluation reads, built with the ground truth
            self.scored_keys, self.annotated_category_ids = _federated_index(
                self.api, self.images, self.categories, self.key_stride)

    def prepare_masks(self):
        """Turn the ground truth's polygon masks into RLEs, once (fast backend; idempotent).

        hotcoco otherwise converts every polygon again at each segm evaluation; the first fast segm
        evaluation calls this, so later ones (periodic evaluation in training) skip that work."""
        if self.backend != "fast" or self._masks_prepared:
            return
        updates = []
        for ann in self.api.load_anns(self.api.get_ann_ids()):
            if isinstance(ann.get("segmentation"), list):
                rle = self.api.ann_to_rle(ann)  # the same conversion hotcoco does inside evaluate()
                counts = rle["counts"]
                updates.append({"id": ann["id"], "segmentation": {
                    "size": list(rle["size"]), "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}})
        if updates:
            self.api.update_anns(updates)
        self._masks_prepared = True


def _federated_index(api, images, categories, key_stride):
    """From hotcoco's category -> image index (no annotation is read into Python: ~50x faster):

    * the sorted (image, category) pairs LVIS scores, annotated in the image or in its
      neg_category_ids, encoded as image_id * key_stride + category_id (for federated_keep);
    * the sorted ids of the categories with ground truth: the only ones with an AP (a category
      without ground truth has none, and no mean counts it).
    """
    images_of = {c: api.get_img_ids(cat_ids=[c]) for c in categories}
    keys = [i * key_stride + c for c, imgs in images_of.items() for i in imgs]
    keys += [i * key_stride + c for i, im in images.items() for c in im.get("neg_category_ids") or ()]
    return np.unique(np.array(keys, np.int64)), sorted(c for c, imgs in images_of.items() if imgs)


def _hotcoco_api(annotations):
    import hotcoco

    try:
        return hotcoco.COCO(annotations)
    except ValueError as first_error:
        # hotcoco's loader is strict about fields evaluation never reads (e.g. an integer
        # "info.version"); retry without them before giving up.
        if isinstance(annotations, str):
            import json

            with open(annotations) as f:
                annotations_dict = json.load(f)
        else:
            annotations_dict = annotations
        slim = {k: v for k, v in annotations_dict.items() if k not in ("info", "licenses")}
        try:
            return hotcoco.COCO(slim)
        except ValueError:
            name = annotations if isinstance(annotations, str) else "the annotation dict"
            raise ValueError(f"hotcoco cannot load {name}: {first_error}") from first_error


def _lvis_api(annotations):
    from lvis import LVIS

    if isinstance(annotations, str):
        return LVIS(annotations)
    api = LVIS.__new__(LVIS)  # lvis-api only reads files; build it from an in-memory dict
    api.logger = logging.getLogger("lvis.lvis")
    api.dataset = copy.deepcopy(annotations)
    api._create_index()
    return api


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


def evaluate_lvis(gt, results, iou_type, *, max_dets_per_image=LVIS_MAX_DETS_PER_IMAGE, check=True):
    """Evaluate LVIS-format results (list of dicts with image_id, category_id, score and bbox
    [x, y, w, h] and/or an RLE/polygon "segmentation") against ``gt`` (a :class:`LVISGroundTruth`).

    Applies LVIS's rules: only the ``max_dets_per_image`` highest-scoring detections of each image
    are kept (-1 or None: all), detections of categories neither present in an image nor in its
    ``neg_category_ids`` are not counted, and unmatched detections of an image's
    ``not_exhaustive_category_ids`` are not false positives. Returns an :class:`LVISEvalResult`.
    ``results`` is not modified. ``check=False`` skips the input checks (:func:`check_lvis_results`).
    """
    if iou_type not in IOU_TYPES:
        raise ValueError(f"iou_type must be one of {IOU_TYPES}, got {iou_type!r}")
    max_dets = -1 if max_dets_per_image is None else int(max_dets_per_image)
    if gt.backend == "fast":
        columns = ResultColumns.from_results(results, gt.images, gt.categories, iou_type, check=check)
        if len(columns) == 0:
            return _no_detections(iou_type)
        keep = federated_keep(gt, columns, max_dets)
        if columns.area is None and iou_type == "segm":  # unchecked: decode only the masks kept so far
            columns = _select(columns, keep)
            keep = np.ones(len(columns), bool)
        columns = _select(columns, keep & (columns.compute_area() > 0))
        return _evaluate_fast(gt, columns, iou_type, max_dets)
    if check:
        check_lvis_results(results, gt.images, gt.categories, iou_type)
    if len(results) == 0:
        return _no_detections(iou_type)
    if iou_type == "segm":
        results = [_segm_only(r, gt.images) for r in results]
    return _evaluate_reference(gt, results, iou_type, max_dets)


def _no_detections(iou_type):
    # lvis-api cannot load an empty results list; detectron2 reports NaN here.
    logger.warning("No LVIS detections to evaluate for %s: every metric is NaN.", iou_type)
    return LVISEvalResult(iou_type, {k: math.nan for k in METRICS}, {})


def federated_keep(gt, columns, max_dets):
    """A boolean mask of the detections (:class:`ResultColumns`) that can affect any LVIS metric.

    LVIS first keeps each image's ``max_dets`` highest-scoring detections (ties in results order;
    -1: all), then ignores every detection whose category is neither annotated in its image nor in
    the image's ``neg_category_ids``. Doing both here, with numpy, spares the backend from decoding
    and matching detections that cannot count (most of them, for a real LVIS model: an image has
    labels for a few of its ~1,200 categories). The metrics are unchanged (parity tests)."""
    img, n = columns.image_id, len(columns)
    keep = np.isin(img * gt.key_stride + columns.category_id, gt.scored_keys)
    if max_dets >= 0:
        order = np.lexsort((np.arange(n), -columns.score, img))  # by image, score desc., then input order
        sorted_img = img[order]
        first = np.searchsorted(sorted_img, sorted_img, side="left")
        capped = np.zeros(n, bool)
        capped[order] = (np.arange(n) - first) < max_dets
        keep &= capped
    return keep


def _select(columns, keep):
    return columns if keep.all() else columns.take(np.flatnonzero(keep))


def _segm_only(result, images):
    """``result`` without its "bbox", polygons turned into an RLE (lvis-api reads only RLEs).

    As detectron2: without a "bbox" lvis-api takes each detection's area from its mask, so
    small/medium/large are defined by mask area as for the ground truth."""
    out = {k: v for k, v in result.items() if k != "bbox"}
    out["segmentation"] = to_rle(out["segmentation"], images[result["image_id"]])
    return out


def _evaluate_fast(gt, columns, iou_type, max_dets):
    """hotcoco's LVIS evaluation of ``columns``, already capped and pre-filtered, and without
    detections of zero area: hotcoco counts them as false positives, while lvis-api never
    evaluates them (``LVIS.get_ann_ids`` keeps areas strictly above 0; Mask R-CNN does output
    empty masks)."""
    import hotcoco

    n = len(columns)
    rows = np.zeros((n, 7))  # hotcoco's (and pycocotools') array form: image, x, y, w, h, score, category
    rows[:, 0], rows[:, 5], rows[:, 6] = columns.image_id, columns.score, columns.category_id
    if iou_type == "bbox":
        rows[:, 1:5] = columns.bbox
        dt = gt.api.load_res(rows)
    else:
        gt.prepare_masks()
        # Boxes stay 0: segm matching reads only the masks, and the area (which sets
        # small/medium/large) is the mask's, as lvis-api takes it for results without a "bbox".
        dt = gt.api.load_res(rows, segmentation=columns.segmentation)
        if n:
            dt.update_anns(ids=np.arange(1, n + 1), area=columns.area)  # load_res numbers rows 1..n
    dt = dt.cap_detections_per_image(None if max_dets < 0 else max_dets)  # a no-op: already capped
    ev = hotcoco.LVISeval(gt.api, dt, iou_type)
    if gt.annotated_category_ids:
        # A category without ground truth has no AP (-1, left out of every mean): skip it.
        params = ev.params
        params.cat_ids = gt.annotated_category_ids
        ev.params = params
    ev.evaluate()
    ev.accumulate()
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):  # hotcoco's summarize() prints its own table
        ev.summarize()
    logger.debug("hotcoco summary (%s):\n%s", iou_type, printed.getvalue())
    summary = ev.get_results(per_class=True)  # {"AP": .., ..., "AP/<category name>": ..}
    per_class = {c: math.nan for c in gt.categories}
    name_to_id = {c["name"]: i for i, c in gt.categories.items()}
    if len(name_to_id) == len(gt.categories):
        for key, value in summary.items():
            if key.startswith("AP/"):
                per_class[name_to_id[key[3:]]] = _undefined_to_nan(value)
    else:  # category names not unique: per-class AP from the precision array, by id
        precision = np.asarray(ev.eval["precision"])[..., -1]  # T x R x K x A (last max-dets setting)
        per_class.update(per_class_ap_from_precision(precision, list(ev.params.cat_ids)))
    return _make_result(iou_type, summary, per_class)


def _evaluate_reference(gt, results, iou_type, max_dets):
    from lvis import LVISEval, LVISResults

    results = [dict(r) for r in results]  # lvis-api writes "area", "id" into each detection
    dt = LVISResults(gt.api, results, max_dets=max_dets)
    ev = LVISEval(gt.api, dt, iou_type)
    ev.run()
    precision = np.asarray(ev.eval["precision"])  # T x R x K x A
    return _make_result(iou_type, ev.get_results(), per_class_ap_from_precision(precision, list(ev.params.cat_ids)))


def _make_result(iou_type, summary, per_class):
    """An :class:`LVISEvalResult` from a backend's summary ({metric: value, -1 = undefined})."""
    return LVISEvalResult(iou_type, {k: _undefined_to_nan(summary[k]) for k in METRICS}, per_class)


def _undefined_to_nan(value):
    # Both APIs use -1 for "no category/area with ground truth": report NaN, as detectron2's COCO
    # evaluator does, instead of the -100 % detectron2's LVIS evaluator would show.
    value = float(value)
    return math.nan if value < 0 else value


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
