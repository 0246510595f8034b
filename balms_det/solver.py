"""``build_optimizer``: detectron2's optimizer, plus whole-model gradient clipping.

``SOLVER.CLIP_GRADIENTS.CLIP_TYPE: "full_model"`` (with ``ENABLED: True``) clips one norm, over the
gradients of every parameter the optimizer updates, to ``CLIP_VALUE`` (an L-``NORM_TYPE`` norm) before
each step: ``torch.nn.utils.clip_grad_norm_`` over the model, as mmcv's
``optimizer_config = dict(grad_clip=dict(max_norm=5, norm_type=2))`` (ECM's recipe) does. detectron2's
own types clip each parameter on its own ("norm": each tensor's norm; "value": each element) and are
left to detectron2. A trainer uses it as ``DefaultTrainer.build_optimizer``::

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)
"""
import torch
from detectron2.solver import build_optimizer as _d2_build_optimizer
from detectron2.solver.build import _generate_optimizer_class_with_gradient_clipping

__all__ = ["FULL_MODEL", "build_optimizer", "full_model_clipper"]

FULL_MODEL = "full_model"


def full_model_clipper(max_norm, norm_type=2.0):
    """A global clipper for detectron2's optimizer wrapper: the parameters' gradients scaled together so
    that their joint norm is at most ``max_norm``."""
    def clip(params):
        torch.nn.utils.clip_grad_norm_(list(params), max_norm, norm_type)

    return clip


def build_optimizer(cfg, model):
    """detectron2's ``build_optimizer(cfg, model)``; with ``CLIP_TYPE "full_model"`` its optimizer clips
    the whole model's gradient norm in ``step()`` (detectron2's ``global_clipper``)."""
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if not (clip.ENABLED and clip.CLIP_TYPE == FULL_MODEL):
        return _d2_build_optimizer(cfg, model)
    plain = cfg.clone()
    plain.defrost()
    plain.SOLVER.CLIP_GRADIENTS.ENABLED = False  # detectron2's per-parameter clipping knows no "full_model"
    optimizer = _d2_build_optimizer(plain, model)
    # as detectron2's maybe_add_gradient_clipping does with an optimizer instance
    optimizer.__class__ = _generate_optimizer_class_with_gradient_clipping(
        type(optimizer), global_clipper=full_model_clipper(clip.CLIP_VALUE, clip.NORM_TYPE))
    return optimizer
