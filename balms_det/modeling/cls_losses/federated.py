"""``federated``: detectron2's federated sigmoid loss (Zhou et al., 2021; ``USE_FED_LOSS``): BCE on K
logits over the batch's classes plus negatives drawn by detectron2's own ``get_fed_loss_classes``
with weights ``image_count ** freq_weight_power``; inference ``sigmoid(z_j)``. The classifier's bias
starts at 0 (detectron2), or at the probability ``prior_prob`` (CenterNet2's 0.01)."""
import torch
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers

from .. import losses as L
from .. import peer_losses as P
from .base import CLS_LOSS_REGISTRY, ClsLoss

__all__ = ["FederatedLoss"]


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
    legacy_kwargs = {"federated_num_classes": "fed_num_classes",
                     "federated_freq_weight_power": "freq_weight_power"}

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
        return L.sigmoid_prior_bias(self.prior_prob) if self.prior_prob > 0 else 0.0

    @torch.no_grad()
    def before_loss(self, gt_classes):
        if self.fed_num_classes <= self.num_classes:
            weight = self.class_counts.float() ** self.freq_weight_power  # detectron2's get_fed_loss_cls_weights
            # detectron2's sampler is a method of its box predictor that does not use ``self``
            classes = FastRCNNOutputLayers.get_fed_loss_classes(None, gt_classes, self.fed_num_classes,
                                                                self.num_classes, weight)
            self._mask = P.federated_class_mask(classes, self.num_classes)

    def after_loss(self, logits, gt_classes):
        self._mask = None

    def per_roi_loss(self, logits, gt_classes):
        mask = self._mask if self._mask is not None else logits.new_ones(self.num_classes)
        return P.federated_loss(logits, gt_classes, mask, reduction="none")

    def probs(self, logits):
        return L.sigmoid_probs_with_background(logits)
