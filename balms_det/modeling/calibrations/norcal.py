"""``norcal``: NorCal (Pan et al., NeurIPS 2021; tydpan/NorCal), training-free: every foreground class's
score divided by its training count to the power ``gamma``, background kept, renormalised per ROI
(:func:`norcal_probs`)."""
import torch
from torch.nn import functional as F

from ..cls_losses.utils import at_least_float32
from .base import CALIBRATION_REGISTRY, SoftmaxLogitCalibration

__all__ = ["norcal_probs", "NorCal"]


@at_least_float32
def norcal_probs(logits, counts, gamma=1.0):
    """
    NorCal (Pan et al., NeurIPS 2021), as the authors' code computes it (``WITH: exps``, ``RENORM``):
    each foreground class's ``exp(z_c)`` divided by ``counts_c ** gamma``, the background's kept, all
    K + 1 renormalised; that is ``softmax(z - gamma * [log n_1 .. log n_K, 0])`` (computed so, without
    the code's unguarded ``exp``). Unlike logit adjustment's centered shift, the raw counts also move
    every foreground class against background.

    Args:
        logits (Tensor): (N, K + 1), float, softmax logits, background last.
        counts (Tensor): (K,), float (float64 buffer), positive training counts (the authors use
            training image counts).
        gamma (float): the exponent (0 = plain softmax).
    Returns:
        Tensor: (N, K + 1), float32 or float64, background last.
    """
    log_n = counts.to(device=logits.device, dtype=torch.float64).log()
    shift = torch.cat([log_n, log_n.new_zeros(1)]).to(logits.dtype)
    return F.softmax(logits - gamma * shift, dim=-1)


@CALIBRATION_REGISTRY.register()
class NorCal(SoftmaxLogitCalibration):
    """
    The counts are the loss's ``class_counts`` (``MODEL.BALMS.PRIOR``; the authors use training image
    counts, ``PRIOR.COUNT: image_count``). Paper vs code: the code calibrates the exponentials of the
    K + 1 logits and renormalises over all of them, background included (``WITH: exps``,
    ``RENORM: True``), which is what we compute; its default ``GAMMA`` is 0.0, the identity, and its
    README has the exponent set on the command line. Our default 1.0 (``MODEL.BALMS.NORCAL.GAMMA``) is
    the label-prior correction that logit adjustment's tau = 1 also makes, not tuned on any val set.
    """

    name = "norcal"

    def __init__(self, gamma=1.0):
        super().__init__()
        if gamma < 0:
            raise ValueError(f"NorCal needs gamma >= 0 (MODEL.BALMS.NORCAL.GAMMA), got {gamma}")
        self.gamma = float(gamma)

    @classmethod
    def from_config(cls, cfg):
        return {"gamma": cfg.MODEL.BALMS.NORCAL.GAMMA}

    @classmethod
    def needs_prior(cls, loss_cls, loss_settings):
        return True

    def check(self, loss):
        super().check(loss)
        if not hasattr(loss, "class_counts"):
            raise ValueError("NorCal needs the class prior: build the loss with class_counts")

    def forward(self, logits, loss):
        return norcal_probs(logits, loss.class_counts, self.gamma)

    def extra_repr(self):
        return f"gamma={self.gamma}"
