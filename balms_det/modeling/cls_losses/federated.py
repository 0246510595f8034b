"""``federated``: detectron2's federated sigmoid loss (Zhou et al., 2021; ``USE_FED_LOSS``, read in its
``fast_rcnn.py``): BCE on K logits over the batch's classes plus negatives drawn by detectron2's own
``get_fed_loss_classes`` with weights ``image_count ** freq_weight_power``; inference ``sigmoid(z_j)``
(:func:`~.sigmoid.sigmoid_probs_with_background`, the sigmoid baseline's rule). The classifier's bias
starts at 0 (detectron2), or at the probability ``prior_prob`` (CenterNet2's 0.01)."""
import torch
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY, ClsLoss
from .sigmoid import sigmoid_prior_bias, sigmoid_probs_with_background
from .utils import at_least_float32, one_hot_targets, reduce_rois

__all__ = ["federated_class_mask", "federated_loss", "FederatedLoss"]


def federated_class_mask(fed_classes, num_classes):
    """The classes the federated loss sees this step, as a mask.

    Args:
        fed_classes (Tensor): (M,), int64, class indices in [0, K] (K, background, is dropped).
        num_classes (int): K.
    Returns:
        Tensor: (K,), float32, 1 for the classes of ``fed_classes``, else 0.
    """
    mask = torch.zeros(num_classes + 1, device=fed_classes.device)
    mask[fed_classes] = 1
    return mask[:num_classes]


@at_least_float32
def federated_loss(logits, gt_classes, class_mask, reduction="mean"):
    """
    The federated loss (Zhou et al., 2021), as detectron2's ``sigmoid_cross_entropy_loss`` with
    ``use_fed_loss``: binary cross-entropy on the K sigmoid logits (one-hot targets, all zero for
    background ROIs) over the classes of ``class_mask`` only (the batch's ground-truth classes plus
    negatives sampled by frequency, detectron2's ``get_fed_loss_classes``, which counts a background
    label in the batch among its ``NUM_CLASSES``), summed over classes / N.

    detectron2 has K + 1 logits and ignores the last one; we build K (the same loss and scores).

    Args:
        logits (Tensor): (N, K), float, no background logit.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        class_mask (Tensor): (K,), float, 0/1 (:func:`federated_class_mask`).
        reduction (str): ``"mean"`` (sum / N) or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), float32 or float64.
    """
    z = logits
    target = one_hot_targets(z, gt_classes)
    loss = F.binary_cross_entropy_with_logits(z, target, reduction="none")
    return reduce_rois((loss * class_mask.to(device=z.device, dtype=z.dtype)).sum(dim=1), reduction)


@CLS_LOSS_REGISTRY.register()
class FederatedLoss(ClsLoss):
    """
    The classes are drawn once per training step (per rank, as detectron2) and kept until its loss is
    done; outside a training step every class is in the loss. With fewer classes than
    ``fed_num_classes`` (where detectron2's sampler fails) every class is in the loss. detectron2 has
    a dead (K+1)-th logit; we build K.
    """

    name = "federated"
    extra_logits = 0
    uses_prior = True

    def __init__(self, num_classes, *, fed_num_classes=50, freq_weight_power=0.5, prior_prob=0.0, **kwargs):
        super().__init__(num_classes, **kwargs)
        if fed_num_classes < 1:
            raise ValueError(f"The federated loss needs num_classes >= 1, got {fed_num_classes}")
        self.fed_num_classes = int(fed_num_classes)
        self.freq_weight_power = float(freq_weight_power)
        self.prior_prob = float(prior_prob)  # 0: bias 0 (detectron2); CenterNet2 starts at 0.01
        self._mask = None  # this training step's classes

    @classmethod
    def from_config(cls, cfg):
        f = cfg.MODEL.BALMS.FEDERATED
        return {"fed_num_classes": f.NUM_CLASSES, "freq_weight_power": f.FREQ_WEIGHT_POWER,
                "prior_prob": f.PRIOR_PROB}

    def bias_init(self):
        return sigmoid_prior_bias(self.prior_prob) if self.prior_prob > 0 else 0.0

    @torch.no_grad()
    def before_loss(self, gt_classes):
        if self.fed_num_classes <= self.num_classes:
            weight = self.class_counts.float() ** self.freq_weight_power  # detectron2's get_fed_loss_cls_weights
            # detectron2's sampler is a method of its box predictor that does not use ``self``
            classes = FastRCNNOutputLayers.get_fed_loss_classes(None, gt_classes, self.fed_num_classes,
                                                                self.num_classes, weight)
            self._mask = federated_class_mask(classes, self.num_classes)

    def after_loss(self, logits, gt_classes):
        self._mask = None

    def per_roi_loss(self, logits, gt_classes):
        mask = self._mask if self._mask is not None else logits.new_ones(self.num_classes)
        return federated_loss(logits, gt_classes, mask, reduction="none")

    def probs(self, logits):
        return sigmoid_probs_with_background(logits)
