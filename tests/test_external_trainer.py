"""A plain detectron2 DefaultTrainer script, in a directory outside this repository, trains with the
Balanced Softmax heads from YAML after ``import balms_det`` and ``add_balms_config(cfg)``. It uses its
own tiny custom dataset (registered in the script), with the class prior counted from its dicts.
BALMS from such a script: the few lines of docs/methods.md (a DefaultTrainer subclass that freezes all
but the classifier and adds MetaReweighterHook)."""
import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent(
    '''
    import os, sys
    import cv2
    import numpy as np
    from detectron2.config import get_cfg
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.engine import DefaultTrainer
    from detectron2.structures import BoxMode

    import balms_det
    from balms_det import add_balms_config


    def my_dataset(root, n=6):
        os.makedirs(root, exist_ok=True)
        rng = np.random.default_rng(0)
        out = []
        for i in range(n):
            img = np.zeros((64, 64, 3), np.uint8)
            anns = []
            for k in range(2):
                c = 0 if (i + k) % 3 else 2   # class 0 frequent, class 2 rare, class 1 never seen
                x, y = int(rng.integers(2, 30)), int(rng.integers(2, 30))
                img[y:y + 24, x:x + 24] = (80 + 80 * c, 200, 50)
                anns.append({"bbox": [x, y, 24, 24], "bbox_mode": BoxMode.XYWH_ABS, "category_id": c,
                             "segmentation": [[x, y, x + 24, y, x + 24, y + 24, x, y + 24]]})
            f = os.path.join(root, f"{i}.png")
            cv2.imwrite(f, img)
            out.append({"file_name": f, "image_id": i, "height": 64, "width": 64, "annotations": anns})
        return out


    DatasetCatalog.register("my_train", lambda: my_dataset(os.path.abspath("imgs")))
    MetadataCatalog.get("my_train").set(thing_classes=["a", "b", "c"])

    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.merge_from_file(sys.argv[1])
    cfg.freeze()
    trainer = DefaultTrainer(cfg)
    trainer.resume_or_load(resume=False)
    trainer.train()
    pred = trainer.model.roi_heads.box_predictor  # its prior: computed at the first step (a stock trainer)
    pred = pred[0] if hasattr(pred, "__getitem__") else pred
    print("HEAD", type(trainer.model.roi_heads).__name__, type(pred).__name__, pred.cls_loss.name,
          pred.cls_loss.class_counts.tolist())
    '''
)

# docs/methods.md's "DefaultTrainer subclass" for BALMS, as a user would paste it.
BALMS_TRAINER = textwrap.dedent(
    """
    from balms_det.engine import MetaReweighterHook
    from balms_det.modeling import apply_decoupled


    class Trainer(DefaultTrainer):
        @classmethod
        def build_model(cls, cfg):
            return apply_decoupled(super().build_model(cfg), cfg)  # stage 2: only the classifier trains

        def build_hooks(self):
            hooks = super().build_hooks()
            if self.cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED:
                hooks.insert(1, MetaReweighterHook(self.cfg))  # after IterationTimer, before the writers
            return hooks


    trainer = Trainer(cfg)
    """
)
BALMS_KEYS = """
    DECOUPLED:
      ENABLED: True
    META_REWEIGHTER:
      ENABLED: True
      LOG_PERIOD: 1"""

YAML = textwrap.dedent(
    """
    MODEL:
      META_ARCHITECTURE: "GeneralizedRCNN"
      DEVICE: "cpu"
      WEIGHTS: ""
      MASK_ON: True
      BACKBONE:
        NAME: "build_resnet_fpn_backbone"
        FREEZE_AT: 0
      RESNETS:
        DEPTH: 18
        RES2_OUT_CHANNELS: 64
        NORM: "BN"
        OUT_FEATURES: ["res2", "res3", "res4", "res5"]
      FPN:
        IN_FEATURES: ["res2", "res3", "res4", "res5"]
        OUT_CHANNELS: 32
      ANCHOR_GENERATOR:
        SIZES: [[8], [16], [32], [64], [128]]
      RPN:
        IN_FEATURES: ["p2", "p3", "p4", "p5", "p6"]
        POST_NMS_TOPK_TRAIN: 64
      ROI_HEADS:
        NAME: "{head}"
        IN_FEATURES: ["p2", "p3", "p4", "p5"]
        NUM_CLASSES: 3
        BATCH_SIZE_PER_IMAGE: 32
      ROI_BOX_HEAD:
        NAME: "FastRCNNConvFCHead"
        NUM_FC: 2
        FC_DIM: 32
        CLS_AGNOSTIC_BBOX_REG: {agnostic}
      ROI_MASK_HEAD:
        NAME: "MaskRCNNConvUpsampleHead"
        NUM_CONV: 1
        CONV_DIM: 16
      BALMS:
        CLS_LOSS: "{loss}"
        PRIOR:
          SOURCE: "dataset"
          COUNT: "instance_count"{balms}
    DATASETS:
      TRAIN: ("my_train",)
      TEST: ()
    INPUT:
      MIN_SIZE_TRAIN: (64,)
      MAX_SIZE_TRAIN: 64
    DATALOADER:
      NUM_WORKERS: 0
    SOLVER:
      IMS_PER_BATCH: 2
      BASE_LR: 0.01
      MAX_ITER: 2
      STEPS: ()
      WARMUP_ITERS: 0
      CHECKPOINT_PERIOD: 1000
    OUTPUT_DIR: "./out"
    VERSION: 2
    """
)


@pytest.mark.parametrize(
    "head,loss",
    [("BalancedSoftmaxROIHeads", "balanced_softmax"), ("BalancedSoftmaxCascadeROIHeads", "balanced_sigmoid")],
)
def test_plain_default_trainer_script_outside_repo(tmp_path, head, loss):
    assert not str(tmp_path).startswith(ROOT)
    (tmp_path / "train.py").write_text(SCRIPT)
    (tmp_path / "cfg.yaml").write_text(YAML.format(head=head, loss=loss, agnostic="Cascade" in head, balms=""))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)  # balms_det must come from the installed package, not the cwd
    proc = subprocess.run(
        [sys.executable, "train.py", "cfg.yaml"], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    head_line = [l for l in proc.stdout.splitlines() if l.startswith("HEAD")]
    assert head_line, proc.stdout[-2000:]
    # counted from the custom dataset: 12 instances, 8 of class 0, 4 of class 2, class 1 -> MIN_COUNT 1
    built = head.replace("BalancedSoftmax", "LongTail")  # the YAML name is a registry alias of the same class
    assert head_line[0] == f"HEAD {built} LongTailOutputLayers {loss} [8.0, 1.0, 4.0]"
    assert (tmp_path / "out" / "model_final.pth").exists()
    metrics = [json.loads(l) for l in (tmp_path / "out" / "metrics.json").read_text().splitlines()]
    key = "loss_cls" if "Cascade" not in head else "loss_cls_stage0"
    losses = [m for m in metrics if key in m]
    assert losses and all(math.isfinite(m[key]) and math.isfinite(m["total_loss"]) for m in losses)


def test_balms_from_a_default_trainer_subclass_outside_repo(tmp_path):
    (tmp_path / "train.py").write_text(SCRIPT.replace("trainer = DefaultTrainer(cfg)\n", BALMS_TRAINER))
    (tmp_path / "cfg.yaml").write_text(
        YAML.format(head="BalancedSoftmaxROIHeads", loss="balanced_softmax", agnostic=False,
                    balms=BALMS_KEYS))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([sys.executable, "train.py", "cfg.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = [json.loads(l) for l in (tmp_path / "out" / "metrics.json").read_text().splitlines()]
    assert any("meta/loss" in m and "meta/w_max" in m for m in metrics), metrics
    rows = json.loads((tmp_path / "out" / "meta_weights.json").read_text())["classes"]
    assert [r["name"] for r in rows] == ["a", "b", "c"]
