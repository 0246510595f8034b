"""Meta Reweighter, the math: the virtual SGD step and Adam against torch.optim, the ROI weights on a
hand-made case, and the hypergradient against central finite differences and a create_graph autograd
reference (float64), for the softmax and the sigmoid variants, with momentum and weight decay; the
ROI feature bank's ring buffers and class-balanced sampling."""
import math
from collections import Counter

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from balms_det.modeling.meta_reweighter import MetaReweighter
from balms_det.modeling.meta_step import SGDRule, adam_step_, meta_hypergradient, roi_loss_weights, sgd_rules
from balms_det.modeling.roi_feature_bank import ROIFeatureBank

torch.set_num_threads(1)

SGD_SETTINGS = {
    "plain": dict(momentum=0.0, weight_decay=0.0),
    "momentum_wd": dict(momentum=0.9, weight_decay=1e-2),
    "nesterov_wd": dict(momentum=0.9, weight_decay=1e-2, nesterov=True),
    "dampening": dict(momentum=0.8, dampening=0.3, weight_decay=1e-3),
}


# ------------------------------------------------------------------ the optimizers' update rules
@pytest.mark.parametrize("setting", list(SGD_SETTINGS))
@pytest.mark.parametrize("with_buffer", [False, True])
def test_sgd_rule_equals_torch_sgd_and_its_gradient_factor(setting, with_buffer):
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(5, 3, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1, **SGD_SETTINGS[setting])
    if with_buffer:  # one real step first: the momentum buffer exists
        p.grad = torch.randn_like(p)
        opt.step()
    g = torch.randn_like(p)
    rule = sgd_rules(opt, {"p": p})["p"]
    assert (rule.momentum_buffer is not None) == (with_buffer and rule.momentum != 0)
    virtual = rule.step(p.detach(), g)
    p.grad = g.clone()
    opt.step()
    assert torch.allclose(virtual, p.detach(), rtol=0, atol=1e-14)
    # d step / d g = -lr * kappa: central differences of the rule itself along a random direction
    v, h = torch.randn_like(g), 1e-4
    fd = (rule.step(p.detach(), g + h * v) - rule.step(p.detach(), g - h * v)) / (2 * h)
    assert torch.allclose(fd, -rule.grad_factor() * v, atol=1e-10)


def test_sgd_rules_refuse_other_optimizers_and_skip_frozen():
    a, b = nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(2))
    assert sgd_rules(torch.optim.SGD([a], lr=1.0), {"a": a, "b": b})["b"] is None
    with pytest.raises(TypeError, match="SGD"):
        sgd_rules(torch.optim.Adam([a]), {"a": a})


def test_adam_step_equals_torch_adam():
    torch.manual_seed(0)
    p = nn.Parameter(torch.randn(7))
    ours = p.detach().clone()
    m, v, t = torch.zeros(7), torch.zeros(7), torch.zeros(())
    opt = torch.optim.Adam([p], lr=0.01)
    for _ in range(5):
        g = torch.randn(7)
        p.grad = g.clone()
        opt.step()
        adam_step_(ours, g, m, v, t, lr=0.01)
        assert torch.equal(ours, p.detach())
    assert torch.equal(m, opt.state[p]["exp_avg"]) and torch.equal(v, opt.state[p]["exp_avg_sq"])
    assert t.item() == 5


# ------------------------------------------------------------------ ROI weights
def test_roi_loss_weights_hand_made_case():
    # K = 3; theta = (0, log 3, -log 3): w = (1/2, 3/4, 1/4). ROIs: classes 0, 1, 1, bg, 2, bg.
    theta = torch.tensor([0.0, math.log(3.0), -math.log(3.0)], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 3, 2, 3])
    c = roi_loss_weights(theta, labels, 3)
    # n_fg = 4, sum of fg weights = 1/2 + 3/4 + 3/4 + 1/4 = 9/4: c = w * 4 / (9/4) = w * 16/9
    expected = torch.tensor([8 / 9, 4 / 3, 4 / 3, 1.0, 4 / 9, 1.0], dtype=torch.float64)
    assert torch.allclose(c, expected, atol=1e-15)
    assert torch.equal(roi_loss_weights(torch.zeros(3), torch.tensor([3, 3]), 3), torch.ones(2))
    assert torch.allclose(roi_loss_weights(torch.zeros(3), labels, 3), torch.ones(6))  # theta = 0: w = 0.5 each


# ------------------------------------------------------------------ the hypergradient
K, D = 5, 6


def _softmax_per_roi(z, y, shift, tau=1.0):  # Balanced Softmax per ROI, from the formula
    a = z + tau * shift
    return torch.logsumexp(a, dim=1) - a.gather(1, y[:, None]).squeeze(1)


def _sigmoid_per_roi(z, y, log_odds):  # the official sigmoid variant per ROI, from the formula
    fg = (y < z.shape[1])[:, None]
    a = torch.where(fg, z - log_odds, z)
    t = F.one_hot(y, z.shape[1] + 1)[:, : z.shape[1]].to(z)
    return (F.softplus(a) - t * a).sum(1)


def _plain_softmax(z, y):
    return (torch.logsumexp(z, dim=1) - z.gather(1, y[:, None]).squeeze(1)).mean()


def _plain_sigmoid(z, y):
    t = F.one_hot(y, z.shape[1] + 1)[:, : z.shape[1]].to(z)
    return (F.softplus(z) - t * z).sum() / z.shape[0]


def _weights_ref(theta, y):  # c_i written out, independent of roi_loss_weights
    s = torch.sigmoid(theta)
    fg = y < K
    ws = torch.stack([s[int(c)] if f else s.new_tensor(1.0) for c, f in zip(y, fg)])
    total = sum(ws[i] for i in range(len(y)) if fg[i])
    return torch.stack([ws[i] * int(fg.sum()) / total if fg[i] else ws[i] for i in range(len(y))])


class CosineClassifier(nn.Module):
    """A classifier that is not nn.Linear (the torch.func path): z = 5 * cos(x, W_c) + b_c."""

    def __init__(self, d, c):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(c, d))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return cosine_logits(x, self.weight, self.bias)


def cosine_logits(x, w, b):
    return 5.0 * F.normalize(x, dim=1) @ F.normalize(w, dim=1).t() + b


def _problem(variant, setting, seed=0, classifier="linear"):
    g = torch.Generator().manual_seed(seed)
    dt = torch.float64
    num_logits = K + 1 if variant == "softmax" else K
    lin = (nn.Linear(D, num_logits) if classifier == "linear" else CosineClassifier(D, num_logits)).to(dt)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(num_logits, D, generator=g, dtype=dt) * 0.5)
        lin.bias.copy_(torch.randn(num_logits, generator=g, dtype=dt) * 0.5)
    x = torch.randn(24, D, generator=g, dtype=dt)
    y = torch.tensor([0, 0, 0, 1, 1, 2, 4] + [K] * 17)  # class 3 absent, background ROIs
    xm = torch.randn(30, D, generator=g, dtype=dt)
    ym = torch.cat([torch.arange(K).repeat(2), torch.full((20,), K)])
    theta = torch.randn(K, generator=g, dtype=dt)
    counts = torch.tensor([200.0, 50.0, 10.0, 3.0, 1.0], dtype=dt)
    if variant == "softmax":
        shift = torch.cat([counts.log() - counts.mean().log(), torch.zeros(1, dtype=dt)])
        per_roi, plain = (lambda z, yy: _softmax_per_roi(z, yy, shift)), _plain_softmax
    else:
        p = counts / 300
        per_roi, plain = (lambda z, yy: _sigmoid_per_roi(z, yy, ((1 - p) / p).log())), _plain_sigmoid
    opt = torch.optim.SGD(lin.parameters(), lr=0.5, **SGD_SETTINGS[setting])
    for _ in range(2):  # real steps first: momentum buffers exist
        opt.zero_grad()
        per_roi(lin(x), y).mean().backward()
        opt.step()
    return lin, opt, x, y, xm, ym, theta, per_roi, plain


def _meta_loss_ref(theta, lin, opt, x, y, xm, ym, per_roi, plain, create_graph):
    """The official computation written out: weighted loss, its gradient (create_graph), the virtual
    SGD step of torch.optim.SGD (written from its documentation), the plain loss on the meta batch."""
    w, b = lin.weight.detach().requires_grad_(), lin.bias.detach().requires_grad_()
    f = F.linear if isinstance(lin, nn.Linear) else cosine_logits
    loss = (_weights_ref(theta, y) * per_roi(f(x, w, b), y)).sum() / len(y)
    grads = torch.autograd.grad(loss, [w, b], create_graph=create_graph)
    moved = []
    group = opt.param_groups[0]
    mu, damp, wd = group["momentum"], group["dampening"], group["weight_decay"]
    for p, gp in zip((w, b), grads):
        d = gp + wd * p
        buf = opt.state[lin.weight if p is w else lin.bias].get("momentum_buffer")
        if mu:
            buf = d if buf is None else mu * buf + (1 - damp) * d
            d = d + mu * buf if group["nesterov"] else buf
        moved.append(p - group["lr"] * d)
    return plain(f(xm, moved[0], moved[1]), ym)


def _ours(lin, opt, x, y, xm, ym, theta, per_roi, plain):
    params = dict(lin.named_parameters())
    return meta_hypergradient(theta, lin, params, sgd_rules(opt, params), x, y, per_roi, xm, ym, plain)


@pytest.mark.parametrize("variant,setting,classifier", [
    (v, s, "linear") for v in ("softmax", "sigmoid") for s in ("momentum_wd", "nesterov_wd", "dampening", "plain")
] + [("softmax", "momentum_wd", "cosine"), ("sigmoid", "nesterov_wd", "cosine")])
def test_hypergradient_equals_finite_differences_and_autograd_reference(variant, setting, classifier):
    lin, opt, x, y, xm, ym, theta, per_roi, plain = _problem(variant, setting, classifier=classifier)
    meta_loss, dtheta = _ours(lin, opt, x, y, xm, ym, theta, per_roi, plain)

    th = theta.clone().requires_grad_()
    ref_loss = _meta_loss_ref(th, lin, opt, x, y, xm, ym, per_roi, plain, create_graph=True)
    (ref,) = torch.autograd.grad(ref_loss, th)
    assert torch.allclose(meta_loss, ref_loss.detach(), rtol=1e-12)
    assert torch.allclose(dtheta, ref, rtol=1e-9, atol=1e-14), (dtheta, ref)

    h = 1e-5
    fd = torch.zeros(K, dtype=torch.float64)
    for k in range(K):
        e = torch.zeros(K, dtype=torch.float64)
        e[k] = h
        up = _meta_loss_ref(theta + e, lin, opt, x, y, xm, ym, per_roi, plain, create_graph=False)
        down = _meta_loss_ref(theta - e, lin, opt, x, y, xm, ym, per_roi, plain, create_graph=False)
        fd[k] = (up - down) / (2 * h)
    assert torch.allclose(dtheta, fd, rtol=1e-6, atol=1e-11), (dtheta, fd)
    assert dtheta[3] == 0 and dtheta.abs().sum() > 0  # class 3 is absent from the training batch


def test_hypergradient_of_a_batch_without_foreground_is_zero():
    lin, opt, x, _, xm, ym, theta, per_roi, plain = _problem("softmax", "momentum_wd")
    y = torch.full((24,), K)
    _, dtheta = _ours(lin, opt, x, y, xm, ym, theta, per_roi, plain)
    assert torch.equal(dtheta, torch.zeros(K, dtype=torch.float64))


# ------------------------------------------------------------------ the module: non-finite states
def _module_step(reweighter, lin, opt, x, y, xm, ym, per_roi, plain, iteration=7):
    reweighter.prepare(iteration, sgd_rules(opt, dict(lin.named_parameters())), True)
    reweighter.capture(xm, ym)
    return reweighter.step(lin, x, y, per_roi, plain)


def test_nonfinite_meta_step_raises_naming_the_iteration_or_is_skipped(caplog):
    lin, opt, x, y, xm, ym, _, per_roi, plain = _problem("softmax", "momentum_wd")
    lin, x, xm = lin.float(), x.float(), xm.float()
    bad = xm.clone()
    bad[0, 0] = float("nan")
    r = MetaReweighter(K, D, source="images")
    with pytest.raises(FloatingPointError, match="iteration 7"):
        _module_step(r, lin, opt, x, y, bad, ym, per_roi, plain)
    assert torch.equal(r.theta, torch.zeros(K)) and r.adam_step.item() == 0

    r = MetaReweighter(K, D, source="images", on_nonfinite="skip")
    weights = _module_step(r, lin, opt, x, y, bad, ym, per_roi, plain)
    assert torch.equal(r.theta, torch.zeros(K)) and torch.isfinite(weights).all()
    assert "skipped" in caplog.text
    _module_step(r, lin, opt, x, y, xm, ym, per_roi, plain)  # a finite step afterwards is taken
    assert r.adam_step.item() == 1 and not torch.equal(r.theta, torch.zeros(K))


def test_step_without_the_hook_is_an_error():
    r = MetaReweighter(K, D)
    with pytest.raises(RuntimeError, match="MetaReweighterHook"):
        r.step(nn.Linear(D, K + 1), torch.zeros(3, D), torch.tensor([0, 1, K]), None, None)
    with torch.no_grad():  # a forward that cannot be a training step (PreciseBN's): weights, no meta step
        c = r.step(nn.Linear(D, K + 1), torch.zeros(3, D), torch.tensor([0, 1, K]), None, None)
    assert torch.equal(c, torch.ones(3)) and r.adam_step.item() == 0 and r.bank.num_stored() == (0, 0)


# ------------------------------------------------------------------ the ROI feature bank
def _ring(bank, label):
    lo = int(bank.offset[label])
    return {tuple(r) for r in bank.features[lo: lo + int(bank.count[label])].tolist()}


def test_bank_keeps_the_last_entries_per_class_in_ring_buffers():
    bank = ROIFeatureBank(num_classes=3, feature_dim=2, per_class=2, background=3)
    feats = torch.arange(20.0).view(10, 2)  # feature i = (2i, 2i+1)
    labels = torch.tensor([0, 3, 0, 0, 1, 3, 3, 3, 0, 3])
    bank.add(feats, labels)
    # class 0 seen at rows 0, 2, 3, 8 -> the last two (3, 8); ring pointer at 4 % 2 = 0
    assert _ring(bank, 0) == {(6.0, 7.0), (16.0, 17.0)}
    assert bank.count.tolist() == [2, 1, 0, 3] and bank.ptr.tolist() == [0, 1, 0, 2]
    assert _ring(bank, 1) == {(8.0, 9.0)} and _ring(bank, 2) == set()
    # background rows 1, 5, 6, 7, 9 -> the last three (6, 7, 9)
    assert _ring(bank, 3) == {(12.0, 13.0), (14.0, 15.0), (18.0, 19.0)}
    bank.add(torch.tensor([[100.0, 101.0]]), torch.tensor([0]))  # overwrites class 0's oldest entry
    assert _ring(bank, 0) == {(100.0, 101.0), (16.0, 17.0)}
    assert bank.num_stored() == (3, 3)  # class 0 full (2), class 1 one; background full (3)


def test_bank_samples_class_balanced_from_what_it_holds():
    torch.manual_seed(0)
    bank = ROIFeatureBank(num_classes=4, feature_dim=1, per_class=8, background=16)
    labels = torch.tensor([0] * 50 + [1] * 5 + [2] * 1 + [4] * 30)  # class 3 never seen
    feats = labels.float().view(-1, 1) * 10 + torch.rand(len(labels), 1)
    bank.add(feats, labels)
    x, y = bank.sample(3000, 500)
    counts = Counter(y.tolist())
    for c in (0, 1, 2):
        assert abs(counts[c] / 3000 - 1 / 3) < 0.04, counts
    assert counts[3] == 0 and counts[4] == 500
    assert torch.equal((x[:, 0] // 10).long(), y)  # every feature comes with its own label
    assert bank.sample(5, 5)[0].shape == (10, 1)
    empty = ROIFeatureBank(num_classes=4, feature_dim=1)
    assert empty.sample(5, 5)[1].numel() == 0
