"""``eqlv2``: Equalization Loss v2 (Tan et al., CVPR 2021; tztztztztz/eqlv2): sigmoid BCE on K + 1
logits (the last one background) weighted per class by the accumulated positive / negative gradient
ratio; inference ``sigmoid(z_j) * (1 - sigmoid(z_bg))``."""
import torch

from .. import peer_losses as P
from .base import CLS_LOSS_REGISTRY, ClsLoss, all_reduce_sum

__all__ = ["EQLv2Loss"]


@CLS_LOSS_REGISTRY.register()
class EQLv2Loss(ClsLoss):
    """
    The gradient sums are the float64 buffers ``pos_grad`` / ``neg_grad``; this step's (from its own
    formula on the real logits, as the authors' code, not from a backward hook) is added after its
    loss and all-reduced, as the authors' code does.
    """

    name = "eqlv2"
    legacy_buffers = {"class_counts": "class_counts", "eqlv2_pos_grad": "pos_grad", "eqlv2_neg_grad": "neg_grad"}
    legacy_kwargs = {"eqlv2_gamma": "gamma", "eqlv2_mu": "mu", "eqlv2_alpha": "alpha"}

    def __init__(self, num_classes, *, gamma=12.0, mu=0.8, alpha=4.0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.gamma, self.mu, self.alpha = float(gamma), float(mu), float(alpha)
        self.register_state("pos_grad", self.num_classes)
        self.register_state("neg_grad", self.num_classes)

    @classmethod
    def from_config(cls, cfg):
        e = cfg.MODEL.BALMS.EQLV2
        return {"gamma": e.GAMMA, "mu": e.MU, "alpha": e.ALPHA}

    def weights(self):
        """The (K+1,) positive / negative weights from the gradient sums so far."""
        return P.eqlv2_weights(self.pos_grad, self.neg_grad, self.gamma, self.mu, self.alpha)

    def per_roi_loss(self, logits, gt_classes):
        return P.eqlv2_loss(logits, gt_classes, *self.weights(), reduction="none")

    @torch.no_grad()
    def after_loss(self, logits, gt_classes):
        pos, neg = P.eqlv2_gradient_increment(logits, gt_classes, *self.weights())
        inc = all_reduce_sum(torch.cat([pos, neg]).to(self.pos_grad.device))
        self.pos_grad += inc[: self.num_classes]
        self.neg_grad += inc[self.num_classes:]

    def probs(self, logits):
        return P.objectness_sigmoid_probs(logits)

    def extra_repr(self):
        return super().extra_repr() + f", gamma={self.gamma}, mu={self.mu}, alpha={self.alpha}"
