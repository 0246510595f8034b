"""Checks of annotation files (ground truth, training sets) before any backend reads them.

 lvis-api and pycocotools index whatever they are given and fail later with a
KeyError or TypeError (a missing key, a string where a number belongs), or evaluate annotations of
unknown images and categories as if they were fine; hotcoco checks its fields' types when loading
but not the references between them. :func:`check_annotation_dataset` checks a loaded dict (the
reference backend's input, and training files); :func:`check_hotcoco_ground_truth` checks what
hotcoco loaded (the fast backend never has the file as Python objects). Both raise
:class:`~.errors.AnnotationFileError` as ``<file>: <entry>: <what is wrong>; <what is valid>``.
"""
import itertools
import math
import numbers

import numpy as np

from .errors import AnnotationFileError, id_range, json_type
from .groups import FREQUENCIES, image_counts_from_dataset

FEDERATED_KEYS = ("neg_category_ids", "not_exhaustive_category_ids")
_MISSING = object()
ANNOTATION_KEYS = '{"id", "image_id", "category_id", "bbox", "area", "segmentation", "iscrowd"}'
SECTIONS = {
    "images": 'image objects {"id", "height", "width", ...}',
    "categories": 'category objects {"id", "name", ...}',
    "annotations": "annotation objects " + ANNOTATION_KEYS,
}


def _is_id(value):
    return type(value) is int and value >= 0  # no bool, no float


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _indexed(section):
    """Label of the i-th entry of a file's list: ``images[3] (id=7)``."""
    def label(i, entry):
        ident = entry.get("id", _MISSING) if isinstance(entry, dict) else _MISSING
        return f"{section}[{i}]" + ("" if ident is _MISSING else f" (id={ident!r})")
    return label


def _by_id(kind):
    """Label of an entry as a loader keeps it (by id, not by its place in the file): ``image id 7``."""
    return lambda i, entry: f"{kind} id {entry.get('id')!r}"


def check_annotation_dataset(dataset, name, *, geometry=True):
    """Raise :class:`~.errors.AnnotationFileError` (``name: ...``) naming the first problem of a
    COCO/LVIS-format annotation dict; return its sections as (images, categories, annotations or
    None when absent: an image-info / test-set file).

    Always checked: a JSON object with non-empty lists "images" and "categories" (and "annotations",
    when present, a list); unique non-negative integer ids; categories' LVIS "frequency" (r, c or f)
    and "image_count" (a whole number >= 0) where present; annotations' "image_id" and
    "category_id" naming an image and a category of the file, "iscrowd" 0 or 1 where present.
    ``geometry`` (ground truth; False for a training set, whose images per class alone are read):
    also the images' "height" / "width" (positive integers) and federated lists (category ids of
    the file), the annotations' unique "id", "bbox" (4 numbers, width and height >= 0), "area"
    (a number >= 0) and, where present, "segmentation" (polygons: lists of >= 3 points [x1, y1,
    x2, y2, x3, y3, ...]; or an RLE {"size": the image's [height, width], "counts": a string or a
    list of ints}).
    """
    if not isinstance(dataset, dict):
        raise AnnotationFileError(f"{name}: expected a JSON object with the lists 'images', 'annotations' and "
                                  f"'categories' (COCO/LVIS format), got {json_type(dataset)}")
    images = _section(dataset, "images", name)
    categories = _section(dataset, "categories", name)
    annotations = _section(dataset, "annotations", name, required=False)
    category_ids = check_categories(categories, name, _indexed("categories"))
    sizes = check_images(images, name, category_ids, _indexed("images"), geometry=geometry)
    if annotations:
        check_annotations(annotations, name, sizes, category_ids, geometry=geometry)
    return images, categories, annotations


def _section(dataset, key, name, required=True):
    value = dataset.get(key, _MISSING)
    if value is _MISSING or (required and isinstance(value, list) and not value):
        if not required:
            return None
        raise AnnotationFileError(f"{name}: {no_entries(key)}")
    if not isinstance(value, list):
        raise AnnotationFileError(f"{name}: '{key}' is {json_type(value)}; expected a list of {SECTIONS[key]}")
    return value


def no_entries(key):
    """The message for an annotation file without images (or categories)."""
    return f"no {key}: '{key}' is missing or empty; a COCO/LVIS annotation file lists its {SECTIONS[key]}"


def check_categories(categories, name, label):
    """The set of the category ids; ``label(i, entry)`` names an entry in the messages."""
    ids = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict):
            raise AnnotationFileError(f"{name}: {label(i, cat)} is {json_type(cat)}; expected a category object "
                                      f'{{"id", "name", ...}}')
        cid = cat.get("id", _MISSING)
        if cid is _MISSING:
            raise AnnotationFileError(f"{name}: {label(i, cat)} has no 'id'; every category needs an integer id >= 0")
        if not _is_id(cid):
            raise AnnotationFileError(f"{name}: {label(i, cat)}: id {cid!r} is not an integer >= 0")
        if cid in ids:
            raise AnnotationFileError(f"{name}: {label(i, cat)}: category id {cid} appears twice (also "
                                      f"{label(ids[cid], categories[ids[cid]])}); category ids must be unique")
        ids[cid] = i
        freq = cat.get("frequency", _MISSING)
        if freq is not _MISSING and freq not in FREQUENCIES:
            raise AnnotationFileError(f"{name}: {label(i, cat)}: frequency {freq!r} is not one of 'r', 'c', 'f' "
                                      "(LVIS's rare, common, frequent)")
        count = cat.get("image_count", _MISSING)
        if count is not _MISSING and not (_is_number(count) and math.isfinite(count) and count >= 0
                                          and float(count).is_integer()):
            raise AnnotationFileError(f"{name}: {label(i, cat)}: image_count {count!r} is not a whole number of "
                                      "images >= 0")
    return set(ids)


def check_images(images, name, category_ids, label, *, geometry=True):
    """{image id: (height, width)} (``geometry``; else {image id: None}); ``label`` as in
    :func:`check_categories`."""
    sizes = {}
    for i, img in enumerate(images):
        if not isinstance(img, dict):
            raise AnnotationFileError(f"{name}: {label(i, img)} is {json_type(img)}; expected an image object "
                                      f'{{"id", "height", "width", ...}}')
        iid = img.get("id", _MISSING)
        if iid is _MISSING:
            raise AnnotationFileError(f"{name}: {label(i, img)} has no 'id'; every image needs an integer id >= 0")
        if not _is_id(iid):
            raise AnnotationFileError(f"{name}: {label(i, img)}: id {iid!r} is not an integer >= 0")
        if iid in sizes:
            raise AnnotationFileError(f"{name}: {label(i, img)}: image id {iid} appears twice; image ids must be "
                                      "unique")
        sizes[iid] = None
        if not geometry:
            continue
        for key in ("height", "width"):
            value = img.get(key, _MISSING)
            if value is _MISSING:
                raise AnnotationFileError(f"{name}: {label(i, img)} has no '{key}'; expected the image's {key} in "
                                          "pixels (an integer > 0)")
            if not (_is_id(value) and value > 0):
                raise AnnotationFileError(f"{name}: {label(i, img)}: {key} {value!r} is not an integer > 0; "
                                          f"expected the image's {key} in pixels")
        sizes[iid] = (img["height"], img["width"])
        for key in FEDERATED_KEYS:
            value = img.get(key, _MISSING)
            if value is _MISSING or value is None:
                continue
            if not isinstance(value, list):
                raise AnnotationFileError(f"{name}: {label(i, img)}: {key} {value!r} is not a list; expected a "
                                          "list of category ids")
            try:
                known = set(value) <= category_ids
            except TypeError:  # an unhashable entry
                known = False
            unknown = [] if known else [c for c in value if not (type(c) is int and c in category_ids)]
            if unknown:
                raise AnnotationFileError(f"{name}: {label(i, img)}: {key} lists {unknown[0]!r}, not a category id of "
                                          f"the file ({len(category_ids)} categories, ids {id_range(category_ids)})")
    return sizes


def check_annotations(annotations, name, sizes, category_ids, *, geometry=True):
    """The annotations of :func:`check_annotation_dataset` against ``sizes`` ({image id: (height,
    width) or None}) and ``category_ids``; vectorised over the list (LVIS v1 train: 1.3 M), each
    problem then located in the first entry that has it."""
    label = _indexed("annotations")

    def fail(i, what):
        raise AnnotationFileError(f"{name}: {label(i, annotations[i])}: {what}")

    if not set(map(type, annotations)) <= {dict}:
        i = next(i for i, a in enumerate(annotations) if not isinstance(a, dict))
        raise AnnotationFileError(f"{name}: annotations[{i}] is {json_type(annotations[i])}; expected an "
                                  f"annotation object {ANNOTATION_KEYS}")
    keys = ("image_id", "category_id") + (("id",) if geometry else ())
    column = {}
    for key in keys:
        values = [a.get(key, _MISSING) for a in annotations]
        column[key] = ids = _id_column(values)
        if ids is None:
            i = next(i for i, v in enumerate(values) if not _is_id(v) or v >= 1 << 63)
            what = {"image_id": "its image", "category_id": "its category", "id": "the annotation"}[key]
            fail(i, f"no '{key}'; expected the integer id of {what}" if values[i] is _MISSING else
                    f"{key} {values[i]!r} is not an integer id >= 0 (of {what})")
    for key, known, kind in (("image_id", sizes, "image"), ("category_id", category_ids, "category")):
        bad = ~np.isin(column[key], np.fromiter(known, np.int64, len(known)))
        if bad.any():
            i = int(np.argmax(bad))
            fail(i, _unknown_reference(key, int(column[key][i]), known, kind))
    if geometry:
        ids = column["id"]
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            i = _second_occurrence(ids, unique[counts > 1])
            fail(i, f"annotation id {int(ids[i])} appears twice; annotation ids must be unique")
    crowd = [a.get("iscrowd", 0) for a in annotations]
    if not (set(map(type, crowd)) <= {int, bool} and set(crowd) <= {0, 1}):
        i = next(i for i, v in enumerate(crowd) if type(v) not in (int, bool) or v not in (0, 1))
        fail(i, f"iscrowd {crowd[i]!r} is not 0 or 1")
    if geometry:
        _check_boxes_and_areas(annotations, fail)
        _check_segmentations(annotations, sizes, fail)


def _unknown_reference(key, value, known, kind):
    article, plural = {"image": ("an", "images"), "category": ("a", "categories")}[kind]
    return (f"{key} {value!r} is not {article} {kind} of the file ({len(known)} {plural}, ids {id_range(known)}); "
            f"every annotation must refer to one of its {plural}")


def _second_occurrence(ids, duplicated):
    """Index of the first entry whose id occurred earlier."""
    seen = set()
    dup = set(duplicated.tolist())
    for i, v in enumerate(ids.tolist()):
        if v in dup:
            if v in seen:
                return i
            seen.add(v)
    raise AssertionError("no duplicate")


def _id_column(values):
    """``values`` as int64 when all are ints >= 0 below 2**63, else None."""
    if not set(map(type, values)) <= {int}:
        return None
    try:
        ids = np.fromiter(values, np.int64, len(values))
    except OverflowError:
        return None
    return ids if not (ids < 0).any() else None


def _check_boxes_and_areas(annotations, fail):
    boxes = [a.get("bbox", _MISSING) for a in annotations]
    arr = None
    if set(map(type, boxes)) <= {list} and set(map(len, boxes)) <= {4} and set(
            map(type, itertools.chain.from_iterable(boxes))) <= {int, float}:
        arr = np.array(boxes, np.float64).reshape(-1, 4)
    if arr is None:
        for i, box in enumerate(boxes):
            if box is _MISSING:
                fail(i, "no 'bbox'; expected [x, y, width, height]")
            if not (isinstance(box, (list, tuple)) and len(box) == 4 and all(_is_number(v) for v in box)):
                fail(i, f"bbox {_short(box)} is not 4 numbers [x, y, width, height]")
        arr = np.array(boxes, np.float64).reshape(-1, 4)
    negative = (arr[:, 2:] < 0).any(axis=1)
    if negative.any():
        i = int(np.argmax(negative))
        fail(i, f"bbox {boxes[i]!r} has a negative width or height; expected [x, y, width, height], width and "
                "height >= 0")
    areas = [a.get("area", _MISSING) for a in annotations]
    i = -1 if set(map(type, areas)) <= {int, float} else next((i for i, v in enumerate(areas) if not _is_number(v)), -1)
    if i >= 0:
        fail(i, "no 'area'; expected the instance's area in pixels (a number >= 0)" if areas[i] is _MISSING else
                f"area {areas[i]!r} is not a number; expected the instance's area in pixels (>= 0)")
    negative = np.array(areas, np.float64) < 0
    if negative.any():
        i = int(np.argmax(negative))
        fail(i, f"area {areas[i]!r} is negative; expected the instance's area in pixels (>= 0)")


def _check_segmentations(annotations, sizes, fail):
    """Polygons (lists of >= 3 points: an even number >= 6 of numbers; pycocotools fails on fewer)
    or RLEs of the image's size; the key may be absent, null or [] (boxes only: segm evaluation
    then needs masks the file does not have)."""
    segs = [a.get("segmentation", _MISSING) for a in annotations]
    if _plain_polygons(segs):  # only the RLEs (LVIS: none; COCO: the crowd regions) one by one
        segs_to_check = [(i, s) for i, s in enumerate(segs) if type(s) is dict]
    else:
        segs_to_check = enumerate(segs)
    polygon_form = ("polygons [[x1, y1, x2, y2, x3, y3, ...], ...] (>= 3 points each) or an RLE "
                    '{"size": [height, width], "counts": ...}')
    for i, seg in segs_to_check:
        if seg is _MISSING or seg is None:
            continue
        if isinstance(seg, list):
            for poly in seg:
                if not (isinstance(poly, list) and len(poly) % 2 == 0 and len(poly) >= 6
                        and all(_is_number(v) for v in poly)):
                    fail(i, f"segmentation {_short(seg)} is not {polygon_form}")
            continue
        if not isinstance(seg, dict):
            fail(i, f"segmentation {_short(seg)} is {json_type(seg)}; expected {polygon_form}")
        if "size" not in seg or "counts" not in seg:
            fail(i, f"segmentation: an RLE needs 'size' and 'counts', got keys {sorted(seg)}")
        hw, size = list(sizes[annotations[i]["image_id"]]), seg["size"]
        if not (isinstance(size, list) and all(_is_id(v) for v in size) and size == hw):
            fail(i, f"segmentation: RLE size {_short(size)} is not the image's [height, width] = {hw}")
        counts = seg["counts"]
        if not (isinstance(counts, str) or (isinstance(counts, list) and all(_is_id(v) for v in counts))):
            fail(i, f"segmentation: RLE counts {_short(counts)} is neither a string (compressed RLE) nor a list of "
                    "integers >= 0 (uncompressed)")


def _plain_polygons(segs):
    """True when every segmentation is absent, an RLE dict (checked apart) or valid polygons."""
    if not set(map(type, segs)) <= {list, dict, object, type(None)}:
        return False
    polygons = list(itertools.chain.from_iterable(s for s in segs if type(s) is list))
    return set(map(type, polygons)) <= {list} and set(map(type, itertools.chain.from_iterable(polygons))) <= {
        int, float} and not any(len(p) % 2 or len(p) < 6 for p in polygons)


def _short(value, limit=60):
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_hotcoco_ground_truth(api, name, images, categories):
    """The checks of :func:`check_annotation_dataset` that hotcoco's loader does not do, on what
    it loaded (``api``: ``hotcoco.COCO``; ``images``, ``categories``: its {id: dict} maps): images
    and categories as above (named by id: the loader keeps one entry per id), then from hotcoco's
    own index and health check, with no annotation read into Python unless one is wrong: duplicate
    ids, annotations of unknown images or categories, a missing or negative area, a box of negative
    width or height. The types of the annotations' fields (ids, bbox, area, iscrowd, segmentation)
    hotcoco's loader has checked. Not seen here (hotcoco loads them, and only reading every
    annotation would show them): an annotation without "id" or "bbox", polygons of fewer than 3
    points or an odd number of coordinates, an RLE of another size than its image."""
    images, categories = list(images.values()), list(categories.values())
    for key, entries in (("images", images), ("categories", categories)):
        if not entries:
            raise AnnotationFileError(f"{name}: {no_entries(key)}")
    category_ids = check_categories(categories, name, _by_id("category"))
    sizes = check_images(images, name, category_ids, _by_id("image"))
    health = api.healthcheck()
    errors = {e["code"]: e["affected_ids"] for e in health["errors"]}
    for code, kind in (("duplicate_image_id", "image"), ("duplicate_category_id", "category"),
                       ("duplicate_ann_id", "annotation")):
        if errors.get(code):
            raise AnnotationFileError(f"{name}: {kind} id {errors[code][0]} appears more than once; {kind} ids must "
                                      "be unique")
    for code, key, known, kind in (("orphan_image_id", "image_id", sizes, "image"),
                                   ("orphan_category_id", "category_id", category_ids, "category")):
        if errors.get(code):
            ann = api.load_anns([min(errors[code])])[0]
            raise AnnotationFileError(f"{name}: annotation id {ann['id']}: "
                                      f"{_unknown_reference(key, ann[key], known, kind)}")
    all_ids = api.get_ann_ids()
    with_area = api.get_ann_ids(area_rng=[0.0, math.inf])
    if len(with_area) != len(all_ids):
        ann = api.load_anns([min(set(all_ids) - set(with_area))])[0]
        raise AnnotationFileError(
            f"{name}: annotation id {ann['id']}: " + ("no 'area'; expected the instance's area in pixels (a number "
                                                      ">= 0)" if "area" not in ann else
                                                      f"area {ann['area']!r} is negative; expected the instance's "
                                                      "area in pixels (>= 0)"))
    degenerate = next((w["affected_ids"] for w in health["warnings"] if w["code"] == "degenerate_bbox"), [])
    for ann in api.load_anns(sorted(degenerate)) if degenerate else ():
        if "bbox" in ann and min(ann["bbox"][2:]) < 0:
            raise AnnotationFileError(f"{name}: annotation id {ann['id']}: bbox {ann['bbox']!r} has a negative width "
                                      "or height; expected [x, y, width, height], width and height >= 0")


def read_training_counts(path):
    """(image_counts, count_source, categories) of a training annotation file: its images per
    class (:func:`~.groups.image_counts_from_dataset`), where they come from, and its categories ({id:
    category dict}) for :func:`~.groups.check_count_categories`. Raises
    :class:`~.errors.JSONFileError` / :class:`~.errors.AnnotationFileError` (``<path>: ...``) for
    a file that cannot be read or is not a COCO/LVIS annotation file (the fields the counts read:
    see :func:`check_annotation_dataset`, ``geometry=False``)."""
    from .results_io import load_json

    train = load_json(path, "training annotation")
    _, categories, annotations = check_annotation_dataset(train, path, geometry=False)
    counted = all("image_count" in c for c in categories)
    if not counted and annotations is None:
        raise AnnotationFileError(f"{path}: no 'annotations' to count training images per class from, and not every "
                                  "category has an 'image_count'; give the training set's annotation file")
    how = "its categories' image_count" if counted else "counted from its annotations"
    return (image_counts_from_dataset(train), f"training images per class in {path} ({how})",
            {c["id"]: c for c in categories})
