"""``logit_adjustment``: post-hoc logit adjustment (Menon et al., ICLR 2021): a plain-softmax model predicts
with ``softmax(z - tau * shift)``, the loss's own logit shift (its class prior and background mode,
:func:`~balms_det.modeling.cls_losses.softmax.softmax_logit_shift`, what Balanced Softmax trains with)."""
from ..cls_losses.softmax import softmax_probs
from ..cls_losses.utils import at_least_float32
from .base import CALIBRATION_REGISTRY, SoftmaxLogitCalibration

__all__ = ["posthoc_adjust", "LogitAdjustment"]


@at_least_float32
def posthoc_adjust(logits, shift, tau):
    """Post-hoc logit adjustment (Menon et al.): ``z - tau * shift`` (use the training-time shift).

    Args:
        logits (Tensor): (N, K + 1), float, background last.
        shift (Tensor): (K + 1,), float (float64 from the priors), e.g. the loss's
            :meth:`~balms_det.modeling.cls_losses.SoftmaxLoss.logit_shift`; cast to the logits' dtype.
        tau (float): 0 = the logits unchanged.
    Returns:
        Tensor: (N, K + 1), float32 or float64.
    """
    if tau == 0:
        return logits
    return logits - tau * shift.to(dtype=logits.dtype, device=logits.device)


@CALIBRATION_REGISTRY.register()
class LogitAdjustment(SoftmaxLogitCalibration):
    """``tau`` is ``MODEL.BALMS.LOGIT_ADJUSTMENT.TAU`` (> 0; 1 is the label-prior correction)."""

    name = "logit_adjustment"

    def __init__(self, tau=1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"logit adjustment needs tau > 0 (MODEL.BALMS.LOGIT_ADJUSTMENT.TAU), got {tau}")
        self.tau = float(tau)

    @classmethod
    def from_config(cls, cfg):
        return {"tau": cfg.MODEL.BALMS.LOGIT_ADJUSTMENT.TAU}

    @classmethod
    def needs_prior(cls, loss_cls, loss_settings):
        return loss_settings.get("background", "unadjusted") == "unadjusted"

    def forward(self, logits, loss):
        return softmax_probs(posthoc_adjust(logits, loss.logit_shift(), self.tau))

    def extra_repr(self):
        return f"tau={self.tau}"
