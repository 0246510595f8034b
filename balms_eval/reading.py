"""Reading: a results list (dicts, as in a results JSON file) into :class:`~.columns.ResultColumns`.

Uniform input (every entry a dict with int ids, numeric score and box, compressed-RLE masks) is
read with a few vectorised passes. Anything else valid (any numeric types, tuples, polygons,
uncompressed RLEs) is read entry by entry, and an entry whose structure is wrong (not a dict, a
missing key, a score that is not a number, a box that is not 4 numbers, a malformed mask) stops the
reading with :class:`~.errors.LVISResultsError` naming it. Whether the values fit the ground truth
(known ids, finite numbers, mask sizes) is checked afterwards, on the columns (validation.py).
"""
import itertools
import math
import numbers

import numpy as np

from .columns import Masks, ResultColumns
from .errors import LVISResultsError, describe_entry


def read_results(results, images, iou_types=("bbox", "segm")):
    """Columns of ``results`` with the geometry ``iou_types`` need: "bbox" reads each entry's
    "bbox", "segm" its "segmentation" (polygons become one RLE of the image's size; ``images``:
    {image id: image dict}, read only for that)."""
    if not isinstance(results, (list, tuple)):
        raise LVISResultsError(f"LVIS results must be a list of detection dicts, got {type(results).__name__}")
    want_bbox, want_masks = "bbox" in iou_types, "segm" in iou_types
    if len(results) == 0:
        return ResultColumns.empty(want_bbox, want_masks)
    columns = _read_uniform(results, want_bbox, want_masks)
    if columns is None:
        columns = _read_entries(results, images, want_bbox, want_masks)
    return columns


def _array(values, types, dtype, width=None):
    """``values`` (a list, or of lists of ``width``) as an array of ``dtype`` when every value's
    type is one of ``types`` (so no bool, str, None or float id passes), else None."""
    if width is None:
        return np.array(values, dtype) if set(map(type, values)) <= types else None
    if set(map(len, values)) != {width} or not set(map(type, itertools.chain.from_iterable(values))) <= types:
        return None
    return np.fromiter(itertools.chain.from_iterable(values), dtype, width * len(values)).reshape(-1, width)


def _read_uniform(results, want_bbox, want_masks):
    """Columns by whole-column passes when every entry has the plain form (dicts, int ids, int or
    float numbers, compressed-RLE masks); None otherwise."""
    try:
        image_id = _array([r["image_id"] for r in results], {int}, np.int64)
        category_id = _array([r["category_id"] for r in results], {int}, np.int64)
        score = _array([r["score"] for r in results], {float, int}, np.float64)
        bbox = _array([r["bbox"] for r in results], {float, int}, np.float64, 4) if want_bbox else None
        masks = None
        if want_masks:
            segs = [r["segmentation"] for r in results]
            if not set(map(type, segs)) <= {dict}:
                return None  # polygons (or malformed masks): entry by entry
            counts_types = set(type(s["counts"]) for s in segs)
            if _array([s["size"] for s in segs], {int}, np.int64, 2) is None or not (
                    counts_types <= {str} or counts_types <= {bytes}):
                return None
            masks = Masks.from_rles(segs)
    except (KeyError, TypeError, ValueError, OverflowError):  # not a dict, a missing key, not ASCII, ...
        return None
    if image_id is None or category_id is None or score is None or (want_bbox and bbox is None):
        return None
    return ResultColumns(image_id, category_id, score, bbox, masks)


def _is_real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _read_id(i, r, key):
    value = r[key]
    if _is_real(value) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    raise LVISResultsError(f"{describe_entry(i, r)}: {key} {value!r} is not an integer id")


def _read_entries(results, images, want_bbox, want_masks):
    n = len(results)
    image_id, category_id, score = np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n)
    bbox = np.zeros((n, 4)) if want_bbox else None
    rles = []
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise LVISResultsError(f"{describe_entry(i)}: expected a dict, got {type(r).__name__}")
        for key in ("image_id", "category_id", "score") + (("bbox",) if want_bbox else ()) + (
                ("segmentation",) if want_masks else ()):
            if key not in r:
                need = {"bbox": " (needed for bbox evaluation)", "segmentation": " (needed for segm evaluation)"}
                raise LVISResultsError(f"{describe_entry(i, r)}: missing {key!r}{need.get(key, '')}")
        image_id[i], category_id[i] = _read_id(i, r, "image_id"), _read_id(i, r, "category_id")
        if not _is_real(r["score"]):
            raise LVISResultsError(f"{describe_entry(i, r)}: score {r['score']!r} is not a finite number")
        score[i] = r["score"]
        if want_bbox:
            bbox[i] = _read_box(i, r)
        if want_masks:
            rles.append(_read_mask(i, r, images.get(image_id[i])))
    return ResultColumns(image_id, category_id, score, bbox, Masks.from_rles(rles) if want_masks else None)


def _read_box(i, r):
    box = r["bbox"]
    try:
        ok = len(box) == 4 and all(_is_real(v) for v in box)
    except TypeError:
        ok = False
    if not ok:
        raise LVISResultsError(f"{describe_entry(i, r)}: bbox {box!r} is not 4 finite numbers [x, y, w, h]")
    return [float(v) for v in box]


def _read_mask(i, r, image):
    """A compressed RLE dict for the entry's "segmentation" (an RLE, or polygons)."""
    seg = r["segmentation"]
    if isinstance(seg, dict):
        if "size" not in seg or "counts" not in seg:
            raise LVISResultsError(f"{describe_entry(i, r)}: malformed mask: an RLE needs 'size' and 'counts', "
                                   f"got keys {sorted(seg)}")
        size = seg["size"]
        if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(
                isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in size)):
            raise LVISResultsError(f"{describe_entry(i, r)}: malformed mask: RLE size {size!r} is not [height, width]")
        counts = seg["counts"]
        if isinstance(counts, list):  # uncompressed RLE
            from pycocotools import mask as mask_util

            try:
                counts = mask_util.frPyObjects(dict(seg, size=list(size)), *size)["counts"]
            except (TypeError, ValueError, OverflowError) as e:
                raise LVISResultsError(f"{describe_entry(i, r)}: malformed mask: {e}") from None
        if not isinstance(counts, (str, bytes)):
            raise LVISResultsError(f"{describe_entry(i, r)}: malformed mask: RLE counts must be a string or a list "
                                   f"of ints, got {type(counts).__name__}")
        return {"size": list(size), "counts": counts}
    ok = isinstance(seg, list) and len(seg) > 0
    for poly in seg if ok else ():
        if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(
                _is_real(v) and math.isfinite(v) for v in poly)):
            ok = False
            break
    if not ok:
        raise LVISResultsError(
            f"{describe_entry(i, r)}: malformed mask: segmentation must be an RLE dict or a list of polygons "
            f"[x1, y1, x2, y2, ...] with >= 3 points each, got {str(seg)[:80]}")
    if image is None:  # unknown image: the checks name it; nothing to draw the polygons on
        return {"size": [0, 0], "counts": b""}
    return polygons_to_rle(seg, image["height"], image["width"])


def polygons_to_rle(polygons, height, width):
    """Polygons [[x1, y1, x2, y2, ...], ...] merged into one RLE dict of size [height, width], counts
    as a str (as in a results file; lvis-api reads only RLEs)."""
    from pycocotools import mask as mask_util

    rle = mask_util.merge(mask_util.frPyObjects(polygons, height, width))
    return {"size": [height, width], "counts": rle["counts"].decode("ascii")}
