"""Mixed precision: every registered loss and calibration computed from half-precision logits under
``torch.autocast`` (CPU bfloat16 here; CUDA float16 where a GPU is present) is the float32 computation
from the same logits, and the box predictor trains under CPU bfloat16 autocast with float32 losses."""
import copy

import pytest
import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.utils.events import EventStorage

import balms_det  # noqa: F401  (registers the built-in losses and calibrations)
from balms_det import CALIBRATION_REGISTRY, CLS_LOSS_REGISTRY, LongTailOutputLayers
from test_peer_losses import proposals

torch.set_num_threads(1)
K, N = 40, 96
COUNTS = torch.logspace(0, 3.7, K, dtype=torch.float64).round().flip(0)  # 5012 .. 1 training images
NUM_IMAGES = 6000

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
# (device, autocast dtype): AMP on CPU (bfloat16) and AMPTrainer's CUDA float16
PRECISIONS = [pytest.param(("cpu", torch.bfloat16), id="cpu-bf16"),
              pytest.param(("cuda", torch.float16), id="cuda-fp16", marks=cuda)]
# The result of a loss or a calibration: float32 and equal to the float32 computation up to float32
# rounding (a few ulps; the computations are the same, so in fact equal).
FLOAT32_ROUNDING = dict(rtol=4 * torch.finfo(torch.float32).eps, atol=0.0)


def _rounding_of(dtype):
    """A float32 value rounded to ``dtype`` (round to nearest): within half an ulp, relative to normal
    numbers, absolute (half the smallest subnormal) below them."""
    f = torch.finfo(dtype)
    return dict(rtol=f.eps / 2, atol=f.smallest_normal * f.eps / 2)


def _registered(registry):
    return sorted(name for name, _ in registry)


# every registered loss, the softmax family also with the running-frequency background prior
LOSS_CASES = [(name, {}) for name in _registered(CLS_LOSS_REGISTRY)] + [
    (name, {"background": "running"}) for name in ("SoftmaxLoss", "BalancedSoftmaxLoss")]


def _loss(name, settings):
    return CLS_LOSS_REGISTRY.get(name)(K, class_counts=COUNTS, num_images=NUM_IMAGES, **settings)


def _logits_and_labels(loss, device, seed):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(N, loss.num_logits(), generator=g) * 4
    gt = torch.randint(0, K, (N,), generator=g)
    gt[torch.rand(N, generator=g) < 0.3] = K  # background
    return z.to(device), gt.to(device)


def _with_state(loss, device, gt):
    """The loss after a few training steps (Seesaw's counts, EQLv2's gradient sums, the running prior),
    this step's ``before_loss`` done (the federated loss's classes drawn)."""
    loss = loss.to(device)
    torch.manual_seed(0)
    for step in range(3):
        z, y = _logits_and_labels(loss, device, 100 + step)
        loss.before_loss(y)
        loss.after_loss(z, y)
    loss.before_loss(gt)
    return loss


def _case_id(case):
    name, settings = case
    return name + "".join(f"-{v}" for v in settings.values())


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("case", LOSS_CASES, ids=_case_id)
def test_every_loss_under_autocast_is_the_float32_loss(case, precision):
    """Per-ROI loss, its gradient, the plain (meta) loss, the inference probabilities and the per-step
    state update, from half-precision logits under autocast, against the same logits upcast to float32
    without autocast."""
    device, half = precision
    loss = _with_state(_loss(*case), device, _logits_and_labels(_loss(*case), device, 0)[1])
    z, gt = _logits_and_labels(loss, device, 0)
    z_half = z.to(half).requires_grad_()
    z32 = z_half.detach().float().requires_grad_()  # the same values

    with torch.autocast(device, dtype=half):
        per_roi = loss.per_roi_loss(z_half, gt)
        probs = loss.probs(z_half.detach())
        plain = loss.plain_loss(z_half.detach(), gt) if loss.plain_loss is not None else None
    per_roi.sum().backward()
    ref = loss.per_roi_loss(z32, gt)
    ref.sum().backward()

    assert per_roi.dtype == torch.float32 and probs.dtype == torch.float32
    torch.testing.assert_close(per_roi, ref, **FLOAT32_ROUNDING)
    torch.testing.assert_close(probs, loss.probs(z32.detach()), **FLOAT32_ROUNDING)
    if plain is not None:
        assert plain.dtype == torch.float32
        torch.testing.assert_close(plain, loss.plain_loss(z32.detach(), gt), **FLOAT32_ROUNDING)
    # the gradient w.r.t. half-precision logits is half precision: the float32 gradient, rounded
    assert z_half.grad.dtype == half
    torch.testing.assert_close(z_half.grad.float(), z32.grad, **_rounding_of(half))

    # the once-per-step state update (EQLv2's gradient sums) from the same logits
    stepped, ref_stepped = copy.deepcopy(loss), copy.deepcopy(loss)
    with torch.autocast(device, dtype=half):
        stepped.after_loss(z_half.detach(), gt)
    ref_stepped.after_loss(z32.detach(), gt)
    for (key, value), ref_value in zip(stepped.state_dict().items(), ref_stepped.state_dict().values()):
        assert value.dtype == ref_value.dtype, key
        torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=0, msg=key)


def _calibration_cases():
    cases = []
    for calib in _registered(CALIBRATION_REGISTRY):
        for loss_case in LOSS_CASES:
            try:
                CALIBRATION_REGISTRY.get(calib)().check(_loss(*loss_case))
            except ValueError:  # not defined for this loss (e.g. NorCal on sigmoid logits)
                continue
            cases.append(pytest.param(calib, loss_case, id=f"{calib}-{_case_id(loss_case)}"))
    return cases


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("calib,loss_case", _calibration_cases())
def test_every_calibration_under_autocast_is_the_float32_one(calib, loss_case, precision):
    device, half = precision
    loss = _loss(*loss_case)
    z, gt = _logits_and_labels(loss, device, 1)
    loss = _with_state(loss, device, gt)
    calibration = CALIBRATION_REGISTRY.get(calib)()
    z_half = z.to(half)
    with torch.autocast(device, dtype=half):
        probs = calibration(z_half, loss)
    assert probs.dtype == torch.float32
    torch.testing.assert_close(probs, calibration(z_half.float(), loss), **FLOAT32_ROUNDING)


def test_the_cases_cover_every_registered_loss_and_calibration():
    assert {name for name, _ in LOSS_CASES} == set(_registered(CLS_LOSS_REGISTRY))
    ids = [p.id for p in _calibration_cases()]
    assert {i.split("-")[0] for i in ids} == set(_registered(CALIBRATION_REGISTRY))
    assert len(_registered(CLS_LOSS_REGISTRY)) >= 8 and len(_registered(CALIBRATION_REGISTRY)) >= 3


@pytest.mark.parametrize("case", LOSS_CASES, ids=_case_id)
def test_box_predictor_trains_under_bf16_autocast_with_float32_losses(case):
    """LongTailOutputLayers' forward, losses (with the once-per-step state) and backward under CPU
    bfloat16 autocast: bfloat16 logits, float32 finite losses equal to those of the same logits in
    float32, finite gradients, float32 probabilities."""
    torch.manual_seed(0)
    layer = LongTailOutputLayers(ShapeSpec(channels=16), box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
                                 num_classes=K, cls_loss=_loss(*case))
    ref_layer = copy.deepcopy(layer)
    x = torch.randn(N, 16, generator=torch.Generator().manual_seed(7)) * 3
    props = proposals(N, K, seed=8)
    with EventStorage(), torch.autocast("cpu", dtype=torch.bfloat16):
        scores, deltas = layer(x)
        torch.manual_seed(1)  # the federated loss draws its classes
        losses = layer.losses((scores, deltas), props)
        total = sum(losses.values())
        probs = layer.predict_probs((scores.detach(), deltas.detach()), props)[0]
    assert scores.dtype == torch.bfloat16  # autocast is on: the classifier ran in bfloat16
    assert total.dtype == torch.float32 and torch.isfinite(total)
    assert all(v.dtype == torch.float32 for v in losses.values()), {k: v.dtype for k, v in losses.items()}
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters() if p.grad is not None)
    assert layer.cls_score.weight.grad.abs().sum() > 0
    assert probs.dtype == torch.float32 and ((probs >= 0) & (probs <= 1)).all()

    with EventStorage():  # the same logits in float32, no autocast
        torch.manual_seed(1)
        ref = ref_layer.losses((scores.detach().float(), deltas.detach().float()), props)
    torch.testing.assert_close(losses["loss_cls"], ref["loss_cls"], **FLOAT32_ROUNDING)
    for (key, value), ref_value in zip(layer.cls_loss.state_dict().items(), ref_layer.cls_loss.state_dict().values()):
        torch.testing.assert_close(value, ref_value, rtol=1e-12, atol=0, msg=key)
