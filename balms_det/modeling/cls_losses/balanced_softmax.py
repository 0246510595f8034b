"""``balanced_softmax``: Balanced Softmax (BALMS Eq. 4; tau = 1/4 is Eq. 10, Menon et al.'s
logit-adjusted loss): ``CE(z + tau * shift, y)`` in training, plain ``softmax(z)`` at inference."""
from .. import losses as L
from .base import CLS_LOSS_REGISTRY
from .softmax import SoftmaxLoss

__all__ = ["BalancedSoftmaxLoss"]


@CLS_LOSS_REGISTRY.register()
class BalancedSoftmaxLoss(SoftmaxLoss):
    """:class:`SoftmaxLoss` trained on logits shifted by ``tau`` times its :meth:`logit_shift`."""

    name = "balanced_softmax"
    legacy_kwargs = dict(SoftmaxLoss.legacy_kwargs, tau="tau")

    def __init__(self, num_classes, *, tau=1.0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.tau = float(tau)

    @classmethod
    def from_config(cls, cfg):
        return dict(super().from_config(cfg), tau=cfg.MODEL.BALMS.TAU)

    @classmethod
    def needs_prior(cls, background="unadjusted", **settings):
        return background == "unadjusted"

    def per_roi_loss(self, logits, gt_classes):
        return L.balanced_softmax_loss(logits, gt_classes, self.logit_shift(), self.tau, reduction="none")

    def extra_repr(self):
        return super().extra_repr() + f", tau={self.tau}, background={self.background}"
