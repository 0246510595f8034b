#!/usr/bin/env python
"""Size of what a BALMS stage-2 run saves, for an LVIS-sized model: the deployed model (the checkpoint's
``model``) and the final checkpoint (``model_final.pth``: model, optimizer, scheduler, trainer state).

Builds the real model of an LVIS config (default: Mask R-CNN R-50 FPN, 1,203 classes, BALMS decoupled
with the ROI feature bank; ``--cascade`` for three box predictors), fills each meta reweighter's bank as
training would, and writes the two files the way detectron2's ``DetectionCheckpointer`` does for a
``DefaultTrainer``: a periodic checkpoint (everything needed to resume bit for bit) and the final one
(written at the last iteration). Nothing is trained; no dataset is read (the prior is a list of ones).

    python benchmarks/bench_checkpoint_size.py [--cascade] [--out benchmarks/results/checkpoint_size.json]
"""
import argparse
import json
import os
import sys
import tempfile
from types import SimpleNamespace

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from detectron2.modeling import build_model  # noqa: E402
from detectron2.solver import build_lr_scheduler, build_optimizer  # noqa: E402

from balms_det.engine import MetaReweighterHook, build_config  # noqa: E402
from balms_det.modeling import apply_decoupled  # noqa: E402

CONFIG = "configs/LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_decoupled_balms.yaml"


def _mb(path):
    return os.path.getsize(path) / 2**20


def measure(cascade=False):
    opts = ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", "MODEL.BALMS.PRIOR.SOURCE", "list",
            "MODEL.BALMS.PRIOR.COUNTS", repr([1.0] * 1203), "MODEL.BALMS.PRIOR.NUM_IMAGES", "100000"]
    if cascade:
        opts += ["MODEL.ROI_HEADS.NAME", "LongTailCascadeROIHeads", "MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG", "True",
                 "MODEL.BALMS.DECOUPLED.TRAINABLE", "['roi_heads\\\\.box_predictor\\\\.(\\\\d+\\\\.)?cls_score\\\\.']"]
    cfg = build_config(os.path.join(ROOT, CONFIG), opts)
    model = apply_decoupled(build_model(cfg), cfg)
    optimizer = build_optimizer(cfg, model)
    scheduler = build_lr_scheduler(cfg, optimizer)
    hook = MetaReweighterHook(cfg)
    reweighters = [m.meta_reweighter for m in model.modules() if getattr(m, "meta_reweighter", None) is not None]
    for r in reweighters:  # a full bank: every ring written
        bank = r.bank
        bank.count.copy_(bank.capacity)
        bank.features.normal_()
    out = {"config": CONFIG, "cascade": cascade, "box_predictors": len(reweighters),
           "bank_shape": list(reweighters[0].bank.features.shape)}
    with tempfile.TemporaryDirectory() as tmp:
        for name, it in (("periodic", 0), ("final", cfg.SOLVER.MAX_ITER - 1)):
            hook.trainer = SimpleNamespace(model=model, iter=it, max_iter=cfg.SOLVER.MAX_ITER)
            trainer_state = {"iteration": it}
            hooks = {"MetaReweighterHook": hook.state_dict()} if hasattr(hook, "state_dict") else {}
            if hooks.get("MetaReweighterHook"):
                trainer_state["hooks"] = hooks
            path = os.path.join(tmp, f"{name}.pth")
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "trainer": trainer_state, "iteration": it}, path)
            out[f"{name}_checkpoint_mb"] = round(_mb(path), 1)
        path = os.path.join(tmp, "model.pth")
        torch.save({"model": model.state_dict()}, path)
        out["deployed_model_mb"] = round(_mb(path), 1)
        out["model_keys_of_the_meta_reweighter"] = len([k for k in model.state_dict() if "meta_reweighter" in k])
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cascade", action="store_true", help="three box predictors (Cascade R-CNN)")
    ap.add_argument("--out", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    res = measure(args.cascade)
    for k, v in res.items():
        print(f"{k:40s} {v}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
