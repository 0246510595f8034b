"""``logit_adjustment``: post-hoc logit adjustment (Menon et al., ICLR 2021): a softmax model predicts
with ``softmax(z - tau * shift)``, the loss's own logit shift (its class prior and background mode)."""
from .. import losses as L
from .base import CALIBRATION_REGISTRY, SoftmaxLogitCalibration

__all__ = ["LogitAdjustment"]


@CALIBRATION_REGISTRY.register()
class LogitAdjustment(SoftmaxLogitCalibration):
    """``tau`` is ``MODEL.BALMS.POSTHOC_TAU`` (> 0)."""

    name = "logit_adjustment"

    def __init__(self, tau=1.0):
        super().__init__()
        if tau <= 0:
            raise ValueError(f"logit adjustment needs tau > 0 (MODEL.BALMS.POSTHOC_TAU), got {tau}")
        self.tau = float(tau)

    @classmethod
    def from_config(cls, cfg):
        return {"tau": cfg.MODEL.BALMS.POSTHOC_TAU}

    @classmethod
    def needs_prior(cls, loss_cls, loss_settings):
        return loss_settings.get("background", "unadjusted") == "unadjusted"

    def forward(self, logits, loss):
        return L.softmax_probs(L.posthoc_adjust(logits, loss.logit_shift(), self.tau))

    def extra_repr(self):
        return f"tau={self.tau}"
