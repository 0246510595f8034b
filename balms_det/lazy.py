"""Python-config (LazyConfig) helpers: put the long-tail heads into any detectron2 model config.

detectron2's own configs (``common/models/mask_rcnn_fpn.py``, ViTDet's) describe the box predictor as
``L(FastRCNNOutputLayers)(...)``; these helpers swap it for :class:`LongTailOutputLayers` with a
classification loss module (and optionally a calibration, the normed classifier, a Meta Reweighter),
keeping every other argument (input shape, box transform, test thresholds, number of classes)::

    from detectron2.config import LazyCall as L
    from balms_det.lazy import long_tail_roi_heads
    from balms_det.modeling import BalancedSoftmaxLoss, deferred_class_prior

    model.roi_heads = long_tail_roi_heads(
        model.roi_heads,
        cls_loss=L(BalancedSoftmaxLoss)(prior=L(deferred_class_prior)(datasets="lvis_v1_train")),
    )
"""
import copy

from detectron2.config import LazyCall as L
from detectron2.modeling.roi_heads import CascadeROIHeads
from detectron2.utils.registry import locate

from .modeling.output_layers import LongTailOutputLayers
from .modeling.roi_heads import LongTailCascadeROIHeads, LongTailROIHeads

__all__ = ["long_tail_box_predictor", "long_tail_roi_heads"]

# detectron2's own loss switches, replaced by the loss module (a stock config may set them, e.g. ViTDet's LVIS)
_STOCK_LOSS_ARGS = ("use_sigmoid_ce", "use_fed_loss", "get_fed_loss_cls_weights", "fed_loss_num_classes",
                    "fed_loss_freq_weight_power")


def long_tail_box_predictor(predictor, cls_loss, calibration=None, classifier="linear", normed_temperature=20.0,
                            meta_reweighter=None):
    """``L(LongTailOutputLayers)`` with the arguments of the ``L(FastRCNNOutputLayers)`` node ``predictor``
    (its stock loss switches dropped) and the given loss (``num_classes`` filled in from the predictor's
    when the loss node does not set it)."""
    args = {k: copy.deepcopy(v) for k, v in predictor.items_ex(resolve=False)  # keep "${..num_classes}"
            if k != "_target_" and k not in _STOCK_LOSS_ARGS}
    cls_loss = copy.deepcopy(cls_loss)
    if "num_classes" not in cls_loss:
        cls_loss.num_classes = "${..num_classes}"  # the predictor's (itself often the heads')
    return L(LongTailOutputLayers)(**args, cls_loss=cls_loss, calibration=calibration, classifier=classifier,
                                   normed_temperature=normed_temperature, meta_reweighter=meta_reweighter)


def long_tail_roi_heads(roi_heads, cls_loss, **predictor_kwargs):
    """The ``roi_heads`` node with :class:`LongTailROIHeads` (or :class:`LongTailCascadeROIHeads` for a
    cascade) and every box predictor made by :func:`long_tail_box_predictor`."""
    heads = copy.deepcopy(roi_heads)
    if "box_predictors" in heads:  # cascade: one predictor (and loss module) per stage
        heads._target_ = LongTailCascadeROIHeads if _is(heads, CascadeROIHeads) else heads._target_
        heads.box_predictors = [long_tail_box_predictor(p, cls_loss, **predictor_kwargs) for p in heads.box_predictors]
    else:
        heads._target_ = LongTailROIHeads
        heads.box_predictor = long_tail_box_predictor(heads.box_predictor, cls_loss, **predictor_kwargs)
    return heads


def _is(node, cls):
    target = node.get("_target_")
    if isinstance(target, str):  # a config saved to YAML and loaded again names its targets
        target = locate(target)
    return isinstance(target, type) and issubclass(target, cls)
