"""The peer losses (Seesaw, EQLv2, ECM, federated) and their gradients against float64 references
written here from the papers' equations (not by calling the code under test), on random shapes with
background ROIs, classes absent from the batch and up to 1,300 classes; Seesaw's factors, EQLv2's
weights and ECM's margins entry by entry on hand-made cases."""
import math

import pytest
import torch
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from balms_det.modeling.cls_losses.ecm import ecm_loss, ecm_margins
from balms_det.modeling.cls_losses.eqlv2 import (eqlv2_gradient_increment, eqlv2_loss, eqlv2_weights,
                                                objectness_sigmoid_probs)
from balms_det.modeling.cls_losses.federated import FederatedLoss, federated_loss
from balms_det.modeling.cls_losses.seesaw import seesaw_log_factors, seesaw_loss, seesaw_probs
from balms_det.modeling.output_layers import LongTailOutputLayers

torch.set_num_threads(1)
SHAPES = [(37, 3), (64, 50), (48, 1300)]  # (N ROIs, K classes)


def _batch(n, k, extra, seed, bg_fraction=0.5):
    """Logits (N, K + extra), labels using only half the classes (the rest absent), many background."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k + extra, generator=g) * 3
    present = torch.randperm(k, generator=g)[: max(1, k // 2)]
    gt = present[torch.randint(0, len(present), (n,), generator=g)]
    gt[torch.rand(n, generator=g) < bg_fraction] = k
    gt[0] = k  # at least one background ROI
    return logits, gt


def _loss_and_grad(fn, logits, *args):
    z = logits.clone().requires_grad_(True)
    loss = fn(z, *args)
    loss.backward()
    return loss, z.grad


def _check(loss, grad, ref_loss, ref_grad):
    assert loss.dtype == torch.float32
    assert abs(loss.item() - ref_loss) <= 1e-5 * max(1.0, abs(ref_loss)), (loss.item(), ref_loss)
    assert torch.allclose(grad.double(), ref_grad, rtol=1e-4, atol=1e-7)


# ------------------------------------------------------------------------------------------ Seesaw
def _seesaw_reference(z, y, counts, p, q, eps):
    """Seesaw paper Eq. (1)-(3) plus the objectness branch, float64, ROI by ROI: for a foreground ROI
    of class i, sigma_hat_i = e^{z_i} / (sum_{j != i} S_ij e^{z_j} + e^{z_i}), S_ij = M_ij C_ij with
    M_ij = (N_j / N_i)^p if N_i > N_j else 1 and C_ij = (sigma_j / sigma_i)^q if sigma_j > sigma_i
    else 1 (sigma_i floored at eps, as the code). S is a constant for the gradient."""
    z = z.double()
    n, c = z.shape
    k = c - 2
    N = counts.double().clamp(min=1)
    loss, grad = 0.0, torch.zeros_like(z)
    for r in range(n):
        i = int(y[r])
        o = z[r, k:]
        obj_target = 1 if i == k else 0
        po = o.exp() / o.exp().sum()
        loss += -math.log(po[obj_target])
        grad[r, k:] = po - torch.eye(2, dtype=torch.float64)[obj_target]
        if i == k:
            continue
        zc = z[r, :k]
        sigma = zc.exp() / zc.exp().sum()
        S = torch.ones(k, dtype=torch.float64)
        for j in range(k):
            if j == i:
                continue
            m = (N[j] / N[i]) ** p if N[i] > N[j] else 1.0
            ratio = sigma[j] / max(sigma[i].item(), eps)
            cf = ratio ** q if ratio > 1 else 1.0
            S[j] = m * cf
        e = zc.exp()
        denom = (S * e).sum()  # S_ii = 1
        loss += -math.log(e[i] / denom)
        grad[r, :k] = S * e / denom
        grad[r, i] -= 1
    return loss / n, grad / n


@pytest.mark.parametrize("n,k", SHAPES)
def test_seesaw_loss_and_gradient_match_paper(n, k):
    logits, gt = _batch(n, k, 2, seed=k)
    g = torch.Generator().manual_seed(1)
    counts = torch.randint(0, 5000, (k,), generator=g).double()
    counts[: k // 3] = 0  # never-seen classes count as 1
    loss, grad = _loss_and_grad(lambda z: seesaw_loss(z, gt, counts, 0.8, 2.0, 1e-2), logits)
    ref_loss, ref_grad = _seesaw_reference(logits, gt, counts, 0.8, 2.0, 1e-2)
    _check(loss, grad, ref_loss, ref_grad)
    per_roi = seesaw_loss(logits, gt, counts, reduction="none")
    assert per_roi.shape == (n,) and torch.allclose(per_roi.sum() / n, loss)


def test_seesaw_factors_by_hand():
    counts = torch.tensor([100.0, 10.0, 1.0])
    z = torch.tensor([[0.0, math.log(2), math.log(4)]] * 3)  # sigma = (1, 2, 4) / 7
    labels = torch.tensor([0, 1, 2])
    s = seesaw_log_factors(z, labels, counts, p=0.8, q=2.0, eps=1e-2).exp()
    # label 0 (N = 100): M = (10/100)^0.8 = 0.158489, (1/100)^0.8 = 0.025119; C = 2^2 = 4, 4^2 = 16
    # label 1 (N = 10):  M = 1 (class 0 is more frequent), (1/10)^0.8 = 0.158489; C = 1, 2^2 = 4
    # label 2 (N = 1):   M = 1, 1; C = 1, 1 (classes 0 and 1 score lower)
    expect = torch.tensor([
        [1.0, 0.15848932 * 4, 0.02511886 * 16],
        [1.0, 1.0, 0.15848932 * 4],
        [1.0, 1.0, 1.0],
    ])
    assert torch.allclose(s, expect, rtol=1e-6)
    # p = 0 / q = 0 switch a factor off
    assert torch.allclose(seesaw_log_factors(z, labels, counts, p=0.0, q=2.0).exp()[0], torch.tensor([1.0, 4.0, 16.0]))
    assert torch.allclose(seesaw_log_factors(z, labels, counts, p=0.8, q=0.0).exp()[1], torch.tensor([1.0, 1.0, 0.15848932]))
    # eps: sigma_0 = 4.5396e-5 < 0.01, so C_02 = (0.9999092 / 0.01)^2 = 9998.18 (not (sigma_2/sigma_0)^2)
    s = seesaw_log_factors(torch.tensor([[0.0, 0.0, 10.0]]), torch.tensor([0]), torch.ones(3), p=0.8, q=2.0).exp()
    assert torch.allclose(s, torch.tensor([[1.0, 1.0, 9998.1843]]), rtol=1e-5)


def test_seesaw_probs_are_class_times_objectness():
    z = torch.tensor([[1.0, 2.0, 0.5, 0.3, -0.2]])  # K = 3, objectness (0.3, -0.2)
    p_fg = 1 / (1 + math.exp(-0.5))
    cls = torch.tensor([1.0, 2.0, 0.5]).exp()
    expect = torch.cat([cls / cls.sum() * p_fg, torch.tensor([1 - p_fg])])
    assert torch.allclose(seesaw_probs(z)[0], expect, atol=1e-6)


# ------------------------------------------------------------------------------------------- EQLv2
def _eqlv2_reference(z, y, q, r):
    """EQLv2 paper: sigmoid BCE with q_j on the positive and r_j on the negative terms, / N; the
    gradient q_j (sigma - 1) for a positive, r_j sigma for a negative."""
    z = z.double()
    n, c = z.shape
    t = torch.zeros(n, c, dtype=torch.float64)
    t[torch.arange(n), y] = 1
    s = 1 / (1 + (-z).exp())
    loss = -(t * q * s.log() + (1 - t) * r * (1 - s).log()).sum() / n
    grad = (t * q * (s - 1) + (1 - t) * r * s) / n
    return loss.item(), grad


def test_eqlv2_weights_by_hand():
    pos = torch.tensor([1.0, 0.8, 0.1, 0.0])
    neg = torch.tensor([1.0, 1.0, 1.0, 2.0])
    q, r = eqlv2_weights(pos, neg, gamma=12.0, mu=0.8, alpha=4.0)
    # g = pos / neg = (1, 0.8, 0.1, 0); r = 1 / (1 + exp(-12 (g - 0.8))); q = 1 + 4 (1 - r); background 1
    assert torch.allclose(r, torch.tensor([0.91682730, 0.5, 2.2481677e-4, 6.7724150e-05, 1.0], dtype=torch.float64), rtol=1e-6)
    assert torch.allclose(q, torch.tensor([1.33269079, 3.0, 4.99910073, 4.99972910, 1.0], dtype=torch.float64), rtol=1e-6)
    # no statistics yet (the code's first iteration): every weight 1
    q0, r0 = eqlv2_weights(torch.zeros(4), torch.zeros(4))
    assert (q0 == 1).all() and (r0 == 1).all() and q0.shape == (5,)


@pytest.mark.parametrize("n,k", SHAPES)
def test_eqlv2_loss_and_gradient_match_paper(n, k):
    logits, gt = _batch(n, k, 1, seed=k + 1)
    g = torch.Generator().manual_seed(2)
    pos, neg = torch.rand(k, generator=g).double() * 50, torch.rand(k, generator=g).double() * 60 + 1
    q, r = eqlv2_weights(pos, neg)
    g_ratio = pos / (neg + 1e-10)  # the reference weights, from the paper's mapping
    r_ref = torch.cat([1 / (1 + (-12 * (g_ratio - 0.8)).exp()), torch.ones(1, dtype=torch.float64)])
    q_ref = 1 + 4 * (1 - r_ref)
    assert torch.allclose(r, r_ref) and torch.allclose(q, q_ref)
    loss, grad = _loss_and_grad(lambda z: eqlv2_loss(z, gt, q, r), logits)
    _check(loss, grad, *_eqlv2_reference(logits, gt, q_ref, r_ref))
    # the step's statistics: weighted gradient magnitudes, not divided by N, background column dropped
    inc_pos, inc_neg = eqlv2_gradient_increment(logits, gt, q, r)
    _, ref_grad = _eqlv2_reference(logits, gt, q_ref, r_ref)
    t = torch.zeros(n, k + 1, dtype=torch.float64)
    t[torch.arange(n), gt] = 1
    assert torch.allclose(inc_pos, (ref_grad.abs() * n * t).sum(0)[:k], rtol=1e-5)
    assert torch.allclose(inc_neg, (ref_grad.abs() * n * (1 - t)).sum(0)[:k], rtol=1e-5)


# --------------------------------------------------------------------------------------------- ECM
def _ecm_reference(z, y, counts, ratio):
    """ECM: n+ = counts (background ratio * sum), n- = total - n+; margins m+ = log((n+^1/4 + n-^1/4)
    / n-^1/4), m- = log((n+^1/4 + n-^1/4) / n+^1/4); p = e^{z + m+} / (e^{z + m+} + e^{-z + m-});
    loss = -w (t log p + (1 - t) log(1 - p)), w = a log((1 + a) / a), a = n- / n+; / N."""
    z = z.double()
    n, c = z.shape
    npos = torch.cat([counts.double(), counts.double().sum().reshape(1) * ratio])
    nneg = npos.sum() - npos
    mp = ((npos ** 0.25 + nneg ** 0.25) / nneg ** 0.25).log()
    mn = ((npos ** 0.25 + nneg ** 0.25) / npos ** 0.25).log()
    a = nneg / npos
    w = a * ((1 + a) / a).log()
    t = torch.zeros(n, c, dtype=torch.float64)
    t[torch.arange(n), y] = 1
    ep, en = (z + mp).exp(), (-z + mn).exp()
    p = ep / (ep + en)
    loss = -(w * (t * p.log() + (1 - t) * (1 - p).log())).sum() / n
    grad = w * (t * -2 * (1 - p) + (1 - t) * 2 * p) / n  # dp/dz = 2 p (1 - p)
    return loss.item(), grad


def test_ecm_margins_by_hand():
    m_pos, m_neg, w = ecm_margins(torch.tensor([9.0, 1.0]), fg_bg_ratio=1.0)
    # n = (9, 1, 10) with background = 1.0 x 10; n- = (11, 19, 10)
    assert torch.allclose(m_pos, torch.tensor([0.66837791, 0.39134835, math.log(2)], dtype=torch.float64))
    assert torch.allclose(m_neg, torch.tensor([0.71854558, 1.12745810, math.log(2)], dtype=torch.float64))
    assert torch.allclose(w, torch.tensor([0.73068967, 0.97457259, math.log(2)], dtype=torch.float64))


@pytest.mark.parametrize("n,k", SHAPES)
def test_ecm_loss_and_gradient_match_paper(n, k):
    logits, gt = _batch(n, k, 1, seed=k + 2)
    logits = logits / 3  # the margin form's exponentials stay finite in the reference
    counts = torch.randint(1, 3000, (k,), generator=torch.Generator().manual_seed(3)).double()
    margins = ecm_margins(counts, 6.3313)
    loss, grad = _loss_and_grad(lambda z: ecm_loss(z, gt, *margins), logits)
    _check(loss, grad, *_ecm_reference(logits, gt, counts, 6.3313))


def test_ecm_large_logits_stay_finite():
    z = torch.tensor([[80.0, -90.0, 60.0]]).requires_grad_()
    loss = ecm_loss(z, torch.tensor([1]), *ecm_margins(torch.tensor([5.0, 2.0])))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_objectness_sigmoid_probs():
    z = torch.tensor([[0.5, -1.0, 2.0]])  # K = 2, background logit 2.0
    s = torch.sigmoid(z[0])
    expect = torch.tensor([s[0] * (1 - s[2]), s[1] * (1 - s[2]), s[2]])
    assert torch.allclose(objectness_sigmoid_probs(z)[0], expect)


# --------------------------------------------------------------------------------------- federated
@pytest.mark.parametrize("n,k", SHAPES)
def test_federated_loss_and_gradient_match_definition(n, k):
    logits, gt = _batch(n, k, 0, seed=k + 3)
    g = torch.Generator().manual_seed(4)
    mask = (torch.rand(k, generator=g) < 0.3).float()
    mask[gt[gt < k]] = 1
    loss, grad = _loss_and_grad(lambda z: federated_loss(z, gt, mask), logits)
    z = logits.double()
    t = torch.zeros(n, k + 1, dtype=torch.float64)
    t[torch.arange(n), gt] = 1
    t = t[:, :k]
    s = 1 / (1 + (-z).exp())
    ref_loss = (-(t * s.log() + (1 - t) * (1 - s).log()) * mask.double()).sum().item() / n
    _check(loss, grad, ref_loss, (s - t) * mask.double() / n)


def proposals(n, k, seed, num_present=None):
    """One image's ``n`` proposals with ground truth; labels among the first ``num_present`` classes
    (default all, background included), about half of them background."""
    g = torch.Generator().manual_seed(seed)
    p = Instances((64, 64))
    xy = torch.rand(n, 2, generator=g) * 30
    p.proposal_boxes = Boxes(torch.cat([xy, xy + 10], 1))
    p.gt_boxes = Boxes(torch.cat([xy, xy + 12], 1))
    p.gt_classes = torch.randint(0, num_present or k + 1, (n,), generator=g)
    p.gt_classes[torch.rand(n, generator=g) < 0.5] = k
    return [p]


def test_federated_equals_detectron2_stock_head():
    k, n = 120, 40
    counts = torch.randint(1, 500, (k,), generator=torch.Generator().manual_seed(5)).double()
    weights = counts.float() ** 0.5
    b2b = Box2BoxTransform((10.0, 10.0, 5.0, 5.0))
    ours = LongTailOutputLayers(16, box2box_transform=b2b, num_classes=k,
                                cls_loss=FederatedLoss(k, class_counts=counts, fed_num_classes=50))
    stock = FastRCNNOutputLayers(16, box2box_transform=b2b, num_classes=k, use_sigmoid_ce=True, use_fed_loss=True,
                                 get_fed_loss_cls_weights=lambda: weights, fed_loss_num_classes=50)
    with torch.no_grad():  # stock has K + 1 logits and ignores the last one
        stock.cls_score.weight[:k] = ours.cls_score.weight
        stock.cls_score.bias[:k] = ours.cls_score.bias
        stock.bbox_pred.load_state_dict(ours.bbox_pred.state_dict())
    x = torch.randn(n, 16)
    for seed in range(3):
        props = proposals(n, k, seed, num_present=8)
        with EventStorage():
            torch.manual_seed(seed)
            a = ours.losses(ours(x), props)
            torch.manual_seed(seed)
            b = stock.losses(stock(x), props)
        assert torch.allclose(a["loss_cls"], b["loss_cls"], rtol=1e-6)
    # the classes of a step: every ground-truth class, 50 in all counting background (detectron2
    # counts the background label among the 50), never background itself
    torch.manual_seed(0)
    ours.cls_loss.before_loss(props[0].gt_classes)
    mask = ours.cls_loss._mask
    assert mask.shape == (k,) and mask.sum() == 49
    assert mask[props[0].gt_classes[props[0].gt_classes < k]].eq(1).all()
    # fewer classes than FEDERATED.NUM_CLASSES (stock detectron2 fails to sample): all classes
    small = LongTailOutputLayers(16, box2box_transform=b2b, num_classes=5,
                                 cls_loss=FederatedLoss(5, class_counts=[5.0, 4, 3, 2, 1]))
    small.cls_loss.before_loss(torch.tensor([0, 5, 2]))
    assert small.cls_loss._mask is None
    z, gt = torch.randn(3, 5), torch.tensor([0, 5, 2])
    assert torch.equal(small.per_roi_classification_loss(z, gt), federated_loss(z, gt, torch.ones(5), "none"))
