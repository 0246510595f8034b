"""``softmax``: detectron2's cross-entropy over K + 1 logits (the baseline), and the logit prior that
Balanced Softmax trains with and post-hoc logit adjustment predicts with: the ``shift`` vector (length
``K + 1``, background last) is where the background decision lives, see :func:`softmax_logit_shift`."""
import torch
from torch.nn import functional as F

from .base import CLS_LOSS_REGISTRY, ClsLoss
from .utils import at_least_float32

__all__ = ["BACKGROUND_MODES", "log_prior", "softmax_logit_shift", "softmax_ce_loss", "softmax_probs", "SoftmaxLoss"]

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

    Args:
        counts (Tensor): (C,), positive; integer counts are taken as float64.
        center (bool): subtract ``log(mean(counts))``.
    Returns:
        Tensor: (C,), the counts' floating dtype.
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
        fg_counts (Tensor): (K,), float, positive training counts of the foreground classes
            (``"unadjusted"`` only).
        background (str): one of :data:`BACKGROUND_MODES`.
            ``"unadjusted"``: ``[log n_1 .. log n_K, 0]``, with ``center=True``
            ``[log(K pi_1) .. log(K pi_K), 0]``. With centering this is the label-prior correction
            towards a test prior that keeps training's foreground/background split and is uniform
            over the foreground classes; without it every foreground logit is also moved by
            ``log(mean n)`` relative to background, which changes the detection rate.
            ``"running"``: ``log pi_j`` for all ``K + 1`` labels, ``pi`` = frequency of the sampled
            ROI labels (background included); corrects towards a test prior uniform over all
            ``K + 1`` labels, so fewer ROIs are called background at test time.
        center (bool): ``"unadjusted"``: center the foreground shift (:func:`log_prior`).
        roi_label_counts (Tensor): (K + 1,), float, positive counts of sampled ROI labels, background
            last (``"running"`` only).
    Returns:
        Tensor: (K + 1,), the counts' floating dtype (float64 for the loss modules' buffers).
    """
    if background == "unadjusted":
        fg = log_prior(fg_counts, center=center)
        return torch.cat([fg, fg.new_zeros(1)])
    if background == "running":
        return log_prior(roi_label_counts, center=True)
    raise ValueError(f"Unknown background mode {background!r}; expected one of {BACKGROUND_MODES}")


@at_least_float32
def softmax_ce_loss(logits, gt_classes, reduction="mean"):
    """
    detectron2's softmax cross-entropy ``CE(z, y)`` (the baseline).

    Args:
        logits (Tensor): (N, K + 1), float, background last.
        gt_classes (Tensor): (N,), int64, labels in [0, K].
        reduction (str): as :func:`torch.nn.functional.cross_entropy`'s: ``"mean"`` over the N ROIs, or
            ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), float32 or float64 (the logits', float32 for
        half precision).
    """
    return F.cross_entropy(logits, gt_classes, reduction=reduction)


@at_least_float32
def softmax_probs(logits):
    """``softmax(z)`` over the last dimension.

    Args:
        logits (Tensor): (N, C), float.
    Returns:
        Tensor: (N, C), float32 or float64.
    """
    return F.softmax(logits, dim=-1)


@CLS_LOSS_REGISTRY.register()
class SoftmaxLoss(ClsLoss):
    """
    ``CE(z, y)`` over K + 1 logits, ``softmax(z)`` at inference. Holds the logit prior of the softmax
    family (:meth:`logit_shift`, see :func:`softmax_logit_shift`):
    ``background="unadjusted"`` shifts foreground logits by the class prior ``class_counts``
    (centered with ``center_prior``); ``"running"`` shifts all K + 1 logits by the running frequency
    of the sampled ROI labels, the ``roi_label_counts`` buffer (each DDP worker counts its own ROIs:
    the same distribution, so nothing is synchronised), updated before every training loss.
    """

    name = "softmax"
    softmax_logits = True

    def __init__(self, num_classes, *, background="unadjusted", center_prior=True, roi_count_smoothing=1.0,
                 **kwargs):
        super().__init__(num_classes, **kwargs)
        if background not in BACKGROUND_MODES:
            raise ValueError(f"Unknown background {background!r}; expected {BACKGROUND_MODES}")
        self.background = background
        self.center_prior = bool(center_prior)
        self.roi_count_smoothing = float(roi_count_smoothing)
        if background == "running":
            self.register_state("roi_label_counts", self.num_classes + 1)

    @classmethod
    def from_config(cls, cfg):
        b = cfg.MODEL.BALMS
        return {"background": b.BACKGROUND, "center_prior": b.CENTER_PRIOR,
                "roi_count_smoothing": b.ROI_COUNT_SMOOTHING}

    def logit_shift(self):
        """The (K+1,) shift of the class prior (Balanced Softmax trains with it, logit adjustment
        predicts with it)."""
        if self.background == "running":
            return softmax_logit_shift(background="running",
                                       roi_label_counts=self.roi_label_counts + self.roi_count_smoothing)
        if not hasattr(self, "class_counts"):
            raise ValueError(f"cls_loss={self.name!r} with background 'unadjusted' needs class_counts for its shift")
        return softmax_logit_shift(self.class_counts, center=self.center_prior)

    def per_roi_loss(self, logits, gt_classes):
        return softmax_ce_loss(logits, gt_classes, reduction="none")

    def plain_loss(self, logits, gt_classes):
        """The meta loss of BALMS: cross-entropy, no prior, no weights (mean over ROIs)."""
        return softmax_ce_loss(logits, gt_classes, reduction="mean")

    @torch.no_grad()
    def before_loss(self, gt_classes):
        if self.background == "running" and gt_classes.numel():
            counts = torch.bincount(gt_classes, minlength=self.num_classes + 1)
            self.roi_label_counts += counts[: self.num_classes + 1].to(self.roi_label_counts.dtype)

    def probs(self, logits):
        return softmax_probs(logits)
