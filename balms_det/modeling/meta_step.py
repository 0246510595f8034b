"""The Meta Reweighter of BALMS, its math: the ROI weights, one meta step's hypergradient, the Adam step.

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
import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch
import torch.distributed as dist
from detectron2.utils import comm
from torch import nn
from torch.func import functional_call, jvp, vjp
from torch.nn import functional as F

__all__ = ["SGDRule", "sgd_rules", "roi_loss_weights", "meta_hypergradient", "adam_step_", "mean_over_ranks_with_data"]


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


def mean_over_ranks_with_data(loss, dtheta, have):
    """(loss, dtheta) averaged over the DDP ranks that had a meta batch (``have``), by one
    all-reduce; every rank gets the same result. None when no rank had one."""
    packed = torch.cat([dtheta * have, (loss * have).view(1), loss.new_full((1,), float(have))])
    if comm.get_world_size() > 1:
        dist.all_reduce(packed)
    ranks = packed[-1].item()
    if ranks == 0:
        return None
    return packed[-2] / ranks, packed[:-2] / ranks
