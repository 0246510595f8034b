"""``LongTailOutputLayers``: detectron2's box predictor, composed of four choices.

classifier (``MODEL.BALMS.CLASSIFIER``: linear / normed) -> classification loss (a registered
:class:`~balms_det.modeling.cls_losses.ClsLoss`, ``MODEL.BALMS.CLS_LOSS``) -> optional Meta Reweighter
weights per ROI (BALMS) -> post-hoc calibration at inference (a registered
:class:`~balms_det.modeling.calibrations.Calibration`, ``MODEL.BALMS.CALIBRATION``). Box regression is
detectron2's. Everything about a method (its logits, bias init, buffers, per-step state, inference
rule) lives in its loss module; this layer only composes them.

Checkpoints from before the losses were modules kept the loss buffers on the predictor itself
(``class_counts``, ``seesaw_cum_counts``, ...): the predictor's state-dict version 1, moved to the loss
module when loaded (:meth:`LongTailOutputLayers._load_from_state_dict`).
"""
import torch
from detectron2.config import configurable
from detectron2.layers import cat
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, _log_classification_stats
from torch import nn

from .calibrations import NoCalibration, calibration_class
from .classifiers import build_classifier
from .cls_losses import ClsLoss, cls_loss_class
from .meta_reweighter import meta_reweighter_from_config
from .deferred_prior import deferred_prior_from_config
from .priors import class_prior_from_config

__all__ = ["LongTailOutputLayers", "prior_from_config", "build_cls_loss", "build_calibration"]


def prior_from_config(cfg):
    """The class prior (``MODEL.BALMS.PRIOR``) when the loss or the calibration needs it, else None:
    deferred (:class:`~balms_det.modeling.deferred_prior.DeferredPrior`), so building reads no dataset; counts
    given in the config (``PRIOR.SOURCE list``) are taken, and checked, at once."""
    loss_cls, calib_cls = cls_loss_class(cfg.MODEL.BALMS.CLS_LOSS), calibration_class(cfg.MODEL.BALMS.CALIBRATION)
    settings = loss_cls.from_config(cfg)
    if not (loss_cls.needs_prior(**settings) or calib_cls.needs_prior(loss_cls, settings)):
        return None
    if cfg.MODEL.BALMS.PRIOR.SOURCE == "list" and cfg.MODEL.BALMS.PRIOR.SAMPLER == "none":
        return class_prior_from_config(cfg, need_num_images=loss_cls.needs_num_images)
    return deferred_prior_from_config(cfg)


def build_cls_loss(cfg, prior=None):
    """The loss module of ``MODEL.BALMS.CLS_LOSS`` with its keys (and the prior, deferred, if needed)."""
    loss_cls = cls_loss_class(cfg.MODEL.BALMS.CLS_LOSS)
    prior = prior if prior is not None else prior_from_config(cfg)
    return loss_cls(cfg.MODEL.ROI_HEADS.NUM_CLASSES, prior=prior, **loss_cls.from_config(cfg))


def build_calibration(cfg):
    """The calibration module of ``MODEL.BALMS.CALIBRATION`` with its keys."""
    calib_cls = calibration_class(cfg.MODEL.BALMS.CALIBRATION)
    return calib_cls(**calib_cls.from_config(cfg))


class LongTailOutputLayers(FastRCNNOutputLayers):
    """A :class:`FastRCNNOutputLayers` whose classification loss, calibration and classifier are modules."""

    # 2: the loss's buffers live in the loss module, under ``cls_loss.``; 1: on the predictor itself, under
    # the names of this table (the predictor's own name -> the loss module's), moved when loaded
    _version = 2
    V1_LOSS_BUFFERS = {
        "class_counts": "class_counts",
        "num_train_images": "num_train_images",
        "roi_label_counts": "roi_label_counts",
        "seesaw_cum_counts": "cum_counts",
        "eqlv2_pos_grad": "pos_grad",
        "eqlv2_neg_grad": "neg_grad",
    }

    @configurable
    def __init__(self, input_shape, *, cls_loss, calibration=None, meta_reweighter=None, classifier="linear",
                 normed_temperature=20.0, **kwargs):
        """
        Args (besides those of :class:`FastRCNNOutputLayers`):
            cls_loss: a :class:`~balms_det.modeling.cls_losses.ClsLoss` (or a registered name, built
                with its defaults and no prior).
            calibration: a :class:`~balms_det.modeling.calibrations.Calibration`; None = the loss's rule.
            meta_reweighter: learned per-class loss weights (BALMS), or None.
            classifier: ``"linear"`` or ``"normed"`` (cosine, temperature ``normed_temperature``).
        """
        if kwargs.get("use_fed_loss") or kwargs.get("use_sigmoid_ce"):
            raise ValueError("Use MODEL.BALMS.CLS_LOSS instead of the stock fed/sigmoid CE keys")
        super().__init__(input_shape, **kwargs)
        if isinstance(cls_loss, str):
            cls_loss = cls_loss_class(cls_loss)(self.num_classes)
        if not isinstance(cls_loss, ClsLoss):
            raise TypeError(f"cls_loss must be an instance of a ClsLoss subclass, not {type(cls_loss).__name__}")
        if cls_loss.num_classes != self.num_classes:
            raise ValueError(f"cls_loss has {cls_loss.num_classes} classes, the predictor {self.num_classes}")
        self.cls_loss = cls_loss
        self.calibration = calibration if calibration is not None else NoCalibration()
        self.calibration.check(cls_loss)
        if meta_reweighter is not None and meta_reweighter.num_classes != self.num_classes:
            raise ValueError(f"meta_reweighter has {meta_reweighter.num_classes} classes, the predictor "
                             f"{self.num_classes}: give MetaReweighter num_classes={self.num_classes}")
        if meta_reweighter is not None and cls_loss.plain_loss is None:
            raise ValueError(f"The meta reweighter needs a loss with a plain meta loss, not {cls_loss.name!r}")
        self.meta_reweighter = meta_reweighter
        self._box_features = None  # this training step's input, for the meta reweighter
        self.classifier = classifier
        n_out = cls_loss.num_logits()
        if classifier != "linear" or n_out != self.cls_score.out_features:  # else keep detectron2's
            self.cls_score = build_classifier(classifier, self.cls_score.in_features, n_out, normed_temperature)
        self.reset_classifier()

    @classmethod
    def from_config(cls, cfg, input_shape, prior=None):
        """``prior``: a :class:`~balms_det.modeling.priors.ClassPrior` to use instead of loading one."""
        ret = super().from_config(cfg, input_shape)
        for key in ("use_fed_loss", "use_sigmoid_ce", "get_fed_loss_cls_weights", "fed_loss_num_classes"):
            ret.pop(key, None)  # detectron2 before its federated loss has none of them
        if cfg.MODEL.ROI_BOX_HEAD.get("USE_FED_LOSS", False) or cfg.MODEL.ROI_BOX_HEAD.get("USE_SIGMOID_CE", False):
            raise ValueError(f"{cls.__name__}: set MODEL.BALMS.CLS_LOSS instead of "
                             "MODEL.ROI_BOX_HEAD.USE_FED_LOSS / USE_SIGMOID_CE")
        b = cfg.MODEL.BALMS
        if b.META_REWEIGHTER.ENABLED and cls_loss_class(b.CLS_LOSS).plain_loss is None:
            raise ValueError(f"MODEL.BALMS.META_REWEIGHTER needs a loss with a plain meta loss (softmax, "
                             f"balanced_softmax, sigmoid, balanced_sigmoid), not {b.CLS_LOSS!r}")
        ret.update(cls_loss=build_cls_loss(cfg, prior), calibration=build_calibration(cfg),
                   classifier=b.CLASSIFIER, normed_temperature=b.NORMED_TEMPERATURE,
                   meta_reweighter=meta_reweighter_from_config(cfg, input_shape))
        return ret

    def reset_classifier(self):
        """(Re-)initialise ``cls_score``: N(0, 0.01) weights, the loss's bias (cRT uses this too)."""
        nn.init.normal_(self.cls_score.weight, std=0.01)
        nn.init.constant_(self.cls_score.bias, self.cls_loss.bias_init())

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """A version-1 state (or one without a version: a state dict copied without its metadata) has the
        loss's buffers on the predictor (:attr:`V1_LOSS_BUFFERS`): each one the built loss has is moved to
        ``cls_loss.``; the others stay, for the loader to report as unexpected."""
        if local_metadata.get("version", 1) < 2:
            own = self.cls_loss.state_dict(keep_vars=True)
            for old, new in self.V1_LOSS_BUFFERS.items():
                if prefix + old in state_dict and new in own and f"{prefix}cls_loss.{new}" not in state_dict:
                    state_dict[f"{prefix}cls_loss.{new}"] = state_dict.pop(prefix + old)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    # ---------------------------------------------------------------- training
    def per_roi_classification_loss(self, scores, gt_classes):
        """The classification loss of each ROI (no side effect; the meta reweighter calls it again).

        Args:
            scores (Tensor): (N, ``cls_loss.num_logits()``), float, the classifier's logits.
            gt_classes (Tensor): (N,), int64, labels in [0, K].
        Returns:
            Tensor: (N,), float32 or float64.
        """
        return self.cls_loss.per_roi_loss(scores, gt_classes)

    def classification_loss(self, scores, gt_classes, roi_weights=None):
        """``sum_i c_i l_i / N`` with per-ROI weights ``c``.

        Args:
            scores, gt_classes: as :meth:`per_roi_classification_loss`.
            roi_weights (Tensor or None): (N,), float; None = 1.
        Returns:
            Tensor: scalar, float32 or float64.
        """
        if gt_classes.numel() == 0:
            return scores.sum() * 0.0
        per_roi = self.per_roi_classification_loss(scores, gt_classes)
        if roi_weights is not None:
            per_roi = per_roi * roi_weights.to(per_roi.dtype)
        return per_roi.sum() / max(per_roi.shape[0], 1)

    def plain_classification_loss(self, scores, gt_classes):
        """The meta loss: no prior adjustment, no weights (the loss's ``plain_loss``)."""
        return self.cls_loss.plain_loss(scores, gt_classes)

    def forward(self, x):
        self.cls_loss.ensure_prior()  # a deferred prior neither loaded with the weights nor set: computed now
        if self.meta_reweighter is not None and self.training:
            self._box_features = x.flatten(1).detach()
        return super().forward(x)

    def _capturing_meta_batch(self, gt_classes):
        """While the meta reweighter's hook runs meta images, keep their ROIs' features and labels."""
        if self.meta_reweighter is None or not (self.training and self.meta_reweighter.capturing):
            return False
        features, self._box_features = self._box_features, None
        self.meta_reweighter.capture(features, gt_classes)
        return True

    def _meta_roi_weights(self, gt_classes):
        """The meta step on this training step's box features; the ROI weights of the updated theta
        (None without a meta reweighter)."""
        if self.meta_reweighter is None:
            return None
        features, self._box_features = self._box_features, None
        plain = self.meta_reweighter.meta_loss == "plain"
        return self.meta_reweighter.step(
            self.cls_score, features, gt_classes, self.per_roi_classification_loss,
            self.plain_classification_loss if plain else self.classification_loss,
        )

    def losses(self, predictions, proposals):
        """Same as :meth:`FastRCNNOutputLayers.losses`, with the loss module's classification loss and its
        once-per-step state around it."""
        scores, proposal_deltas = predictions
        gt_classes = cat([p.gt_classes for p in proposals], dim=0) if len(proposals) else torch.empty(0)
        if self._capturing_meta_batch(gt_classes):
            zero = scores.sum() * 0.0  # a meta batch of the "images" source: features kept, no loss
            return {"loss_cls": zero, "loss_box_reg": zero}
        _log_classification_stats(scores if self.cls_loss.softmax_logits else self.cls_loss.probs(scores), gt_classes)
        if len(proposals):
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            assert not proposal_boxes.requires_grad, "Proposals should not require gradients!"
            gt_boxes = cat([(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals], dim=0)
        else:
            proposal_boxes = gt_boxes = torch.empty((0, 4), device=proposal_deltas.device)

        roi_weights = None
        if self.training:
            with torch.no_grad():
                self.cls_loss.before_loss(gt_classes)
            roi_weights = self._meta_roi_weights(gt_classes)
        losses = {
            "loss_cls": self.classification_loss(scores, gt_classes, roi_weights),
            "loss_box_reg": self.box_reg_loss(proposal_boxes, gt_boxes, proposal_deltas, gt_classes),
        }
        if self.training:
            with torch.no_grad():
                self.cls_loss.after_loss(scores, gt_classes)
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    # ---------------------------------------------------------------- inference
    def predict_probs(self, predictions, proposals):
        """The class probabilities per image: the calibration of the loss's logits.

        Args:
            predictions: the return values of :meth:`forward`, the logits (R, ``cls_loss.num_logits()``) first.
            proposals (list[Instances]): the proposals of each image, Ri of image i.
        Returns:
            list[Tensor]: (Ri, K + 1) per image, float, background last (zero for the sigmoid losses with K
            logits; detectron2's inference ignores that column).
        """
        scores, _ = predictions
        probs = self.calibration(scores, self.cls_loss)
        if not torch.isfinite(probs).all():
            raise FloatingPointError(f"Non-finite class probabilities at inference from cls_loss "
                                     f"{self.cls_loss.name or type(self.cls_loss).__name__!r} with calibration "
                                     f"{self.calibration.name or type(self.calibration).__name__!r}")
        return probs.split([len(p) for p in proposals], dim=0)

