"""``sigmoid``: K sigmoid logits (no background logit), one-hot BCE summed over classes / N, the bias
initialised to the probability ``prior_prob`` (the official BALMS code's sigmoid baseline)."""
import math

import torch
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY, ClsLoss
from .utils import at_least_float32, one_hot_targets, reduce_rois

__all__ = ["sigmoid_ce_loss", "sigmoid_prior_bias", "sigmoid_probs_with_background", "SigmoidLoss"]


@at_least_float32
def sigmoid_ce_loss(logits, gt_classes, reduction="mean"):
    """
    Sigmoid baseline: ``K`` logits, one-hot targets (all zero for background ROIs), binary
    cross-entropy summed over classes and divided by the number of ROIs.

    Args:
        logits (Tensor): (N, K), float, no background logit.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        reduction (str): ``"mean"`` (sum / N) or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) per-ROI sums over classes (``"none"``), float32 or float64.
    """
    if logits.numel() == 0 and reduction == "mean":
        return logits.sum() * 0.0
    target = one_hot_targets(logits, gt_classes)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return reduce_rois(loss.sum(dim=1), reduction)


def sigmoid_prior_bias(prior_prob):
    """Bias that makes every sigmoid start at probability ``prior_prob`` (float in (0, 1)):
    ``-log((1 - p0) / p0)``, a float."""
    return -math.log((1 - prior_prob) / prior_prob)


@at_least_float32
def sigmoid_probs_with_background(logits):
    """``sigmoid(z)`` with a zero background column appended.

    Args:
        logits (Tensor): (N, K), float.
    Returns:
        Tensor: (N, K + 1), float32 or float64, background last (all zero).
    """
    probs = logits.sigmoid()
    return torch.cat([probs, probs.new_zeros(probs.shape[0], 1)], dim=1)


@CLS_LOSS_REGISTRY.register()
class SigmoidLoss(ClsLoss):
    """Sigmoid cross-entropy on K logits; inference ``sigmoid(z)`` with a zero background column."""

    name = "sigmoid"
    extra_logits = 0

    def __init__(self, num_classes, *, prior_prob=0.001, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.prior_prob = float(prior_prob)

    @classmethod
    def from_config(cls, cfg):
        return {"prior_prob": cfg.MODEL.BALMS.SIGMOID_PRIOR_PROB}

    def bias_init(self):
        return sigmoid_prior_bias(self.prior_prob)

    def per_roi_loss(self, logits, gt_classes):
        return sigmoid_ce_loss(logits, gt_classes, reduction="none")

    def plain_loss(self, logits, gt_classes):
        """The meta loss of BALMS: sigmoid cross-entropy, no prior, no weights (sum / N)."""
        return sigmoid_ce_loss(logits, gt_classes)

    def probs(self, logits):
        return sigmoid_probs_with_background(logits)
