"""``eqlv2``: Equalization Loss v2 (Tan et al., CVPR 2021; tztztztztz/eqlv2, read in its ``eqlv2.py``):
sigmoid BCE on K + 1 logits (the last one background) weighted per class by the accumulated positive /
negative gradient ratio; inference ``sigmoid(z_j) * (1 - sigmoid(z_bg))``. Where the paper and the code
differ we follow the code (each function's docstring says where)."""
import torch
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY, ClsLoss, all_reduce_sum
from .utils import at_least_float32, one_hot_targets, reduce_rois

__all__ = ["eqlv2_weights", "eqlv2_loss", "eqlv2_gradient_increment", "objectness_sigmoid_probs", "EQLv2Loss"]


def eqlv2_weights(pos_grad, neg_grad, gamma=12.0, mu=0.8, alpha=4.0):
    """
    EQLv2 (Tan et al., CVPR 2021) per-class weights of the positive / negative terms, from the
    accumulated gradient sums: ``r_j = f(g_j)`` with ``g_j = pos_j / (neg_j + 1e-10)`` and
    ``f(x) = 1 / (1 + exp(-gamma (x - mu)))``; ``q_j = 1 + alpha (1 - r_j)``. The background
    (objectness) column gets ``q = r = 1``. Before any statistics exist (all sums zero) every
    weight is 1, as the code's first iteration.

    Paper vs code: the paper's weights at iteration t use the ratio accumulated up to t; the code
    (and we) use the sums of the previous iterations (this step's gradient is collected after its
    loss).

    Args:
        pos_grad, neg_grad (Tensor): (K,), float (float64 buffers), the accumulated sums
            (:func:`eqlv2_gradient_increment`).
        gamma, mu, alpha (float): the mapping's slope and centre, the positive weight's gain.
    Returns:
        tuple[Tensor, Tensor]: (pos_w, neg_w), (K + 1,) each, float64.
    """
    pos_grad = pos_grad.to(torch.float64)
    neg_grad = neg_grad.to(torch.float64)
    started = neg_grad.sum() > 0
    neg_w = torch.sigmoid(gamma * (pos_grad / (neg_grad + 1e-10) - mu))
    neg_w = torch.where(started, neg_w, torch.ones_like(neg_w))
    neg_w = torch.cat([neg_w, neg_w.new_ones(1)])
    return 1 + alpha * (1 - neg_w), neg_w


def _eqlv2_elementwise_weights(target, pos_w, neg_w):
    pos_w = pos_w.to(device=target.device, dtype=target.dtype)
    neg_w = neg_w.to(device=target.device, dtype=target.dtype)
    return pos_w * target + neg_w * (1 - target)


@at_least_float32
def eqlv2_loss(logits, gt_classes, pos_w, neg_w, reduction="mean"):
    """
    EQLv2: ``K + 1`` sigmoid logits (background last, its target 1 for background ROIs), binary
    cross-entropy with weight ``q_j`` on the positive and ``r_j`` on the negative terms
    (:func:`eqlv2_weights`), summed over the K + 1 columns, divided by N.

    Args:
        logits (Tensor): (N, K + 1), float, background last.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        pos_w, neg_w (Tensor): (K + 1,), float (float64 from :func:`eqlv2_weights`).
        reduction (str): ``"mean"`` (sum / N) or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), float32 or float64.
    """
    z = logits
    target = one_hot_targets(z, gt_classes)
    weight = _eqlv2_elementwise_weights(target, pos_w, neg_w)
    loss = F.binary_cross_entropy_with_logits(z, target, reduction="none") * weight
    return reduce_rois(loss.sum(dim=1), reduction)


@torch.no_grad()
@at_least_float32
def eqlv2_gradient_increment(logits, gt_classes, pos_w, neg_w):
    """
    This step's EQLv2 statistics: per foreground class, the sums over ROIs of the weighted
    gradient magnitudes of the positive (``q_j |sigmoid(z_ij) - 1|``, ROIs of class j) and negative
    (``r_j sigmoid(z_ij)``, all other ROIs) terms. The background column is not collected.

    Paper vs code: the paper defines the per-iteration gradient averaged over the batch (``1/|I|``);
    the code sums it without that factor. We follow the code (the ratio differs only when the
    number of sampled ROIs changes between iterations).

    Args:
        logits (Tensor): (N, K + 1), float (detached inside).
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        pos_w, neg_w (Tensor): (K + 1,), float, the weights of this step (:func:`eqlv2_weights`).
    Returns:
        tuple[Tensor, Tensor]: (pos, neg), (K,) float64 each.
    """
    z = logits.detach()
    target = one_hot_targets(z, gt_classes)
    # |sigmoid(z) - t| is sigmoid(-z) for a positive, sigmoid(z) for a negative (no cancellation)
    magnitude = torch.where(target > 0, (-z).sigmoid(), z.sigmoid())
    weighted = magnitude * _eqlv2_elementwise_weights(target, pos_w, neg_w)
    pos = (weighted * target).sum(dim=0)[:-1]
    neg = (weighted * (1 - target)).sum(dim=0)[:-1]
    return pos.to(torch.float64), neg.to(torch.float64)


@at_least_float32
def objectness_sigmoid_probs(logits):
    """Inference of EQLv2 and ECM (their code's ``get_activation``): ``sigmoid(z_j) * (1 - sigmoid(z_bg))``
    for the K classes, ``sigmoid(z_bg)`` last. For ECM this is not its training probability
    ``sigmoid(2 z + m+ - m-)`` without margins (that would be ``sigmoid(2 z)``): we follow its code.

    Args:
        logits (Tensor): (N, K + 1), float, background last.
    Returns:
        Tensor: (N, K + 1), float32 or float64, background last.
    """
    s = logits.sigmoid()
    return torch.cat([s[:, :-1] * (1 - s[:, -1:]), s[:, -1:]], dim=1)


@CLS_LOSS_REGISTRY.register()
class EQLv2Loss(ClsLoss):
    """
    The gradient sums are the float64 buffers ``pos_grad`` / ``neg_grad``; this step's (from its own
    formula on the real logits, as the authors' code, not from a backward hook) is added after its
    loss and all-reduced, as the authors' code does.
    """

    name = "eqlv2"

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
        return eqlv2_weights(self.pos_grad, self.neg_grad, self.gamma, self.mu, self.alpha)

    def per_roi_loss(self, logits, gt_classes):
        return eqlv2_loss(logits, gt_classes, *self.weights(), reduction="none")

    @torch.no_grad()
    def after_loss(self, logits, gt_classes):
        pos, neg = eqlv2_gradient_increment(logits, gt_classes, *self.weights())
        inc = all_reduce_sum(torch.cat([pos, neg]).to(self.pos_grad.device))
        self.pos_grad += inc[: self.num_classes]
        self.neg_grad += inc[self.num_classes:]

    def probs(self, logits):
        return objectness_sigmoid_probs(logits)

    def extra_repr(self):
        return super().extra_repr() + f", gamma={self.gamma}, mu={self.mu}, alpha={self.alpha}"
