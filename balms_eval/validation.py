"""Checks of read detections (columns) against the ground truth, before any backend evaluates them.

Neither lvis-api, pycocotools nor hotcoco reject detections on unknown images or categories (they
ignore them or assert without saying which), and a malformed mask either crashes inside C/Rust code
or silently counts as empty. These checks run before any backend, vectorised over the columns, and
name the first invalid entry as ``results[i]``. (Annotation files: :mod:`.annotation_validation`.)
"""
import numpy as np

from .errors import LVISResultsError, describe_entry, id_range

def check_results(columns, images, categories, iou_types=("bbox", "segm")):
    """Raise :class:`LVISResultsError` naming the first detection (lowest index) with an unknown
    image or category, a score or box that is not finite, a box of negative size, or (for
    "segm") a mask of another size than its image or with undecodable counts."""
    if len(columns) == 0:
        return
    image_ids = np.array(sorted(images), np.int64)
    known_image = np.isin(columns.image_id, image_ids)
    problems = [
        (~known_image, lambda i: f"image_id {int(columns.image_id[i])} is not an image of the ground truth "
                                 f"({len(images)} images); are the results for another split?"),
        (~np.isin(columns.category_id, np.array(sorted(categories), np.int64)),
         lambda i: f"category_id {int(columns.category_id[i])} is not a category of the ground truth (ids "
                   f"{id_range(categories)}); was a contiguous (0-based) class index written instead?"),
        (~np.isfinite(columns.score), lambda i: f"score {float(columns.score[i])!r} is not a finite number"),
    ]
    if "bbox" in iou_types and columns.bbox is not None:
        box = columns.bbox
        problems.append((~np.isfinite(box).all(axis=1),
                         lambda i: f"bbox {box[i].tolist()!r} is not 4 finite numbers [x, y, w, h]"))
        problems.append(((box[:, 2:] < 0).any(axis=1),
                         lambda i: f"bbox {box[i].tolist()!r} has a negative width or height ([x, y, w, h] expected)"))
    masks = columns.masks if "segm" in iou_types else None
    if masks is not None:
        hw = np.array([[images[i]["height"], images[i]["width"]] for i in image_ids.tolist()], np.int64).reshape(-1, 2)
        pos = np.minimum(np.searchsorted(image_ids, columns.image_id), max(len(image_ids) - 1, 0))
        wrong_size = known_image & (masks.size != hw[pos]).any(axis=1)
        problems.append((wrong_size, lambda i: f"malformed mask: RLE size {masks.size[i].tolist()!r} is not the "
                                               f"image's [height, width] = {hw[pos[i]].tolist()}"))
    _raise_first(columns, problems)
    if masks is not None:
        _check_counts(columns, masks)


def _describe(columns, i):
    return describe_entry(i, {"image_id": int(columns.image_id[i]), "category_id": int(columns.category_id[i]),
                              "score": float(columns.score[i])})


def _raise_first(columns, problems):
    """Among (bad mask, message) pairs in priority order: the lowest bad index, with the first
    problem that entry has."""
    firsts = [np.flatnonzero(bad)[:1] for bad, _ in problems]
    found = [f[0] for f in firsts if len(f)]
    if not found:
        return
    i = int(min(found))
    message = next(msg for (bad, msg) in problems if bad[i])
    raise LVISResultsError(f"{_describe(columns, i)}: {message(i)}")


def _check_counts(columns, masks):
    """Decode every mask once (its area is kept for the filter and the backends); on failure,
    find and name the first undecodable one."""
    try:
        masks.compute_area()
        return
    except (ValueError, TypeError):
        masks.area = None
    from hotcoco import mask as hc_mask

    for i in range(len(masks)):
        try:
            hc_mask.area(masks.rles(i, i + 1))
        except (ValueError, TypeError) as e:
            raise LVISResultsError(f"{_describe(columns, i)}: malformed mask: {e}") from None
