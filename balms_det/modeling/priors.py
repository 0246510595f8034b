"""Class priors: per-class training counts ``n_j`` (and the number of training images) as tensors.

Sources (``MODEL.BALMS.PRIOR.SOURCE``):

* ``"json"``: the ``image_count`` / ``instance_count`` fields of the LVIS-format categories in the
  dataset's annotation file (``MetadataCatalog.get(name).json_file``).
* ``"metadata"``: detectron2 metadata ``class_image_count`` (list of ``{"id", "image_count"}``, as
  detectron2 ships for LVIS v1); ``instance_count`` is used if the entries have it.
* ``"dataset"``: counted from the registered training dataset's dicts (``DatasetCatalog``), so it
  works for any COCO/LVIS-format dataset, and counts what the model trains on (crowd boxes skipped).
* ``"list"``: the counts given in ``MODEL.BALMS.PRIOR.COUNTS`` (offline use, tests, custom priors).

The sampler's prior (``MODEL.BALMS.PRIOR.SAMPLER: train``): the *expected* per-class counts of one
pass of the training sampler instead of the dataset's, ``sum_i w_i [c in image i]`` (image counts; or
``w_i`` times the image's instances of ``c``), ``w_i`` the image's expected draws per pass
(:func:`sampler_image_weights`: detectron2's own repeat factors for ``RepeatFactorTrainingSampler``,
:meth:`ClassBalancedSampler.image_weights`, 1 for the stock ``TrainingSampler``), and
``sum_i w_i`` training images. This is the label distribution the loss sees when the sampler has
already re-balanced the data (BALMS, Section 3.2: Balanced Softmax on top of re-sampling corrects
twice). It is counted from the training dicts the loader samples (``DATALOADER.FILTER_EMPTY_ANNOTATIONS``
applied); with the stock sampler the key changes nothing (the raw counts of ``SOURCE``).

Several training datasets: counts (and image numbers) are summed. A count vector whose length differs
from ``MODEL.ROI_HEADS.NUM_CLASSES`` raises ``ValueError``. A class with zero training samples would
give ``log 0``: its count is replaced by ``MODEL.BALMS.PRIOR.MIN_COUNT`` (default 1, i.e. "as if seen
once") and a warning names the classes; counts are therefore always finite and positive.

Errors name what the user writes: a YAML config's keys (:data:`CONFIG_NAMES`, the default and
:func:`class_prior_from_config`'s) or, from :func:`class_prior` / ``deferred_class_prior`` in a Python
config, their arguments (:data:`PYTHON_NAMES`). A source that lacks the counts (a COCO-format file under
``"json"``, metadata without ``class_image_count``) raises :class:`MissingCountsError`, which says which
source has them.
"""
import inspect
import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Union

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog, get_detection_dataset_dicts
from detectron2.data.samplers import RepeatFactorTrainingSampler
from detectron2.utils.file_io import PathManager

from balms_eval.groups import COUNT_KINDS, count_per_class

from ..data.samplers import ClassBalancedSampler
from .prior_messages import (CONFIG_NAMES, PYTHON_NAMES, MissingCountsError, PriorNames, count_source_fix,
                             missing_counts_problem)

__all__ = [
    "ClassPrior",
    "PRIOR_SOURCES",
    "counts_from_lvis_json",
    "counts_from_metadata",
    "counts_from_dataset_dicts",
    "sampler_image_weights",
    "PRIOR_SAMPLERS",
    "sanitize_counts",
    "load_class_prior",
    "class_prior",
    "class_prior_from_config",
]

logger = logging.getLogger(__name__)

PRIOR_SOURCES = ("json", "metadata", "dataset", "list")
PRIOR_SAMPLERS = ("none", "train")  # MODEL.BALMS.PRIOR.SAMPLER
# DATALOADER.SAMPLER_TRAIN values whose expected counts the sampler's prior knows
SAMPLERS_WITH_PRIOR = ("TrainingSampler", "RepeatFactorTrainingSampler", "ClassBalancedSampler")


@dataclass
class ClassPrior:
    counts: torch.Tensor  # (K,) float64, finite and > 0
    num_images: Optional[float]  # training images (expected per sampler pass), None if the source does not say

    def image_freq(self):
        """``p_j = n_j / number of training images`` (the sigmoid variant's prior)."""
        if not self.num_images:
            raise ValueError("The number of training images is unknown for this prior source; set "
                             "MODEL.BALMS.PRIOR.NUM_IMAGES (a Python config: class_prior's num_images=)")
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

    A file whose categories lack ``count`` (COCO format) raises :class:`MissingCountsError`.
    """
    from balms_eval.json_categories import MissingKeyError, count_json_images, read_json_categories

    _check_kind(count)
    local_file = PathManager.get_local_path(json_file)
    cats = read_json_categories(local_file)
    problem = missing_counts_problem(json_file, cats, count)
    if problem:
        raise MissingCountsError(problem)
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
        raise MissingCountsError(f"the metadata of {meta.name!r} has no 'class_image_count'")
    entries = sorted(entries, key=lambda x: x["id"])
    if any(count not in e for e in entries):
        raise MissingCountsError(f"the metadata 'class_image_count' of {meta.name!r} has no {count!r} entries")
    counts = torch.tensor([float(e[count]) for e in entries], dtype=torch.float64)
    return counts, meta.get("num_images", None)


def counts_from_dataset_dicts(dicts, num_classes, count="image_count", weights=None):
    """Returns (counts, num_images) counted from detectron2 dataset dicts (contiguous ids), by
    :func:`balms_eval.groups.count_per_class`; with ``weights`` ((N,) per image) every image counts
    ``weights[i]`` times and num_images is their sum."""
    _check_kind(count)
    per_image = None if weights is None else torch.as_tensor(weights, dtype=torch.float64).tolist()
    if per_image is not None and len(per_image) != len(dicts):
        raise ValueError(f"{len(per_image)} image weights for {len(dicts)} images")
    found = count_per_class((d.get("annotations", []) for d in dicts), count, per_image)
    bad = sorted(c for c in found if not 0 <= c < num_classes)
    if bad:
        raise ValueError(f"category_id {bad[0]} of the dataset dicts out of range for {num_classes} classes "
                         f"(contiguous ids 0..{num_classes - 1})")
    counts = torch.zeros(num_classes, dtype=torch.float64)
    for c, n in found.items():
        counts[c] = float(n)
    return counts, (len(dicts) if per_image is None else sum(per_image))


def sampler_image_weights(dicts, sampler, repeat_threshold=0.0, repeat_sqrt=True):
    """(N,) float64 expected draws of each image of ``dicts`` per pass of the training ``sampler`` (a
    ``DATALOADER.SAMPLER_TRAIN`` name): ``"TrainingSampler"`` 1 each; ``"RepeatFactorTrainingSampler"``
    detectron2's own ``repeat_factors_from_category_frequency(dicts, repeat_threshold, sqrt=repeat_sqrt)``
    (the sampler repeats image ``i`` ``floor(r_i)`` or ``ceil(r_i)`` times, ``r_i`` in expectation;
    ``sqrt`` where the installed detectron2 has it); ``"ClassBalancedSampler"`` its
    :meth:`~balms_det.data.samplers.ClassBalancedSampler.image_weights`."""
    if sampler == "TrainingSampler":
        return torch.ones(len(dicts), dtype=torch.float64)
    if sampler == "RepeatFactorTrainingSampler":
        fn = RepeatFactorTrainingSampler.repeat_factors_from_category_frequency
        kw = {"sqrt": bool(repeat_sqrt)} if "sqrt" in inspect.signature(fn).parameters else {}
        return fn(dicts, repeat_threshold, **kw).to(torch.float64)
    if sampler == "ClassBalancedSampler":
        return ClassBalancedSampler.image_weights(dicts)
    raise ValueError(f"The sampler's prior (MODEL.BALMS.PRIOR.SAMPLER train) knows the samplers {SAMPLERS_WITH_PRIOR}, "
                     f"not DATALOADER.SAMPLER_TRAIN {sampler!r}; set MODEL.BALMS.PRIOR.SAMPLER none")


def _check_length(counts, num_classes, name, names=CONFIG_NAMES):
    if num_classes is not None and counts.numel() != num_classes:
        raise ValueError(
            f"Class prior {name!r} has {counts.numel()} entries but {names.set('num_classes', num_classes)}; "
            "the prior must have one count per foreground class."
        )


def sanitize_counts(counts, num_classes, min_count=1.0, name="prior", names=CONFIG_NAMES):
    """Length check, then zero counts -> ``min_count`` (logged). Returns float64 counts."""
    counts = torch.as_tensor(counts, dtype=torch.float64).flatten()
    _check_length(counts, num_classes, name, names)
    if not torch.isfinite(counts).all() or (counts < 0).any():
        raise ValueError(f"Class prior {name!r} has negative or non-finite counts")
    zero = (counts <= 0).nonzero().flatten().tolist()
    if zero:
        if min_count <= 0:
            raise ValueError(f"Class prior {name!r}: classes {zero} have zero count and "
                             f"{names.set('min_count', min_count)}; give a count > 0 for them")
        logger.warning(
            f"Class prior {name!r}: {len(zero)} class(es) have no training samples "
            f"(contiguous ids {zero[:20]}{'...' if len(zero) > 20 else ''}); using count "
            f"{min_count} for them ({names.name('min_count')}) so that log n stays finite."
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
    need_num_images: bool = True,
    names: PriorNames = CONFIG_NAMES,
) -> ClassPrior:
    """
    Class counts from ``source`` (see module doc), summed over ``dataset_names``.

    Args:
        num_images: if > 0, overrides the number of training images given by the source.
        need_num_images: the json source counts the file's images only when asked (a pass over them).
        names: what the errors call the settings (:data:`CONFIG_NAMES` or :data:`PYTHON_NAMES`).
    """
    if source not in PRIOR_SOURCES:
        raise ValueError(f"Unknown prior source {names.set('source', source)}; expected one of {PRIOR_SOURCES}")
    if isinstance(dataset_names, str):
        dataset_names = [dataset_names]
    if source == "list":
        if not counts:
            raise ValueError(f"{names.set('source', 'list')} needs the counts, one per class ({names.name('counts')})")
        total, n_img = torch.tensor(list(counts), dtype=torch.float64), None
    else:
        if not dataset_names:
            raise ValueError(f"{names.set('source', source)} needs at least one training dataset "
                             f"({names.name('datasets')})")
        total, n_img = None, 0
        for name in dataset_names:
            meta = MetadataCatalog.get(name)
            try:
                if source == "json":
                    json_file = meta.get("json_file", None)
                    if json_file is None:  # registered without an annotation file: the other sources count it
                        error = MissingCountsError if name in DatasetCatalog.list() else ValueError
                        raise error(f"dataset {name!r} has no metadata 'json_file' to read the counts of"
                                    + ("" if error is MissingCountsError else " (it is not registered)"))
                    c, n = counts_from_lvis_json(json_file, count, _json_id_map(meta), need_num_images)
                elif source == "metadata":
                    c, n = counts_from_metadata(meta, count)
                else:
                    if num_classes is None:
                        raise ValueError(f"{names.set('source', 'dataset')} needs the number of classes "
                                         f"({names.name('num_classes')})")
                    c, n = counts_from_dataset_dicts(DatasetCatalog.get(name), num_classes, count)
            except MissingCountsError as e:
                fix = count_source_fix(names, source)
                raise MissingCountsError(f"{names.set('source', source)}: {e}; set {fix}") from None
            _check_length(c, num_classes, name, names)
            total = c if total is None else total + c
            n_img = None if (n is None or n_img is None) else n_img + n
    name = names.counts if source == "list" else "+".join(dataset_names)
    total = sanitize_counts(total, num_classes, min_count, name=name, names=names)
    if num_images > 0:
        n_img = int(num_images)
    logger.info(
        f"Class prior ({source}, {count}) over {list(dataset_names)}: {total.numel()} classes, "
        f"counts min {total.min().item():g} / max {total.max().item():g}, images {n_img}"
    )
    return ClassPrior(counts=total, num_images=n_img)


def _sampler_prior(datasets, sampler, count, num_classes, repeat_threshold, repeat_sqrt, filter_empty, min_count,
                   names=CONFIG_NAMES):
    """The expected counts of one pass of ``sampler`` over the training dicts of ``datasets``."""
    if num_classes is None:
        raise ValueError(f"The sampler's prior needs the number of classes ({names.name('num_classes')})")
    if names.python and sampler not in SAMPLERS_WITH_PRIOR:
        raise ValueError(f"The sampler's prior knows the samplers {SAMPLERS_WITH_PRIOR}, not sampler={sampler!r}; "
                         "give sampler=None for the training sets' own counts")
    dicts = get_detection_dataset_dicts(list(datasets), filter_empty=filter_empty)
    weights = sampler_image_weights(dicts, sampler, repeat_threshold, repeat_sqrt)
    raw, _ = counts_from_dataset_dicts(dicts, num_classes, count)
    expected, n_img = counts_from_dataset_dicts(dicts, num_classes, count, weights)
    what = sampler + (f" (threshold {repeat_threshold:g}{', sqrt' if repeat_sqrt else ''})"
                      if sampler == "RepeatFactorTrainingSampler" else "")
    order = sorted(range(num_classes), key=lambda c: (raw[c].item(), c))
    show = order[-3:][::-1] + order[:3]
    logger.info(
        f"Class prior: expected {count} of one pass of {what} over the {len(dicts)} training images of "
        f"{list(datasets)} ({n_img:.1f} images drawn per pass); raw -> sampler's, most and least frequent classes: "
        + ", ".join(f"{c}: {raw[c].item():g} -> {expected[c].item():.1f}" for c in show)
    )
    return ClassPrior(sanitize_counts(expected, num_classes, min_count, name="+".join(datasets), names=names), n_img)


def class_prior(datasets=(), *, json_file=None, counts=None, source=None, count="image_count",
                num_classes=None, num_images=0, min_count=1.0, need_num_images=False, sampler=None,
                repeat_threshold=0.0, repeat_sqrt=True, filter_empty=True, names=PYTHON_NAMES) -> ClassPrior:
    """
    The class prior with explicit arguments (Python configs: ``L(deferred_class_prior)(datasets="lvis_v1_train")``),
    the same sources, fallbacks and errors as ``MODEL.BALMS.PRIOR``:

    * ``counts`` (a list): source "list"; ``json_file``: the LVIS ``categories`` of that file (ids
      ``1..K`` or sorted); else ``datasets`` (registered names) read by ``source`` (default: "metadata"
      where their metadata has ``class_image_count``, as detectron2's LVIS v1, else "json": the
      categories of their metadata ``json_file``; "dataset": counted from their dicts);
    * ``num_images`` > 0 overrides the number of training images; with ``need_num_images`` (the sigmoid
      variant), a source that does not give it falls back to the datasets' number of images;
    * ``sampler``: the sampler's prior (``MODEL.BALMS.PRIOR.SAMPLER: train``, see the module doc): the
      training sampler's name (``"RepeatFactorTrainingSampler"`` with ``repeat_threshold`` /
      ``repeat_sqrt``, ``"ClassBalancedSampler"``; None or ``"TrainingSampler"``: the raw counts),
      counted from the ``datasets``' dicts (``filter_empty`` as ``DATALOADER.FILTER_EMPTY_ANNOTATIONS``);
    * ``names``: what the errors call the settings (default: these arguments; :func:`class_prior_from_config`
      gives :data:`CONFIG_NAMES`, the YAML keys).
    """
    train_sets = [datasets] if isinstance(datasets, str) else list(datasets)
    if sampler not in (None, "none", "TrainingSampler"):
        what = f"sampler={sampler!r}" if names.python else sampler
        if json_file is not None or counts:
            given = "json_file= / counts=" if names.python else names.counts
            instead = "give datasets=, or sampler=None" if names.python else \
                f"leave {names.counts} empty, or set MODEL.BALMS.PRIOR.SAMPLER none"
            raise ValueError(f"The sampler's prior ({what}) counts the images of the registered training sets: it "
                             f"cannot take {given}; {instead}")
        if not train_sets:
            raise ValueError(f"The sampler's prior ({what}) needs the training datasets ({names.name('datasets')})")
        if num_images > 0:
            raise ValueError(f"{names.set('num_images', num_images)} with the sampler's prior ({what}): it counts the "
                             f"images drawn per pass itself; set {names.set('num_images', 0)}")
        return _sampler_prior(train_sets, sampler, count, num_classes, repeat_threshold, repeat_sqrt, filter_empty,
                              min_count, names)
    if json_file is not None:
        try:
            c, n = counts_from_lvis_json(json_file, count, need_num_images=need_num_images)
        except MissingCountsError as e:
            raise MissingCountsError(f"json_file={json_file!r}: {e}; give the registered training sets instead "
                                     "(datasets=..., source='dataset': counts their annotations) or counts=[one per "
                                     "class]") from None
        prior = ClassPrior(sanitize_counts(c, num_classes, min_count, name=json_file, names=names), n)
        if num_images > 0:
            prior.num_images = int(num_images)
    else:
        source = source or ("list" if counts else _default_source(train_sets, count))
        prior = load_class_prior(datasets, source=source, count=count, num_classes=num_classes,
                                 counts=list(counts or []), num_images=num_images, min_count=min_count,
                                 need_num_images=need_num_images, names=names)
    if need_num_images and not prior.num_images:
        if json_file is not None or source == "list" or not train_sets:
            raise ValueError(f"The sigmoid variant needs the number of training images ({names.name('num_images')}) "
                             "with this prior")
        prior.num_images = sum(_num_images(d) for d in train_sets)
    return prior


def _default_source(names, count):
    """``"metadata"`` where every dataset's metadata carries ``class_image_count`` (detectron2's LVIS v1, the
    LVIS-style registration: nothing to read) and image counts are asked for, else ``"json"``."""
    if names and count == "image_count" and all(MetadataCatalog.get(n).get("class_image_count", None)
                                                 for n in names):
        return "metadata"
    return "json"


def _num_images(name):
    """Training images of a registered dataset: counted in its metadata ``json_file`` without building the
    images (a streaming pass), else the length of its dicts (a full load)."""
    json_file = MetadataCatalog.get(name).get("json_file", None)
    if json_file:
        from balms_eval.json_categories import count_json_images

        try:
            return count_json_images(PathManager.get_local_path(json_file))
        except (OSError, ValueError):
            pass
    return len(DatasetCatalog.get(name))


def class_prior_from_config(cfg, num_classes=None, need_num_images=False) -> ClassPrior:
    """:func:`class_prior` with the ``MODEL.BALMS.PRIOR`` keys and ``DATASETS.TRAIN`` (and, with
    ``PRIOR.SAMPLER: train``, ``DATALOADER.SAMPLER_TRAIN`` / ``REPEAT_THRESHOLD`` / ``REPEAT_SQRT`` /
    ``FILTER_EMPTY_ANNOTATIONS``)."""
    p, loader = cfg.MODEL.BALMS.PRIOR, cfg.DATALOADER
    if p.SAMPLER not in PRIOR_SAMPLERS:
        raise ValueError(f"Unknown MODEL.BALMS.PRIOR.SAMPLER {p.SAMPLER!r}; expected one of {PRIOR_SAMPLERS}")
    return class_prior(
        list(cfg.DATASETS.TRAIN), source=p.SOURCE, count=p.COUNT,
        num_classes=num_classes if num_classes is not None else cfg.MODEL.ROI_HEADS.NUM_CLASSES,
        counts=list(p.COUNTS), num_images=p.NUM_IMAGES, min_count=p.MIN_COUNT, need_num_images=need_num_images,
        sampler=loader.SAMPLER_TRAIN if p.SAMPLER == "train" else None,
        repeat_threshold=loader.REPEAT_THRESHOLD, repeat_sqrt=loader.get("REPEAT_SQRT", True),
        filter_empty=loader.FILTER_EMPTY_ANNOTATIONS, names=CONFIG_NAMES,
    )
