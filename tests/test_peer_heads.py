"""The peer losses in the box predictor: accumulated state (5-step reference, checkpoint round trip,
2 gloo processes), side-effect-free per-ROI losses, inference rules, the normalised classifier,
AMP, and the errors for combinations that are not supported."""
import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torch.func import functional_call
from torch.nn import functional as F

from balms_det import LongTailOutputLayers
from balms_det.modeling.cls_losses.ecm import ecm_margins
from balms_det.modeling.classifiers import NormedLinear
from conftest import end_gloo_worker
from test_heads import tiny_cfg, tiny_inputs, train_step
from test_peer_losses import _seesaw_reference, proposals
from pin_cls_losses import flat_layer  # noqa: I001  tests/fixtures/, put on sys.path by test_heads

torch.set_num_threads(1)
K = 5
COUNTS = [400.0, 100.0, 30.0, 5.0, 1.0]
PEERS = ["seesaw", "eqlv2", "ecm", "federated"]


def _layer(cls_loss, k=K, **kw):
    torch.manual_seed(0)
    counts = COUNTS if k == K else [float(max(1, 1000 // (j + 1))) for j in range(k)]
    return flat_layer(
        ShapeSpec(channels=16), box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=k, cls_loss=cls_loss, class_counts=counts, num_images=500, **kw,
    )


def _steps(layer, n_steps, k=K, seed=0, n=40):
    """``n_steps`` training steps of the layer's losses (backward included); returns per step the
    (features, labels, loss_cls)."""
    out = []
    for s in range(n_steps):
        x = torch.randn(n, 16, generator=torch.Generator().manual_seed(100 * seed + s))
        props = proposals(n, k, 100 * seed + s)
        with EventStorage():
            loss = layer.losses(layer(x), props)["loss_cls"]
        loss.backward()
        out.append((x, props[0].gt_classes, loss.detach()))
    return out


def _ref_sigmoid(z):
    return 1 / (1 + (-z).exp())


def test_seesaw_counts_over_five_steps_match_reference():
    layer = _layer("seesaw")
    counts = torch.zeros(K, dtype=torch.float64)
    for x, gt, loss in _steps(layer, 5):
        counts += torch.tensor([float((gt == j).sum()) for j in range(K)], dtype=torch.float64)  # with this batch
        ref_loss, _ = _seesaw_reference(layer(x)[0].detach(), gt, counts, 0.8, 2.0, 1e-2)
        assert abs(loss.item() - ref_loss) < 1e-5 * ref_loss
    assert torch.equal(layer.cls_loss.cum_counts, counts)


def test_eqlv2_gradient_sums_over_five_steps_match_reference():
    layer = _layer("eqlv2")
    pos = torch.zeros(K, dtype=torch.float64)
    neg = torch.zeros(K, dtype=torch.float64)
    for step, (x, gt, loss) in enumerate(_steps(layer, 5)):
        # weights from the previous steps' sums (all 1 at the first step), by the paper's formulas
        if step == 0:
            r = torch.ones(K + 1, dtype=torch.float64)
        else:
            r = torch.cat([1 / (1 + (-12 * (pos / (neg + 1e-10) - 0.8)).exp()), torch.ones(1, dtype=torch.float64)])
        q = 1 + 4 * (1 - r)
        with torch.no_grad():
            z = layer.cls_score(x).double()  # the classifier of that step: SGD is not run here
        t = F.one_hot(gt, K + 1).double()
        s = _ref_sigmoid(z)
        ref_loss = -(t * q * s.log() + (1 - t) * r * (1 - s).log()).sum() / len(gt)
        assert abs(loss.item() - ref_loss.item()) < 1e-5 * ref_loss.item()
        pos += (t * q * (1 - s)).sum(0)[:K]
        neg += ((1 - t) * r * s).sum(0)[:K]
    assert torch.allclose(layer.cls_loss.pos_grad, pos, rtol=1e-6)
    assert torch.allclose(layer.cls_loss.neg_grad, neg, rtol=1e-6)
    assert (layer.cls_loss.pos_grad > 0).any() and (layer.cls_loss.neg_grad > 0).all()


@pytest.mark.parametrize("cls_loss", PEERS)
def test_per_roi_loss_has_no_side_effect(cls_loss):
    layer = _layer(cls_loss, k=60)  # federated samples 50 of 60 classes
    _steps(layer, 2, k=60)
    state = {k: v.clone() for k, v in layer.state_dict().items()}
    z = layer(torch.randn(30, 16))[0].detach()
    gt = proposals(30, 60, 7)[0].gt_classes
    rng = torch.get_rng_state()
    a = layer.per_roi_classification_loss(z, gt)
    b = layer.per_roi_classification_loss(z, gt)
    assert torch.equal(rng, torch.get_rng_state())
    assert torch.equal(a, b) and a.shape == (30,)
    assert all(torch.equal(v, layer.state_dict()[k]) for k, v in state.items())
    # the meta reweighter's functional call on the classifier gives the same per-ROI losses
    x = torch.randn(30, 16)
    params = dict(layer.cls_score.named_parameters())
    assert torch.allclose(layer.per_roi_classification_loss(functional_call(layer.cls_score, params, (x,)), gt),
                          layer.per_roi_classification_loss(layer.cls_score(x), gt))


@pytest.mark.parametrize("cls_loss,buffers", [("seesaw", ["cum_counts"]), ("eqlv2", ["pos_grad", "neg_grad"])])
def test_accumulated_state_checkpoint_round_trip(cls_loss, buffers, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cls_loss=cls_loss))
    for _ in range(2):
        train_step(model, tiny_inputs())
    pred = model.roi_heads.box_predictor
    saved = {b: getattr(pred.cls_loss, b).clone() for b in buffers}
    assert all(saved[b].abs().sum() > 0 for b in buffers)
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_0000001")
    fresh = build_model(tiny_cfg(cls_loss=cls_loss))
    assert all(getattr(fresh.roi_heads.box_predictor.cls_loss, b).abs().sum() == 0 for b in buffers)
    (tmp_path / "last_checkpoint").write_text("model_0000001.pth")
    DetectionCheckpointer(fresh, save_dir=str(tmp_path)).resume_or_load("", resume=True)  # what --resume does
    for b in buffers:
        restored = getattr(fresh.roi_heads.box_predictor.cls_loss, b)
        assert restored.dtype == torch.float64 and torch.equal(restored, saved[b])


def _ddp_worker(rank, store, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    for cls_loss in ("seesaw", "eqlv2"):
        layer = _layer(cls_loss)  # same initial weights on both ranks, different ROIs per rank
        _steps(layer, 3, seed=rank + 1)
        torch.save({k: v for k, v in layer.state_dict().items() if v.dtype == torch.float64},
                   os.path.join(out_dir, f"{cls_loss}_{rank}.pt"))
    end_gloo_worker()


def test_two_gloo_processes_end_with_identical_buffers():
    with tempfile.TemporaryDirectory() as d:
        # spawn, not fork: a forked child inherits the pytest process's threads and locks (after in-process
        # training and evaluation in earlier tests its gloo group could hang on destruction)
        mp.start_processes(_ddp_worker, args=(os.path.join(d, "store"), d), nprocs=2, start_method="spawn")
        r0 = torch.load(os.path.join(d, "seesaw_0.pt"))
        r1 = torch.load(os.path.join(d, "seesaw_1.pt"))
        assert torch.equal(r0["cls_loss.cum_counts"], r1["cls_loss.cum_counts"])
        expect = sum(torch.bincount(proposals(40, K, 100 * seed + s)[0].gt_classes, minlength=K + 1)[:K]
                     for seed in (1, 2) for s in range(3))
        assert torch.equal(r0["cls_loss.cum_counts"], expect.double())  # the global counts
        e0 = torch.load(os.path.join(d, "eqlv2_0.pt"))
        e1 = torch.load(os.path.join(d, "eqlv2_1.pt"))
        for b in ("cls_loss.pos_grad", "cls_loss.neg_grad"):
            assert e0[b].abs().sum() > 0 and torch.equal(e0[b], e1[b])
        # a single process seeing only rank 0's ROIs has smaller sums: the ranks' increments were summed
        alone = _layer("eqlv2")
        _steps(alone, 3, seed=1)
        assert (e0["cls_loss.neg_grad"] > alone.cls_loss.neg_grad).all()


@pytest.mark.parametrize("cls_loss", PEERS)
def test_inference_rule_of_each_peer(cls_loss):
    layer = _layer(cls_loss).eval()
    x = torch.randn(7, 16)
    z = layer.cls_score(x)
    probs = layer.predict_probs(layer(x), [Instances((9, 9), proposal_boxes=Boxes(torch.zeros(7, 4)))])[0]
    assert probs.shape == (7, K + 1)
    if cls_loss == "seesaw":
        assert z.shape == (7, K + 2)
        obj = z[:, K:].softmax(1)
        expect = torch.cat([z[:, :K].softmax(1) * obj[:, :1], obj[:, 1:]], 1)
    elif cls_loss in ("eqlv2", "ecm"):
        assert z.shape == (7, K + 1)
        s = torch.sigmoid(z)
        expect = torch.cat([s[:, :K] * (1 - s[:, K:]), s[:, K:]], 1)
    else:
        assert z.shape == (7, K)
        expect = torch.cat([torch.sigmoid(z), torch.zeros(7, 1)], 1)
    assert torch.allclose(probs, expect, atol=1e-6)
    assert (layer.cls_score.bias == 0).all()  # the peers' code and detectron2 start at bias 0


@pytest.mark.parametrize("cls_loss", PEERS)
def test_peer_losses_survive_autocast(cls_loss):
    layer = _layer(cls_loss, k=60)
    z = (torch.randn(40, layer.cls_score.out_features) * 4).bfloat16()
    gt = proposals(40, 60, 3)[0].gt_classes
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = layer.per_roi_classification_loss(z, gt)
    assert low.dtype == torch.float32 and torch.isfinite(low).all()
    assert torch.allclose(low, layer.per_roi_classification_loss(z.float(), gt), rtol=1e-5)


def test_normed_classifier():
    layer = _layer("seesaw", classifier="normed", normed_temperature=20.0)
    cls = layer.cls_score
    assert isinstance(cls, NormedLinear) and cls.out_features == K + 2
    assert set(layer.state_dict()) >= {"cls_score.weight", "cls_score.bias"}
    x = torch.randn(6, 16).double()
    w, b = cls.weight.detach().double(), cls.bias.detach().double()
    cos = (x / (x.norm(dim=1, keepdim=True) + 1e-6)) @ (w / (w.norm(dim=1, keepdim=True) + 1e-6)).T
    assert torch.allclose(cls(x.float()).double(), 20 * cos + b, atol=1e-5)
    assert cls(x.float()).abs().max() <= 20 + b.abs().max() + 1e-4
    with torch.no_grad():
        cls.weight.fill_(1.0)
        cls.bias.fill_(3.0)
    layer.reset_classifier()  # cRT
    assert cls.weight.std().item() == pytest.approx(0.01, rel=0.3) and (cls.bias == 0).all()
    with torch.autocast("cpu", dtype=torch.bfloat16):  # large features: norms taken in float32
        out = cls(torch.full((2, 16), 3e4, dtype=torch.bfloat16))
    assert torch.isfinite(out).all()
    with pytest.raises(ValueError, match="classifier"):
        _layer("softmax", classifier="cosine")


def test_models_train_and_infer_with_normed_classifier():
    torch.manual_seed(0)
    model = build_model(tiny_cfg(cls_loss="ecm", CLASSIFIER="normed"))
    assert isinstance(model.roi_heads.box_predictor.cls_score, NormedLinear)
    train_step(model, tiny_inputs())
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0


def test_unsupported_combinations_are_clear_errors():
    cfg = tiny_cfg(cls_loss="seesaw")
    cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED = True
    cfg.MODEL.BALMS.DECOUPLED.ENABLED = True
    with pytest.raises(ValueError, match="META_REWEIGHTER.*seesaw"):
        build_model(cfg)
    cfg = tiny_cfg(cls_loss="federated")
    cfg.MODEL.ROI_BOX_HEAD.USE_FED_LOSS = True
    cfg.MODEL.ROI_BOX_HEAD.USE_SIGMOID_CE = True
    with pytest.raises(ValueError, match="MODEL.BALMS.CLS_LOSS"):
        LongTailOutputLayers(cfg, ShapeSpec(channels=16))
    with pytest.raises(ValueError, match="softmax losses only"):
        _layer("eqlv2", posthoc_tau=1.0)
    with pytest.raises(ValueError, match="needs class_counts"):
        LongTailOutputLayers(ShapeSpec(channels=16), box2box_transform=Box2BoxTransform((1.0,) * 4),
                             num_classes=K, cls_loss="ecm")
    assert "cls_loss.cum_counts" not in _layer("eqlv2").state_dict()  # state only for its loss
    assert "cls_loss.class_counts" in _layer("ecm").state_dict()
    assert "cls_loss.class_counts" in _layer("federated").state_dict()
    assert math.isfinite(ecm_margins(torch.tensor([1.0, 1e6]))[0].sum().item())
