"""The registry of post-hoc calibrations and the base class: how the box predictor turns a loss's
logits into (N, K + 1) class probabilities at inference (``MODEL.BALMS.CALIBRATION``)."""
from detectron2.utils.registry import Registry

from ..named_registry import RegisteredMethod, lookup

__all__ = ["CALIBRATION_REGISTRY", "Calibration", "NoCalibration", "calibration_class"]

CALIBRATION_REGISTRY = Registry("CALIBRATION")
CALIBRATION_REGISTRY.__doc__ = """Post-hoc calibrations of :class:`LongTailOutputLayers` (``MODEL.BALMS.CALIBRATION``):
subclasses of :class:`Calibration`, looked up by class name or by their ``name`` attribute."""


def calibration_class(name):
    """The registered :class:`Calibration` subclass called ``name`` (class name or short name)."""
    return lookup(CALIBRATION_REGISTRY, name, "MODEL.BALMS.CALIBRATION")


class Calibration(RegisteredMethod):
    """
    ``forward(logits, loss)``: the (N, K + 1) probabilities, background last, of a
    :class:`~balms_det.modeling.cls_losses.ClsLoss`'s logits. No training, no state of its own: what
    it needs (the class prior, the logit shift) it reads from the loss. :meth:`check` refuses a loss
    for which it is not defined.
    """

    @classmethod
    def needs_prior(cls, loss_cls, loss_settings):
        """Whether the loss must keep ``class_counts`` for this calibration."""
        return False

    def check(self, loss):
        """Raise ValueError when this calibration is not defined for ``loss``."""

    def forward(self, logits, loss):
        """
        Args:
            logits (Tensor): (N, ``loss.num_logits()``), float.
            loss (ClsLoss): the box predictor's loss module (its prior, its logit shift).
        Returns:
            Tensor: (N, K + 1), float, background last.
        """
        return loss.probs(logits)


@CALIBRATION_REGISTRY.register()
class NoCalibration(Calibration):
    """The loss's own inference rule."""

    name = "none"


class SoftmaxLogitCalibration(Calibration):
    """Base of the calibrations defined on softmax logits (K + 1, background last)."""

    def check(self, loss):
        if not loss.softmax_logits:
            raise ValueError(
                f"{self.name} (MODEL.BALMS.CALIBRATION) applies to the softmax losses only "
                f"(K + 1 softmax logits), not to cls_loss={loss.name or type(loss).__name__!r}"
            )
