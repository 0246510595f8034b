"""The classes a picture names: their names, their category ids in the annotation / results files, and
their LVIS frequency group (rare / common / frequent), from detectron2's catalogs."""
import logging
from dataclasses import dataclass
from typing import List, Optional

from balms_eval.groups import LVIS_THRESHOLDS, check_thresholds, group_of

__all__ = ["ClassInfo", "class_info"]

logger = logging.getLogger(__name__)


@dataclass
class ClassInfo:
    """Per contiguous class id (0..K-1): ``names``, ``category_ids`` (the annotation file's ids) and
    ``groups`` ("r" | "c" | "f"; None: no groups known); ``group_source`` says where the groups come from."""

    names: List[str]
    category_ids: List[int]
    groups: Optional[List[str]] = None
    group_source: Optional[str] = None

    def __len__(self):
        return len(self.names)

    def name(self, c):
        return self.names[c] if 0 <= c < len(self.names) else f"class {c}"

    def group(self, c):
        return self.groups[c] if self.groups is not None and 0 <= c < len(self.groups) else None

    def to_contiguous(self):
        """{category id of the annotation / results files: contiguous class id}."""
        return {cat_id: c for c, cat_id in enumerate(self.category_ids)}


def _registered(names):
    from detectron2.data import DatasetCatalog

    known = set(DatasetCatalog.list())
    return [n for n in names if n in known]


def _json_categories(meta):
    """{id: category dict} of the dataset's annotation file, or None where it has none / it cannot be read."""
    from balms_eval.json_categories import read_json_categories

    try:
        json_file = meta.get("json_file", None)  # (lt_shapes: generated on first use)
        if not json_file:
            return None
        return {int(c["id"]): c for c in read_json_categories(json_file)}
    except (OSError, ValueError, KeyError) as e:
        logger.warning("Categories of %s not read (%s): no frequency groups from its annotation file", meta.name, e)
        return None


def class_info(dataset_names, train_names=(), thresholds=LVIS_THRESHOLDS, num_classes=None):
    """:class:`ClassInfo` of the first registered dataset of ``dataset_names`` (its metadata
    ``thing_classes``, else its annotation file's category names; ``str(id)`` names for ``num_classes``
    classes when none is registered).

    Category ids: metadata ``thing_dataset_id_to_contiguous_id``, else the annotation file's ids in sorted
    order (detectron2's convention: id - 1 for LVIS's 1..K), else id = contiguous id + 1.
    Groups: the annotation file's LVIS ``frequency`` when every category has one; else from the training
    images per class of the registered ``train_names`` (metadata ``class_image_count``, or counted from
    their dicts) with ``thresholds`` (rare_max, common_max); else none.
    """
    from detectron2.data import MetadataCatalog

    thresholds = check_thresholds(thresholds)
    registered = _registered(list(dataset_names))
    meta = MetadataCatalog.get(registered[0]) if registered else None
    names = list(meta.get("thing_classes", None) or []) if meta is not None else []
    categories = _json_categories(meta) if meta is not None else None
    if not names and categories:
        names = [str(categories[i].get("name", i)) for i in sorted(categories)]
    if not names:
        if num_classes is None:
            raise ValueError(f"No registered dataset among {list(dataset_names)} to name the classes, and no "
                             "number of classes given")
        names = [str(c) for c in range(num_classes)]
    if num_classes is not None and num_classes != len(names):
        raise ValueError(f"The model predicts {num_classes} classes but {registered[0]} has {len(names)}: "
                         "give the dataset the model was trained on")
    id_map = meta.get("thing_dataset_id_to_contiguous_id", None) if meta is not None else None
    if id_map:
        by_contiguous = {c: d for d, c in id_map.items()}
        category_ids = [int(by_contiguous[c]) for c in range(len(names))]
    elif categories is not None and len(categories) == len(names):
        category_ids = sorted(categories)
    else:
        category_ids = [c + 1 for c in range(len(names))]
    if categories is not None and all(categories.get(i, {}).get("frequency") in ("r", "c", "f")
                                      for i in category_ids):
        groups = [categories[i]["frequency"] for i in category_ids]
        return ClassInfo(names, category_ids, groups, f"LVIS 'frequency' of {registered[0]}")
    train = _registered(list(train_names))
    if train:
        from ..evaluation.training_counts import training_image_counts

        counts, source = training_image_counts(train)
        if counts is not None:
            groups = [group_of(counts.get(i, 0), thresholds) for i in category_ids]
            return ClassInfo(names, category_ids, groups,
                             f"training images of {', '.join(train)}: rare <= {thresholds[0]} < common <= "
                             f"{thresholds[1]} < frequent")
    return ClassInfo(names, category_ids)
