"""``balanced_softmax``: Balanced Softmax (BALMS Eq. 4, tau = 1; Eq. 10, tau = 1/4; Menon et al.'s
logit-adjusted loss): ``CE(z + tau * shift, y)`` in training, plain ``softmax(z)`` at inference; the
``shift`` is the softmax family's logit prior (:func:`~.softmax.softmax_logit_shift`)."""
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY
from .softmax import SoftmaxLoss
from .utils import at_least_float32

__all__ = ["balanced_softmax_loss", "BalancedSoftmaxLoss"]


@at_least_float32
def balanced_softmax_loss(logits, gt_classes, shift, tau=1.0, reduction="mean"):
    """
    Balanced Softmax / logit-adjusted cross-entropy: ``CE(z + tau * shift, y)``.

    Args:
        logits (Tensor): (N, K + 1), float, the logits z, background last.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        shift (Tensor): (K + 1,), float (float64 from the priors), e.g. from
            :func:`~.softmax.softmax_logit_shift`; cast to the logits' dtype.
        tau (float): 1 = BALMS Eq. 4, 0 = plain cross-entropy.
        reduction (str): ``"mean"`` over the N ROIs or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), float32 or float64.
    """
    if logits.numel() == 0 and reduction == "mean":
        return logits.sum() * 0.0
    if tau != 0:
        logits = logits + tau * shift.to(dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, gt_classes, reduction=reduction)


@CLS_LOSS_REGISTRY.register()
class BalancedSoftmaxLoss(SoftmaxLoss):
    """:class:`SoftmaxLoss` trained on logits shifted by ``tau`` times its :meth:`logit_shift`."""

    name = "balanced_softmax"

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
        return balanced_softmax_loss(logits, gt_classes, self.logit_shift(), self.tau, reduction="none")

    def extra_repr(self):
        return super().extra_repr() + f", tau={self.tau}, background={self.background}"
