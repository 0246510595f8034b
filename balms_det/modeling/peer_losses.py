"""The peers of Balanced Softmax as plain functions: Seesaw, EQLv2, ECM and the federated loss.

Notation as in :mod:`~balms_det.modeling.losses`: ``K`` foreground classes, ``gt_classes`` in
``[0, K]`` with ``K`` = background, ``N`` sampled ROIs. Every loss returns, with
``reduction="none"``, the (N,) per-ROI losses ``l_i`` whose ``sum / N`` is the published loss
(``reduction="mean"``). Every function of the logits is computed in at least float32, also under
AMP (:func:`~balms_det.modeling.losses.at_least_float32`).
Nothing here has state: what a method accumulates during training (Seesaw's class counts, EQLv2's
gradient sums) is passed in, and its per-step increment is computed by a separate function
(:func:`seesaw_count_increment`, :func:`eqlv2_gradient_increment`); the box predictor keeps the sums.

Logits per method (the classifier's outputs, all of them in one tensor):

* Seesaw: ``K + 2``, ``K`` class logits then the objectness pair ``[foreground, background]``.
* EQLv2, ECM: ``K + 1`` sigmoid logits, the last one a background ("objectness") logit.
* federated: ``K`` sigmoid logits.

Where the paper and the authors' code differ we follow the code; the differences are listed in
each function's docstring (read in mmdetection's ``seesaw_loss.py``, tztztztztz/eqlv2's
``eqlv2.py``, janghyuncho/ECM-Loss's ``effective_class_margin_loss.py``, detectron2's ``fast_rcnn.py``).
"""
import math

import torch
from torch.nn import functional as F

from .losses import at_least_float32, one_hot_targets, reduce_rois

__all__ = [
    "seesaw_log_factors",
    "seesaw_loss",
    "seesaw_count_increment",
    "seesaw_probs",
    "eqlv2_weights",
    "eqlv2_loss",
    "eqlv2_gradient_increment",
    "ecm_margins",
    "ecm_loss",
    "objectness_sigmoid_probs",
    "federated_class_mask",
    "federated_loss",
]


# ------------------------------------------------------------------------------------------ Seesaw
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
        class_logits: (N, K) class logits (detached inside). labels: (N,) labels in [0, K).
        cum_counts: (K,) cumulative counts N_j. p, q: the exponents (0 disables a factor).
    Returns:
        (N, K) ``log S`` in the logits' dtype (float32 for half-precision logits), no gradient.
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
        logits: (N, K + 2). gt_classes: (N,) in [0, K]. cum_counts: (K,) cumulative class counts
        (:func:`seesaw_count_increment`, the current batch included).
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
    """(K,) float64 number of ROIs of each foreground class in this batch (Seesaw's count step)."""
    counts = torch.bincount(gt_classes, minlength=num_classes + 1)[:num_classes]
    return counts.to(torch.float64)


@at_least_float32
def seesaw_probs(logits):
    """Seesaw inference (mmdetection's ``get_activation``): ``[softmax(z) * P(fg), P(bg)]`` with the
    objectness probabilities ``softmax(o)``; (N, K + 2) -> (N, K + 1), background last."""
    z = logits
    k = z.shape[1] - 2
    obj = F.softmax(z[:, k:], dim=1)
    return torch.cat([F.softmax(z[:, :k], dim=1) * obj[:, :1], obj[:, 1:]], dim=1)


# ------------------------------------------------------------------------------------------- EQLv2
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
        pos_grad, neg_grad: (K,) accumulated sums (:func:`eqlv2_gradient_increment`).
    Returns:
        (pos_w, neg_w): (K + 1,) each, float64.
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
        logits: (N, K + 1). gt_classes: (N,) in [0, K]. pos_w, neg_w: (K + 1,).
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

    Returns:
        (pos, neg): (K,) float64 each.
    """
    z = logits.detach()
    target = one_hot_targets(z, gt_classes)
    # |sigmoid(z) - t| is sigmoid(-z) for a positive, sigmoid(z) for a negative (no cancellation)
    magnitude = torch.where(target > 0, (-z).sigmoid(), z.sigmoid())
    weighted = magnitude * _eqlv2_elementwise_weights(target, pos_w, neg_w)
    pos = (weighted * target).sum(dim=0)[:-1]
    neg = (weighted * (1 - target)).sum(dim=0)[:-1]
    return pos.to(torch.float64), neg.to(torch.float64)


# --------------------------------------------------------------------------------------------- ECM
def ecm_margins(fg_counts, fg_bg_ratio=6.3313):
    """
    ECM Loss (Cho & Krähenbühl, ECCV 2022) margins and class weights from the class frequencies.

    ``n_j`` = training image counts of the K classes and, for the background column,
    ``fg_bg_ratio * sum(n)``; ``n+_j = n_j``, ``n-_j = sum(n) - n_j`` (all K + 1 entries). Then
    ``m+_j = log((n+^(1/4) + n-^(1/4)) / n-^(1/4))``, ``m-_j = log((n+^(1/4) + n-^(1/4)) / n+^(1/4))``
    and ``w_j = a_j log((1 + a_j) / a_j)`` with ``a_j = n-_j / n+_j``.

    Paper vs code: the code takes ``n`` from LVIS's image counts and an empirical background count
    (``fg_bg_ratio`` = 6.3313 "from Mask R-CNN"); we follow it (image counts from
    ``MODEL.BALMS.PRIOR``, ``MODEL.BALMS.ECM.FG_BG_RATIO``). Only the paper's abstract could be read
    here, so these formulas are the authors' code's (janghyuncho/ECM-Loss), checked in the tests in
    their exponential form.

    Returns:
        (m_pos, m_neg, weight): (K + 1,) float64 each.
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
    """
    z = logits
    target = one_hot_targets(z, gt_classes)
    offset = (m_pos - m_neg).to(device=z.device, dtype=z.dtype)
    loss = F.binary_cross_entropy_with_logits(2 * z + offset, target, reduction="none")
    return reduce_rois((loss * weight.to(device=z.device, dtype=z.dtype)).sum(dim=1), reduction)


@at_least_float32
def objectness_sigmoid_probs(logits):
    """Inference of EQLv2 and ECM (their code's ``get_activation``): ``sigmoid(z_j) * (1 - sigmoid(z_bg))``
    for the K classes, ``sigmoid(z_bg)`` last; (N, K + 1) -> (N, K + 1). For ECM this is not its
    training probability ``sigmoid(2 z + m+ - m-)`` without margins (that would be ``sigmoid(2 z)``):
    we follow its code."""
    s = logits.sigmoid()
    return torch.cat([s[:, :-1] * (1 - s[:, -1:]), s[:, -1:]], dim=1)


# --------------------------------------------------------------------------------------- federated
def federated_class_mask(fed_classes, num_classes):
    """(K,) 0/1 float mask of the classes in ``fed_classes`` (indices in [0, K]; K = background is
    dropped), the classes the federated loss sees this step."""
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
    """
    z = logits
    target = one_hot_targets(z, gt_classes)
    loss = F.binary_cross_entropy_with_logits(z, target, reduction="none")
    return reduce_rois((loss * class_mask.to(device=z.device, dtype=z.dtype)).sum(dim=1), reduction)
