"""``seesaw``: Seesaw Loss (Wang et al., CVPR 2021; mmdetection's ``SeesawLoss``, read in its
``seesaw_loss.py``): K class logits and an objectness pair (K + 2), each negative class of a label scaled
by mitigation x compensation factors from the cumulative class counts; inference
``softmax(classes) x P(object)``. Where the paper and the code differ we follow the code (each
function's docstring says where)."""
import math

import torch
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY, ClsLoss, all_reduce_sum
from .utils import at_least_float32, reduce_rois

__all__ = ["seesaw_log_factors", "seesaw_loss", "seesaw_count_increment", "seesaw_probs", "SeesawLoss"]


@at_least_float32
def seesaw_log_factors(class_logits, labels, cum_counts, p=0.8, q=2.0, eps=1e-2):
    """
    ``log S_ij`` of Seesaw Loss (Wang et al., CVPR 2021) for ROIs with foreground labels ``i``:
    ``S_ij = M_ij * C_ij`` on the off-diagonal, ``S_ii = 1``.

    * mitigation ``M_ij = (N_j / N_i)^p`` if ``N_i > N_j`` else 1, with ``N`` the cumulative
      class counts, each clamped to >= 1;
    * compensation ``C_ij = (sigma_j / sigma_i)^q`` if ``sigma_j > sigma_i`` else 1, with
      ``sigma = softmax`` of the (detached) K class logits.

    Paper vs code: the code divides by ``max(sigma_i, eps)`` (``eps = 1e-2``), the paper by ``sigma_i``;
    we follow the code. Computed in the log domain from ``log_softmax`` (the same values).

    Args:
        class_logits (Tensor): (N, K), float, the class logits (detached inside).
        labels (Tensor): (N,), int64, foreground labels in [0, K).
        cum_counts (Tensor): (K,), float (float64 buffer), the cumulative counts N_j.
        p, q (float): the exponents (0 disables a factor). eps (float): the floor of ``sigma_i``.
    Returns:
        Tensor: (N, K) ``log S`` in the logits' dtype (float32 for half-precision logits), no gradient.
    """
    z = class_logits.detach()
    n, k = z.shape
    log_s = z.new_zeros(n, k)
    if p > 0:
        log_n = cum_counts.to(device=z.device, dtype=torch.float64).clamp(min=1).log().to(z.dtype)
        log_s = log_s + (log_n[None, :] - log_n[labels][:, None]).clamp(max=0) * p
    if q > 0:
        log_sigma = F.log_softmax(z, dim=1)
        log_self = log_sigma.gather(1, labels[:, None]).clamp(min=math.log(eps))
        log_s = log_s + (log_sigma - log_self).clamp(min=0) * q
    return log_s.scatter(1, labels[:, None], 0.0)


@at_least_float32
def seesaw_loss(logits, gt_classes, cum_counts, p=0.8, q=2.0, eps=1e-2, reduction="mean"):
    """
    Seesaw Loss with its objectness branch, as in mmdetection's ``SeesawLoss`` (the authors' code).

    ``l_i = [y_i < K] * CE(z_i + log S_i, y_i) + CE(o_i, [y_i == K])``: the Seesaw cross-entropy on the
    K class logits ``z`` for foreground ROIs only (:func:`seesaw_log_factors`; ``softmax`` of
    ``z + log S`` is the paper's ``exp(z_y) / (sum_{j != y} S_yj exp(z_j) + exp(z_y))``), plus a
    2-way cross-entropy on the objectness logits ``o`` (foreground, background) for every ROI.
    ``sum_i l_i / N``, N = all sampled ROIs, is mmdetection's ``loss_cls_classes + loss_cls_objectness``
    (both averaged over all ROIs there too).

    Paper vs code: the paper's equations are those of the class term; the code adds the objectness
    term (2 extra logits) and returns the two terms apart, which we sum into one.

    Args:
        logits (Tensor): (N, K + 2), float, the K class logits then the objectness pair.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        cum_counts (Tensor): (K,), float (float64 buffer), the cumulative class counts
            (:func:`seesaw_count_increment`, the current batch included).
        p, q, eps (float): as :func:`seesaw_log_factors`.
        reduction (str): ``"mean"`` (sum / N) or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), float32 or float64.
    """
    z = logits
    k = z.shape[1] - 2
    cls, obj = z[:, :k], z[:, k:]
    fg = gt_classes < k
    labels = gt_classes.clamp(max=k - 1)  # background rows: any label, masked out below
    log_s = seesaw_log_factors(cls, labels, cum_counts, p, q, eps)
    cls_loss = F.cross_entropy(cls + log_s, labels, reduction="none")
    obj_loss = F.cross_entropy(obj, (~fg).long(), reduction="none")
    return reduce_rois(torch.where(fg, cls_loss, torch.zeros_like(cls_loss)) + obj_loss, reduction)


def seesaw_count_increment(gt_classes, num_classes):
    """The number of ROIs of each foreground class in this batch (Seesaw's count step).

    Args:
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        num_classes (int): K.
    Returns:
        Tensor: (K,), float64.
    """
    counts = torch.bincount(gt_classes, minlength=num_classes + 1)[:num_classes]
    return counts.to(torch.float64)


@at_least_float32
def seesaw_probs(logits):
    """Seesaw inference (mmdetection's ``get_activation``): ``[softmax(z) * P(fg), P(bg)]`` with the
    objectness probabilities ``softmax(o)``.

    Args:
        logits (Tensor): (N, K + 2), float.
    Returns:
        Tensor: (N, K + 1), float32 or float64, background last.
    """
    z = logits
    k = z.shape[1] - 2
    obj = F.softmax(z[:, k:], dim=1)
    return torch.cat([F.softmax(z[:, :k], dim=1) * obj[:, :1], obj[:, 1:]], dim=1)


@CLS_LOSS_REGISTRY.register()
class SeesawLoss(ClsLoss):
    """
    The cumulative ROI counts per class are the float64 buffer ``cum_counts``, this batch added before
    its loss, every step's increment all-reduced (so every DDP rank holds the global counts).
    mmdetection keeps them per GPU in float32 (exact only up to 2^24 ROIs per class).
    """

    name = "seesaw"
    extra_logits = 2

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
        self.cum_counts += all_reduce_sum(seesaw_count_increment(gt_classes, self.num_classes)).to(self.cum_counts)

    def per_roi_loss(self, logits, gt_classes):
        return seesaw_loss(logits, gt_classes, self.cum_counts, self.p, self.q, self.eps, reduction="none")

    def probs(self, logits):
        return seesaw_probs(logits)

    def extra_repr(self):
        return super().extra_repr() + f", p={self.p}, q={self.q}, eps={self.eps}"
