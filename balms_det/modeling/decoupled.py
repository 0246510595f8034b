"""Decoupled training, stage 2 of the BALMS recipe: train the classifier of a stage-1 model only.

``apply_decoupled(model, cfg)`` (call after ``build_model``, before the optimizer is built):

* freezes every parameter whose name matches none of ``MODEL.BALMS.DECOUPLED.TRAINABLE`` (regular
  expressions, ``re.search``); frozen parameters are skipped by detectron2's optimizer and are not
  registered by DDP, so DDP has no unused parameters to complain about;
* converts BatchNorm layers whose parameters are all frozen to ``FrozenBatchNorm2d``, so they keep
  their stage-1 statistics whatever ``model.train()`` does.

Re-initialising the classifier (cRT, ``REINIT_CLASSIFIER``) must happen *after* the stage-1 weights
are loaded, and only when starting fresh (not on ``--resume``): that is
:class:`~balms_det.engine.ClassifierReinitHook`, which calls :func:`reinit_classifier`.
"""
import logging
import re

from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from torch import nn

from .ddp import unwrap
from .output_layers import LongTailOutputLayers

__all__ = [
    "freeze_except",
    "freeze_frozen_batchnorm",
    "DEFAULT_TRAINABLE",
    "freeze_for_decoupled",
    "apply_decoupled",
    "reinit_classifier",
]

logger = logging.getLogger(__name__)


def freeze_except(model, patterns):
    """Set ``requires_grad`` to whether the parameter name matches any of ``patterns``.
    Returns the names left trainable; raises ``ValueError`` if none matches."""
    regexes = [re.compile(p) for p in patterns]
    trainable = []
    for name, p in model.named_parameters():
        p.requires_grad_(any(r.search(name) for r in regexes))
        if p.requires_grad:
            trainable.append(name)
    if not trainable:
        raise ValueError(f"No parameter name matches MODEL.BALMS.DECOUPLED.TRAINABLE {list(patterns)}")
    return trainable


def freeze_frozen_batchnorm(module):
    """Replace (recursively) every BatchNorm layer whose parameters are all frozen by a
    ``FrozenBatchNorm2d`` with the same statistics. Returns the number of layers converted."""
    n = 0
    for name, child in module.named_children():
        if isinstance(child, (nn.BatchNorm2d, nn.SyncBatchNorm)) and not any(
            p.requires_grad for p in child.parameters()
        ):
            setattr(module, name, FrozenBatchNorm2d.convert_frozen_batchnorm(child))
            n += 1
        else:
            n += freeze_frozen_batchnorm(child)
    return n


DEFAULT_TRAINABLE = (r"roi_heads\.box_predictor\.(\d+\.)?cls_score\.",)  # the box classifier(s)


def apply_decoupled(model, cfg):
    """Stage-2 freezing per ``cfg.MODEL.BALMS.DECOUPLED`` (no-op unless ``ENABLED``). Returns model."""
    d = cfg.MODEL.BALMS.DECOUPLED
    if not d.ENABLED:
        return model
    return freeze_for_decoupled(model, d.TRAINABLE, d.FREEZE_BN)


def freeze_for_decoupled(model, trainable=DEFAULT_TRAINABLE, freeze_bn=True):
    """Stage-2 freezing with explicit arguments (Python configs): every parameter matching none of the
    regular expressions ``trainable`` frozen; with ``freeze_bn`` frozen BatchNorm layers become
    ``FrozenBatchNorm2d``. Returns model."""
    m = unwrap(model)
    trainable = freeze_except(m, trainable)
    n_bn = freeze_frozen_batchnorm(m) if freeze_bn else 0
    n_all = sum(1 for _ in m.parameters())
    logger.info(
        f"Decoupled training: {len(trainable)}/{n_all} parameter tensors trainable {trainable}; "
        f"{n_bn} frozen BatchNorm layers converted to FrozenBatchNorm2d."
    )
    return model


def reinit_classifier(model):
    """Re-initialise ``cls_score`` of every box predictor (cRT). Returns the re-initialised classifiers."""
    classifiers = []
    for module in unwrap(model).modules():
        if isinstance(module, LongTailOutputLayers):
            module.reset_classifier()
        elif isinstance(module, FastRCNNOutputLayers):  # stock predictor: detectron2's own init
            nn.init.normal_(module.cls_score.weight, std=0.01)
            nn.init.constant_(module.cls_score.bias, 0.0)
        else:
            continue
        classifiers.append(module.cls_score)
    return classifiers
