"""LVIS results as columns: numpy arrays read once from the results list.

The input checks, the federated pre-filter and hotcoco's array loader all work on these columns, so
the fast path reads the detection dicts only here, decodes each mask once, and never builds
per-detection dicts for the backend (which costs more than hotcoco's evaluation itself).
"""
import warnings
from dataclasses import dataclass

import numpy as np

from .validation import raise_first_invalid


@dataclass
class ResultColumns:
    """N detections: ``image_id``, ``category_id`` (int64), ``score`` (float64), ``bbox`` (N x 4
    [x, y, w, h], or None for segm), ``segmentation`` (a list of N RLE dicts with the image's size,
    polygons already merged into one RLE; None for bbox) and ``area`` (the box area for bbox, the
    mask area for segm; None until computed)."""

    image_id: np.ndarray
    category_id: np.ndarray
    score: np.ndarray
    bbox: np.ndarray = None
    segmentation: list = None
    area: np.ndarray = None

    def __len__(self):
        return len(self.image_id)

    def take(self, index):
        """The detections at the integer positions ``index``, in that order."""
        return ResultColumns(
            self.image_id[index],
            self.category_id[index],
            self.score[index],
            None if self.bbox is None else self.bbox[index],
            None if self.segmentation is None else list(map(self.segmentation.__getitem__, index.tolist())),
            None if self.area is None else self.area[index],
        )

    def compute_area(self):
        """Fill ``area`` (decoding the masks for segm) and return it."""
        if self.area is None:
            if self.segmentation is not None:
                self.area = _mask_area(self.segmentation)
            else:
                self.area = self.bbox[:, 2] * self.bbox[:, 3]
        return self.area

    @classmethod
    def from_results(cls, results, images, categories, iou_type, check=True):
        """Read an LVIS results list (dicts with image_id, category_id, score, and "bbox" for
        ``iou_type`` "bbox" or "segmentation" for "segm").

        With ``check``, raise :class:`LVISResultsError` naming the first invalid entry (unknown image
        or category, a score or box that is not finite numbers, a box of negative size, an RLE of
        another size than its image or with undecodable counts, malformed polygons). Uniform input
        (every entry a dict, every mask an RLE) is read and checked with a few vectorised passes;
        anything else, polygons included, goes entry by entry.
        """
        cols = _read_uniform(results, iou_type)
        if cols is not None and (not check or cols.is_valid(images, categories)):
            return cols
        if check:
            raise_first_invalid(results, images, categories, iou_type)  # raises unless all is valid
        return _read_entries(results, images, iou_type)

    def is_valid(self, images, categories):
        """True when every detection passes the checks; False means "look entry by entry"."""
        if len(self) == 0:
            return True
        image_ids = self.image_id.tolist()
        unique_images = set(image_ids)
        if not (unique_images <= images.keys() and set(self.category_id.tolist()) <= categories.keys()):
            return False
        if not np.isfinite(self.score).all():
            return False
        if self.bbox is not None:
            return bool(np.isfinite(self.bbox).all() and (self.bbox[:, 2:] >= 0).all())
        hw = {i: [images[i]["height"], images[i]["width"]] for i in unique_images}
        try:
            if [s["size"] for s in self.segmentation] != list(map(hw.__getitem__, image_ids)):
                return False  # (a tuple size is checked, and accepted, entry by entry)
        except (KeyError, TypeError):
            return False
        try:
            self.compute_area()  # one Rust call decodes (and so validates) every mask's counts
        except (ValueError, TypeError, KeyError):
            self.area = None
            return False
        return True


def _mask_area(rles):
    from hotcoco import mask as hc_mask

    return np.asarray(hc_mask.area(rles), np.float64).reshape(len(rles))


def _numeric(values, kinds, shape):
    """``values`` as an array if numpy infers a dtype of one of ``kinds`` and ``shape``, else None
    (bool, str, None, ragged rows: not valid)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.VisibleDeprecationWarning)  # ragged rows
        try:
            array = np.array(values)
        except (ValueError, TypeError, np.VisibleDeprecationWarning):
            return None
    if array.dtype.kind not in kinds or array.shape != shape:
        return None
    return array


def _read_uniform(results, iou_type):
    """Columns of a results list whose entries are all dicts with the expected keys and types, and,
    for segm, all RLE dicts; None where any entry is not (the caller then goes entry by entry)."""
    if not isinstance(results, (list, tuple)):
        return None
    n = len(results)
    if n == 0:
        empty = np.zeros(0, np.int64)
        return ResultColumns(empty, empty, np.zeros(0), np.zeros((0, 4)) if iou_type == "bbox" else None,
                             [] if iou_type == "segm" else None)
    try:
        image_id = _numeric([r["image_id"] for r in results], "iu", (n,))
        category_id = _numeric([r["category_id"] for r in results], "iu", (n,))
        score = _numeric([r["score"] for r in results], "iuf", (n,))
        if iou_type == "bbox":
            bbox, segmentation = _numeric([r["bbox"] for r in results], "iuf", (n, 4)), None
            if bbox is None:
                return None
            bbox = bbox.astype(np.float64, copy=False)
        else:
            bbox, segmentation = None, [r["segmentation"] for r in results]
            if not set(map(type, segmentation)) <= {dict}:
                return None  # polygons (or malformed masks): entry by entry
    except (KeyError, TypeError):  # an entry that is not a dict, or lacks a key
        return None
    if image_id is None or category_id is None or score is None:
        return None
    return ResultColumns(image_id.astype(np.int64, copy=False), category_id.astype(np.int64, copy=False),
                         score.astype(np.float64, copy=False), bbox, segmentation)


def _read_entries(results, images, iou_type):
    """Columns read entry by entry: any mapping, numbers of any numeric type, polygons (merged
    into one RLE of the image's size, as lvis-api reads only RLEs)."""
    n = len(results)
    image_id = np.fromiter((r["image_id"] for r in results), np.int64, n)
    category_id = np.fromiter((r["category_id"] for r in results), np.int64, n)
    score = np.fromiter((r["score"] for r in results), np.float64, n)
    if iou_type == "bbox":
        bbox = np.array([list(r["bbox"]) for r in results], np.float64).reshape(n, 4)
        return ResultColumns(image_id, category_id, score, bbox=bbox)
    segmentation = [to_rle(r["segmentation"], images[r["image_id"]]) for r in results]
    return ResultColumns(image_id, category_id, score, segmentation=segmentation)


def to_rle(segmentation, image):
    """An RLE dict for a detection's "segmentation": returned as is if it already is one,
    polygons merged into one RLE of the image's size (see :func:`polygons_to_rle`)."""
    if isinstance(segmentation, dict):
        return segmentation
    return polygons_to_rle(segmentation, image["height"], image["width"])


def polygons_to_rle(polygons, height, width):
    """Polygons [[x1, y1, x2, y2, ...], ...] merged into one RLE dict of size [height, width], counts
    as a str (as in a results file)."""
    from pycocotools import mask as mask_util

    rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
