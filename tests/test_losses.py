"""Each loss of the softmax and sigmoid families (and post-hoc logit adjustment) against a direct float64
computation of its formula."""
import math

import pytest
import torch
from detectron2.layers import cross_entropy as d2_cross_entropy
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from torch.nn import functional as F

from balms_det.modeling.calibrations.logit_adjustment import posthoc_adjust
from balms_det.modeling.cls_losses.balanced_sigmoid import balanced_sigmoid_loss
from balms_det.modeling.cls_losses.balanced_softmax import balanced_softmax_loss
from balms_det.modeling.cls_losses.sigmoid import sigmoid_ce_loss, sigmoid_prior_bias, sigmoid_probs_with_background
from balms_det.modeling.cls_losses.softmax import softmax_logit_shift


def _inputs(n=64, k=7, seed=0, bg_fraction=0.5):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, k + 1, generator=g) * 3
    gt = torch.randint(0, k, (n,), generator=g)
    gt[torch.rand(n, generator=g) < bg_fraction] = k  # background
    counts = torch.randint(1, 1000, (k,), generator=g).double()
    return logits, gt, counts


def _direct_softmax_ce(z, y, s):
    """mean_i [ logsumexp_j (z_ij + s_j) - (z_iy + s_y) ], and its gradient, all in float64."""
    z = z.double()
    a = z + s.double()
    m = a.max(dim=1, keepdim=True).values
    lse = (a - m).exp().sum(1).log() + m.squeeze(1)
    loss = (lse - a[torch.arange(len(y)), y]).mean()
    p = (a - lse[:, None]).exp()
    grad = (p - F.one_hot(y, z.shape[1]).double()) / len(y)
    return loss, grad


@pytest.mark.parametrize("tau", [1.0, 0.25, 2.0])
@pytest.mark.parametrize("background,center", [("unadjusted", True), ("unadjusted", False), ("running", True)])
def test_balanced_softmax_matches_formula(tau, background, center):
    logits, gt, counts = _inputs(seed=int(tau * 8))
    roi_counts = torch.cat([counts, counts.sum(0, keepdim=True) * 3])
    shift = softmax_logit_shift(counts, background, center, roi_label_counts=roi_counts)
    # the shift itself, by its definition
    if background == "unadjusted":
        expect = [math.log(c) - (math.log(counts.mean()) if center else 0) for c in counts.tolist()] + [0.0]
    else:
        tot = roi_counts.sum().item()
        expect = [math.log(c / tot) for c in roi_counts.tolist()]  # log pi_j, background included
    shift_expect = torch.tensor(expect, dtype=torch.float64)
    if background == "running":  # softmax is shift-invariant: compare up to a constant
        d = shift - shift_expect
        assert torch.allclose(d, d[0].expand_as(d), atol=1e-9)
    else:
        assert torch.allclose(shift, shift_expect, atol=1e-9)

    z = logits.clone().requires_grad_(True)
    loss = balanced_softmax_loss(z, gt, shift, tau=tau)
    loss.backward()
    ref_loss, ref_grad = _direct_softmax_ce(logits, gt, tau * shift)
    assert loss.dtype == torch.float32
    assert abs(loss.item() - ref_loss.item()) < 1e-5 * max(1.0, ref_loss.item())
    assert torch.allclose(z.grad.double(), ref_grad, atol=1e-6)


def test_tau_zero_is_plain_cross_entropy():
    logits, gt, counts = _inputs(seed=3)
    shift = softmax_logit_shift(counts)
    a = balanced_softmax_loss(logits, gt, shift, tau=0.0)
    assert torch.allclose(a, F.cross_entropy(logits, gt))
    assert torch.allclose(a, d2_cross_entropy(logits, gt))
    # and tau=1 really is different on the same inputs
    assert not torch.allclose(balanced_softmax_loss(logits, gt, shift, tau=1.0), a)


def test_uniform_prior_is_plain_cross_entropy():
    logits, gt, _ = _inputs(seed=4)
    shift = softmax_logit_shift(torch.full((7,), 13.0))  # centered uniform prior: zero shift
    assert torch.allclose(balanced_softmax_loss(logits, gt, shift), F.cross_entropy(logits, gt))


def test_empty_batch_is_zero_with_grad():
    z = torch.zeros(0, 5, requires_grad=True)
    loss = balanced_softmax_loss(z, torch.zeros(0, dtype=torch.long), torch.zeros(5))
    loss.backward()
    assert loss.item() == 0.0
    for fn in (sigmoid_ce_loss, lambda a, b: balanced_sigmoid_loss(a, b, torch.full((5,), 0.1))):
        assert fn(torch.zeros(0, 5, requires_grad=True), torch.zeros(0, dtype=torch.long)).item() == 0.0


def test_posthoc_adjustment_changes_argmax_towards_rare():
    counts = torch.tensor([1000.0, 10.0])  # class 0 frequent, class 1 rare; index 2 = background
    shift = softmax_logit_shift(counts)
    # frequent class slightly ahead: plain argmax is class 0
    z = torch.tensor([[2.0, 1.5, -5.0]])
    assert posthoc_adjust(z, shift, 0.0).argmax(1).item() == 0
    # adjusted by -tau*log(pi): the rare class gains log(1000/10) = 4.6 > 0.5
    adj = posthoc_adjust(z, shift, 1.0)
    assert adj.argmax(1).item() == 1
    expected = z.double() - torch.tensor([math.log(2 * 1000 / 1010), math.log(2 * 10 / 1010), 0.0])
    assert torch.allclose(adj.double(), expected, atol=1e-5)
    # a weak adjustment (tau small) does not flip it: 0.1 * 4.6 < 0.5
    assert posthoc_adjust(z, shift, 0.1).argmax(1).item() == 0
    # a clear frequent-class win survives even tau = 1
    assert posthoc_adjust(torch.tensor([[8.0, 1.5, -5.0]]), shift, 1.0).argmax(1).item() == 0


def _direct_sigmoid(z, y, p=None):
    """sum_ij BCE(z'_ij, t_ij) / N with z' = z - [fg_i] log((1-p_j)/p_j); value and gradient, float64."""
    z = z.double()
    n, k = z.shape
    t = torch.zeros(n, k, dtype=torch.float64)
    fg = y < k
    t[fg.nonzero().flatten(), y[fg]] = 1.0
    if p is not None:
        z = z - fg.double()[:, None] * torch.log((1 - p.double()) / p.double())[None, :]
    sig = 1 / (1 + torch.exp(-z))
    loss = -(t * torch.log(sig) + (1 - t) * torch.log(1 - sig)).sum() / n
    grad = (sig - t) / n
    return loss, grad


def test_sigmoid_baseline_matches_formula_and_detectron2():
    logits, gt, _ = _inputs(seed=5)
    z = logits[:, :-1].clone().requires_grad_(True)  # K logits
    loss = sigmoid_ce_loss(z, gt)
    loss.backward()
    ref, ref_grad = _direct_sigmoid(logits[:, :-1], gt)
    assert abs(loss.item() - ref.item()) < 1e-5 * ref.item()
    assert torch.allclose(z.grad.double(), ref_grad, atol=1e-7)
    # detectron2's own sigmoid CE (K+1 logits, last ignored) computes the same number
    layer = FastRCNNOutputLayers(
        16, box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), num_classes=7, use_sigmoid_ce=True
    )
    assert torch.allclose(layer.sigmoid_cross_entropy_loss(logits, gt), loss, atol=1e-6)


def test_balanced_sigmoid_matches_official_formula():
    logits, gt, counts = _inputs(seed=6, bg_fraction=0.6)
    num_images = 1500
    p = counts / num_images
    z = logits[:, :-1].clone().requires_grad_(True)
    loss = balanced_sigmoid_loss(z, gt, p)
    loss.backward()
    ref, ref_grad = _direct_sigmoid(logits[:, :-1], gt, p)
    assert abs(loss.item() - ref.item()) < 1e-5 * ref.item()
    assert torch.allclose(z.grad.double(), ref_grad, atol=1e-7)
    # background ROIs: unadjusted logits, all-zero target -> their gradient is sigmoid(z)/N exactly
    bg = gt == 7
    assert bg.any() and (~bg).any()
    assert torch.allclose(z.grad[bg].double(), logits[bg, :-1].double().sigmoid() / len(gt), atol=1e-7)
    # the adjustment is not a no-op on foreground rows
    assert abs(sigmoid_ce_loss(logits[:, :-1], gt).item() - loss.item()) > 1e-3


def test_balanced_sigmoid_extreme_frequencies_stay_finite():
    z = torch.randn(6, 3, requires_grad=True)
    gt = torch.tensor([0, 1, 2, 3, 0, 2])
    loss = balanced_sigmoid_loss(z, gt, torch.tensor([0.0, 1.0, 0.5]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(z.grad).all()


def test_sigmoid_prior_bias_and_probs():
    b = sigmoid_prior_bias(0.001)
    assert abs(b + math.log(999.0)) < 1e-12
    assert abs(torch.sigmoid(torch.tensor(b, dtype=torch.float64)).item() - 0.001) < 1e-12
    probs = sigmoid_probs_with_background(torch.zeros(4, 3))
    assert probs.shape == (4, 4) and (probs[:, :3] == 0.5).all() and (probs[:, 3] == 0).all()


# --------------------------------------------------------------------------------------------
# The background decision: what each option does to (a) the gradient of a rare class and
# (b) the fraction of ROIs predicted as background.
COUNTS = torch.tensor([2000.0, 500.0, 100.0, 20.0, 2.0])  # class 4 is rare
K, RARE, BG = 5, 4, 5
BG_FRACTION = 0.75
# sampled ROI labels: foreground in proportion to COUNTS, 75 % background (integer counts, exact)
_ROI = torch.cat([COUNTS, COUNTS.sum(0, keepdim=True) * BG_FRACTION / (1 - BG_FRACTION)])


def _shifts():
    return {
        "plain CE": torch.zeros(K + 1, dtype=torch.float64),
        "unadjusted (centered)": softmax_logit_shift(COUNTS, "unadjusted", center=True),
        "unadjusted (raw log n)": softmax_logit_shift(COUNTS, "unadjusted", center=False),
        "running (bg included)": softmax_logit_shift(background="running", roi_label_counts=_ROI),
    }


def _rare_logit_grads(shift):
    """d loss / d z_rare at z = 0, for one ROI of the rare class and one background ROI."""
    out = []
    for label in (RARE, BG):
        z = torch.zeros(1, K + 1, dtype=torch.float64, requires_grad=True)
        balanced_softmax_loss(z, torch.tensor([label]), shift).backward()
        out.append(z.grad[0, RARE].item())
    return out


def test_background_options_rare_class_gradient():
    grads = {name: _rare_logit_grads(s) for name, s in _shifts().items()}
    for name, (pos, neg) in grads.items():
        print(f"{name:24s} rare ROI: dL/dz_rare={pos:+.4f}   background ROI: dL/dz_rare={neg:+.6f}")
    plain_pos, plain_neg = grads["plain CE"]
    assert abs(plain_pos - (1 / (K + 1) - 1)) < 1e-12 and abs(plain_neg - 1 / (K + 1)) < 1e-12
    for name in ("unadjusted (centered)", "unadjusted (raw log n)", "running (bg included)"):
        pos, neg = grads[name]
        # a rare positive pulls its logit up at least as hard ...
        assert pos < plain_pos
        # ... and every negative ROI pushes the rare logit down much less (the point of Balanced Softmax)
        assert 0 < neg < plain_neg / 5
    # the running prior (background has most of the mass) suppresses the rare logit's push-down most
    assert grads["running (bg included)"][1] < grads["unadjusted (centered)"][1]
    # the values docs/methods.md quotes, at the precision quoted
    assert f"{plain_neg:.4f}" == "0.1667" and f"{grads['unadjusted (centered)'][1]:.4f}" == "0.0006"


def _fit_bias(shift, steps=400):
    """Train a bias-only classifier (logits z, no input) with Balanced Softmax on the ROI label
    distribution _ROI; return its *test-time* probabilities softmax(z)."""
    labels = torch.repeat_interleave(torch.arange(K + 1), _ROI.round().long())
    z = torch.zeros(1, K + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([z], lr=1, max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = balanced_softmax_loss(z.expand(len(labels), -1), labels, shift)
        loss.backward()
        return loss

    opt.step(closure)
    return F.softmax(z.detach()[0], dim=0)


def test_background_options_fraction_predicted_background():
    res = {name: _fit_bias(s) for name, s in _shifts().items()}
    for name, p in res.items():
        print(f"{name:24s} test p(bg)={p[BG]:.3f}  p(rare)={p[RARE]:.4f}  p(frequent)={p[0]:.4f}")
    # plain CE learns the training prior: bg fraction preserved, rare class almost never predicted
    assert abs(res["plain CE"][BG] - BG_FRACTION) < 1e-3
    assert res["plain CE"][RARE] < 1e-3
    # centered + unadjusted background: same bg fraction, foreground uniform
    p = res["unadjusted (centered)"]
    assert abs(p[BG] - BG_FRACTION) < 1e-3
    assert torch.allclose(p[:K], torch.full((K,), (1 - BG_FRACTION) / K, dtype=p.dtype), atol=1e-3)
    # raw log n: foreground moved by log(mean n) vs bg -> far more ROIs called background
    assert res["unadjusted (raw log n)"][BG] > 0.95
    # running prior with bg: test prior uniform over all K+1 labels -> background at 1/(K+1)
    p = res["running (bg included)"]
    assert torch.allclose(p, torch.full((K + 1,), 1 / (K + 1), dtype=p.dtype), atol=1e-3)
    # the values docs/methods.md quotes, at the precision quoted
    quoted = {"unadjusted (centered)": "0.750", "unadjusted (raw log n)": "0.999", "running (bg included)": "0.167"}
    assert {name: f"{res[name][BG]:.3f}" for name in quoted} == quoted


def test_unknown_background_mode():
    with pytest.raises(ValueError, match="background"):
        softmax_logit_shift(COUNTS, "ignore")
