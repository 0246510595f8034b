"""The Meta Reweighter of BALMS: per-class loss weights ``w = sigmoid(theta)`` learned by a meta step
each iteration (the math: :mod:`.meta_step`), as the state of one box predictor (:class:`MetaReweighter`)."""
import logging
from dataclasses import dataclass
from typing import Dict, Optional

import torch
from detectron2.layers import ShapeSpec
from torch import nn

from .meta_step import SGDRule, adam_step_, mean_over_ranks_with_data, meta_hypergradient, roi_loss_weights
from .roi_feature_bank import ROIFeatureBank, copy_state

__all__ = ["META_SOURCES", "MetaReweighter", "meta_reweighter_from_config"]

logger = logging.getLogger(__name__)


META_SOURCES = ("bank", "images")
META_LOSSES = ("plain", "adjusted")
NONFINITE_ACTIONS = ("raise", "skip")


@dataclass
class _StepInputs:
    iteration: int
    rules: Dict[str, Optional[SGDRule]]
    meta_step: bool


class MetaReweighter(nn.Module):
    """
    The state of one box predictor's Meta Reweighter: ``theta``, its Adam moments and step count, and
    the meta batch source. They are training state, not model state: non-persistent buffers (they
    follow the module's device, and are not in its ``state_dict``, so a deployed model carries none of
    them), checkpointed with the trainer by :class:`~balms_det.engine.MetaReweighterHook`
    (:meth:`training_state` / :meth:`load_training_state`) and restored on ``--resume``; a fresh stage 2
    starts from ``theta = 0``. Checkpoints written before (version 1) kept them in the model's
    ``state_dict``: loading one moves them here (:meth:`_load_from_state_dict`).

    Every training iteration the trainer's :class:`~balms_det.engine.MetaReweighterHook` calls
    :meth:`prepare` (iteration, the optimizer's SGD rule, whether a meta step is due); the box
    predictor's loss then calls :meth:`step`, which runs the meta step on the batch's box features
    and returns the ROI weights of the updated ``theta`` for the real loss: the official order
    (meta step, then the normal step with the new weights) from a single forward pass.

    Meta batch sources (``META_SOURCE``): ``"bank"`` draws class-balanced ROIs from a
    :class:`ROIFeatureBank` filled by the training stream (no extra forward); ``"images"`` (the
    official setting) uses the ROIs of class-balanced meta images that the hook ran through the
    frozen detector before the step (:meth:`capture`).

    DDP: every rank computes its hypergradient; they are averaged (over the ranks that had a meta
    batch) by one all-reduce, so every rank takes the same Adam step and ``theta`` stays identical.
    """

    def __init__(self, num_classes, feature_dim, *, lr=0.01, source="bank", bank_per_class=16,
                 bank_background=4096, meta_rois=0, meta_loss="plain", on_nonfinite="raise"):
        """
        Args:
            num_classes: K foreground classes.
            feature_dim: length of a box feature (the classifier's input).
            lr: Adam learning rate of theta.
            source: one of :data:`META_SOURCES`.
            bank_per_class, bank_background: :class:`ROIFeatureBank` sizes (``source="bank"``).
            meta_rois: ROIs per meta batch drawn from the bank; 0 = as many as the training batch,
                with its foreground/background split.
            meta_loss: one of :data:`META_LOSSES`, read by the box predictor: ``"plain"`` (the paper:
                no prior adjustment, no weights) or ``"adjusted"`` (the training loss without weights:
                what the official instance-segmentation code computes, because its sigmoid-variant
                loss edits the logits in place before the meta loss reads them).
            on_nonfinite: ``"raise"`` (stop training) or ``"skip"`` (log and skip the meta step)
                when the meta loss, the hypergradient or theta is not finite.
        """
        super().__init__()
        if source not in META_SOURCES:
            raise ValueError(f"Unknown meta batch source {source!r}; expected one of {META_SOURCES}")
        if meta_loss not in META_LOSSES:
            raise ValueError(f"Unknown META_LOSS {meta_loss!r}; expected one of {META_LOSSES}")
        if on_nonfinite not in NONFINITE_ACTIONS:
            raise ValueError(f"Unknown ON_NONFINITE {on_nonfinite!r}; expected one of {NONFINITE_ACTIONS}")
        self.num_classes = num_classes
        self.lr = float(lr)
        self.source = source
        self.meta_rois = int(meta_rois)
        self.meta_loss = meta_loss
        self.on_nonfinite = on_nonfinite
        for name, shape in (("theta", num_classes), ("adam_exp_avg", num_classes), ("adam_exp_avg_sq", num_classes),
                            ("adam_step", ())):
            self.register_buffer(name, torch.zeros(shape), persistent=False)
        self.register_buffer("last_meta_loss", torch.tensor(float("nan")), persistent=False)
        self.register_buffer("last_hypergrad", torch.zeros(num_classes), persistent=False)
        self.bank = ROIFeatureBank(num_classes, feature_dim, bank_per_class, bank_background) if source == "bank" else None
        self.capturing = False  # set by the hook while it runs the meta images (source "images")
        self._inputs = None
        self._captured = None

    # 2: theta, the Adam state and the bank left the state_dict (training state, checkpointed by the hook)
    _version = 2
    STATE = ("theta", "adam_exp_avg", "adam_exp_avg_sq", "adam_step")

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
        """A version-1 state_dict (checkpoints written before version 2, or without version) holds the
        training state as model buffers: move it into this module's training state."""
        if (local_metadata or {}).get("version", 1) < 2:
            for name in self.STATE:
                if prefix + name in state_dict:
                    copy_state(getattr(self, name), state_dict.pop(prefix + name), name)
            bank = {k: state_dict.pop(f"{prefix}bank.{k}") for k in ROIFeatureBank.STATE
                    if f"{prefix}bank.{k}" in state_dict}
            if self.bank is not None and len(bank) == len(ROIFeatureBank.STATE):
                self.bank.load_state(bank)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, *args, **kwargs)

    def training_state(self, with_bank=True):
        """theta, the Adam state and (``with_bank``) the ROI feature bank: CPU copies, for a checkpoint."""
        state = {k: getattr(self, k).detach().cpu().clone() for k in self.STATE}
        if with_bank and self.bank is not None:
            state["bank"] = self.bank.state()
        return state

    def load_training_state(self, state):
        """Restore :meth:`training_state` (a state without ``bank`` leaves the bank as it is)."""
        for k in self.STATE:
            copy_state(getattr(self, k), state[k], k)
        if state.get("bank") is not None and self.bank is not None:
            self.bank.load_state(state["bank"])

    def class_weights(self):
        """``w = sigmoid(theta)``, (K,)."""
        return torch.sigmoid(self.theta)

    def prepare(self, iteration, rules, meta_step=True):
        """Inputs of the next :meth:`step` (from the trainer): the iteration (for messages), the
        SGD rule of each classifier parameter (:func:`sgd_rules`), whether a meta step is due."""
        self._inputs = _StepInputs(int(iteration), rules, bool(meta_step))

    def capture(self, features, gt_classes):
        """Keep a meta batch (box features and labels of the meta images' ROIs)."""
        self._captured = (features.detach(), gt_classes.detach())

    def step(self, classifier, features, gt_classes, roi_loss_fn, meta_loss_fn):
        """
        Meta step (when due) on the training batch's ``features`` (N, D) / ``gt_classes`` (N,), then
        the ROI loss weights (N,) of the current theta (no gradient). See :func:`meta_hypergradient`
        for ``roi_loss_fn`` / ``meta_loss_fn``.
        """
        inputs, self._inputs = self._inputs, None
        if inputs is None and not torch.is_grad_enabled():  # e.g. PreciseBN's forwards: no training step
            return roi_loss_weights(self.theta, gt_classes, self.num_classes)
        if inputs is None:
            raise RuntimeError(
                "MetaReweighter.step() without prepare(): training with MODEL.BALMS.META_REWEIGHTER "
                "needs balms_det.engine.MetaReweighterHook among the trainer's hooks "
                "(tools/train_net.py adds it; see docs/methods.md for a DefaultTrainer subclass)."
            )
        features = features.detach()
        if features.dtype in (torch.float16, torch.bfloat16):
            features = features.float()
        if inputs.meta_step:
            with torch.autocast(device_type=features.device.type, enabled=False):
                self._meta_step(inputs, classifier, features, gt_classes, roi_loss_fn, meta_loss_fn)
        if self.bank is not None:
            self.bank.add(features, gt_classes)
        return roi_loss_weights(self.theta, gt_classes, self.num_classes)

    def _meta_batch(self, gt_classes):
        if self.source == "images":
            captured, self._captured = self._captured, None
            if captured is None:
                raise RuntimeError("MetaReweighter: no meta batch was captured for this iteration")
            return captured[0].to(self.theta.device).float(), captured[1].to(self.theta.device)
        n = gt_classes.numel()
        num_fg = int((gt_classes < self.num_classes).sum())
        total = self.meta_rois or n
        num_fg = round(total * num_fg / n) if n else 0
        return self.bank.sample(num_fg, total - num_fg)

    def _meta_step(self, inputs, classifier, features, gt_classes, roi_loss_fn, meta_loss_fn):
        meta_x, meta_y = self._meta_batch(gt_classes)
        loss, dtheta = features.new_zeros(()), features.new_zeros(self.num_classes)
        if meta_y.numel():
            loss, dtheta = meta_hypergradient(
                self.theta.to(features.dtype), classifier, dict(classifier.named_parameters()), inputs.rules,
                features, gt_classes, roi_loss_fn, meta_x.to(features.dtype), meta_y, meta_loss_fn,
            )
        averaged = mean_over_ranks_with_data(loss.float(), dtheta.float(), bool(meta_y.numel()))
        if averaged is None:  # no rank had a meta batch (the bank's first iteration)
            return
        loss, dtheta = averaged
        if not (torch.isfinite(loss) and torch.isfinite(dtheta).all()):
            return self._nonfinite(inputs.iteration, "meta loss or hypergradient", loss, dtheta)
        state = [b.clone() for b in (self.theta, self.adam_exp_avg, self.adam_exp_avg_sq, self.adam_step)]
        adam_step_(state[0], dtheta.to(state[0]), *state[1:], lr=self.lr)
        if not torch.isfinite(state[0]).all():
            return self._nonfinite(inputs.iteration, "theta after the Adam step", loss, dtheta)
        for buf, new in zip((self.theta, self.adam_exp_avg, self.adam_exp_avg_sq, self.adam_step), state):
            buf.copy_(new)
        self.last_meta_loss.copy_(loss)
        self.last_hypergrad.copy_(dtheta)

    def _nonfinite(self, iteration, what, loss, dtheta):
        msg = (f"Meta reweighter: non-finite {what} at iteration {iteration} (meta loss {loss.item()}, "
               f"{int((~torch.isfinite(dtheta)).sum())} non-finite hypergradient entries)")
        if self.on_nonfinite == "raise":
            raise FloatingPointError(msg + "; set MODEL.BALMS.META_REWEIGHTER.ON_NONFINITE 'skip' to skip such steps")
        logger.warning(msg + "; meta step skipped (ON_NONFINITE 'skip')")


def meta_reweighter_from_config(cfg, input_shape):
    """The :class:`MetaReweighter` of ``MODEL.BALMS.META_REWEIGHTER``, or None when not enabled."""
    m = cfg.MODEL.BALMS.META_REWEIGHTER
    if not m.ENABLED:
        return None
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
