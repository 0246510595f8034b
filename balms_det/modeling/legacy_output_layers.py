"""``BalancedSoftmaxOutputLayers``: the box predictor's name and keyword arguments from before the losses
became modules (``cls_loss="seesaw", seesaw_p=0.8, class_counts=..., posthoc_tau=...``), kept working
for code that builds it directly. From config, every head builds :class:`LongTailOutputLayers`."""
from detectron2.config import configurable

from .calibrations import LogitAdjustment
from .cls_losses import CLS_LOSS_REGISTRY, cls_loss_class
from .output_layers import LongTailOutputLayers

__all__ = ["BalancedSoftmaxOutputLayers"]


class BalancedSoftmaxOutputLayers(LongTailOutputLayers):
    """
    The pre-module name and keyword arguments, kept working: ``cls_loss`` a registered name with its
    settings given flat (``tau``, ``background``, ``seesaw_p``, ...: each loss's ``legacy_kwargs``;
    other losses' settings are ignored, as they were), ``class_counts`` / ``num_images`` the prior
    (kept when the loss or the calibration needs it), ``posthoc_tau`` > 0 logit adjustment.
    """

    @configurable
    def __init__(self, input_shape, *, cls_loss="balanced_softmax", class_counts=None, num_images=None,
                 posthoc_tau=0.0, **kwargs):
        if posthoc_tau:
            kwargs["calibration"] = LogitAdjustment(posthoc_tau)
        if isinstance(cls_loss, str):
            loss_cls = cls_loss_class(cls_loss)
            settings = {new: kwargs.pop(old) for old, new in loss_cls.legacy_kwargs.items() if old in kwargs}
            for _, other in CLS_LOSS_REGISTRY:
                for old in other.legacy_kwargs:
                    kwargs.pop(old, None)
            need = loss_cls.needs_prior(**settings) or (
                posthoc_tau and LogitAdjustment.needs_prior(loss_cls, settings))
            cls_loss = loss_cls(kwargs["num_classes"], class_counts=class_counts if need else None,
                                num_images=num_images, **settings)
        super().__init__(input_shape, cls_loss=cls_loss, **kwargs)
