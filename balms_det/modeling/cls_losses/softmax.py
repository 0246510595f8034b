"""``softmax``: detectron2's cross-entropy over K + 1 logits (the baseline), and the logit prior that
Balanced Softmax trains with and post-hoc logit adjustment predicts with."""
import torch

from .. import losses as L
from .base import CLS_LOSS_REGISTRY, ClsLoss

__all__ = ["SoftmaxLoss"]


@CLS_LOSS_REGISTRY.register()
class SoftmaxLoss(ClsLoss):
    """
    ``CE(z, y)`` over K + 1 logits, ``softmax(z)`` at inference. Holds the logit prior of the softmax
    family (:meth:`logit_shift`, see :func:`~balms_det.modeling.losses.softmax_logit_shift`):
    ``background="unadjusted"`` shifts foreground logits by the class prior ``class_counts``
    (centered with ``center_prior``); ``"running"`` shifts all K + 1 logits by the running frequency
    of the sampled ROI labels, the ``roi_label_counts`` buffer (each DDP worker counts its own ROIs:
    the same distribution, so nothing is synchronised), updated before every training loss.
    """

    name = "softmax"
    softmax_logits = True
    legacy_buffers = {"class_counts": "class_counts", "roi_label_counts": "roi_label_counts"}
    legacy_kwargs = {"background": "background", "center_prior": "center_prior",
                     "roi_count_smoothing": "roi_count_smoothing"}

    def __init__(self, num_classes, *, background="unadjusted", center_prior=True, roi_count_smoothing=1.0,
                 **kwargs):
        super().__init__(num_classes, **kwargs)
        if background not in L.BACKGROUND_MODES:
            raise ValueError(f"Unknown background {background!r}; expected {L.BACKGROUND_MODES}")
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
            return L.softmax_logit_shift(background="running",
                                         roi_label_counts=self.roi_label_counts + self.roi_count_smoothing)
        if not hasattr(self, "class_counts"):
            raise ValueError(f"cls_loss={self.name!r} with background 'unadjusted' needs class_counts for its shift")
        return L.softmax_logit_shift(self.class_counts, center=self.center_prior)

    def per_roi_loss(self, logits, gt_classes):
        return L.softmax_ce_loss(logits, gt_classes, reduction="none")

    def plain_loss(self, logits, gt_classes):
        """The meta loss of BALMS: cross-entropy, no prior, no weights (mean over ROIs)."""
        return L.softmax_ce_loss(logits, gt_classes, reduction="mean")

    @torch.no_grad()
    def before_loss(self, gt_classes):
        if self.background == "running" and gt_classes.numel():
            counts = torch.bincount(gt_classes, minlength=self.num_classes + 1)
            self.roi_label_counts += counts[: self.num_classes + 1].to(self.roi_label_counts.dtype)

    def probs(self, logits):
        return L.softmax_probs(logits)
