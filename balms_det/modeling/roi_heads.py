"""Registered ROI heads whose box predictor is :class:`BalancedSoftmaxOutputLayers`.

``MODEL.ROI_HEADS.NAME: BalancedSoftmaxROIHeads`` (standard Mask R-CNN heads) or
``BalancedSoftmaxCascadeROIHeads`` (Cascade R-CNN); the loss is chosen by ``MODEL.BALMS.CLS_LOSS``.
Box/mask heads, proposal sampling and everything else are detectron2's.
"""
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, CascadeROIHeads, StandardROIHeads

from .output_layers import BalancedSoftmaxOutputLayers, prior_from_config

__all__ = ["BalancedSoftmaxROIHeads", "BalancedSoftmaxCascadeROIHeads"]


@ROI_HEADS_REGISTRY.register()
class BalancedSoftmaxROIHeads(StandardROIHeads):
    """:class:`StandardROIHeads` with a :class:`BalancedSoftmaxOutputLayers` box predictor."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        ret["box_predictor"] = BalancedSoftmaxOutputLayers(
            cfg, ret["box_head"].output_shape, prior=prior_from_config(cfg)
        )
        return ret


@ROI_HEADS_REGISTRY.register()
class BalancedSoftmaxCascadeROIHeads(CascadeROIHeads):
    """:class:`CascadeROIHeads` with a :class:`BalancedSoftmaxOutputLayers` predictor per stage."""

    @classmethod
    def _init_box_head(cls, cfg, input_shape):
        ret = super()._init_box_head(cfg, input_shape)
        prior = prior_from_config(cfg)  # loaded once for all stages
        ret["box_predictors"] = [
            BalancedSoftmaxOutputLayers(
                cfg, head.output_shape, prior=prior, box2box_transform=old.box2box_transform
            )
            for head, old in zip(ret["box_heads"], ret["box_predictors"])
        ]
        return ret
