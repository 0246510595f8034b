"""Input checks for LVIS evaluation: a bad results entry fails with a message that names it.

Neither lvis-api nor hotcoco reject detections on unknown images or categories (hotcoco warns and
ignores them, lvis-api asserts without saying which), and a malformed mask either crashes inside
C/Rust code or silently counts as empty. These checks run before either backend.
"""
import math
import numbers
_FREQUENCIES = ("r", "c", "f")


class LVISResultsError(ValueError):
    """A detection in an LVIS results list is invalid; the message names the entry."""


def check_lvis_gt(images, categories):
    """Check that ground truth has the fields LVIS evaluation needs ({id: image}, {id: category}).

    An image without ``neg_category_ids`` / ``not_exhaustive_category_ids`` counts as having empty
    lists (hotcoco drops empty lists when it loads a file, so absent and empty cannot be told apart).
    """
    for cat_id, cat in categories.items():
        if cat.get("frequency") not in _FREQUENCIES:
            raise ValueError(
                f"LVIS ground truth: category {cat_id} ({cat.get('name')!r}) has frequency "
                f"{cat.get('frequency')!r}; LVIS evaluation needs one of {_FREQUENCIES} on every category"
            )
    for img_id, img in images.items():
        for key in ("neg_category_ids", "not_exhaustive_category_ids"):
            if not isinstance(img.get(key, []), list):
                raise ValueError(
                    f"LVIS ground truth: image {img_id} has {key}={img[key]!r}; expected a list of category ids"
                )


def _describe(index, entry):
    if isinstance(entry, dict):
        ids = ", ".join(f"{k}={entry[k]!r}" for k in ("image_id", "category_id", "score") if k in entry)
        return f"results[{index}] ({ids})"
    return f"results[{index}]"


def _is_number(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool) and math.isfinite(x)


def check_lvis_results(results, images, categories, iou_type):
    """Raise :class:`LVISResultsError` naming the first invalid entry of ``results``.

    Checks each entry has a known ``image_id`` and ``category_id``, a finite ``score``, and for
    ``iou_type`` "bbox" a finite ``[x, y, w, h]`` box with w, h >= 0, for "segm" a segmentation
    that is an RLE of the image's size [height, width] with decodable counts, or polygons.
    Valid input is accepted by a few vectorised passes (:class:`~.columns.ResultColumns`, which the
    fast backend reads anyway); only when they fail does the per-entry pass run to name the entry.
    """
    from .columns import ResultColumns

    ResultColumns.from_results(results, images, categories, iou_type, check=True)


def raise_first_invalid(results, images, categories, iou_type):
    """Check ``results`` entry by entry; raise :class:`LVISResultsError` at the first invalid one."""
    if not isinstance(results, (list, tuple)):
        raise LVISResultsError(f"LVIS results must be a list of detection dicts, got {type(results).__name__}")
    cat_range = f"{min(categories)}..{max(categories)}" if categories else "none"
    rles, rle_index = [], []
    for i, r in enumerate(results):
        if not isinstance(r, dict):
            raise LVISResultsError(f"{_describe(i, r)}: expected a dict, got {type(r).__name__}")
        for key in ("image_id", "category_id", "score"):
            if key not in r:
                raise LVISResultsError(f"{_describe(i, r)}: missing {key!r}")
        img = images.get(r["image_id"])
        if img is None:
            raise LVISResultsError(
                f"{_describe(i, r)}: image_id {r['image_id']!r} is not an image of the ground truth "
                f"({len(images)} images); are the results for another split?"
            )
        if r["category_id"] not in categories:
            raise LVISResultsError(
                f"{_describe(i, r)}: category_id {r['category_id']!r} is not a category of the ground "
                f"truth (ids {cat_range}); was a contiguous (0-based) class index written instead?"
            )
        if not _is_number(r["score"]):
            raise LVISResultsError(f"{_describe(i, r)}: score {r['score']!r} is not a finite number")
        if iou_type == "bbox":
            _check_box(i, r)
        else:
            seg = r.get("segmentation")
            if seg is None:
                raise LVISResultsError(f"{_describe(i, r)}: missing 'segmentation' (needed for segm evaluation)")
            if isinstance(seg, dict):
                _check_rle_header(i, r, seg, img)
                rles.append(seg)
                rle_index.append(i)
            else:
                _check_polygons(i, r, seg)
    if rles:
        _check_rle_counts(results, rles, rle_index)


def _check_box(i, r):
    box = r.get("bbox")
    if box is None:
        raise LVISResultsError(f"{_describe(i, r)}: missing 'bbox' (needed for bbox evaluation)")
    try:
        ok = len(box) == 4 and all(_is_number(v) for v in box)
    except TypeError:
        ok = False
    if not ok:
        raise LVISResultsError(f"{_describe(i, r)}: bbox {box!r} is not 4 finite numbers [x, y, w, h]")
    if box[2] < 0 or box[3] < 0:
        raise LVISResultsError(f"{_describe(i, r)}: bbox {box!r} has a negative width or height ([x, y, w, h] expected)")


def _check_rle_header(i, r, seg, img):
    if "size" not in seg or "counts" not in seg:
        raise LVISResultsError(f"{_describe(i, r)}: malformed mask: an RLE needs 'size' and 'counts', got keys {sorted(seg)}")
    size = list(seg["size"]) if isinstance(seg["size"], (list, tuple)) else seg["size"]
    if size != [img["height"], img["width"]]:
        raise LVISResultsError(
            f"{_describe(i, r)}: malformed mask: RLE size {seg['size']!r} is not the image's "
            f"[height, width] = [{img['height']}, {img['width']}]"
        )
    if not isinstance(seg["counts"], (str, bytes, list)):
        raise LVISResultsError(
            f"{_describe(i, r)}: malformed mask: RLE counts must be a string or a list of ints, got "
            f"{type(seg['counts']).__name__}"
        )


def _check_polygons(i, r, seg):
    ok = isinstance(seg, list) and len(seg) > 0
    for poly in seg if ok else ():
        if not (isinstance(poly, list) and len(poly) >= 6 and len(poly) % 2 == 0 and all(_is_number(v) for v in poly)):
            ok = False
            break
    if not ok:
        raise LVISResultsError(
            f"{_describe(i, r)}: malformed mask: segmentation must be an RLE dict or a list of polygons "
            f"[x1, y1, x2, y2, ...] with >= 3 points each, got {str(seg)[:80]}"
        )


def _check_rle_counts(results, rles, rle_index):
    from hotcoco import mask as hc_mask

    try:
        hc_mask.area(rles)  # one Rust call decodes all counts and validates them
        return
    except (ValueError, TypeError):
        pass
    for rle, i in zip(rles, rle_index):  # only on failure: find which one
        try:
            hc_mask.area(rle)
        except (ValueError, TypeError) as e:
            raise LVISResultsError(f"{_describe(i, results[i])}: malformed mask: {e}") from None
