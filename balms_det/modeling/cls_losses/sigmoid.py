"""``sigmoid``: K sigmoid logits (no background logit), one-hot BCE summed over classes / N, the bias
initialised to the probability ``prior_prob`` (the official BALMS code's sigmoid baseline)."""
from .. import losses as L
from .base import CLS_LOSS_REGISTRY, ClsLoss

__all__ = ["SigmoidLoss"]


@CLS_LOSS_REGISTRY.register()
class SigmoidLoss(ClsLoss):
    """Sigmoid cross-entropy on K logits; inference ``sigmoid(z)`` with a zero background column."""

    name = "sigmoid"
    extra_logits = 0
    legacy_buffers = {"class_counts": "class_counts", "num_train_images": "num_train_images"}
    legacy_kwargs = {"sigmoid_prior_prob": "prior_prob"}

    def __init__(self, num_classes, *, prior_prob=0.001, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.prior_prob = float(prior_prob)

    @classmethod
    def from_config(cls, cfg):
        return {"prior_prob": cfg.MODEL.BALMS.SIGMOID_PRIOR_PROB}

    def bias_init(self):
        return L.sigmoid_prior_bias(self.prior_prob)

    def per_roi_loss(self, logits, gt_classes):
        return L.sigmoid_ce_loss(logits, gt_classes, reduction="none")

    def plain_loss(self, logits, gt_classes):
        """The meta loss of BALMS: sigmoid cross-entropy, no prior, no weights (sum / N)."""
        return L.sigmoid_ce_loss(logits, gt_classes)

    def probs(self, logits):
        return L.sigmoid_probs_with_background(logits)
