"""Checking a config before anything is built or trained: :func:`validate` (YAML / ``CfgNode`` configs),
:func:`validate_lazy_config` (Python configs); a ``--resume`` of a folder:
:func:`balms_det.engine.check_resume`.

Every failure is a :class:`ConfigError` of one line, ``KEY VALUE: what is wrong; valid: ...``. The
rules live beside the code they guard (the registries, the prior's sources, the Meta Reweighter's
options, the evaluator's thresholds) and are reused here; only the ranges of the plain numbers are
stated in this file, next to each key's name. :func:`validate` checks:

* ``DATASETS.TRAIN`` / ``TEST``: registered; their metadata ``thing_classes`` (read without loading
  the dataset) as many as ``MODEL.ROI_HEADS.NUM_CLASSES``;
* ``MODEL.ROI_HEADS.NAME`` registered, and the ``MODEL.BALMS`` keys that choose or tune what a long-tail
  head trains left at their defaults unless it is one (all but ``DECOUPLED.*``, ``CUSTOM_IMPORTS``,
  ``PRIOR.*`` and the Meta Reweighter's settings, ``META_REWEIGHTER.ENABLED`` excepted);
* every ``MODEL.BALMS`` number in its range and name in its registry or set (the losses and
  calibrations that ``CUSTOM_IMPORTS`` registers included: :func:`~balms_det.engine.build_config`
  imports them first), and the combinations the box predictor refuses (a calibration for another
  loss's logits, the Meta Reweighter without stage 2 or a plain meta loss);
* the class prior's source, where a long-tail head's loss or calibration needs one: ``PRIOR.SOURCE json``
  on a training set whose annotation file is known (its metadata ``json_file``, already set) needs its
  categories to carry the count (``PRIOR.COUNT``); only the categories are read;
* ``MODEL.BALMS.DECOUPLED.TRAINABLE``: regular expressions;
* ``TEST.LVIS_EVAL``: backend, detections per image, frequency thresholds.
"""
import difflib
import functools
import math
import os
import re

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY
from omegaconf import DictConfig, ListConfig

from balms_eval import BACKENDS
from balms_eval.groups import check_thresholds
from balms_eval.json_categories import JSONStreamError, read_json_categories

from .config import add_balms_config
from .modeling.calibrations import CALIBRATION_REGISTRY, Calibration, calibration_class
from .modeling.classifiers import CLASSIFIERS
from .modeling.cls_losses import CLS_LOSS_REGISTRY, ClsLoss, cls_loss_class
from .modeling.cls_losses.softmax import BACKGROUND_MODES
from .modeling.meta_reweighter import META_LOSSES, META_SOURCES, NONFINITE_ACTIONS, meta_reweighter_from_config
from .modeling.named_registry import registered_names
from .modeling.output_layers import build_calibration
from .modeling.prior_messages import count_source_fix, missing_counts_problem
from .modeling.priors import COUNT_KINDS, PRIOR_SAMPLERS, PRIOR_SOURCES, SAMPLERS_WITH_PRIOR, sanitize_counts
from .modeling.roi_heads import LongTailCascadeROIHeads, LongTailROIHeads

__all__ = ["ConfigError", "validate", "validate_lazy_config", "check_dataset_names",
           "check_trainable"]


class ConfigError(ValueError):
    """A config value that cannot work. The message is one line: ``KEY VALUE: what is wrong; valid: ...``."""


def config_error(key, value, problem, valid=None):
    """The :class:`ConfigError` of ``key`` set to ``value``."""
    return ConfigError(f"{key} {value!r}: {problem}" + (f"; valid: {valid}" if valid is not None else ""))


def _first_line(e):
    lines = str(e).strip().splitlines()
    return lines[0].rstrip(".") if lines else type(e).__name__


# ------------------------------------------------------------------ the ranges of the numbers
def _ge0(v):
    return v >= 0


def _gt0(v):
    return v > 0


def _ge1(v):
    return v >= 1


# key under MODEL.BALMS -> (test, what is valid, whole numbers only)
_NUMBERS = {
    "TAU": (_ge0, "a number >= 0 (1.0: BALMS Eq. 4, 0.25: Eq. 10, 0.0: plain cross-entropy)", False),
    "LOGIT_ADJUSTMENT.TAU": (_gt0, "a number > 0 (1.0: the label-prior correction)", False),
    "NORCAL.GAMMA": (_ge0, "a number >= 0 (0.0: NorCal off)", False),
    "ROI_COUNT_SMOOTHING": (_gt0, "a pseudo-count > 0", False),
    "SIGMOID_PRIOR_PROB": (lambda v: 0 < v < 1, "a probability in (0, 1), e.g. 0.001", False),
    "NORMED_TEMPERATURE": (_gt0, "a temperature > 0 (the Seesaw / ECM recipes: 20)", False),
    "SEESAW.P": (_ge0, "an exponent >= 0 (0: no mitigation)", False),
    "SEESAW.Q": (_ge0, "an exponent >= 0 (0: no compensation)", False),
    "SEESAW.EPS": (_gt0, "a floor > 0, e.g. 0.01", False),
    "EQLV2.GAMMA": (_ge0, "a slope >= 0 (the authors: 12)", False),
    "EQLV2.MU": (_ge0, "a gradient ratio >= 0 (the authors: 0.8)", False),
    "EQLV2.ALPHA": (_ge0, "a gain >= 0 (the authors: 4)", False),
    "ECM.FG_BG_RATIO": (_gt0, "a ratio > 0 (the authors: 6.3313)", False),
    "FEDERATED.NUM_CLASSES": (_ge1, "a whole number of classes >= 1 (detectron2: 50)", True),
    "FEDERATED.FREQ_WEIGHT_POWER": (_ge0, "an exponent >= 0 (detectron2: 0.5)", False),
    "PRIOR.NUM_IMAGES": (_ge0, "a whole number of images >= 0 (0: from the prior's source)", True),
    "PRIOR.MIN_COUNT": (_gt0, "a count > 0 (so that log n stays finite)", False),
    "META_REWEIGHTER.LR": (_gt0, "a learning rate > 0 (the official 0.01)", False),
    "META_REWEIGHTER.PERIOD": (_ge1, "a whole number of iterations >= 1", True),
    "META_REWEIGHTER.BANK_PER_CLASS": (_ge1, "a whole number of ROIs >= 1", True),
    "META_REWEIGHTER.BANK_BACKGROUND": (_ge1, "a whole number of ROIs >= 1", True),
    "META_REWEIGHTER.META_ROIS": (_ge0, "a whole number of ROIs >= 0 (0: as many as the training batch)", True),
    "META_REWEIGHTER.LOG_PERIOD": (_ge1, "a whole number of iterations >= 1", True),
}

# key under MODEL.BALMS -> the names it may take
_CHOICES = {
    "CLASSIFIER": CLASSIFIERS,
    "BACKGROUND": BACKGROUND_MODES,
    "PRIOR.SOURCE": PRIOR_SOURCES,
    "PRIOR.COUNT": COUNT_KINDS,
    "PRIOR.SAMPLER": PRIOR_SAMPLERS,
    "META_REWEIGHTER.META_SOURCE": META_SOURCES,
    "META_REWEIGHTER.META_LOSS": META_LOSSES,
    "META_REWEIGHTER.ON_NONFINITE": NONFINITE_ACTIONS,
}

# MODEL.BALMS keys accepted whatever the head: stage 2 of any model, the imports, and two that cannot change
# what a stock head trains, so that one base config can serve a stock baseline and the long-tail methods: the
# source of the class counts (a description of the data) and the Meta Reweighter's settings (its ENABLED is
# refused).
_ANY_HEAD = ("DECOUPLED", "CUSTOM_IMPORTS", "PRIOR", "META_REWEIGHTER")
_ANY_HEAD_EXCEPT = ("MODEL.BALMS.META_REWEIGHTER.ENABLED",)
LONG_TAIL_HEADS = (LongTailROIHeads, LongTailCascadeROIHeads)  # and their subclasses (the old names too)
# meta-architectures that have no MODEL.ROI_HEADS
_NO_ROI_HEADS = ("RetinaNet", "ProposalNetwork", "SemanticSegmentor")


def _get(node, dotted):
    for part in dotted.split("."):
        node = node[part]
    return node


def _is_number(v, whole=False):
    ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    return ok and (not whole or float(v).is_integer())


# ------------------------------------------------------------------ datasets
_REGISTER_YAML = "register yours with DatasetCatalog.register, e.g. in a module of MODEL.BALMS.CUSTOM_IMPORTS"
_REGISTER_PY = "register yours with DatasetCatalog.register, e.g. in a module the config imports"


def check_dataset_names(key, names, how_to_register=_REGISTER_YAML):
    """Every name of ``names`` (a name or a list of them) registered in ``DatasetCatalog``; else a
    :class:`ConfigError` naming ``key`` and the registered names closest to it."""
    names = [names] if isinstance(names, str) else list(names or [])
    registered = DatasetCatalog.list()
    for name in names:
        if name not in registered:
            close = difflib.get_close_matches(str(name), registered, n=4, cutoff=0.5)
            hint = f"the closest registered: {close}" if close else f"one of the {len(registered)} registered datasets"
            raise config_error(key, name, "not registered in DatasetCatalog", f"{hint} ({how_to_register})")


def _check_num_classes(cfg):
    """``MODEL.ROI_HEADS.NUM_CLASSES`` against the categories of every registered train / test set whose
    metadata has ``thing_classes`` (metadata only: the dataset is not loaded)."""
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    if not _is_number(k, whole=True) or k < 1:
        raise config_error("MODEL.ROI_HEADS.NUM_CLASSES", k, "not a number of classes", "a whole number >= 1")
    if cfg.MODEL.META_ARCHITECTURE in _NO_ROI_HEADS:
        return
    for key in ("DATASETS.TRAIN", "DATASETS.TEST"):
        for name in _get(cfg, key):
            classes = MetadataCatalog.get(name).get("thing_classes", None)
            if classes is not None and len(classes) != k:
                raise config_error("MODEL.ROI_HEADS.NUM_CLASSES", k, f"{key} {name!r} has {len(classes)} "
                                   "categories (its metadata thing_classes)", f"{len(classes)}, one class per category")


# ------------------------------------------------------------------ the ROI heads and the keys they read
@functools.lru_cache(maxsize=1)
def _default_balms():
    cfg = get_cfg()
    add_balms_config(cfg)
    return cfg.MODEL.BALMS


def _changed(node, default, prefix):
    """(key, value, default) of every leaf of ``node`` that differs from ``default`` (keys not in it skipped)."""
    out = []
    for k, v in node.items():
        if k not in default:
            continue
        d, key = default[k], f"{prefix}.{k}"
        if isinstance(v, CfgNode):
            out += _changed(v, d, key)
        elif (list(v) if isinstance(v, (list, tuple)) else v) != (list(d) if isinstance(d, (list, tuple)) else d):
            out.append((key, v, d))
    return out


def _check_head(cfg):
    """Returns whether the ROI head is a long-tail one; refuses long-tail keys that no head would read."""
    name = cfg.MODEL.ROI_HEADS.NAME
    if name not in ROI_HEADS_REGISTRY:
        raise config_error("MODEL.ROI_HEADS.NAME", name, "not a registered ROI head (ROI_HEADS_REGISTRY)",
                           sorted(k for k, _ in ROI_HEADS_REGISTRY))
    head = ROI_HEADS_REGISTRY.get(name)
    if isinstance(head, type) and issubclass(head, LONG_TAIL_HEADS):
        return True
    changed = [c for c in _changed(cfg.MODEL.BALMS, _default_balms(), "MODEL.BALMS")
               if c[0].split(".")[2] not in _ANY_HEAD or c[0] in _ANY_HEAD_EXCEPT]
    if changed:
        key, value, d = changed[0]
        more = f" ({len(changed) - 1} more such key(s): {[c[0] for c in changed[1:4]]})" if len(changed) > 1 else ""
        raise config_error(key, value, f"only a long-tail ROI head reads it, and MODEL.ROI_HEADS.NAME {name!r} is "
                           f"not one, so it would be ignored{more}",
                           f"MODEL.ROI_HEADS.NAME LongTailROIHeads or LongTailCascadeROIHeads, or {key} left at "
                           f"its default {d!r}")
    return False


# ------------------------------------------------------------------ MODEL.BALMS
def _registered(key, value, registry, base, lookup):
    """The class ``lookup(value)`` finds in ``registry``, checked to be a ``base`` subclass."""
    try:
        cls = lookup(value)
    except ValueError:
        raise config_error(key, value, f"not registered in {registry._name}_REGISTRY",
                           f"{registered_names(registry)} or a class registered by a module of "
                           "MODEL.BALMS.CUSTOM_IMPORTS") from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise config_error(key, value, f"names {cls!r}, which is not a {base.__name__} subclass",
                           f"a registered {base.__name__} subclass: {registered_names(registry)}")
    return cls


def _check_numbers_and_names(cfg):
    b = cfg.MODEL.BALMS
    for k, (ok, valid, whole) in _NUMBERS.items():
        v = _get(b, k)
        if not (_is_number(v, whole) and ok(v)):
            raise config_error(f"MODEL.BALMS.{k}", v, "out of range", valid)
    for k, choices in _CHOICES.items():
        v = _get(b, k)
        if v not in choices:
            raise config_error(f"MODEL.BALMS.{k}", v, "not one of its names", list(choices))
    if b.PRIOR.SAMPLER == "train" and cfg.DATALOADER.SAMPLER_TRAIN not in SAMPLERS_WITH_PRIOR:
        raise config_error("DATALOADER.SAMPLER_TRAIN", cfg.DATALOADER.SAMPLER_TRAIN, "the sampler's prior "
                           "(MODEL.BALMS.PRIOR.SAMPLER train) does not know its expected counts",
                           f"{list(SAMPLERS_WITH_PRIOR)}, or MODEL.BALMS.PRIOR.SAMPLER none")
    if b.PRIOR.SOURCE == "list" and list(b.PRIOR.COUNTS):
        try:
            sanitize_counts(list(b.PRIOR.COUNTS), cfg.MODEL.ROI_HEADS.NUM_CLASSES, b.PRIOR.MIN_COUNT,
                            name="MODEL.BALMS.PRIOR.COUNTS")
        except (ValueError, TypeError) as e:
            raise config_error("MODEL.BALMS.PRIOR.COUNTS", list(b.PRIOR.COUNTS), _first_line(e),
                               f"{cfg.MODEL.ROI_HEADS.NUM_CLASSES} finite counts >= 0") from None


def _check_loss_and_calibration(cfg):
    """The registered loss and calibration, and the combinations the box predictor refuses. Returns whether
    they need the class prior."""
    b, k = cfg.MODEL.BALMS, cfg.MODEL.ROI_HEADS.NUM_CLASSES
    loss_cls = _registered("MODEL.BALMS.CLS_LOSS", b.CLS_LOSS, CLS_LOSS_REGISTRY, ClsLoss, cls_loss_class)
    _registered("MODEL.BALMS.CALIBRATION", b.CALIBRATION, CALIBRATION_REGISTRY, Calibration, calibration_class)
    for node, name in (("LOGIT_ADJUSTMENT", "logit_adjustment"), ("NORCAL", "norcal")):  # a calibration's own keys
        changed = _changed(b[node], _default_balms()[node], f"MODEL.BALMS.{node}")
        if changed and calibration_class(b.CALIBRATION) is not calibration_class(name):
            key, value, d = changed[0]
            raise config_error(key, value, f"only the {name} calibration reads it, and MODEL.BALMS.CALIBRATION is "
                               f"{b.CALIBRATION!r}", f"MODEL.BALMS.CALIBRATION {name}, or {key} left at {d!r}")
    try:
        calibration = build_calibration(cfg)
    except ValueError as e:
        raise config_error("MODEL.BALMS.CALIBRATION", b.CALIBRATION, _first_line(e),
                           "its keys in range (MODEL.BALMS.LOGIT_ADJUSTMENT.TAU > 0 for logit_adjustment)") from None
    settings = loss_cls.from_config(cfg)
    try:  # the loss module with a stand-in prior (its own checks; the calibration's needs)
        loss = loss_cls(k, class_counts=torch.ones(k, dtype=torch.float64), num_images=float(k), **settings)
    except (ValueError, TypeError) as e:
        raise config_error("MODEL.BALMS.CLS_LOSS", b.CLS_LOSS, f"its loss module refuses this config: "
                           f"{_first_line(e)}") from None
    needs_prior = loss_cls.needs_prior(**settings) or type(calibration).needs_prior(loss_cls, settings)
    if needs_prior and b.PRIOR.SOURCE == "list" and not list(b.PRIOR.COUNTS):
        raise config_error("MODEL.BALMS.PRIOR.COUNTS", [], f"MODEL.BALMS.PRIOR.SOURCE 'list' gives the class prior "
                           f"that cls_loss {b.CLS_LOSS!r} / calibration {b.CALIBRATION!r} need",
                           f"{k} counts, one per class, or another MODEL.BALMS.PRIOR.SOURCE")
    try:
        calibration.check(loss)
    except ValueError as e:
        raise config_error("MODEL.BALMS.CALIBRATION", b.CALIBRATION, _first_line(e),
                           f"'none' with cls_loss {b.CLS_LOSS!r}") from None
    if b.META_REWEIGHTER.ENABLED:
        if loss_cls.plain_loss is None:
            plain = [n for n in registered_names(CLS_LOSS_REGISTRY) if cls_loss_class(n).plain_loss is not None]
            raise config_error("MODEL.BALMS.CLS_LOSS", b.CLS_LOSS, "MODEL.BALMS.META_REWEIGHTER needs a loss with a "
                               "plain meta loss", plain)
        try:
            meta_reweighter_from_config(cfg, 1)
        except ValueError as e:
            raise config_error("MODEL.BALMS.META_REWEIGHTER.ENABLED", True, _first_line(e),
                               "False, or True in a decoupled stage (MODEL.BALMS.DECOUPLED.ENABLED True)") from None
    return needs_prior


def _check_prior_counts(cfg):
    """``MODEL.BALMS.PRIOR.SOURCE json``: every training set whose annotation file is known already (its
    metadata ``json_file`` set; a set whose metadata is filled when first read, e.g. lt_shapes, is not made
    here) has the count in its categories (only they are read). A file that cannot be read is left to the
    loader, which says what is wrong with it."""
    p = cfg.MODEL.BALMS.PRIOR
    if p.SOURCE != "json" or (p.SAMPLER == "train" and cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler"):
        return  # (the sampler's prior counts the training dicts)
    for name in cfg.DATASETS.TRAIN:
        json_file = vars(MetadataCatalog.get(name)).get("json_file")
        if not isinstance(json_file, str) or not os.path.isfile(json_file):
            continue
        try:
            problem = missing_counts_problem(json_file, read_json_categories(json_file), p.COUNT)
        except (JSONStreamError, OSError):
            continue
        if problem:
            raise config_error("MODEL.BALMS.PRIOR.SOURCE", p.SOURCE, f"DATASETS.TRAIN {name!r}: {problem}",
                               count_source_fix())


def check_trainable(key, patterns, enabled=True):
    """Each of ``patterns`` a regular expression (``re`` syntax), and at least one of them when ``enabled``."""
    if isinstance(patterns, str):
        raise config_error(key, patterns, "a single string, not a list of regular expressions",
                           f"[{patterns!r}]")
    patterns = list(patterns)
    for p in patterns:
        try:
            re.compile(p)
        except (re.error, TypeError) as e:
            raise config_error(key, p, f"not a regular expression ({e})",
                               r"Python re syntax, e.g. 'roi_heads\.box_predictor\.(\d+\.)?cls_score\.'") from None
    if enabled and not patterns:
        raise config_error(key, patterns, "no parameter would train", "at least one regular expression")


def _check_lvis_eval(cfg):
    e = cfg.TEST.LVIS_EVAL
    if e.BACKEND not in BACKENDS:
        raise config_error("TEST.LVIS_EVAL.BACKEND", e.BACKEND, "not an evaluation backend", list(BACKENDS))
    m = e.MAX_DETS_PER_IMAGE
    if not (_is_number(m, whole=True) and (m >= 1 or m == -1)):
        raise config_error("TEST.LVIS_EVAL.MAX_DETS_PER_IMAGE", m, "not a number of detections per image",
                           "a whole number >= 1 (LVIS: 300), or -1 for all")
    try:
        check_thresholds(e.FREQUENCY_THRESHOLDS)
    except ValueError as err:
        raise config_error("TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS", list(e.FREQUENCY_THRESHOLDS),
                           _first_line(err), "e.g. [10, 100] (LVIS's groups)") from None


def validate(cfg):
    """Check ``cfg`` (detectron2's keys + balms_det's, ``MODEL.BALMS.CUSTOM_IMPORTS`` already imported)
    as described in this module's docstring. Raises :class:`ConfigError`; returns ``cfg``."""
    check_dataset_names("DATASETS.TRAIN", cfg.DATASETS.TRAIN)
    check_dataset_names("DATASETS.TEST", cfg.DATASETS.TEST)
    _check_num_classes(cfg)
    long_tail = _check_head(cfg)
    _check_numbers_and_names(cfg)
    if _check_loss_and_calibration(cfg) and long_tail:
        _check_prior_counts(cfg)
    d = cfg.MODEL.BALMS.DECOUPLED
    check_trainable("MODEL.BALMS.DECOUPLED.TRAINABLE", d.TRAINABLE, enabled=d.ENABLED)
    _check_lvis_eval(cfg)
    return cfg


# ------------------------------------------------------------------ Python configs
_DECOUPLED_KEYS = ("trainable", "freeze_bn", "reinit_classifier")


def _dataset_keys(node, path=""):
    """(dotted key, value) of the dataset names a Python config gives its calls: ``datasets`` /
    ``train_datasets`` / ``dataset_name`` of any call (``class_prior``, the evaluator, the meta hook), and
    ``names`` of ``get_detection_dataset_dicts`` (the data loaders)."""
    if isinstance(node, (list, ListConfig)):
        for i, v in enumerate(node):
            yield from _dataset_keys(v, f"{path}[{i}]")
        return
    if not isinstance(node, (dict, DictConfig)):
        return
    target = node.get("_target_", None)
    keys = ("datasets", "train_datasets", "dataset_name") if target is not None else ()
    if "get_detection_dataset_dicts" in str(getattr(target, "__name__", target)):
        keys += ("names",)
    for k, v in node.items():
        key = f"{path}.{k}" if path else str(k)
        names = isinstance(v, str) or (isinstance(v, (list, ListConfig)) and all(isinstance(x, str) for x in v))
        if k in keys and names:
            yield key, v
        else:
            yield from _dataset_keys(v, key)


def validate_lazy_config(cfg):
    """What applies of :func:`validate` to a Python (LazyConfig) config: the dataset names it gives its calls
    (data loaders, class priors, evaluator) registered, and ``decoupled`` (its keys, ``trainable``'s regular
    expressions). Raises :class:`ConfigError`; returns ``cfg``."""
    for key, names in _dataset_keys(cfg):
        check_dataset_names(key, names, _REGISTER_PY)
    decoupled = cfg.get("decoupled", None)
    if decoupled:
        unknown = [k for k in decoupled if k not in _DECOUPLED_KEYS]
        if unknown:
            raise config_error(f"decoupled.{unknown[0]}", decoupled[unknown[0]], "not a key of decoupled",
                               list(_DECOUPLED_KEYS))
        if "trainable" in decoupled:
            check_trainable("decoupled.trainable", decoupled["trainable"])
    return cfg
