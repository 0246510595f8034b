"""Decoupled stage 2: freezing by name pattern, FrozenBN, DDP without unused-parameter errors,
classifier re-initialisation only when starting fresh; the class-balanced sampler and loader."""
import math
import os
import uuid
from collections import Counter
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
import torch.distributed as dist
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import build_model
from detectron2.solver import build_optimizer
from detectron2.structures import BoxMode
from detectron2.utils.events import EventStorage
from torch import nn

from balms_det import add_balms_config
from conftest import tiny_detection_inputs
from balms_det.data.samplers import ClassBalancedSampler, build_balms_train_loader, class_balanced_repeat_factors
from balms_det.engine import ClassifierReinitHook
from balms_det.modeling import apply_decoupled, reinit_classifier
from balms_det.modeling.decoupled import freeze_except, freeze_frozen_batchnorm

torch.set_num_threads(1)
K = 4


def tiny_cfg(cls_loss="balanced_softmax"):
    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.merge_from_list([
        "MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.MASK_ON", "True",
        "MODEL.BACKBONE.NAME", "build_resnet_fpn_backbone", "MODEL.BACKBONE.FREEZE_AT", "0",
        "MODEL.RESNETS.DEPTH", "18", "MODEL.RESNETS.RES2_OUT_CHANNELS", "64", "MODEL.RESNETS.NORM", "BN",
        "MODEL.RESNETS.OUT_FEATURES", "['res2', 'res3', 'res4', 'res5']",
        "MODEL.FPN.IN_FEATURES", "['res2', 'res3', 'res4', 'res5']", "MODEL.FPN.OUT_CHANNELS", "32",
        "MODEL.ANCHOR_GENERATOR.SIZES", "[[8], [16], [32], [64], [128]]",
        "MODEL.RPN.IN_FEATURES", "['p2', 'p3', 'p4', 'p5', 'p6']", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64",
        "MODEL.ROI_HEADS.NAME", "BalancedSoftmaxROIHeads", "MODEL.ROI_HEADS.NUM_CLASSES", str(K),
        "MODEL.ROI_HEADS.IN_FEATURES", "['p2', 'p3', 'p4', 'p5']", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32",
        "MODEL.ROI_BOX_HEAD.NAME", "FastRCNNConvFCHead", "MODEL.ROI_BOX_HEAD.NUM_FC", "2",
        "MODEL.ROI_BOX_HEAD.FC_DIM", "32", "MODEL.ROI_MASK_HEAD.NAME", "MaskRCNNConvUpsampleHead",
        "MODEL.ROI_MASK_HEAD.NUM_CONV", "1", "MODEL.ROI_MASK_HEAD.CONV_DIM", "16",
        "MODEL.BALMS.CLS_LOSS", cls_loss, "MODEL.BALMS.PRIOR.SOURCE", "list",
        "MODEL.BALMS.PRIOR.COUNTS", "[100.0, 20.0, 5.0, 1.0]", "MODEL.BALMS.PRIOR.NUM_IMAGES", "100",
        "MODEL.BALMS.DECOUPLED.ENABLED", "True",
    ])
    return cfg


def tiny_inputs(n=2):
    return tiny_detection_inputs(K, n)


def test_freeze_except_by_pattern():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 3)))
    assert freeze_except(net, [r"^1\.1\."]) == ["1.1.weight", "1.1.bias"]
    assert [p.requires_grad for p in net.parameters()] == [False] * 4 + [True] * 2
    with pytest.raises(ValueError, match="TRAINABLE"):
        freeze_except(net, ["nothing_matches"])


def test_frozen_batchnorm_keeps_statistics_in_train_mode():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4))
    net(torch.randn(8, 3, 8, 8))  # give the BNs non-trivial running statistics
    net.eval()
    x = torch.randn(2, 3, 8, 8)
    ref = net(x)
    for p in list(net[0].parameters()) + list(net[1].parameters()):
        p.requires_grad_(False)
    assert freeze_frozen_batchnorm(net) == 1  # only the BN whose parameters are all frozen
    assert isinstance(net[1], FrozenBatchNorm2d) and isinstance(net[3], nn.BatchNorm2d)
    net.train()
    net[3].eval()  # isolate the frozen one: in train mode it must still use the stage-1 statistics
    for _ in range(3):
        out = net(x)
    assert torch.allclose(out, ref, atol=1e-5)


def test_apply_decoupled_trains_only_the_classifier():
    torch.manual_seed(0)
    cfg = tiny_cfg()
    model = apply_decoupled(build_model(cfg), cfg)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == ["roi_heads.box_predictor.cls_score.weight", "roi_heads.box_predictor.cls_score.bias"]
    assert not [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    opt = build_optimizer(cfg, model)
    assert sum(len(g["params"]) for g in opt.param_groups) == 2
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    model.train()
    with EventStorage():
        sum(model(tiny_inputs()).values()).backward()
    opt.step()
    changed = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert changed == trainable
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())  # BN stats untouched

    cfg.MODEL.BALMS.DECOUPLED.ENABLED = False
    model = apply_decoupled(build_model(cfg), cfg)
    assert all(p.requires_grad for p in model.parameters())


def test_ddp_has_no_unused_parameter_error(tmp_path):
    cfg = tiny_cfg()
    model = apply_decoupled(build_model(cfg), cfg)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    try:
        ddp = nn.parallel.DistributedDataParallel(model, device_ids=None, broadcast_buffers=False)
        opt = torch.optim.SGD([p for p in ddp.parameters() if p.requires_grad], lr=0.01)
        ddp.train()
        for _ in range(3):  # an unused-parameter problem shows up from the 2nd iteration on
            with EventStorage():
                loss = sum(ddp(tiny_inputs()).values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("cls_loss", ["balanced_softmax", "sigmoid"])
def test_reinit_hook_only_when_starting_fresh(cls_loss):
    model = build_model(tiny_cfg(cls_loss))
    cls = model.roi_heads.box_predictor.cls_score
    with torch.no_grad():
        cls.weight.fill_(3.0)
        cls.bias.fill_(2.0)
    hook = ClassifierReinitHook()
    hook.trainer = SimpleNamespace(model=model, start_iter=17, iter=17)  # --resume: keep
    hook.before_train()
    assert (cls.weight == 3.0).all()
    hook.trainer = SimpleNamespace(model=model, start_iter=0, iter=0)  # fresh stage 2: re-init
    hook.before_train()
    assert cls.weight.abs().max() < 0.1
    bias = -math.log(999.0) if cls_loss == "sigmoid" else 0.0
    assert torch.allclose(cls.bias, torch.full_like(cls.bias, bias))
    assert reinit_classifier(model) == [cls]


def _crt_worker(rank, init_file, out_file):
    import torch.multiprocessing  # noqa: F401
    from detectron2.utils.env import seed_all_rng

    from balms_det.engine import create_ddp_model

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)
    cfg = tiny_cfg()
    model = create_ddp_model(apply_decoupled(build_model(cfg), cfg), broadcast_buffers=False)
    seed_all_rng(10 + rank)  # detectron2's default_setup seeds rank r with seed + r
    hook = ClassifierReinitHook()
    hook.trainer = SimpleNamespace(model=model, start_iter=0, iter=0)
    hook.before_train()
    torch.save({k: v for k, v in model.module.state_dict().items() if "cls_score" in k}, f"{out_file}.{rank}")
    from conftest import end_gloo_worker

    end_gloo_worker()


def test_crt_reinit_is_the_same_on_every_ddp_rank(tmp_path):
    """cRT under DDP: the hook runs after the model is wrapped (DDP broadcast the parameters then) and
    every rank has its own random stream: the ranks must still end with bit-identical classifiers."""
    import torch.multiprocessing as mp

    out = str(tmp_path / "cls")
    mp.start_processes(_crt_worker, args=(str(tmp_path / "init"), out), nprocs=2, start_method="spawn")
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert sorted(a) == ["roi_heads.box_predictor.cls_score.bias", "roi_heads.box_predictor.cls_score.weight"]
    assert all(torch.equal(a[k], b[k]) for k in a), {k: (a[k] - b[k]).abs().max().item() for k in a}
    assert a["roi_heads.box_predictor.cls_score.weight"].std() > 0.005  # re-initialised, N(0, 0.01)


def _long_tailed_dicts():
    # class 0 in 90 images, class 1 in 9, class 2 in 1; class 3 never
    dicts = []
    for i in range(100):
        c = 0 if i < 90 else (1 if i < 99 else 2)
        dicts.append({"image_id": i, "annotations": [{"category_id": c}]})
    return dicts


def test_class_balanced_sampler_balances_classes():
    dicts = _long_tailed_dicts()
    s = ClassBalancedSampler(dicts, seed=3)
    it = iter(s)
    idx = [next(it) for _ in range(3000)]
    classes = Counter(dicts[i]["annotations"][0]["category_id"] for i in idx)
    for c in (0, 1, 2):
        assert abs(classes[c] / 3000 - 1 / 3) < 0.04, classes
    assert set(idx) >= {99} and 3 not in classes
    it2 = iter(ClassBalancedSampler(dicts, seed=3))
    assert [next(it2) for _ in range(50)] == idx[:50]  # deterministic given the seed
    # sharding: worker r of w takes every w-th index of the same stream
    s2 = ClassBalancedSampler(dicts, seed=3)
    s2._rank, s2._world_size = 1, 2
    it3 = iter(s2)
    assert [next(it3) for _ in range(20)] == idx[1:40:2]


def test_train_loader_honours_sampler_names(tmp_path):
    root = tmp_path / "imgs"
    root.mkdir()
    dicts = []
    for i in range(6):
        f = str(root / f"{i}.png")
        cv2.imwrite(f, np.full((32, 32, 3), 40 * i, np.uint8))
        c = 0 if i < 5 else 1
        dicts.append({"file_name": f, "image_id": i, "height": 32, "width": 32, "annotations": [
            {"bbox": [2, 2, 20, 20], "bbox_mode": BoxMode.XYWH_ABS, "category_id": c}]})
    name = f"sampler_test_{uuid.uuid4().hex[:6]}"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["a", "b"])
    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.merge_from_list(["DATASETS.TRAIN", f"('{name}',)", "DATALOADER.NUM_WORKERS", "0",
                         "SOLVER.IMS_PER_BATCH", "2", "INPUT.MIN_SIZE_TRAIN", "(32,)", "INPUT.MASK_FORMAT", "bitmask",
                         "MODEL.MASK_ON", "False", "SEED", "1"])
    for sampler in ("ClassBalancedSampler", "RepeatFactorTrainingSampler", "TrainingSampler"):
        cfg.DATALOADER.SAMPLER_TRAIN = sampler
        loader = build_balms_train_loader(cfg)
        seen = Counter()
        for _, batch in zip(range(10), loader):
            assert len(batch) == 2
            seen.update(int(c) for d in batch for c in d["instances"].gt_classes)
        if sampler == "ClassBalancedSampler":  # 1 of 6 images has class 1, sampled about half the time
            assert seen[1] >= 5, seen
    cfg.DATALOADER.SAMPLER_TRAIN = "NoSuchSampler"
    with pytest.raises(ValueError):
        build_balms_train_loader(cfg)


def test_class_balanced_repeat_factors_of_the_official_meta_sampler():
    def img(*cats, crowd=()):
        return {"annotations": [{"category_id": c} for c in cats] + [{"category_id": c, "iscrowd": 1} for c in crowd]}

    dicts = [img(0), img(0, 1, 1), img(0), img(), img(crowd=[2])]
    # f(0) = 3/5, f(1) = 1/5 (crowd boxes do not count): r = max over the image's classes of 1/f(c), 1 if none
    assert class_balanced_repeat_factors(dicts).tolist() == pytest.approx([5 / 3, 5.0, 5 / 3, 1.0, 1.0])
