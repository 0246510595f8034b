"""Registered ROI heads whose box predictor is :class:`LongTailOutputLayers`.

``MODEL.ROI_HEADS.NAME: LongTailROIHeads`` (standard Mask R-CNN heads) or ``LongTailCascadeROIHeads``
(Cascade R-CNN); the method is ``MODEL.BALMS.CLS_LOSS`` (and ``CALIBRATION``). Box/mask heads, proposal
sampling and everything else are detectron2's.
"""
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, CascadeROIHeads, StandardROIHeads

from .output_layers import LongTailOutputLayers, prior_from_config

__all__ = ["LongTailROIHeads", "LongTailCascadeROIHeads"]


@ROI_HEADS_REGISTRY.register()
class LongTailROIHeads(StandardROIHeads):
    """:class:`StandardROIHeads` with a :class:`LongTailOutputLayers` box predictor."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        ret["box_predictor"] = LongTailOutputLayers(cfg, ret["box_head"].output_shape, prior=prior_from_config(cfg))
        return ret


@ROI_HEADS_REGISTRY.register()
class LongTailCascadeROIHeads(CascadeROIHeads):
    """:class:`CascadeROIHeads` with a :class:`LongTailOutputLayers` predictor per stage."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        prior = prior_from_config(cfg)  # loaded once for all stages
        ret["box_predictors"] = [
            LongTailOutputLayers(cfg, head.output_shape, prior=prior, box2box_transform=old.box2box_transform)
            for head, old in zip(ret["box_heads"], ret["box_predictors"])
        ]
        return ret


# The names of YAML configs in the wild (the official BALMS configs name BalancedSoftmaxROIHeads): the same classes.
ROI_HEADS_REGISTRY._do_register("BalancedSoftmaxROIHeads", LongTailROIHeads)
ROI_HEADS_REGISTRY._do_register("BalancedSoftmaxCascadeROIHeads", LongTailCascadeROIHeads)
