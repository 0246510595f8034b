"""Python (LazyConfig) configs and tools/lazyconfig_train_net.py: every Python config in configs/ trains a
step and evaluates (lt_shapes_mini in place of LVIS, tiny sizes, ViT shrunk); the Python and YAML
Balanced Softmax configs build the same predictor; resume and the Meta Reweighter from the Python entry
point; a user's config on detectron2's mask_rcnn_fpn.py trained with detectron2's stock loop."""
import glob
import importlib.util
import json
import os
from types import SimpleNamespace

import pytest
import torch
from detectron2.config import LazyConfig, instantiate

from conftest import REPO, register_few_val, run_tool

torch.set_num_threads(1)
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True))


def _entry_point():
    spec = importlib.util.spec_from_file_location("balms_lazy_train_net",
                                                  os.path.join(REPO, "tools", "lazyconfig_train_net.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def shrink(cfg, out_dir, max_iter=1):
    """lt_shapes_mini for the real datasets, 40 classes, small images, a tiny ViT, no downloads, CPU."""
    cfg.train.update(device="cpu", max_iter=max_iter, output_dir=str(out_dir), init_checkpoint="", eval_period=0,
                     log_period=1)
    cfg.train.amp.enabled = False
    cfg.train.ddp.fp16_compression = False
    cfg.train.checkpointer.period = 1
    d = cfg.dataloader
    d.train.dataset.names, d.test.dataset.names = "lt_shapes_mini_train", register_few_val()
    d.train.total_batch_size, d.train.num_workers, d.test.num_workers = 2, 0, 0
    cfg.model.proposal_generator.post_nms_topk = (64, 32)  # few ROIs: ViTDet's 4-conv box head is costly
    heads = cfg.model.roi_heads
    heads.num_classes = 40
    heads.batch_size_per_image = 64
    for p in heads.get("box_predictors", []):
        p.num_classes = 40
    for p in heads.get("box_predictors", [heads.get("box_predictor")]):
        p.test_topk_per_image = 10  # ViTDet's 4-conv mask head on 300 detections per image is costly
    if heads.get("box_predictor", {}).get("use_fed_loss", False):  # ViTDet's recipe: weights of the test data
        from detectron2.data.detection_utils import get_fed_loss_cls_weights

        heads.box_predictor.get_fed_loss_cls_weights = lambda: get_fed_loss_cls_weights("lt_shapes_mini_train", 0.5)
        heads.box_predictor.fed_loss_num_classes = 10
    reweighter = heads.get("box_predictor", {}).get("meta_reweighter", None)
    if reweighter is not None:
        reweighter.num_classes = 40
    sched = cfg.lr_multiplier.scheduler
    if "milestones" in sched:  # ("values" is a DictConfig method name: item access)
        sched["milestones"] = [m for m in sched["milestones"] if m < max_iter]
        sched["values"] = list(sched["values"])[:len(sched["milestones"]) + 1]
        sched["num_updates"] = max_iter
    net = cfg.model.backbone.get("net")
    size = 64 if net is not None else 128
    if net is not None:  # ViT: 2 blocks of width 32 on 64 px
        net.update(img_size=size, embed_dim=32, depth=2, num_heads=2, window_size=2, window_block_indexes=[0],
                   drop_path_rate=0.0)
        cfg.model.backbone.square_pad = size
        opt = cfg.optimizer.params
        if "lr_factor_func" in opt:
            opt.lr_factor_func.num_layers = 2
    for aug in list(d.train.mapper.augmentations) + list(d.test.mapper.augmentations):
        for key in ("max_size", "target_height", "target_width"):
            if key in aug:
                aug[key] = size
        if "short_edge_length" in aug:
            aug.short_edge_length = (size,) if "sample_style" in aug else size
        if "crop_size" in aug:
            aug.crop_size = (size, size)
    return cfg


@pytest.fixture(scope="module")
def entry_point(datasets_dir):
    return _entry_point()


def stage1_weights(cfg, folder):
    """A decoupled stage starts from a trained model's weights (every frozen parameter must come from them):
    this config's model, freshly built, stands in for one; saved as ``folder/stage1.pth``."""
    path = os.path.join(str(folder), "stage1.pth")
    torch.save({"model": instantiate(cfg.model).state_dict()}, path)
    return path


def _train_and_eval(entry_point, cfg):
    entry_point.do_train(SimpleNamespace(resume=False), cfg)
    with open(os.path.join(cfg.train.output_dir, "metrics.json")) as f:
        lines = [json.loads(line) for line in f]
    return lines


@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, os.path.join(REPO, "configs")) for p in CONFIGS])
def test_every_python_config_trains_a_step_and_evaluates(path, entry_point, tmp_path, tmp_path_factory):
    cfg = shrink(LazyConfig.load(path), tmp_path)
    if cfg.get("decoupled"):
        cfg.train.init_checkpoint = stage1_weights(cfg, tmp_path_factory.mktemp("stage1"))
    lines = _train_and_eval(entry_point, cfg)
    assert [m for m in lines if "total_loss" in m and m["iteration"] == 0]
    final = [m for m in lines if "bbox/APr" in m]
    assert final and "segm/APf" in final[-1]  # evaluated with balms_det's LVIS evaluator
    assert os.path.isfile(tmp_path / "model_final.pth")


def test_python_and_yaml_balanced_softmax_build_the_same_predictor(datasets_dir):
    from detectron2.modeling import build_model

    from balms_det.engine import build_config

    lazy = LazyConfig.load(os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.py"))
    torch.manual_seed(0)
    p = instantiate(lazy.model).roi_heads.box_predictor
    yaml = build_config(os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.yaml"))
    yaml.MODEL.DEVICE = "cpu"
    torch.manual_seed(0)
    q = build_model(yaml).roi_heads.box_predictor
    assert type(p.cls_loss) is type(q.cls_loss) and repr(p.cls_loss) == repr(q.cls_loss)
    assert (p.cls_loss.center_prior, p.cls_loss.roi_count_smoothing) == (q.cls_loss.center_prior,
                                                                         q.cls_loss.roi_count_smoothing)
    assert not p.cls_loss.prior_ready and not q.cls_loss.prior_ready  # nothing read at build
    for loss in (p.cls_loss, q.cls_loss):
        loss.ensure_prior()
    assert torch.equal(p.cls_loss.class_counts, q.cls_loss.class_counts)  # the same prior, from the same json
    assert torch.equal(p.cls_loss.logit_shift(), q.cls_loss.logit_shift())
    ps, qs = p.state_dict(), q.state_dict()
    assert {k: v.shape for k, v in ps.items()} == {k: v.shape for k, v in qs.items()}
    assert (p.test_score_thresh, p.test_topk_per_image, p.num_classes) == (q.test_score_thresh,
                                                                           q.test_topk_per_image, q.num_classes)


def test_resume_and_meta_reweighter_from_the_python_entry_point(datasets_dir, tmp_path, tmp_path_factory):
    """The decoupled BALMS Python config through tools/lazyconfig_train_net.py: stage 2 trains only the
    classifier with the Meta Reweighter hook (scalars, meta_weights.*), and --resume continues from the
    last checkpoint with theta, its Adam state and the bank as saved."""
    base = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_decoupled_balms.py")
    over = ["train.device=cpu", "train.eval_period=0", "train.log_period=1",
            "train.checkpointer.period=2", "dataloader.train.dataset.names=lt_shapes_mini_train",
            "dataloader.test.dataset.names=[]", "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0",
            "lr_multiplier.scheduler.milestones=[3]", "lr_multiplier.scheduler.values=[1.0,0.1]",
            "lr_multiplier.scheduler.num_updates=4", "meta_reweighter_hook.log_period=1"]
    weights = stage1_weights(LazyConfig.apply_overrides(LazyConfig.load(base), over), tmp_path_factory.mktemp("stage1"))
    over.append(f"train.init_checkpoint={weights}")  # (stage 2 starts from a model's weights)
    cmd = ["tools/lazyconfig_train_net.py", "--config-file", base, f"train.output_dir={tmp_path}"] + over
    del_eval = ["dataloader.evaluator=null"]
    proc = run_tool(cmd + ["train.max_iter=2"] + del_eval, datasets_dir)
    assert "Decoupled training: 2/" in proc.stdout  # only cls_score's weight and bias
    with open(tmp_path / "metrics.json") as f:
        assert [m for m in map(json.loads, f) if "meta/loss" in m and "meta/w_min" in m]
    assert (tmp_path / "meta_weights.json").is_file()
    saved = _adam_step(torch.load(tmp_path / "model_final.pth", map_location="cpu"))
    proc = run_tool(cmd[:3] + ["--resume"] + cmd[3:] + ["train.max_iter=4"] + del_eval, datasets_dir)
    assert "Starting training from iteration 2" in proc.stdout
    resumed_from = json.loads((tmp_path / "metrics.json").read_text().splitlines()[-1])
    assert resumed_from["iteration"] == 3
    final = _adam_step(torch.load(tmp_path / "model_final.pth", map_location="cpu"))
    # the bank is empty at the first iteration (no meta step), then one Adam step per iteration: 1 after
    # iterations 0-1. The final checkpoint keeps theta and Adam but not the bank, so the resumed run refills it
    # at iteration 2 and steps at 3: 2 (1 + 1) only if it continued from the saved Adam state (a fresh one: 1)
    assert saved == 1 and final == 2


def _adam_step(checkpoint):
    """The meta reweighter's Adam step count in a checkpoint (its hook's training state)."""
    return checkpoint["trainer"]["hooks"]["MetaReweighterHook"]["reweighters"]["roi_heads.box_predictor"][
        "adam_step"].item()


USER_CONFIG = '''
"""A user's Python config: detectron2's own mask_rcnn_fpn.py with balms_det's Balanced Softmax box
predictor, the prior counted from a registered COCO-format dataset."""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec

from balms_det.evaluation import LVISEvaluator
from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import BalancedSoftmaxLoss, class_prior

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
dataloader = model_zoo.get_config("common/data/coco.py").dataloader
optimizer = model_zoo.get_config("common/optim.py").SGD
optimizer.lr = 0.002  # from scratch, frozen BN: a small step

model.backbone.bottom_up.stages.depth = 18
model.backbone.bottom_up.stages.pop("stride_in_1x1")
model.backbone.out_channels = 32
model.proposal_generator.head.in_channels = 32
model.roi_heads.box_head.input_shape = ShapeSpec(channels=32, height=7, width=7)
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=32, width=14, height=14)
model.roi_heads.num_classes = 3
model.roi_heads = long_tail_roi_heads(
    model.roi_heads,
    cls_loss=L(BalancedSoftmaxLoss)(prior=L(class_prior)(datasets="my_coco_train", source="dataset", num_classes=3)),
)
dataloader.train.dataset.names = "my_coco_train"
dataloader.train.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=(64,), sample_style="choice", max_size=64)]
dataloader.train.total_batch_size = 2
dataloader.train.num_workers = 0
dataloader.test.dataset.names = "my_coco_val"
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=64, max_size=64)]
dataloader.test.num_workers = 0
dataloader.evaluator = L(LVISEvaluator)(dataset_name="my_coco_val", train_datasets="my_coco_train",
                                        frequency_thresholds=(2, 4))
'''


def test_user_config_with_detectron2s_stock_loop(datasets_dir, tmp_path, monkeypatch):
    """instantiate + detectron2's SimpleTrainer / AMPTrainer: a few iterations, then balms_det's evaluator."""
    from detectron2.engine import AMPTrainer, SimpleTrainer
    from detectron2.evaluation import inference_on_dataset

    from test_benchmarks import COCO_DATA

    (tmp_path / "my_data.py").write_text(COCO_DATA)
    (tmp_path / "my_config.py").write_text(USER_CONFIG)
    spec = importlib.util.spec_from_file_location("my_data_for_lazy_test", tmp_path / "my_data.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))  # registers my_coco_{train,val}
    gt = json.loads((tmp_path / "my_coco" / "train.json").read_text())
    expect = [float(max(1, len({a["image_id"] for a in gt["annotations"] if a["category_id"] == c}))) for c in (1, 2, 3)]
    cfg = LazyConfig.load(str(tmp_path / "my_config.py"))
    cfg.dataloader.evaluator.output_dir = str(tmp_path / "eval")
    for trainer_cls in (SimpleTrainer, AMPTrainer):
        if trainer_cls is AMPTrainer and not torch.cuda.is_available():
            continue  # detectron2's AMPTrainer is CUDA-only
        torch.manual_seed(0)
        model = instantiate(cfg.model)
        pred = model.roi_heads.box_predictor
        assert type(pred).__name__ == "LongTailOutputLayers" and pred.cls_loss.name == "balanced_softmax"
        assert pred.cls_loss.class_counts.tolist() == expect  # counted from its dicts
        cfg.optimizer.params.model = model
        trainer = trainer_cls(model, instantiate(cfg.dataloader.train), instantiate(cfg.optimizer))
        trainer.train(0, 3)
        res = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
        assert set(res) == {"bbox", "segm"} and "APr" in res["bbox"]
