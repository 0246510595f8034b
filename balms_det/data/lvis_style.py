"""Load / register any LVIS-format dataset (not only the built-in LVIS releases).

detectron2's ``register_lvis_instances`` only works for names it has built-in metadata for
("lvis_v0.5_*", "lvis_v1_*"). :func:`register_lvis_style_instances` registers any LVIS-format
JSON (category ids 1..K, as LVIS uses), with metadata read from the file: ``thing_classes``,
``class_image_count`` (for priors and the repeat-factor sampler), ``json_file``, ``image_root``
and ``evaluator_type="lvis"``. Broken files fail with an error that names the file.
"""
import json
import os

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.lvis import load_lvis_json


def read_lvis_categories(json_file):
    """Categories of an LVIS-format file, checked: a missing, unparsable or non-LVIS file, or
    category ids that are not exactly 1..K, raise an error naming ``json_file``."""
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"LVIS-format annotation file not found: {json_file}")
    try:
        with open(json_file) as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"Malformed JSON in annotation file {json_file}: {e}") from e
    missing = [k for k in ("images", "annotations", "categories") if k not in data] if isinstance(
        data, dict) else ["images", "annotations", "categories"]
    if missing:
        raise ValueError(f"Annotation file {json_file} is not in LVIS format: missing {missing}")
    cats = sorted(data["categories"], key=lambda c: c["id"])
    ids = [c["id"] for c in cats]
    if ids != list(range(1, len(ids) + 1)):
        raise ValueError(f"Annotation file {json_file}: LVIS-format category ids must be 1..K "
                         f"(contiguous), got {ids[:10]}{'...' if len(ids) > 10 else ''}")
    return cats


def load_lvis_style_json(json_file, image_root):
    """``detectron2.data.datasets.load_lvis_json`` after :func:`read_lvis_categories`' checks."""
    read_lvis_categories(json_file)
    try:
        return load_lvis_json(json_file, image_root)
    except (KeyError, AssertionError, TypeError, ValueError) as e:
        raise ValueError(f"Invalid annotation in {json_file}: {type(e).__name__}: {e}") from e


def lvis_style_metadata(json_file, image_root):
    cats = read_lvis_categories(json_file)
    return dict(
        thing_classes=[c["name"] for c in cats],
        class_image_count=[{"id": c["id"], "image_count": c.get("image_count", 0)} for c in cats],
        json_file=json_file,
        image_root=image_root,
        evaluator_type="lvis",
    )


def register_lvis_style_instances(name, json_file, image_root):
    """Register an LVIS-format dataset under ``name`` (reads the categories now, the rest lazily).

    ``image_root`` is prefixed to each image's ``coco_url`` split folder as in detectron2's LVIS
    loader: ``image_root + "<split>/<file>"``.
    """
    MetadataCatalog.get(name).set(**lvis_style_metadata(json_file, image_root))
    DatasetCatalog.register(name, lambda: load_lvis_style_json(json_file, image_root))
