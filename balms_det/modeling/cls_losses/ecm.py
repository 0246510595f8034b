"""``ecm``: Effective Class-Margin loss (Cho & Kraehenbuehl, ECCV 2022; janghyuncho/ECM-Loss, read in its
``effective_class_margin_loss.py``): sigmoid BCE on K + 1 logits with class margins and weights from the
class counts; inference as its code, ``sigmoid(z_j) * (1 - sigmoid(z_bg))``
(:func:`~.eqlv2.objectness_sigmoid_probs`, EQLv2's rule)."""
import torch
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY, ClsLoss
from .eqlv2 import objectness_sigmoid_probs
from .utils import at_least_float32, one_hot_targets, reduce_rois

__all__ = ["ecm_margins", "ecm_loss", "ECMLoss"]


def ecm_margins(fg_counts, fg_bg_ratio=6.3313):
    """
    ECM Loss (Cho & Krähenbühl, ECCV 2022) margins and class weights from the class frequencies.

    ``n_j`` = training image counts of the K classes and, for the background column,
    ``fg_bg_ratio * sum(n)``; ``n+_j = n_j``, ``n-_j = sum(n) - n_j`` (all K + 1 entries). Then
    ``m+_j = log((n+^(1/4) + n-^(1/4)) / n-^(1/4))``, ``m-_j = log((n+^(1/4) + n-^(1/4)) / n+^(1/4))``
    and ``w_j = a_j log((1 + a_j) / a_j)`` with ``a_j = n-_j / n+_j``.

    Paper vs code: the code takes ``n`` from LVIS's image counts and an empirical background count
    (``fg_bg_ratio`` = 6.3313 "from Mask R-CNN"); we follow it (image counts from
    ``MODEL.BALMS.PRIOR``, ``MODEL.BALMS.ECM.FG_BG_RATIO``). These formulas are the authors' code's
    (janghyuncho/ECM-Loss), checked in the tests in their exponential form.

    Args:
        fg_counts (Tensor): (K,), float (float64 buffer), positive counts of the foreground classes.
        fg_bg_ratio (float): the background count over ``sum(n)``.
    Returns:
        tuple[Tensor, Tensor, Tensor]: (m_pos, m_neg, weight), (K + 1,) float64 each.
    """
    n = fg_counts.to(torch.float64)
    n = torch.cat([n, n.sum().reshape(1) * fg_bg_ratio])
    n_pos, n_neg = n, n.sum() - n
    r_pos, r_neg = n_pos.pow(0.25), n_neg.pow(0.25)
    m_pos = ((r_pos + r_neg) / r_neg).log()
    m_neg = ((r_pos + r_neg) / r_pos).log()
    a = n_neg / n_pos
    return m_pos, m_neg, a * ((1 + a) / a).log()


@at_least_float32
def ecm_loss(logits, gt_classes, m_pos, m_neg, weight, reduction="mean"):
    """
    ECM Loss: ``K + 1`` logits (background last). Per column the margin-adjusted binary
    probability ``p_ij = exp(z_ij + m+_j) / (exp(z_ij + m+_j) + exp(-z_ij + m-_j))``, binary
    cross-entropy against the one-hot target, times ``w_j``, summed over columns, divided by N
    (:func:`ecm_margins`).

    Computed as ``w_j * BCE_with_logits(2 z_ij + m+_j - m-_j, t_ij)``, the same function written
    without the exponentials that overflow in the code's form.

    Args:
        logits (Tensor): (N, K + 1), float, background last.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        m_pos, m_neg, weight (Tensor): (K + 1,), float (float64 from :func:`ecm_margins`).
        reduction (str): ``"mean"`` (sum / N) or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), float32 or float64.
    """
    z = logits
    target = one_hot_targets(z, gt_classes)
    offset = (m_pos - m_neg).to(device=z.device, dtype=z.dtype)
    loss = F.binary_cross_entropy_with_logits(2 * z + offset, target, reduction="none")
    return reduce_rois((loss * weight.to(device=z.device, dtype=z.dtype)).sum(dim=1), reduction)


@CLS_LOSS_REGISTRY.register()
class ECMLoss(ClsLoss):
    """Margins from ``class_counts`` (image counts of ``MODEL.BALMS.PRIOR``) and a background count of
    ``fg_bg_ratio`` times their sum; recomputed per call (a (K+1,) vector, no derived state)."""

    name = "ecm"
    uses_prior = True

    def __init__(self, num_classes, *, fg_bg_ratio=6.3313, **kwargs):
        super().__init__(num_classes, **kwargs)
        if fg_bg_ratio <= 0:
            raise ValueError(f"ECM needs fg_bg_ratio > 0, got {fg_bg_ratio}")
        self.fg_bg_ratio = float(fg_bg_ratio)

    @classmethod
    def from_config(cls, cfg):
        return {"fg_bg_ratio": cfg.MODEL.BALMS.ECM.FG_BG_RATIO}

    def per_roi_loss(self, logits, gt_classes):
        return ecm_loss(logits, gt_classes, *ecm_margins(self.class_counts, self.fg_bg_ratio), reduction="none")

    def probs(self, logits):
        return objectness_sigmoid_probs(logits)
