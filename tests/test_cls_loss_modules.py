"""Losses and calibrations as registered modules: the same numbers as before they were modules (pinned by
``tests/fixtures/pin_cls_losses.py`` at 065cf9b), old checkpoints load, new ones resume bit for bit,
NorCal against a float64 reference, the registries, and a user's own loss through tools/train_net.py."""
import json
import os
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers

import balms_det  # noqa: F401
from balms_det import CALIBRATION_REGISTRY, CLS_LOSS_REGISTRY, LongTailOutputLayers
from balms_det.modeling.calibrations.norcal import norcal_probs
from balms_det.modeling.calibrations import LogitAdjustment, NorCal, calibration_class
from balms_det.modeling.cls_losses import SoftmaxLoss, cls_loss_class
from conftest import REPO, run_tool
from test_heads import tiny_cfg, tiny_inputs, train_step

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
import pin_cls_losses as PIN  # noqa: E402

torch.set_num_threads(1)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PINNED = torch.load(os.path.join(FIXTURES, "cls_losses_pinned.pt"))["cases"]


@pytest.mark.parametrize("case", sorted(PIN.CASES))
def test_same_numbers_as_before_the_modules(case):
    """Loss, per-ROI losses, gradient, probabilities and the state after 5 steps equal the pinned ones."""
    old = PINNED[case]
    new = PIN.pin_case(*PIN.CASES[case])
    for key in ("step_losses", "loss", "per_roi", "grad", "probs"):
        assert new[key].dtype == torch.float64
        torch.testing.assert_close(new[key], old[key], rtol=1e-12, atol=1e-14, msg=f"{case}: {key}")
    # the pinned state has the old keys; the layer's version-1 migration maps them, strict: nothing left over
    cls_loss, kw = PIN.CASES[case]
    fresh = PIN.layer(cls_loss, **kw).double()
    fresh.load_state_dict(old["state"], strict=True)
    stepped = new["state"]
    assert set(stepped) == set(fresh.state_dict()), case
    for key, value in fresh.state_dict().items():  # counts exactly; float64 sums to the last ulps (the CPU's
        if value.is_floating_point():               # vector width changes their order: EQLv2's neg_grad by 1 ulp)
            torch.testing.assert_close(stepped[key], value, rtol=1e-12, atol=0, msg=f"{case}: {key}")
        else:
            assert torch.equal(stepped[key], value), f"{case}: {key}"


def _builtin_losses():
    """The short names of balms_det's own registered losses (tests may register more)."""
    return sorted(cls.name for _, cls in CLS_LOSS_REGISTRY if cls.__module__.startswith("balms_det."))


def test_pinned_cases_cover_every_builtin_loss_and_have_state():
    assert {spec[0] for spec in PIN.CASES.values()} == set(_builtin_losses())
    assert any(k.endswith("cum_counts") and v.abs().sum() > 0 for k, v in PINNED["seesaw"]["state"].items())
    assert (PINNED["eqlv2"]["state"]["eqlv2_pos_grad"] > 0).any()
    assert PINNED["balanced_softmax_running"]["state"]["roi_label_counts"].sum() == 5 * PIN.N


# ---------------------------------------------------------------------------------- checkpoints
CKPT_CFG = {
    "balanced_softmax": dict(cls_loss="balanced_softmax"),
    "softmax_running_posthoc": dict(cls_loss="softmax", BACKGROUND="running", CALIBRATION="logit_adjustment"),
    "balanced_sigmoid": dict(cls_loss="balanced_sigmoid"),
    "seesaw": dict(cls_loss="seesaw"),
    "eqlv2": dict(cls_loss="eqlv2"),
    "ecm": dict(cls_loss="ecm"),
    "federated": dict(cls_loss="federated"),
    "balms": dict(cls_loss="balanced_softmax"),
}


def _ckpt_cfg(case):
    kw = dict(CKPT_CFG[case])
    cfg = tiny_cfg(cls_loss=kw.pop("cls_loss"), **kw)
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    if case == "balms":
        cfg.MODEL.BALMS.DECOUPLED.ENABLED = True
        cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED = True
        cfg.MODEL.BALMS.META_REWEIGHTER.BANK_PER_CLASS = 3
        cfg.MODEL.BALMS.META_REWEIGHTER.BANK_BACKGROUND = 8
    return cfg


@pytest.mark.parametrize("case", PIN.CKPT_CASES)
def test_checkpoint_from_before_the_modules_loads_with_its_state(case):
    """A detectron2 checkpoint written by the pre-module predictor: every box-predictor entry lands,
    buffers included (moved into the loss module), nothing is left unused."""
    ckpt = torch.load(os.path.join(FIXTURES, f"ckpt_{case}.pth"))["model"]
    model = build_model(_ckpt_cfg(case))
    incompatible = DetectionCheckpointer(model)._load_model({"model": dict(ckpt), "__author__": "test"})
    assert not incompatible.unexpected_keys, incompatible.unexpected_keys
    assert not [k for k in incompatible.missing_keys if "box_predictor" in k], incompatible.missing_keys
    pred = model.roi_heads.box_predictor
    state = pred.state_dict()
    if pred.meta_reweighter is not None:  # its version-1 buffers: now its training state, out of the state_dict
        training = pred.meta_reweighter.training_state()
        state.update({f"meta_reweighter.{k}": v for k, v in training.items() if k != "bank"})
        state.update({f"meta_reweighter.bank.{k}": v for k, v in training["bank"].items()})
        assert not [k for k in pred.state_dict() if "meta_reweighter" in k]
    prefix = "roi_heads.box_predictor."
    v1 = LongTailOutputLayers.V1_LOSS_BUFFERS
    for key, value in ckpt.items():
        name = key[len(prefix):]
        new = f"cls_loss.{v1[name]}" if name in v1 else name
        assert torch.equal(state[new], value.to(state[new].dtype)), f"{case}: {key} -> {new}"
    buffers = [k for k in ckpt if "cls_score" not in k and "bbox_pred" not in k]
    assert buffers, case  # every fixture carries loss (or reweighter) state


def test_version_1_leftovers_are_reported_and_version_2_is_not_migrated():
    """Only the version-1 buffers the built loss has move; the others are the loader's unexpected keys. A
    version-2 state (saved with its metadata) loads as it is."""
    layer = PIN.layer("softmax", background="running")
    old = {**layer.state_dict(), "roi_label_counts": torch.arange(8.0), "seesaw_cum_counts": torch.ones(7)}
    del old["cls_loss.roi_label_counts"]
    result = layer.load_state_dict(old, strict=False)
    assert result.unexpected_keys == ["seesaw_cum_counts"] and not result.missing_keys
    assert torch.equal(layer.cls_loss.roi_label_counts, torch.arange(8.0, dtype=torch.float64))
    saved = layer.state_dict()
    assert saved._metadata[""]["version"] == 2
    saved["roi_label_counts"] = saved.pop("cls_loss.roi_label_counts")  # a version-1 name: not moved
    result = layer.load_state_dict(saved, strict=False)
    assert result.unexpected_keys == ["roi_label_counts"] and result.missing_keys == ["cls_loss.roi_label_counts"]


@pytest.mark.parametrize("case", PIN.CKPT_CASES)
def test_resume_restores_every_buffer_bit_for_bit(case, tmp_path):
    """Train 2 steps, save with detectron2's checkpointer, resume into a fresh model: every parameter
    and buffer is equal, bit for bit (what tools/train_net.py --resume does)."""
    if case == "balms":
        pytest.skip("the Meta Reweighter's own resume test covers it (test_meta_reweighter_training.py)")
    torch.manual_seed(0)
    model = build_model(_ckpt_cfg(case))
    for s in range(2):
        train_step(model, tiny_inputs(2))
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    assert any("cls_loss." in k for k in saved) or case == "softmax_running_posthoc"
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_0000001")
    torch.manual_seed(1)
    fresh = build_model(_ckpt_cfg(case))
    DetectionCheckpointer(fresh, save_dir=str(tmp_path)).resume_or_load("", resume=True)
    restored = fresh.state_dict()
    assert set(restored) == set(saved)
    for key, value in saved.items():
        assert torch.equal(restored[key], value), key


# ---------------------------------------------------------------------------------- NorCal
def _norcal_reference(z, counts, gamma):
    """The paper's equation, float64, term by term: p_c = (exp(z_c) / N_c^gamma) /
    (sum_c' exp(z_c') / N_c'^gamma + exp(z_bg)), background p_bg = exp(z_bg) / (same sum)."""
    z = z.double()
    n = torch.as_tensor(counts, dtype=torch.float64)
    num = torch.cat([z[:, :-1].exp() / n ** gamma, z[:, -1:].exp()], dim=1)
    return num / num.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("k,gamma", [(3, 1.0), (40, 0.5), (1203, 1.0), (7, 0.0), (7, 1.7)])
def test_norcal_matches_float64_reference(k, gamma):
    g = torch.Generator().manual_seed(k)
    z = torch.randn(64, k + 1, generator=g, dtype=torch.float64) * 3
    counts = torch.randint(1, 5000, (k,), generator=g).double()
    torch.testing.assert_close(norcal_probs(z, counts, gamma), _norcal_reference(z, counts, gamma),
                               rtol=1e-12, atol=1e-15)
    if gamma == 0:  # the authors' code default: the identity
        torch.testing.assert_close(norcal_probs(z, counts, 0.0), torch.softmax(z, dim=1))


def test_norcal_in_the_box_predictor_and_versus_logit_adjustment():
    counts = [400.0, 100.0, 30.0, 5.0, 1.0]
    z = torch.randn(20, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    loss = SoftmaxLoss(5, class_counts=counts)
    p = NorCal(gamma=0.8)(z, loss)
    torch.testing.assert_close(p, _norcal_reference(z, counts, 0.8), rtol=1e-12, atol=1e-15)
    # NorCal = logit adjustment with the raw (uncentered) prior; the centered one keeps the fg/bg split
    raw = SoftmaxLoss(5, class_counts=counts, center_prior=False)
    torch.testing.assert_close(LogitAdjustment(0.8)(z, raw), p)
    assert not torch.allclose(LogitAdjustment(0.8)(z, loss), p)
    # rare classes gain against frequent ones, background gains against all
    plain = torch.softmax(z, 1)
    assert ((p[:, 4] / p[:, 0]) > (plain[:, 4] / plain[:, 0])).all() and (p[:, 5] > plain[:, 5]).all()


def test_norcal_from_config_and_its_errors():
    cfg = tiny_cfg(cls_loss="softmax", CALIBRATION="norcal")
    model = build_model(cfg)
    pred = model.roi_heads.box_predictor
    assert isinstance(pred.calibration, NorCal) and pred.calibration.gamma == 1.0  # the default
    assert torch.equal(pred.cls_loss.class_counts, torch.tensor([400.0, 100.0, 30.0, 5.0, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError, match="softmax losses only"):
        build_model(tiny_cfg(cls_loss="sigmoid", CALIBRATION="norcal"))
    with pytest.raises(KeyError, match="renamed to MODEL.BALMS.LOGIT_ADJUSTMENT.TAU.*CALIBRATION logit_adjustment"):
        tiny_cfg(cls_loss="softmax", CALIBRATION="norcal").merge_from_list(["MODEL.BALMS.POSTHOC_TAU", "1.0"])
    with pytest.raises(ValueError, match="registered"):
        build_model(tiny_cfg(cls_loss="softmax", CALIBRATION="platt"))
    model.eval()
    with torch.no_grad():
        out = model(tiny_inputs(1))
    assert ((out[0]["instances"].scores >= 0) & (out[0]["instances"].scores <= 1)).all()


# ---------------------------------------------------------------------------------- registries
def test_registries_hold_every_builtin_by_class_and_short_name():
    for name in _builtin_losses():
        cls = cls_loss_class(name)
        assert cls_loss_class(cls.__name__) is cls and CLS_LOSS_REGISTRY.get(cls.__name__) is cls
    for name in ("none", "logit_adjustment", "norcal"):
        assert CALIBRATION_REGISTRY.get(calibration_class(name).__name__) is calibration_class(name)
    with pytest.raises(ValueError, match="registered"):
        cls_loss_class("focal")


def test_output_layer_takes_modules_and_names():
    kw = dict(box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), num_classes=5)
    layer = LongTailOutputLayers(ShapeSpec(channels=8), cls_loss="seesaw", **kw)
    assert layer.cls_score.out_features == 7 and layer.cls_loss.name == "seesaw"
    with pytest.raises(ValueError, match="classes"):
        LongTailOutputLayers(ShapeSpec(channels=8), cls_loss=SoftmaxLoss(4), **kw)


D2_FED_LOSS_KEYS = ("use_fed_loss", "use_sigmoid_ce", "get_fed_loss_cls_weights", "fed_loss_num_classes")
D2_FED_LOSS_CONFIG = ("USE_FED_LOSS", "USE_SIGMOID_CE", "FED_LOSS_FREQ_WEIGHT_POWER", "FED_LOSS_NUM_CLASSES")


def test_predictor_builds_on_a_detectron2_without_the_federated_loss(monkeypatch):
    """A detectron2 from before its federated loss: FastRCNNOutputLayers.from_config returns none of its
    keys and the config has no MODEL.ROI_BOX_HEAD.USE_FED_LOSS & co. The predictor builds and trains."""
    stock = FastRCNNOutputLayers.__dict__["from_config"].__func__

    def older_from_config(cls, cfg, input_shape):
        full = cfg.clone()  # the stock function reads the keys this detectron2 has not
        full.defrost()
        for key in D2_FED_LOSS_CONFIG:
            full.MODEL.ROI_BOX_HEAD[key] = get_cfg().MODEL.ROI_BOX_HEAD[key]
        ret = stock(cls, full, input_shape)
        return {k: v for k, v in ret.items() if k not in D2_FED_LOSS_KEYS}

    monkeypatch.setattr(FastRCNNOutputLayers, "from_config", classmethod(older_from_config))
    assert not set(D2_FED_LOSS_KEYS) & set(FastRCNNOutputLayers.from_config(tiny_cfg(), ShapeSpec(channels=8)))
    for cls_loss in ("balanced_softmax", "federated"):
        cfg = tiny_cfg(cls_loss=cls_loss)
        for key in D2_FED_LOSS_CONFIG:
            del cfg.MODEL.ROI_BOX_HEAD[key]
        torch.manual_seed(0)
        model = build_model(cfg)
        pred = model.roi_heads.box_predictor
        assert isinstance(pred, LongTailOutputLayers) and pred.cls_loss.name == cls_loss
        assert pred.cls_score.out_features == pred.cls_loss.num_logits()
        assert torch.isfinite(train_step(model, tiny_inputs(1))["loss_cls"])


USER_LOSS = '''
"""A user's own loss, in the user's own file: focal-weighted softmax CE that counts its steps."""
import torch
from torch.nn import functional as F

from balms_det import CLS_LOSS_REGISTRY, ClsLoss


@CLS_LOSS_REGISTRY.register()
class MyFocalLoss(ClsLoss):
    extra_logits = 1  # K + 1 softmax logits, background last
    softmax_logits = True

    def __init__(self, num_classes, *, gamma=2.0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.gamma = gamma
        self.register_state("steps", 1)  # saved in checkpoints

    def per_roi_loss(self, logits, gt_classes):
        ce = F.cross_entropy(logits, gt_classes, reduction="none")
        return (1 - torch.exp(-ce)) ** self.gamma * ce

    def after_loss(self, logits, gt_classes):
        self.steps += 1

    def probs(self, logits):
        return F.softmax(logits, dim=-1)
'''


def test_user_loss_from_its_own_file_trains_evaluates_and_checkpoints(datasets_dir, tmp_path):
    (tmp_path / "my_loss.py").write_text(USER_LOSS)
    (tmp_path / "my_loss.yaml").write_text(
        f'_BASE_: "{REPO}/configs/LTShapes/Base-MaskRCNN-R18-FPN.yaml"\n'
        "MODEL:\n  ROI_HEADS:\n    NAME: LongTailROIHeads\n  BALMS:\n    CLS_LOSS: MyFocalLoss\n"
        "    CUSTOM_IMPORTS: ['my_loss.py']\n"
    )
    out = tmp_path / "out"
    proc = run_tool(
        [os.path.join(REPO, "tools", "train_net.py"), "--config-file",
         "my_loss.yaml", "DATASETS.TRAIN", "('lt_shapes_mini_train',)", "DATASETS.TEST", "('lt_shapes_mini_val',)",
         "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "3", "SOLVER.STEPS", "()", "SOLVER.WARMUP_ITERS", "1",
         "DATALOADER.NUM_WORKERS", "0", "TEST.DETECTIONS_PER_IMAGE", "20", "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
         "OUTPUT_DIR", str(out)], datasets_dir, cwd=str(tmp_path))
    assert "MyFocalLoss" in proc.stdout  # the model printout names the module
    assert "copypaste: AP,AP50,AP75,APs,APm,APl,APr,APc,APf" in proc.stdout  # evaluated
    state = torch.load(out / "model_final.pth", map_location="cpu")["model"]
    assert state["roi_heads.box_predictor.cls_loss.steps"].item() == 3  # its state, checkpointed
    with open(out / "metrics.json") as f:
        final = [json.loads(line) for line in f if "bbox/AP" in line]
    assert final and "segm/APr" in final[-1]


KEYED_LOSS = '''
"""A user's loss with a YAML key of its own (MODEL.BALMS.SCALED_CE.SCALE), in the user's own file."""
from detectron2.config import CfgNode as CN
from torch.nn import functional as F

from balms_det.modeling import CLS_LOSS_REGISTRY
from balms_det.modeling.cls_losses import SoftmaxLoss


@CLS_LOSS_REGISTRY.register()
class ScaledCE(SoftmaxLoss):
    name = "scaled_ce"

    def __init__(self, num_classes, *, scale=1.0, **kwargs):
        super().__init__(num_classes, **kwargs)
        self.scale = float(scale)

    @classmethod
    def add_config(cls, cfg):
        cfg.MODEL.BALMS.SCALED_CE = CN()
        cfg.MODEL.BALMS.SCALED_CE.SCALE = 1.0  # the loss's factor

    @classmethod
    def from_config(cls, cfg):
        return dict(super().from_config(cfg), scale=cfg.MODEL.BALMS.SCALED_CE.SCALE)

    def per_roi_loss(self, logits, gt_classes):
        return self.scale * F.cross_entropy(logits, gt_classes, reduction="none")
'''


def test_a_users_loss_adds_config_keys_its_yaml_sets(tmp_path):
    """ClsLoss.add_config: a loss registered by a CUSTOM_IMPORTS file adds its own keys, and the same YAML
    file that imports it sets them (build_config imports the file's modules before merging it)."""
    from balms_det.engine import build_config

    (tmp_path / "scaled_ce.py").write_text(KEYED_LOSS)
    cfg_file = tmp_path / "cfg.yaml"
    cfg_file.write_text(f'_BASE_: "{REPO}/configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.yaml"\n'
                        'MODEL:\n  BALMS:\n    CUSTOM_IMPORTS: ["scaled_ce.py"]\n    CLS_LOSS: "scaled_ce"\n'
                        '    SCALED_CE:\n      SCALE: 2.5\n')
    try:
        cfg = build_config(str(cfg_file), ["MODEL.DEVICE", "cpu"], validate=False)
        assert cfg.MODEL.BALMS.SCALED_CE.SCALE == 2.5
        cfg = build_config(str(cfg_file), ["MODEL.BALMS.SCALED_CE.SCALE", "3.0"], validate=False)
        assert build_model(cfg).roi_heads.box_predictor.cls_loss.scale == 3.0
    finally:  # the registry is the process's: later tests see the built-in losses only
        CLS_LOSS_REGISTRY._obj_map.pop("ScaledCE", None)
