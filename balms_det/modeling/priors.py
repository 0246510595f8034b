"""Class priors: per-class training counts ``n_j`` (and the number of training images) as tensors.

Sources (``MODEL.BALMS.PRIOR.SOURCE``):

* ``"json"``: the ``image_count`` / ``instance_count`` fields of the LVIS-format categories in the
  dataset's annotation file (``MetadataCatalog.get(name).json_file``).
* ``"metadata"``: detectron2 metadata ``class_image_count`` (list of ``{"id", "image_count"}``, as
  detectron2 ships for LVIS v1); ``instance_count`` is used if the entries have it.
* ``"dataset"``: counted from the registered training dataset's dicts (``DatasetCatalog``), so it
  works for any COCO/LVIS-format dataset, and counts what the model trains on (crowd boxes skipped).
* ``"list"``: the counts given in ``MODEL.BALMS.PRIOR.COUNTS`` (offline use, tests, custom priors).

Several training datasets: counts (and image numbers) are summed. A count vector whose length differs
from ``MODEL.ROI_HEADS.NUM_CLASSES`` raises ``ValueError``. A class with zero training samples would
give ``log 0``: its count is replaced by ``MODEL.BALMS.PRIOR.MIN_COUNT`` (default 1, i.e. "as if seen
once") and a warning names the classes; counts are therefore always finite and positive.
"""
import json
import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.utils.file_io import PathManager

__all__ = [
    "ClassPrior",
    "PRIOR_SOURCES",
    "counts_from_lvis_json",
    "counts_from_metadata",
    "counts_from_dataset_dicts",
    "sanitize_counts",
    "load_class_prior",
    "class_prior",
    "class_prior_from_config",
]

logger = logging.getLogger(__name__)

PRIOR_SOURCES = ("json", "metadata", "dataset", "list")
COUNT_KINDS = ("image_count", "instance_count")


@dataclass
class ClassPrior:
    counts: torch.Tensor  # (K,) float64, finite and > 0
    num_images: Optional[int]  # number of training images, None if the source does not say

    def image_freq(self):
        """``p_j = n_j / number of training images`` (the sigmoid variant's prior)."""
        if not self.num_images:
            raise ValueError(
                "The number of training images is unknown for this prior source; "
                "set MODEL.BALMS.PRIOR.NUM_IMAGES."
            )
        return self.counts / float(self.num_images)


def _check_kind(count):
    if count not in COUNT_KINDS:
        raise ValueError(f"Unknown count kind {count!r}; expected one of {COUNT_KINDS}")


def counts_from_lvis_json(json_file, count="image_count", id_map=None, need_num_images=True):
    """
    Returns (counts, num_images) from an LVIS-format annotation file's ``categories``.

    Only the top-level ``categories`` (and, with ``need_num_images``, the number of ``images``
    entries; else ``num_images`` is None) are read, streaming, and cached per process: see
    :mod:`balms_eval.json_categories`.

    id_map: dataset category id -> contiguous id; default LVIS's ``id - 1`` if the ids are
    ``1..K``, otherwise the rank of the sorted ids (detectron2's COCO convention).
    """
    from balms_eval.json_categories import MissingKeyError, count_json_images, read_json_categories

    _check_kind(count)
    local_file = PathManager.get_local_path(json_file)
    cats = read_json_categories(local_file)
    missing = [c["id"] for c in cats if count not in c]
    if missing:
        raise ValueError(f"{json_file}: categories {missing[:5]}... have no {count!r} field")
    if id_map is None:
        ids = sorted(c["id"] for c in cats)
        id_map = {i: r for r, i in enumerate(ids)}
    values = [0.0] * len(id_map)
    for c in cats:
        if c["id"] in id_map:
            values[id_map[c["id"]]] = float(c[count])
    counts = torch.tensor(values, dtype=torch.float64)
    num_images = None
    if need_num_images:
        try:
            num_images = count_json_images(local_file) or None
        except MissingKeyError:
            pass
    return counts, num_images


def counts_from_metadata(meta, count="image_count"):
    """Returns (counts, num_images) from detectron2 metadata ``class_image_count``."""
    _check_kind(count)
    entries = meta.get("class_image_count", None)
    if entries is None:
        raise ValueError(f"Metadata of {meta.name!r} has no 'class_image_count'")
    entries = sorted(entries, key=lambda x: x["id"])
    if any(count not in e for e in entries):
        raise ValueError(f"Metadata 'class_image_count' of {meta.name!r} has no {count!r} entries")
    counts = torch.tensor([float(e[count]) for e in entries], dtype=torch.float64)
    return counts, meta.get("num_images", None)


def counts_from_dataset_dicts(dicts, num_classes, count="image_count"):
    """Returns (counts, num_images) counted from detectron2 dataset dicts (contiguous ids)."""
    _check_kind(count)
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for d in dicts:
        cats = [a["category_id"] for a in d.get("annotations", []) if not a.get("iscrowd", 0)]
        if count == "image_count":
            cats = set(cats)
        for c in cats:
            if not 0 <= c < num_classes:
                raise ValueError(f"category_id {c} out of range for NUM_CLASSES={num_classes}")
            counts[c] += 1
    return counts, len(dicts)


def _check_length(counts, num_classes, name):
    if num_classes is not None and counts.numel() != num_classes:
        raise ValueError(
            f"Class prior {name!r} has {counts.numel()} entries but MODEL.ROI_HEADS.NUM_CLASSES is "
            f"{num_classes}; the prior must have one count per foreground class."
        )


def sanitize_counts(counts, num_classes, min_count=1.0, name="prior"):
    """Length check, then zero counts -> ``min_count`` (logged). Returns float64 counts."""
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    _check_length(counts, num_classes, name)
    if not torch.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"Class prior {name!r} has negative or non-finite counts")
    zero = (counts <= 0).nonzero().flatten().tolist()
    if zero:
        if min_count <= 0:
            raise ValueError(f"Class prior {name!r}: classes {zero} have zero count and MIN_COUNT <= 0")
        logger.warning(
            f"Class prior {name!r}: {len(zero)} class(es) have no training samples "
            f"(contiguous ids {zero[:20]}{'...' if len(zero) > 20 else ''}); using count "
            f"{min_count} for them (MODEL.BALMS.PRIOR.MIN_COUNT) so that log n stays finite."
        )
        counts = counts.clone()
        counts[zero] = float(min_count)
    return counts


def _json_id_map(meta):
    m = meta.get("thing_dataset_id_to_contiguous_id", None)
    return dict(m) if m else None


def load_class_prior(
    dataset_names: Union[str, Sequence[str]] = (),
    *,
    source: str = "json",
    count: str = "image_count",
    num_classes: Optional[int] = None,
    counts: Optional[List[float]] = None,
    num_images: int = 0,
    min_count: float = 1.0,
) -> ClassPrior:
    """
    Class counts from ``source`` (see module doc), summed over ``dataset_names``.

    Args:
        num_images: if > 0, overrides the number of training images given by the source.
    """
    if source not in PRIOR_SOURCES:
        raise ValueError(f"Unknown prior source {source!r}; expected one of {PRIOR_SOURCES}")
    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    if source == "list":
        if not counts:
            raise ValueError("PRIOR.SOURCE 'list' needs MODEL.BALMS.PRIOR.COUNTS")
        total, n_img = torch.tensor(list(counts), dtype=torch.float64), None
    else:
        if not dataset_names:
            raise ValueError(f"PRIOR.SOURCE {source!r} needs at least one training dataset")
        total, n_img = None, 0
        for name in dataset_names:
            meta = MetadataCatalog.get(name)
            if source == "json":
                json_file = meta.get("json_file", None)
                if json_file is None:
                    raise ValueError(f"Dataset {name!r} has no metadata 'json_file' for PRIOR.SOURCE json")
                c, n = counts_from_lvis_json(json_file, count, _json_id_map(meta))
            elif source == "metadata":
                c, n = counts_from_metadata(meta, count)
            else:
                if num_classes is None:
                    raise ValueError("PRIOR.SOURCE 'dataset' needs num_classes")
                c, n = counts_from_dataset_dicts(DatasetCatalog.get(name), num_classes, count)
            _check_length(c, num_classes, name)
            total = c if total is None else total + c
            n_img = None if (n is None or n_img is None) else n_img + n
    name = "MODEL.BALMS.PRIOR.COUNTS" if source == "list" else "+".join(dataset_names)
    total = sanitize_counts(total, num_classes, min_count, name=name)
    if num_images > 0:
        n_img = int(num_images)
    logger.info(
        f"Class prior ({source}, {count}) over {list(dataset_names)}: {total.numel()} classes, "
        f"counts min {total.min().item():g} / max {total.max().item():g}, images {n_img}"
    )
    return ClassPrior(counts=total, num_images=n_img)


def class_prior(datasets=(), *, json_file=None, counts=None, source=None, count="image_count",
                num_classes=None, num_images=0, min_count=1.0, need_num_images=False) -> ClassPrior:
    """
    The class prior with explicit arguments (Python configs: ``L(class_prior)(datasets="lvis_v1_train")``),
    the same sources, fallbacks and errors as ``MODEL.BALMS.PRIOR``:

    * ``counts`` (a list): source "list"; ``json_file``: the LVIS ``categories`` of that file (ids
      ``1..K`` or sorted); else ``datasets`` (registered names) read by ``source`` (default "json":
      their metadata ``json_file``; "metadata"; "dataset": counted from their dicts);
    * ``num_images`` > 0 overrides the number of training images; with ``need_num_images`` (the sigmoid
      variant), a source that does not give it falls back to the datasets' number of images.
    """
    if json_file is not None:
        c, n = counts_from_lvis_json(json_file, count)
        prior = ClassPrior(sanitize_counts(c, num_classes, min_count, name=json_file), n)
        if num_images > 0:
            prior.num_images = int(num_images)
    else:
        source = source or ("list" if counts else "json")
        prior = load_class_prior(datasets, source=source, count=count, num_classes=num_classes,
                                 counts=list(counts or []), num_images=num_images, min_count=min_count)
    if need_num_images and not prior.num_images:
        names = [datasets] if isinstance(datasets, str) else list(datasets)
        if json_file is not None or source == "list" or not names:
            raise ValueError("The sigmoid variant needs the number of training images (MODEL.BALMS.PRIOR.NUM_IMAGES, "
                             "num_images=) with this prior")
        prior.num_images = sum(len(DatasetCatalog.get(d)) for d in names)
    return prior


def class_prior_from_config(cfg, num_classes=None, need_num_images=False) -> ClassPrior:
    """:func:`class_prior` with the ``MODEL.BALMS.PRIOR`` keys and ``DATASETS.TRAIN``."""
    p = cfg.MODEL.BALMS.PRIOR
    return class_prior(
        list(cfg.DATASETS.TRAIN), source=p.SOURCE, count=p.COUNT,
        num_classes=num_classes if num_classes is not None else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        counts=list(p.COUNTS), num_images=p.NUM_IMAGES, min_count=p.MIN_COUNT, need_num_images=need_num_images,
    )
