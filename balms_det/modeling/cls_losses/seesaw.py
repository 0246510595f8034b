"""``seesaw``: Seesaw Loss (Wang et al., CVPR 2021; mmdetection's ``SeesawLoss``): K class logits and
an objectness pair (K + 2), each negative class of a label scaled by mitigation x compensation factors
from the cumulative class counts; inference ``softmax(classes) x P(object)``."""
import torch

from .. import peer_losses as P
from .base import CLS_LOSS_REGISTRY, ClsLoss, all_reduce_sum

__all__ = ["SeesawLoss"]


@CLS_LOSS_REGISTRY.register()
class SeesawLoss(ClsLoss):
    """
    The cumulative ROI counts per class are the float64 buffer ``cum_counts``, this batch added before
    its loss, every step's increment all-reduced (so every DDP rank holds the global counts).
    mmdetection keeps them per GPU in float32 (exact only up to 2^24 ROIs per class).
    """

    name = "seesaw"
    extra_logits = 2
    legacy_buffers = {"class_counts": "class_counts", "seesaw_cum_counts": "cum_counts"}
    legacy_kwargs = {"seesaw_p": "p", "seesaw_q": "q", "seesaw_eps": "eps"}

    def __init__(self, num_classes, *, p=0.8, q=2.0, eps=1e-2, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.p, self.q, self.eps = float(p), float(q), float(eps)
        self.register_state("cum_counts", self.num_classes)

    @classmethod
    def from_config(cls, cfg):
        s = cfg.MODEL.BALMS.SEESAW
        return {"p": s.P, "q": s.Q, "eps": s.EPS}

    @torch.no_grad()
    def before_loss(self, gt_classes):
        self.cum_counts += all_reduce_sum(P.seesaw_count_increment(gt_classes, self.num_classes)).to(self.cum_counts)

    def per_roi_loss(self, logits, gt_classes):
        return P.seesaw_loss(logits, gt_classes, self.cum_counts, self.p, self.q, self.eps, reduction="none")

    def probs(self, logits):
        return P.seesaw_probs(logits)

    def extra_repr(self):
        return super().extra_repr() + f", p={self.p}, q={self.q}, eps={self.eps}"
