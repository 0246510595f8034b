"""The Meta Reweighter of BALMS: learned per-class weights of the classification loss (the math).

Notation: ``K`` foreground classes, labels in ``[0, K]`` (``K`` = background), ``theta`` in R^K,
class weight ``w_c = sigmoid(theta_c)`` (``theta = 0``: ``w = 0.5``, as the official code).

* ROI weights (:func:`roi_loss_weights`): a foreground ROI of class ``y`` gets
  ``w_y * n_fg / sum_{fg ROIs j} w_{y_j}``, a background ROI 1; the batch loss is
  ``sum_i c_i * l_i / N`` over all ``N`` sampled ROIs, as the unweighted loss.
* One meta step (:func:`meta_hypergradient`), with the classifier ``z = f(W; x)`` the only trainable
  part (decoupled stage 2: the box features ``x`` do not depend on ``theta``):

  1. a *virtual* step ``W' = W - lr * d(g)`` of the main optimizer's SGD rule
     (:class:`SGDRule`: current LR, momentum buffer, weight decay) on the gradient
     ``g = sum_i c_i(theta) grad_W l_i / N`` of the weighted loss of the training batch;
  2. the *meta loss* ``M``: the plain classification loss of ``f(W'; .)`` on a class-balanced meta
     batch;
  3. ``dM/dtheta``, then one Adam step on ``theta`` (:func:`adam_step_`).

How step 3 is computed, exactly and without second-order autograd: ``W'`` depends on ``c`` only
through ``g``, linearly, ``dW'/dc_i = -(lr * kappa / N) grad_W l_i(W)`` (``kappa`` from momentum /
Nesterov / dampening, :meth:`SGDRule.grad_factor`), so

    dM/dc_i = -(lr * kappa / N) <grad_W' M, grad_W l_i(W)> = -(1 / N) delta_i . u_i

with ``delta_i = dl_i/dz_i`` (the per-ROI logit gradient) and ``u = J_f(W) [lr * kappa * grad_W' M]``
the classifier's logits moved along the meta gradient (one forward-mode JVP; for a linear classifier
a matmul). ``dM/dtheta`` is then the vector-Jacobian product of ``c(theta)``. Cost: a few matmuls of
the classifier's size, no graph of the whole detector (the official code runs ``higher`` over it).
``tests/test_meta_reweighter.py`` checks this against central finite differences and against a
``create_graph`` autograd reference through the whole box predictor, in float64.
"""
import logging
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
import torch.distributed as dist
from detectron2.layers import ShapeSpec
from detectron2.utils import comm
from torch import nn
from torch.func import functional_call, jvp, vjp
from torch.nn import functional as F

from .roi_feature_bank import ROIFeatureBank, copy_state

__all__ = [
    "SGDRule",
    "sgd_rules",
    "roi_loss_weights",
    "meta_hypergradient",
    "adam_step_",
    "META_SOURCES",
    "MetaReweighter",
    "meta_reweighter_from_config",
]

logger = logging.getLogger(__name__)


@dataclass
class SGDRule:
    """``torch.optim.SGD``'s update of one parameter (its param group's values and its momentum buffer,
    ``None`` before the first real step), applied out of place (the virtual step)."""

    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    momentum_buffer: Optional[torch.Tensor] = None

    def step(self, p, g):
        """The parameter after one step with gradient ``g`` (torch.optim.SGD's formula)."""
        d = g + self.weight_decay * p if self.weight_decay else g
        if self.momentum:
            buf = self.momentum_buffer
            buf = d if buf is None else self.momentum * buf.to(d) + (1 - self.dampening) * d
            d = d + self.momentum * buf if self.nesterov else buf
        return p - self.lr * d

    def grad_factor(self):
        """``lr * kappa`` with ``d(step(p, g))/dg = -lr * kappa``."""
        kappa = 1.0
        if self.momentum:
            first = self.momentum_buffer is None
            kappa = 1.0 if first else 1.0 - self.dampening
            if self.nesterov:
                kappa = 1.0 + self.momentum * kappa
        return self.lr * kappa


def sgd_rules(optimizer, named_params):
    """``{name: SGDRule or None}`` for ``named_params`` (name -> parameter) from a ``torch.optim.SGD``
    (detectron2's gradient-clipping subclasses included); ``None`` for a parameter the optimizer does
    not update (frozen), which the virtual step keeps fixed."""
    if not isinstance(optimizer, torch.optim.SGD):
        raise TypeError(
            f"The meta reweighter's virtual step follows torch.optim.SGD; the optimizer is "
            f"{type(optimizer).__name__} (SOLVER.OPTIMIZER must be SGD)"
        )
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    rules = {}
    for name, p in named_params.items():
        g = group_of.get(id(p))
        if g is None:
            rules[name] = None
            continue
        if g.get("maximize", False):
            raise ValueError("The meta reweighter does not support SGD(maximize=True)")
        rules[name] = SGDRule(
            lr=float(g["lr"]),
            momentum=float(g.get("momentum", 0.0)),
            dampening=float(g.get("dampening", 0.0)),
            nesterov=bool(g.get("nesterov", False)),
            weight_decay=float(g.get("weight_decay", 0.0)),
            momentum_buffer=optimizer.state.get(p, {}).get("momentum_buffer"),
        )
    return rules


def roi_loss_weights(theta, gt_classes, num_classes):
    """
    Per-ROI loss weights ``c`` (N,): background ROIs 1, foreground ROIs of class ``y``
    ``sigmoid(theta_y) * n_fg / sum_{fg ROIs j} sigmoid(theta_{y_j})``. Differentiable in ``theta``.
    """
    fg = gt_classes < num_classes
    w = torch.sigmoid(theta)[gt_classes.clamp(max=num_classes - 1)] * fg
    denom = w.sum().clamp_min(torch.finfo(w.dtype).tiny)
    return torch.where(fg, w * fg.sum() / denom, torch.ones_like(w))


def _logits(classifier, params, x):
    if type(classifier) is nn.Linear:
        return F.linear(x, params["weight"], params.get("bias"))
    return functional_call(classifier, params, (x,))


def _linearization(classifier, params, x):
    """``(z, pullback, pushforward)`` of ``z = classifier(x)`` at ``params``: the logits, the
    vector-Jacobian product (dz -> {name: grad}) and the Jacobian-vector product ({name: tangent} ->
    dz). Closed forms for ``nn.Linear`` (z = x W^T + b), ``torch.func`` for any other classifier."""
    if type(classifier) is nn.Linear:
        has_bias = params.get("bias") is not None

        def pullback(dz):
            return {"weight": dz.t() @ x, **({"bias": dz.sum(0)} if has_bias else {})}

        return _logits(classifier, params, x), pullback, lambda t: F.linear(x, t["weight"], t.get("bias"))
    z, vjp_fn = vjp(lambda p: functional_call(classifier, p, (x,)), params)
    return z, lambda dz: vjp_fn(dz)[0], lambda t: jvp(lambda p: functional_call(classifier, p, (x,)), (params,), (t,))[1]


def meta_hypergradient(
    theta: torch.Tensor,
    classifier: torch.nn.Module,
    params: Dict[str, torch.Tensor],
    rules: Dict[str, Optional[SGDRule]],
    features: torch.Tensor,
    gt_classes: torch.Tensor,
    roi_loss_fn: Callable,
    meta_features: torch.Tensor,
    meta_classes: torch.Tensor,
    meta_loss_fn: Callable,
):
    """
    One meta step's hypergradient (see the module doc). Pure: nothing is modified.

    Args:
        theta: (K,) class-weight logits.
        classifier: module with ``classifier(x) -> logits`` (called through ``functional_call``).
        params: {name: tensor} the classifier's parameters at this iteration (detached values).
        rules: {name: SGDRule or None} the virtual step of each parameter (None: kept fixed).
        features, gt_classes: (N, D) box features and (N,) labels of the training batch.
        roi_loss_fn: ``(logits, labels) -> (N,)`` per-ROI training loss (prior-adjusted).
        meta_features, meta_classes: the meta batch (M, D), (M,).
        meta_loss_fn: ``(logits, labels) -> scalar`` plain loss of the meta batch.
    Returns:
        (meta_loss, dtheta): the meta loss after the virtual step and ``dM/dtheta``, both detached.
    """
    num_classes = theta.numel()
    n = max(gt_classes.numel(), 1)
    params = {k: v.detach() for k, v in params.items()}
    with torch.enable_grad():
        z, pullback, pushforward = _linearization(classifier, params, features)
        z = z.detach().requires_grad_()
        (delta,) = torch.autograd.grad(roi_loss_fn(z, gt_classes).sum(), z)
        c = roi_loss_weights(theta.detach(), gt_classes, num_classes)
        grads = pullback(delta * (c / n).unsqueeze(1))

        moved = {
            k: (rules[k].step(p, grads[k]) if rules.get(k) else p).detach().requires_grad_()
            for k, p in params.items()
        }
        meta_loss = meta_loss_fn(_logits(classifier, moved, meta_features), meta_classes)
        meta_grads = torch.autograd.grad(meta_loss, list(moved.values()), allow_unused=True)
        tangent = {
            k: (torch.zeros_like(p) if g is None or not rules.get(k) else rules[k].grad_factor() * g)
            for (k, p), g in zip(params.items(), meta_grads)
        }
        dm_dc = -(delta * pushforward(tangent)).sum(dim=1) / n

        th = theta.detach().clone().requires_grad_()
        (dtheta,) = torch.autograd.grad(roi_loss_weights(th, gt_classes, num_classes), th, dm_dc)
    return meta_loss.detach(), dtheta


@torch.no_grad()
def adam_step_(param, grad, exp_avg, exp_avg_sq, step, lr, betas=(0.9, 0.999), eps=1e-8):
    """One ``torch.optim.Adam`` step (no weight decay, no amsgrad), in place on ``param`` and the
    moment buffers; ``step`` is a 0-d tensor counting the steps taken, incremented here."""
    beta1, beta2 = betas
    step += 1
    t = float(step.item())
    exp_avg.lerp_(grad, 1 - beta1)
    exp_avg_sq.mul_(beta2).addcmul_(grad, grad.conj(), value=1 - beta2)
    bias_correction1 = 1 - beta1**t
    bias_correction2_sqrt = math.sqrt(1 - beta2**t)
    denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    param.addcdiv_(exp_avg, denom, value=-lr / bias_correction1)
    return param


def _mean_over_ranks_with_data(loss, dtheta, have):
    """(loss, dtheta) averaged over the DDP ranks that had a meta batch (``have``), by one
    all-reduce; every rank gets the same result. None when no rank had one."""
    packed = torch.cat([dtheta * have, (loss * have).view(1), loss.new_full((1,), float(have))])
    if comm.get_world_size() > 1:
        dist.all_reduce(packed)
    ranks = packed[-1].item()
    if ranks == 0:
        return None
    return packed[-2] / ranks, packed[:-2] / ranks


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
                "(tools/train_net.py adds it; see the README for a DefaultTrainer subclass)."
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
        averaged = _mean_over_ranks_with_data(loss.float(), dtheta.float(), bool(meta_y.numel()))
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
