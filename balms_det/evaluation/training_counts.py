"""Training images per category from detectron2's catalogs: what groups categories without an LVIS
``frequency`` into rare / common / frequent, and what the per-class outputs plot AP against."""
from detectron2.data import DatasetCatalog, MetadataCatalog

from balms_eval.groups import count_per_class


def training_image_counts(train_names, count_dicts=True):
    """({dataset category id: training images}, source text) summed over the registered datasets
    ``train_names``, or (None, None) when there are none (or, with ``count_dicts=False``, when one
    of them has no ``class_image_count``: counting means loading the dataset).

    Per dataset: metadata ``class_image_count`` (a list of {"id", "image_count"}, as detectron2's
    LVIS v1 metadata and balms_det's LVIS-style registration give), else counted from the
    registered dataset dicts (images with a non-crowd instance of the class, as the training priors
    count), whose contiguous ids map back through ``thing_dataset_id_to_contiguous_id`` (COCO-style
    registration) or as id - 1 (LVIS-style)."""
    counts, sources = {}, []
    for name in train_names:
        meta = MetadataCatalog.get(name)
        if meta.get("class_image_count", None):
            for d in meta.class_image_count:
                counts[int(d["id"])] = counts.get(int(d["id"]), 0) + int(d["image_count"])
            sources.append(f"class_image_count of {name}")
            continue
        if not count_dicts:
            return None, None
        dicts = DatasetCatalog.get(name)  # (loading a COCO-style set also fills its id map)
        id_map = meta.get("thing_dataset_id_to_contiguous_id", None)
        contiguous_to_id = {v: k for k, v in id_map.items()} if id_map else None
        per_class = count_per_class(d.get("annotations", []) for d in dicts)
        for c in sorted(set(contiguous_to_id or ()) | set(per_class)):  # the set's classes without images: 0
            cat_id = contiguous_to_id[c] if contiguous_to_id else c + 1
            counts[cat_id] = counts.get(cat_id, 0) + int(per_class.get(c, 0))
        sources.append(f"counted from the {len(dicts)} images of {name}")
    if not sources:
        return None, None
    return counts, "training images per class (" + "; ".join(sources) + ")"
