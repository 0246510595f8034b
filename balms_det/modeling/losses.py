"""Classification losses of the Balanced Softmax ROI heads, as plain functions (tensors in, tensor out).

Notation: ``K`` foreground classes; softmax classifiers have ``K + 1`` logits (background last, as in
detectron2), sigmoid classifiers have ``K`` logits and no background logit. ``gt_classes`` holds
labels in ``[0, K]``, ``K`` meaning background.

* Balanced Softmax (BALMS Eq. 4, tau = 1; Eq. 10, tau = 1/4; Menon et al.'s logit-adjusted loss):
  ``cross_entropy(z + tau * shift, y)`` at training time, plain ``softmax(z)`` at test time.
* Post-hoc logit adjustment (Menon et al.): a plain-softmax model predicts with ``z - tau * shift``.
* The ``shift`` vector (length ``K + 1``) is where the background decision lives, see
  :func:`softmax_logit_shift`.
* Sigmoid variant of the official BALMS instance-segmentation code: ``K`` sigmoid logits; for
  foreground ROIs only ``z_j - log((1 - p_j) / p_j)``; binary cross-entropy summed over classes and
  divided by the number of ROIs.

Precision (AMP): every function of the logits here and in :mod:`~balms_det.modeling.peer_losses` is
computed in at least float32 (:func:`at_least_float32`): half-precision logits are upcast before any
prior shift, the float64 priors are cast to float32 (not to half), and autocast is off inside, so a
loss or a calibration computed under ``torch.autocast`` equals the float32 one from the same logits.
Float32 and float64 logits are used as they are.
"""
import functools
import math

import torch
from torch.nn import functional as F

__all__ = [
    "at_least_float32",
    "BACKGROUND_MODES",
    "log_prior",
    "softmax_logit_shift",
    "softmax_ce_loss",
    "softmax_probs",
    "balanced_softmax_loss",
    "posthoc_adjust",
    "norcal_probs",
    "sigmoid_ce_loss",
    "balanced_sigmoid_loss",
    "sigmoid_prior_bias",
    "sigmoid_probs_with_background",
]

_HALF = (torch.float16, torch.bfloat16)


def at_least_float32(fn):
    """
    Decorator of the functions of the logits (the first argument): ``fn`` is computed in at least
    float32, whatever AMP does. Half-precision logits (float16 / bfloat16) are upcast to float32, and
    ``fn`` runs with autocast off on their device (autocast would run e.g. a matmul in half precision
    even on float32 tensors); float32 and float64 logits are passed as they are, so ``fn`` casts its
    float64 priors to the logits' dtype, float32 or float64, never to half. The result (and the
    gradient inside ``fn``) is float32 for half-precision logits.
    """

    @functools.wraps(fn)
    def wrapper(logits, *args, **kwargs):
        if logits.dtype in _HALF:
            logits = logits.float()
        if logits.device.type not in ("cpu", "cuda"):  # no autocast to turn off there
            return fn(logits, *args, **kwargs)
        with torch.autocast(logits.device.type, enabled=False):
            return fn(logits, *args, **kwargs)

    return wrapper


# How the background logit of a softmax classifier is treated (``MODEL.BALMS.BACKGROUND``):
#   "unadjusted": background shift 0, foreground shift log n_j (optionally centered, see log_prior).
#   "running":    every logit, background included, is shifted by the log of the running frequency
#                 of the sampled ROI labels (the label prior the classifier actually sees).
BACKGROUND_MODES = ("unadjusted", "running")


def log_prior(counts, center=True):
    """
    ``log n_j`` for a vector of positive counts; with ``center=True`` minus the log of the mean count,
    i.e. ``log(K * pi_j)`` with ``pi_j = n_j / sum(n)``: a class of average frequency is not moved.
    Centering only matters when some logit (the background) is left unshifted.
    """
    if not counts.is_floating_point():
        counts = counts.to(torch.float64)
    out = counts.log()
    if center:
        out = out - counts.mean().log()
    return out


def softmax_logit_shift(fg_counts=None, background="unadjusted", center=True, roi_label_counts=None):
    """
    The ``K + 1`` vector added (times tau) to the logits by Balanced Softmax, background last.

    Args:
        fg_counts: (K,) positive training counts of the foreground classes (``"unadjusted"`` only).
        background: one of :data:`BACKGROUND_MODES`.
            ``"unadjusted"``: ``[log n_1 .. log n_K, 0]``, with ``center=True``
            ``[log(K pi_1) .. log(K pi_K), 0]``. With centering this is the label-prior correction
            towards a test prior that keeps training's foreground/background split and is uniform
            over the foreground classes; without it every foreground logit is also moved by
            ``log(mean n)`` relative to background, which changes the detection rate.
            ``"running"``: ``log pi_j`` for all ``K + 1`` labels, ``pi`` = frequency of the sampled
            ROI labels (background included); corrects towards a test prior uniform over all
            ``K + 1`` labels, so fewer ROIs are called background at test time.
        roi_label_counts: (K+1,) positive counts of sampled ROI labels (``"running"`` only).
    """
    if background == "unadjusted":
        fg = log_prior(fg_counts, center=center)
        return torch.cat([fg, fg.new_zeros(1)])
    if background == "running":
        return log_prior(roi_label_counts, center=True)
    raise ValueError(f"Unknown background mode {background!r}; expected one of {BACKGROUND_MODES}")


@at_least_float32
def softmax_ce_loss(logits, gt_classes, reduction="mean"):
    """detectron2's softmax cross-entropy ``CE(z, y)`` (the baseline): (N, C) logits, (N,) labels;
    ``reduction`` as :func:`torch.nn.functional.cross_entropy`'s (``"mean"`` over the N ROIs, ``"none"``)."""
    return F.cross_entropy(logits, gt_classes, reduction=reduction)


@at_least_float32
def softmax_probs(logits):
    """``softmax(z)`` over the last dimension: (N, C) -> (N, C)."""
    return F.softmax(logits, dim=-1)


@at_least_float32
def balanced_softmax_loss(logits, gt_classes, shift, tau=1.0, reduction="mean"):
    """
    Balanced Softmax / logit-adjusted cross-entropy: ``CE(z + tau * shift, y)``.

    Args:
        logits: (N, C) logits z. gt_classes: (N,) int64 labels. shift: (C,), e.g. from
        :func:`softmax_logit_shift`. tau: 1 = BALMS Eq. 4, 0 = plain cross-entropy.
    """
    if logits.numel() == 0 and reduction == "mean":
        return logits.sum() * 0.0
    if tau != 0:
        logits = logits + tau * shift.to(dtype=logits.dtype, device=logits.device)
    return F.cross_entropy(logits, gt_classes, reduction=reduction)


@at_least_float32
def posthoc_adjust(logits, shift, tau):
    """Post-hoc logit adjustment (Menon et al.): ``z - tau * shift`` (use the training-time shift)."""
    if tau == 0:
        return logits
    return logits - tau * shift.to(dtype=logits.dtype, device=logits.device)


@at_least_float32
def norcal_probs(logits, counts, gamma=1.0):
    """
    NorCal (Pan et al., NeurIPS 2021), as the authors' code computes it (``WITH: exps``, ``RENORM``):
    each foreground class's ``exp(z_c)`` divided by ``counts_c ** gamma``, the background's kept, all
    K + 1 renormalised; that is ``softmax(z - gamma * [log n_1 .. log n_K, 0])`` (computed so, without
    the code's unguarded ``exp``). Unlike logit adjustment's centered shift, the raw counts also move
    every foreground class against background.

    Args:
        logits: (N, K + 1) softmax logits, background last. counts: (K,) positive training counts
        (the authors use training image counts). gamma: the exponent (0 = plain softmax).
    """
    log_n = counts.to(device=logits.device, dtype=torch.float64).log()
    shift = torch.cat([log_n, log_n.new_zeros(1)]).to(logits.dtype)
    return F.softmax(logits - gamma * shift, dim=-1)


def one_hot_targets(logits, gt_classes):
    """(N, C) one-hot targets in the logits' dtype, C = the logits' columns; a label C (background
    when C = K) gives an all-zero row. Shared with :mod:`~balms_det.modeling.peer_losses`."""
    n, k = logits.shape
    target = logits.new_zeros(n, k + 1)
    target[torch.arange(n, device=logits.device), gt_classes] = 1
    return target[:, :k]


def reduce_rois(per_roi, reduction):
    """(N,) per-ROI losses -> themselves (``"none"``) or their sum divided by N (``"mean"``, the
    official normalisation). Shared with :mod:`~balms_det.modeling.peer_losses`."""
    if reduction == "none":
        return per_roi
    if reduction == "mean":
        return per_roi.sum() / max(per_roi.shape[0], 1)
    raise ValueError(f"Unknown reduction {reduction!r}; expected 'mean' or 'none'")


def _reduce_per_roi(loss, reduction):
    """(N, K) elementwise losses -> summed over classes per ROI, then :func:`reduce_rois`."""
    return reduce_rois(loss.sum(dim=1), reduction)


@at_least_float32
def sigmoid_ce_loss(logits, gt_classes, reduction="mean"):
    """
    Sigmoid baseline: ``K`` logits, one-hot targets (all zero for background ROIs), binary
    cross-entropy summed over classes and divided by the number of ROIs
    (``reduction="none"``: the (N,) per-ROI sums).
    """
    if logits.numel() == 0 and reduction == "mean":
        return logits.sum() * 0.0
    target = one_hot_targets(logits, gt_classes)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return _reduce_per_roi(loss, reduction)


@at_least_float32
def balanced_sigmoid_loss(logits, gt_classes, image_freq, eps=1e-12, reduction="mean"):
    """
    Sigmoid variant of Balanced Softmax, as in the official BALMS instance-segmentation code.

    For foreground ROIs (label < K) the logits become ``z_j - log((1 - p_j) / p_j)``; background ROIs
    keep their logits and have an all-zero target. Binary cross-entropy summed over classes / N.

    Args:
        logits: (N, K). gt_classes: (N,) labels in [0, K].
        image_freq: (K,) ``p_j = image_count_j / number of training images``, clamped to
            ``[eps, 1 - eps]`` so the log-odds stay finite.
        reduction: ``"mean"`` (sum / N) or ``"none"`` ((N,) per-ROI sums over classes).
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
    return _reduce_per_roi(loss, reduction)


def sigmoid_prior_bias(prior_prob):
    """Bias that makes every sigmoid start at probability ``prior_prob``: ``-log((1 - p0) / p0)``."""
    return -math.log((1 - prior_prob) / prior_prob)


@at_least_float32
def sigmoid_probs_with_background(logits):
    """``sigmoid(z)`` with a zero background column appended: (N, K) -> (N, K + 1)."""
    probs = logits.sigmoid()
    return torch.cat([probs, probs.new_zeros(probs.shape[0], 1)], dim=1)
