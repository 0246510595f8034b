"""``balanced_sigmoid``: the sigmoid variant of Balanced Softmax in the official BALMS code: foreground
ROIs train on ``z_j - log((1 - p_j) / p_j)``, ``p_j = image_count_j / number of training images``."""
import torch

from .. import losses as L
from .base import CLS_LOSS_REGISTRY
from .sigmoid import SigmoidLoss

__all__ = ["BalancedSigmoidLoss"]


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
        return L.balanced_sigmoid_loss(logits, gt_classes, self.image_freq(), reduction="none")
