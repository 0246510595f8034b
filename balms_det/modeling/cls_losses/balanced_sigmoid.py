"""``balanced_sigmoid``: the sigmoid variant of Balanced Softmax in the official BALMS instance-segmentation
code: ``K`` sigmoid logits; foreground ROIs train on ``z_j - log((1 - p_j) / p_j)``,
``p_j = image_count_j / number of training images``; binary cross-entropy summed over classes / N."""
import torch
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY
from .sigmoid import SigmoidLoss
from .utils import at_least_float32, one_hot_targets, reduce_rois

__all__ = ["balanced_sigmoid_loss", "BalancedSigmoidLoss"]


@at_least_float32
def balanced_sigmoid_loss(logits, gt_classes, image_freq, eps=1e-12, reduction="mean"):
    """
    Sigmoid variant of Balanced Softmax, as in the official BALMS instance-segmentation code.

    For foreground ROIs (label < K) the logits become ``z_j - log((1 - p_j) / p_j)``; background ROIs
    keep their logits and have an all-zero target. Binary cross-entropy summed over classes / N.

    Args:
        logits (Tensor): (N, K), float, no background logit.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        image_freq (Tensor): (K,), float (float64 from the prior), ``p_j = image_count_j / number of
            training images``, clamped to ``[eps, 1 - eps]`` so the log-odds stay finite.
        eps (float): that clamp.
        reduction (str): ``"mean"`` (sum / N) or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) per-ROI sums over classes (``"none"``), float32 or float64.
    """
    if logits.numel() == 0 and reduction == "mean":
        return logits.sum() * 0.0
    n, k = logits.shape
    p = image_freq.to(device=logits.device, dtype=torch.float64).clamp(eps, 1 - eps)
    log_odds = ((1 - p) / p).log().to(logits.dtype)
    fg = (gt_classes < k).unsqueeze(1)
    adjusted = torch.where(fg, logits - log_odds, logits)
    target = one_hot_targets(logits, gt_classes)
    loss = F.binary_cross_entropy_with_logits(adjusted, target, reduction="none")
    return reduce_rois(loss.sum(dim=1), reduction)


@CLS_LOSS_REGISTRY.register()
class BalancedSigmoidLoss(SigmoidLoss):
    """:class:`SigmoidLoss` with the official prior adjustment; the number of training images is the
    persistent buffer ``num_train_images``."""

    name = "balanced_sigmoid"
    uses_prior = True
    needs_num_images = True

    def __init__(self, num_classes, **kwargs):
        super().__init__(num_classes, **kwargs)
        if not self.prior_num_images and self.prior_ready:
            raise ValueError("cls_loss='balanced_sigmoid' needs num_images (MODEL.BALMS.PRIOR.NUM_IMAGES)")
        self.register_buffer("num_train_images", torch.tensor(float(self.prior_num_images or "nan"), dtype=torch.float64))

    def on_prior(self):
        if not self.prior_num_images:
            raise ValueError("cls_loss='balanced_sigmoid' needs num_images (MODEL.BALMS.PRIOR.NUM_IMAGES)")
        self.num_train_images.fill_(float(self.prior_num_images))

    def image_freq(self):
        """p_j = image_count_j / number of training images."""
        return self.class_counts / self.num_train_images

    def per_roi_loss(self, logits, gt_classes):
        return balanced_sigmoid_loss(logits, gt_classes, self.image_freq(), reduction="none")
