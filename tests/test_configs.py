"""Every YAML in configs/ is built (through tools/train_net.py's Trainer.build_model) and trained for
one iteration on tiny synthetic inputs, offline: weights are not loaded, dataset priors are replaced
by a long-tailed list of counts, proposal/ROI numbers are reduced. No config can rot unnoticed."""
import glob
import importlib.util
import itertools
import os
from types import SimpleNamespace

import pytest
import torch
from detectron2.data import DatasetCatalog
from detectron2.layers import FrozenBatchNorm2d
from detectron2.utils.events import EventStorage
from torch import nn

from balms_det.engine import MetaReweighterHook, build_config
from conftest import tiny_detection_inputs
from balms_det.modeling import reinit_classifier

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True))
# A Base-*.yaml is built and stepped through each of its children (test_every_base_config_has_children)
STEPPED = [p for p in CONFIGS if not os.path.basename(p).startswith("Base-")]
torch.set_num_threads(1)


def _trainer_cls():
    spec = importlib.util.spec_from_file_location("balms_train_net", os.path.join(ROOT, "tools", "train_net.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.Trainer


def _offline_cfg(path):
    cfg = build_config(path)
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.BALMS.PRIOR.SOURCE = "list"
    cfg.MODEL.BALMS.PRIOR.COUNTS = [float(max(1, int(1000 * 0.9 ** j))) for j in range(k)]
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 2000
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 32
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.TEST.DETECTIONS_PER_IMAGE = 20
    return cfg


def test_configs_found():
    names = {os.path.relpath(p, os.path.join(ROOT, "configs")) for p in CONFIGS}
    for d in ("LVISv0.5-InstanceSegmentation", "LVISv1-InstanceSegmentation"):
        for variant in ("1x_softmax", "1x_sigmoid_rfs", "1x_balanced_softmax",
                        "decoupled_balanced_softmax", "decoupled_balanced_sigmoid"):
            assert f"{d}/mask_rcnn_R_50_FPN_{variant}.yaml" in names
    assert "LTShapes/mask_rcnn_R18_FPN_balanced_softmax.yaml" in names
    for peer in ("seesaw", "eqlv2", "ecm", "federated"):  # the peers of issue 11
        assert f"LTShapes/mask_rcnn_R18_FPN_{peer}.yaml" in names
        assert f"LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_{peer}.yaml" in names


def test_every_base_config_has_children():
    for base in set(CONFIGS) - set(STEPPED):
        children = [p for p in STEPPED if f'_BASE_: "{os.path.basename(base)}"' in open(p).read()
                    and os.path.dirname(p) == os.path.dirname(base)]
        assert len(children) >= 2, base


# The configs the README's "which method" table names: lt_shapes file -> its LVIS v1 twin
TWINS = {"mask_rcnn_R18_FPN_balanced_softmax_rfs.yaml": "mask_rcnn_R_50_FPN_1x_balanced_softmax_rfs.yaml",
         "mask_rcnn_R18_FPN_seesaw_linear_rfs.yaml": "mask_rcnn_R_50_FPN_1x_seesaw_linear_rfs.yaml",
         "mask_rcnn_R18_FPN_softmax_rfs_norcal.yaml": "mask_rcnn_R_50_FPN_1x_softmax_rfs_norcal.yaml",
         "mask_rcnn_R18_FPN_softmax_normed_rfs_norcal.yaml": "mask_rcnn_R_50_FPN_1x_softmax_normed_rfs_norcal.yaml"}


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def test_recommended_lvis_configs_are_their_lt_shapes_twins():
    """Every key an lt_shapes recommended config sets on its base has the same value in its LVIS v1 twin,
    but the RFS threshold (0.1 on 600 images, LVIS's 0.001) and where the run lives."""
    lt_base = _flat(build_config(os.path.join(ROOT, "configs", "LTShapes", "Base-MaskRCNN-R18-FPN.yaml"),
                                 validate=False))
    for lt, lvis in TWINS.items():
        a = _flat(build_config(os.path.join(ROOT, "configs", "LTShapes", lt), validate=False))
        b = _flat(build_config(os.path.join(ROOT, "configs", "LVISv1-InstanceSegmentation", lvis), validate=False))
        method = {k: v for k, v in a.items()
                  if v != lt_base[k] and k not in ("OUTPUT_DIR", "DATALOADER.REPEAT_THRESHOLD")}
        assert method and {k: b[k] for k in method} == method, (lt, lvis)
        assert a["DATALOADER.REPEAT_THRESHOLD"] == 0.1 and b["DATALOADER.REPEAT_THRESHOLD"] == 0.001, lvis
        assert b["DATALOADER.SAMPLER_TRAIN"] == "RepeatFactorTrainingSampler", lvis


@pytest.mark.parametrize("path", STEPPED, ids=[os.path.relpath(p, ROOT) for p in STEPPED])
def test_config_builds_and_trains_one_iteration(path):
    cfg = build_config(path)  # as written: datasets must be registered, weights well-formed
    for name in list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST):
        assert name in DatasetCatalog.list(), f"{path}: unknown dataset {name}"
    assert cfg.MODEL.WEIGHTS == "" or cfg.MODEL.WEIGHTS.startswith(("detectron2://", "./output/"))
    decoupled = cfg.MODEL.BALMS.DECOUPLED.ENABLED
    if decoupled:
        assert cfg.MODEL.WEIGHTS.endswith("model_final.pth"), "stage 2 must start from a stage-1 model"

    cfg = _offline_cfg(path)
    torch.manual_seed(0)
    trainer = _trainer_cls()
    model = trainer.build_model(cfg)
    if cfg.MODEL.BALMS.DECOUPLED.REINIT_CLASSIFIER:
        assert len(reinit_classifier(model)) >= 1
    optimizer = trainer.build_optimizer(cfg, model)  # tools/train_net.py's (+ CLIP_TYPE full_model)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}

    model.train()
    with EventStorage() as storage:
        meta = cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED
        if meta:  # BALMS: the hook runs the meta step of this iteration (meta images: other tiny inputs)
            loader = itertools.repeat(tiny_detection_inputs(cfg.MODEL.ROI_HEADS.NUM_CLASSES, seed=1))
            hook = MetaReweighterHook(cfg, meta_loader=loader)
            hook.trainer = SimpleNamespace(model=model, optimizer=optimizer, iter=0, max_iter=1, storage=storage)
            hook.before_train()
            hook.before_step()
        losses = model(tiny_detection_inputs(cfg.MODEL.ROI_HEADS.NUM_CLASSES))
        if meta:
            hook.after_step()
            assert storage.latest()["meta/w_min"][0] <= storage.latest()["meta/w_max"][0]
    assert all(torch.isfinite(v) for v in losses.values()), losses
    total = sum(losses.values())
    optimizer.zero_grad()
    total.backward()
    optimizer.step()

    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert any("cls_score" in n for n in changed), f"{path}: classifier did not train"
    if decoupled:
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable and all("cls_score" in n for n in trainable)
        assert changed <= trainable, f"frozen parameters changed: {sorted(changed - trainable)[:5]}"
        bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        assert not bns, "frozen BatchNorm layers must be converted to FrozenBatchNorm2d"
        if cfg.MODEL.RESNETS.NORM == "BN":
            assert any(isinstance(m, FrozenBatchNorm2d) for m in model.backbone.modules())
    else:
        assert any(n.startswith("backbone") for n in changed)

    model.eval()
    with torch.no_grad():
        out = model(tiny_detection_inputs(cfg.MODEL.ROI_HEADS.NUM_CLASSES)[:1])
    assert out[0]["instances"].has("pred_masks")
