"""``BalancedSoftmaxOutputLayers``: detectron2's box predictor with the classification loss chosen by key.

``cls_loss`` (``MODEL.BALMS.CLS_LOSS``):

* ``"softmax"``: stock cross-entropy over K + 1 logits (the baseline).
* ``"balanced_softmax"``: ``CE(z + tau * shift, y)`` in training, ``softmax(z)`` at test
  (see :func:`~balms_det.modeling.losses.softmax_logit_shift` for the background choice).
* ``"sigmoid"``: K sigmoid logits (no background logit), bias initialised to the prior probability
  ``sigmoid_prior_prob``; inference = sigmoid with a zero background column.
* ``"balanced_sigmoid"``: the sigmoid variant of Balanced Softmax of the official BALMS code.
* the peers (:mod:`~balms_det.modeling.peer_losses`): ``"seesaw"`` (K + 2 logits: classes and an
  objectness pair; inference = class softmax times the objectness probability), ``"eqlv2"`` and
  ``"ecm"`` (K + 1 sigmoid logits, the last one background; inference = ``sigmoid(z_j)`` times
  ``1 - sigmoid(z_bg)``), ``"federated"`` (detectron2's federated sigmoid loss, K logits).

``classifier`` (``MODEL.BALMS.CLASSIFIER``) makes ``cls_score`` an ``nn.Linear`` or the cosine
:class:`~balms_det.modeling.classifiers.NormedLinear`; ``cls_score`` always gives all the loss's
logits. Bias initialisation: ``-log((1 - p0) / p0)`` for ``sigmoid`` / ``balanced_sigmoid``, 0 for
every other loss (as the peers' own code and detectron2).

``posthoc_tau`` > 0 applies post-hoc logit adjustment at inference to the softmax losses.
With a ``meta_reweighter`` (:class:`~balms_det.modeling.meta_reweighter.MetaReweighter`, built when
``MODEL.BALMS.META_REWEIGHTER.ENABLED``) the training loss is ``sum_i c_i l_i / N`` with learned
per-ROI weights ``c``: BALMS. The layer keeps its input box features of the training step for it.
The class counts live in the ``class_counts`` buffer (saved in checkpoints when a loss uses them).
With ``background="running"`` the ``roi_label_counts`` buffer accumulates the labels of the sampled
ROIs of every training batch (the current one included, before its loss is computed); each DDP
worker counts its own ROIs (the same distribution, so no synchronisation is done).

State the peers accumulate is a float64 buffer, saved in checkpoints (so ``--resume`` restores it)
and updated once per training step in :meth:`losses`, never by :meth:`per_roi_classification_loss`
(which the meta reweighter calls again): Seesaw's cumulative class counts ``seesaw_cum_counts``
(this batch added before its loss), EQLv2's gradient sums ``eqlv2_pos_grad`` / ``eqlv2_neg_grad``
(this step's added after its loss). The originals differ in DDP: mmdetection's Seesaw counts
are per GPU (never synchronised; float32, so exact only up to 2^24 ROIs per class); the EQLv2
code all-reduces each step's sums. We all-reduce every step's increment over the DDP workers, so
every rank holds the same buffers (the global counts / sums), in float64.
"""
import logging
from typing import Optional

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec, cat, cross_entropy
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers, _log_classification_stats
from detectron2.utils import comm
from torch import distributed as dist
from torch import nn
from torch.nn import functional as F

from . import losses as L
from . import peer_losses as P
from .classifiers import build_classifier
from .meta_reweighter import MetaReweighter
from .priors import class_prior_from_config

__all__ = ["BalancedSoftmaxOutputLayers", "CLS_LOSSES", "prior_from_config"]

logger = logging.getLogger(__name__)

CLS_LOSSES = ("softmax", "balanced_softmax", "sigmoid", "balanced_sigmoid", "seesaw", "eqlv2", "ecm", "federated")
SOFTMAX_LOSSES = ("softmax", "balanced_softmax")  # K + 1 softmax logits, prior shift / post-hoc
META_REWEIGHTER_CLS_LOSSES = ("softmax", "balanced_softmax", "sigmoid", "balanced_sigmoid")  # the meta reweighter's
_EXTRA_LOGITS = {"sigmoid": 0, "balanced_sigmoid": 0, "federated": 0, "seesaw": 2}  # others: 1


def num_logits(cls_loss, num_classes):
    """Outputs of ``cls_score`` for a loss: K (sigmoid, balanced_sigmoid, federated), K + 2 (seesaw),
    K + 1 (the others)."""
    return num_classes + _EXTRA_LOGITS.get(cls_loss, 1)


def _needs_counts(cls_loss, posthoc_tau, background):
    if cls_loss in ("balanced_sigmoid", "ecm", "federated"):
        return True
    uses_shift = cls_loss == "balanced_softmax" or (cls_loss == "softmax" and posthoc_tau != 0)
    return uses_shift and background == "unadjusted"


def prior_from_config(cfg):
    """The class prior ``MODEL.BALMS``'s loss needs (loaded from ``MODEL.BALMS.PRIOR``), or None
    when it needs none."""
    b = cfg.MODEL.BALMS
    if not _needs_counts(b.CLS_LOSS, b.POSTHOC_TAU, b.BACKGROUND):
        return None
    return class_prior_from_config(cfg, need_num_images=b.CLS_LOSS == "balanced_sigmoid")


def meta_reweighter_from_config(cfg, input_shape):
    """The :class:`MetaReweighter` of ``MODEL.BALMS.META_REWEIGHTER``, or None when not enabled."""
    m = cfg.MODEL.BALMS.META_REWEIGHTER
    if not m.ENABLED:
        return None
    if cfg.MODEL.BALMS.CLS_LOSS not in META_REWEIGHTER_CLS_LOSSES:
        raise ValueError(
            f"MODEL.BALMS.META_REWEIGHTER supports MODEL.BALMS.CLS_LOSS in {META_REWEIGHTER_CLS_LOSSES}, "
            f"not {cfg.MODEL.BALMS.CLS_LOSS!r}"
        )
    if not cfg.MODEL.BALMS.DECOUPLED.ENABLED:
        raise ValueError(
            "MODEL.BALMS.META_REWEIGHTER.ENABLED needs MODEL.BALMS.DECOUPLED.ENABLED: the meta step "
            "reuses the box features of the training step, which is exact only while everything "
            "but the box classifier is frozen (decoupled stage 2, as in BALMS)."
        )
    if isinstance(input_shape, int):
        input_shape = ShapeSpec(channels=input_shape)
    feature_dim = input_shape.channels * (input_shape.width or 1) * (input_shape.height or 1)
    return MetaReweighter(
        cfg.MODEL.ROI_HEADS.NUM_CLASSES, feature_dim, lr=m.LR, source=m.META_SOURCE,
        bank_per_class=m.BANK_PER_CLASS, bank_background=m.BANK_BACKGROUND, meta_rois=m.META_ROIS,
        meta_loss=m.META_LOSS, on_nonfinite=m.ON_NONFINITE,
    )


class BalancedSoftmaxOutputLayers(FastRCNNOutputLayers):
    """
    A :class:`FastRCNNOutputLayers` whose classification loss is one of :data:`CLS_LOSSES`.
    Box regression is unchanged. Usable directly in code (pass ``class_counts``) or from config.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        cls_loss: str = "balanced_softmax",
        class_counts=None,
        num_images=None,
        tau: float = 1.0,
        posthoc_tau: float = 0.0,
        background: str = "unadjusted",
        center_prior: bool = True,
        sigmoid_prior_prob: float = 0.001,
        roi_count_smoothing: float = 1.0,
        meta_reweighter: Optional[MetaReweighter] = None,
        classifier: str = "linear",
        normed_temperature: float = 20.0,
        seesaw_p: float = 0.8,
        seesaw_q: float = 2.0,
        seesaw_eps: float = 1e-2,
        eqlv2_gamma: float = 12.0,
        eqlv2_mu: float = 0.8,
        eqlv2_alpha: float = 4.0,
        ecm_fg_bg_ratio: float = 6.3313,
        federated_num_classes: int = 50,
        federated_freq_weight_power: float = 0.5,
        **kwargs,
    ):
        """
        Args (besides those of :class:`FastRCNNOutputLayers`):
            cls_loss: one of :data:`CLS_LOSSES`.
            class_counts: (K,) positive training counts n_j (needed by the prior-based losses;
                see :mod:`balms_det.modeling.priors`).
            num_images: number of training images (``balanced_sigmoid``: p_j = n_j / num_images).
            tau: Balanced Softmax temperature (1 = BALMS Eq. 4, 1/4 = Eq. 10, 0 = plain CE).
            posthoc_tau: post-hoc logit adjustment strength at inference (0 = off; softmax only).
            background: ``"unadjusted"`` or ``"running"`` (:data:`losses.BACKGROUND_MODES`).
            center_prior: shift foreground logits by ``log(K pi_j)`` instead of ``log n_j``.
            sigmoid_prior_prob: initial probability p0 of the sigmoid classifiers (bias init).
            roi_count_smoothing: pseudo-count added to every running ROI label count.
            meta_reweighter: learned per-class loss weights (BALMS), or None.
            classifier: ``"linear"`` or ``"normed"`` (cosine, temperature ``normed_temperature``).
            seesaw_p, seesaw_q, seesaw_eps: Seesaw's mitigation / compensation exponents and the
                compensation's divisor floor (:func:`peer_losses.seesaw_log_factors`).
            eqlv2_gamma, eqlv2_mu, eqlv2_alpha: EQLv2's mapping function and positive-weight gain.
            ecm_fg_bg_ratio: ECM's background count, as a multiple of the summed class counts.
            federated_num_classes: classes per step in the federated loss (ground truth + sampled).
            federated_freq_weight_power: sampling weight of a class = image count ** this power.
        """
        if kwargs.get("use_fed_loss") or kwargs.get("use_sigmoid_ce"):
            raise ValueError("Use MODEL.BALMS.CLS_LOSS instead of the stock fed/sigmoid CE keys")
        super().__init__(input_shape, **kwargs)
        if cls_loss not in CLS_LOSSES:
            raise ValueError(f"Unknown cls_loss {cls_loss!r}; expected one of {CLS_LOSSES}")
        if background not in L.BACKGROUND_MODES:
            raise ValueError(f"Unknown background {background!r}; expected {L.BACKGROUND_MODES}")
        self.cls_loss = cls_loss
        self.tau = float(tau)
        self.posthoc_tau = float(posthoc_tau)
        self.background = background
        self.center_prior = center_prior
        self.sigmoid_prior_prob = sigmoid_prior_prob
        self.roi_count_smoothing = roi_count_smoothing
        self.is_sigmoid = cls_loss in ("sigmoid", "balanced_sigmoid")  # BALMS's sigmoid family
        if cls_loss not in SOFTMAX_LOSSES and self.posthoc_tau != 0:
            raise ValueError("POSTHOC_TAU applies to the softmax losses only")
        if meta_reweighter is not None and cls_loss not in META_REWEIGHTER_CLS_LOSSES:
            raise ValueError(
                f"The meta reweighter supports cls_loss in {META_REWEIGHTER_CLS_LOSSES}, not {cls_loss!r}"
            )
        self.meta_reweighter = meta_reweighter
        self._box_features = None  # this training step's input, for the meta reweighter
        self.seesaw_p, self.seesaw_q, self.seesaw_eps = float(seesaw_p), float(seesaw_q), float(seesaw_eps)
        self.eqlv2_gamma, self.eqlv2_mu, self.eqlv2_alpha = float(eqlv2_gamma), float(eqlv2_mu), float(eqlv2_alpha)
        self.ecm_fg_bg_ratio = float(ecm_fg_bg_ratio)
        if cls_loss == "ecm" and self.ecm_fg_bg_ratio <= 0:
            raise ValueError(f"ECM needs fg_bg_ratio > 0, got {ecm_fg_bg_ratio}")
        self.federated_num_classes = int(federated_num_classes)
        self.federated_freq_weight_power = float(federated_freq_weight_power)
        if cls_loss == "federated" and self.federated_num_classes < 1:
            raise ValueError(f"The federated loss needs num_classes >= 1, got {federated_num_classes}")
        self._federated_mask = None  # this training step's federated classes

        self.classifier = classifier
        n_out = num_logits(cls_loss, self.num_classes)
        if classifier != "linear" or n_out != self.cls_score.out_features:  # else keep detectron2's
            self.cls_score = build_classifier(classifier, self.cls_score.in_features, n_out, normed_temperature)
        self.reset_classifier()

        # Buffers. Persistent (saved in checkpoints) only when this loss uses them, so that loading
        # a checkpoint trained with another loss (decoupled stage 2) keeps this run's prior.
        needs = _needs_counts(cls_loss, self.posthoc_tau, background)
        if class_counts is None:
            if needs:
                raise ValueError(f"cls_loss={cls_loss!r} needs class_counts (the class prior)")
            class_counts = torch.ones(self.num_classes, dtype=torch.float64)
        class_counts = torch.as_tensor(class_counts, dtype=torch.float64).flatten()
        if class_counts.numel() != self.num_classes:
            raise ValueError(
                f"class_counts has {class_counts.numel()} entries, num_classes is {self.num_classes}"
            )
        if not (torch.isfinite(class_counts).all() and (class_counts > 0).all()):
            raise ValueError("class_counts must be finite and > 0 (see priors.sanitize_counts)")
        self.register_buffer("class_counts", class_counts, persistent=needs)
        if cls_loss == "balanced_sigmoid" and not num_images:
            raise ValueError("cls_loss='balanced_sigmoid' needs num_images (MODEL.BALMS.PRIOR.NUM_IMAGES)")
        self.register_buffer(
            "num_train_images",
            torch.tensor(float(num_images or 0), dtype=torch.float64),
            persistent=cls_loss == "balanced_sigmoid",
        )
        self.register_buffer(
            "roi_label_counts",
            torch.zeros(self.num_classes + 1, dtype=torch.float64),
            persistent=background == "running" and cls_loss in SOFTMAX_LOSSES,
        )
        # Accumulated state of the peers (see the module doc): registered for the loss that uses it.
        if cls_loss == "seesaw":
            self.register_buffer("seesaw_cum_counts", torch.zeros(self.num_classes, dtype=torch.float64))
        if cls_loss == "eqlv2":
            self.register_buffer("eqlv2_pos_grad", torch.zeros(self.num_classes, dtype=torch.float64))
            self.register_buffer("eqlv2_neg_grad", torch.zeros(self.num_classes, dtype=torch.float64))

    @classmethod
    def from_config(cls, cfg, input_shape, prior=None):
        """``prior``: a :class:`~balms_det.modeling.priors.ClassPrior` to use instead of loading one."""
        ret = super().from_config(cfg, input_shape)
        ret.pop("use_fed_loss")
        ret.pop("use_sigmoid_ce")
        ret.pop("get_fed_loss_cls_weights")
        ret.pop("fed_loss_num_classes")
        if cfg.MODEL.ROI_BOX_HEAD.USE_FED_LOSS or cfg.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE:
            raise ValueError(
                "BalancedSoftmaxOutputLayers: set MODEL.BALMS.CLS_LOSS instead of "
                "MODEL.ROI_BOX_HEAD.USE_FED_LOSS / USE_SIGMOID_CE"
            )
        b = cfg.MODEL.BALMS
        ret.update(
            cls_loss=b.CLS_LOSS,
            tau=b.TAU,
            posthoc_tau=b.POSTHOC_TAU,
            background=b.BACKGROUND,
            center_prior=b.CENTER_PRIOR,
            sigmoid_prior_prob=b.SIGMOID_PRIOR_PROB,
            roi_count_smoothing=b.ROI_COUNT_SMOOTHING,
            classifier=b.CLASSIFIER,
            normed_temperature=b.NORMED_TEMPERATURE,
            seesaw_p=b.SEESAW.P,
            seesaw_q=b.SEESAW.Q,
            seesaw_eps=b.SEESAW.EPS,
            eqlv2_gamma=b.EQLV2.GAMMA,
            eqlv2_mu=b.EQLV2.MU,
            eqlv2_alpha=b.EQLV2.ALPHA,
            ecm_fg_bg_ratio=b.ECM.FG_BG_RATIO,
            federated_num_classes=b.FEDERATED.NUM_CLASSES,
            federated_freq_weight_power=b.FEDERATED.FREQ_WEIGHT_POWER,
        )
        if _needs_counts(b.CLS_LOSS, b.POSTHOC_TAU, b.BACKGROUND):
            if prior is None:
                prior = prior_from_config(cfg)
            ret["class_counts"] = prior.counts
            ret["num_images"] = prior.num_images
        ret["meta_reweighter"] = meta_reweighter_from_config(cfg, input_shape)
        return ret

    def reset_classifier(self):
        """(Re-)initialise ``cls_score``: N(0, 0.01) weights; bias -log((1-p0)/p0) (sigmoid,
        balanced_sigmoid) or 0 (the other losses)."""
        nn.init.normal_(self.cls_score.weight, std=0.01)
        bias = L.sigmoid_prior_bias(self.sigmoid_prior_prob) if self.is_sigmoid else 0.0
        nn.init.constant_(self.cls_score.bias, bias)

    # ---------------------------------------------------------------- priors
    def logit_shift(self):
        """The (K+1,) Balanced Softmax shift for the current prior (see losses.softmax_logit_shift)."""
        return L.softmax_logit_shift(
            self.class_counts,
            background=self.background,
            center=self.center_prior,
            roi_label_counts=self.roi_label_counts + self.roi_count_smoothing,
        )

    def image_freq(self):
        """p_j = image_count_j / number of training images (sigmoid variant)."""
        return self.class_counts / self.num_train_images

    def eqlv2_weights(self):
        """EQLv2's (K+1,) positive / negative weights from the accumulated gradient sums."""
        return P.eqlv2_weights(
            self.eqlv2_pos_grad, self.eqlv2_neg_grad, self.eqlv2_gamma, self.eqlv2_mu, self.eqlv2_alpha
        )

    def federated_class_weights(self):
        """The federated loss's (K,) sampling weights: class image counts ** power (detectron2's
        ``get_fed_loss_cls_weights`` on the class prior)."""
        return self.class_counts.float() ** self.federated_freq_weight_power

    # ---------------------------------------------------------------- training
    def per_roi_classification_loss(self, scores, gt_classes):
        """(N,) classification loss of each ROI (the training loss is their sum / N). No side effect:
        it reads the accumulated state, and the federated loss reads this step's sampled classes
        (all classes outside a training step's :meth:`losses`)."""
        kind = self.cls_loss
        if kind == "softmax":
            return F.cross_entropy(scores, gt_classes, reduction="none")
        if kind == "balanced_softmax":
            return L.balanced_softmax_loss(scores, gt_classes, self.logit_shift(), self.tau, reduction="none")
        if kind == "sigmoid":
            return L.sigmoid_ce_loss(scores, gt_classes, reduction="none")
        if kind == "balanced_sigmoid":
            return L.balanced_sigmoid_loss(scores, gt_classes, self.image_freq(), reduction="none")
        if kind == "seesaw":
            return P.seesaw_loss(scores, gt_classes, self.seesaw_cum_counts, self.seesaw_p, self.seesaw_q,
                                 self.seesaw_eps, reduction="none")
        if kind == "eqlv2":
            return P.eqlv2_loss(scores, gt_classes, *self.eqlv2_weights(), reduction="none")
        if kind == "ecm":
            return P.ecm_loss(scores, gt_classes, *P.ecm_margins(self.class_counts, self.ecm_fg_bg_ratio),
                              reduction="none")
        mask = self._federated_mask
        if mask is None:
            mask = scores.new_ones(self.num_classes)
        return P.federated_loss(scores, gt_classes, mask, reduction="none")

    def classification_loss(self, scores, gt_classes, roi_weights=None):
        """``sum_i c_i l_i / N`` with per-ROI weights ``c`` (``roi_weights``; None = 1)."""
        if gt_classes.numel() == 0:
            return scores.sum() * 0.0
        per_roi = self.per_roi_classification_loss(scores, gt_classes)
        if roi_weights is not None:
            per_roi = per_roi * roi_weights.to(per_roi.dtype)
        return per_roi.sum() / max(per_roi.shape[0], 1)

    def plain_classification_loss(self, scores, gt_classes):
        """The meta loss: no prior adjustment, no weights (sigmoid BCE or K+1 cross-entropy)."""
        if self.is_sigmoid:
            return L.sigmoid_ce_loss(scores, gt_classes)
        return cross_entropy(scores, gt_classes, reduction="mean")

    def forward(self, x):
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

    @torch.no_grad()
    def _update_roi_label_counts(self, gt_classes):
        if self.background == "running" and self.cls_loss in SOFTMAX_LOSSES and gt_classes.numel():
            counts = torch.bincount(gt_classes, minlength=self.num_classes + 1)
            self.roi_label_counts += counts[: self.num_classes + 1].to(self.roi_label_counts.dtype)

    @torch.no_grad()
    def _state_before_loss(self, gt_classes):
        """Once per training step, before the loss: Seesaw's counts get this batch (all ranks'),
        the federated loss samples its classes (detectron2's ``get_fed_loss_classes``, per rank)."""
        if self.cls_loss == "seesaw":
            self.seesaw_cum_counts += _all_reduce_sum(P.seesaw_count_increment(gt_classes, self.num_classes))
        elif self.cls_loss == "federated" and self.federated_num_classes <= self.num_classes:
            fed_classes = self.get_fed_loss_classes(
                gt_classes, num_fed_loss_classes=self.federated_num_classes,
                num_classes=self.num_classes, weight=self.federated_class_weights(),
            )
            self._federated_mask = P.federated_class_mask(fed_classes, self.num_classes)
        # (federated with fewer classes than FEDERATED.NUM_CLASSES, where detectron2's sampler
        # fails: no mask, every class is in the loss)

    @torch.no_grad()
    def _state_after_loss(self, scores, gt_classes):
        """Once per training step, after the loss: EQLv2's gradient sums get this step's (all ranks')."""
        self._federated_mask = None
        if self.cls_loss == "eqlv2":
            pos, neg = P.eqlv2_gradient_increment(scores, gt_classes, *self.eqlv2_weights())
            inc = _all_reduce_sum(torch.cat([pos, neg]).to(self.eqlv2_pos_grad.device))
            self.eqlv2_pos_grad += inc[: self.num_classes]
            self.eqlv2_neg_grad += inc[self.num_classes:]

    def losses(self, predictions, proposals):
        """Same as :meth:`FastRCNNOutputLayers.losses`, with :meth:`classification_loss`."""
        scores, proposal_deltas = predictions
        gt_classes = (
            cat([p.gt_classes for p in proposals], dim=0) if len(proposals) else torch.empty(0)
        )
        if self._capturing_meta_batch(gt_classes):
            zero = scores.sum() * 0.0  # a meta batch of the "images" source: features kept, no loss
            return {"loss_cls": zero, "loss_box_reg": zero}
        stats_scores = scores if self.cls_loss in SOFTMAX_LOSSES else self._probs(scores)
        _log_classification_stats(stats_scores, gt_classes)

        if len(proposals):
            proposal_boxes = cat([p.proposal_boxes.tensor for p in proposals], dim=0)
            assert not proposal_boxes.requires_grad, "Proposals should not require gradients!"
            gt_boxes = cat(
                [(p.gt_boxes if p.has("gt_boxes") else p.proposal_boxes).tensor for p in proposals],
                dim=0,
            )
        else:
            proposal_boxes = gt_boxes = torch.empty((0, 4), device=proposal_deltas.device)

        roi_weights = None
        if self.training:
            self._update_roi_label_counts(gt_classes)
            self._state_before_loss(gt_classes)
            roi_weights = self._meta_roi_weights(gt_classes)
        losses = {
            "loss_cls": self.classification_loss(scores, gt_classes, roi_weights),
            "loss_box_reg": self.box_reg_loss(proposal_boxes, gt_boxes, proposal_deltas, gt_classes),
        }
        if self.training:
            self._state_after_loss(scores, gt_classes)
        return {k: v * self.loss_weight.get(k, 1.0) for k, v in losses.items()}

    # ---------------------------------------------------------------- inference
    def _probs(self, scores):
        """(N, K + 1) class probabilities by the loss's inference rule, background last."""
        if self.cls_loss == "seesaw":
            return P.seesaw_probs(scores)
        if self.cls_loss in ("eqlv2", "ecm"):
            return P.objectness_sigmoid_probs(scores)
        if self.cls_loss not in SOFTMAX_LOSSES:  # K sigmoid logits: zero background column
            return L.sigmoid_probs_with_background(scores)
        if self.posthoc_tau != 0:
            scores = L.posthoc_adjust(scores, self.logit_shift(), self.posthoc_tau)
        return F.softmax(scores, dim=-1)

    def predict_probs(self, predictions, proposals):
        """(Ri, K + 1) class probabilities per image (:meth:`_probs`); background last (zero for the
        sigmoid losses with K logits; detectron2's inference ignores that column)."""
        scores, _ = predictions
        return self._probs(scores).split([len(p) for p in proposals], dim=0)


def _all_reduce_sum(tensor):
    """``tensor`` summed over the DDP workers, in place (unchanged in a single process)."""
    if comm.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor
