"""``ecm``: Effective Class-Margin loss (Cho & Kraehenbuehl, ECCV 2022; janghyuncho/ECM-Loss): sigmoid
BCE on K + 1 logits with class margins and weights from the class counts; inference as its code,
``sigmoid(z_j) * (1 - sigmoid(z_bg))``."""
from .. import peer_losses as P
from .base import CLS_LOSS_REGISTRY, ClsLoss

__all__ = ["ECMLoss"]


@CLS_LOSS_REGISTRY.register()
class ECMLoss(ClsLoss):
    """Margins from ``class_counts`` (image counts of ``MODEL.BALMS.PRIOR``) and a background count of
    ``fg_bg_ratio`` times their sum; recomputed per call (a (K+1,) vector, no derived state)."""

    name = "ecm"
    uses_prior = True
    legacy_kwargs = {"ecm_fg_bg_ratio": "fg_bg_ratio"}

    def __init__(self, num_classes, *, fg_bg_ratio=6.3313, **kwargs):
        super().__init__(num_classes, **kwargs)
        if fg_bg_ratio <= 0:
            raise ValueError(f"ECM needs fg_bg_ratio > 0, got {fg_bg_ratio}")
        self.fg_bg_ratio = float(fg_bg_ratio)

    @classmethod
    def from_config(cls, cfg):
        return {"fg_bg_ratio": cfg.MODEL.BALMS.ECM.FG_BG_RATIO}

    def per_roi_loss(self, logits, gt_classes):
        return P.ecm_loss(logits, gt_classes, *P.ecm_margins(self.class_counts, self.fg_bg_ratio), reduction="none")

    def probs(self, logits):
        return P.objectness_sigmoid_probs(logits)
