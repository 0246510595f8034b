#!/usr/bin/env python
"""Cost of the Meta Reweighter: a BALMS decoupled iteration vs a plain Balanced Softmax decoupled
iteration, in one interleaved run.

Three models are built from the same config family with the same initial weights, frozen for stage 2
(only the box classifier trains): Balanced Softmax decoupled; BALMS with the default meta batches
(``META_SOURCE: bank``); BALMS with the official meta batches (``images``: as many class-balanced
images as the training batch through the frozen detector every iteration). Each timed iteration is
what the trainer does: the hook's ``before_step`` (meta images, SGD rule), forward (with the meta step
inside the box predictor), backward, SGD step, ``after_step``. The three alternate in rotating order
so that drifts in machine load hit all equally, and the RNG is re-seeded before each so that all three
sample the same ROIs in the same iteration (the frozen detector gives them the same proposals). Prints median times and the ratios to Balanced Softmax
(target for the default setting: <= 1.05x). Offline: synthetic images, a synthetic long-tailed prior.

    OMP_NUM_THREADS=2 python benchmarks/bench_meta_reweighter.py
    python benchmarks/bench_meta_reweighter.py --config-file \\
        configs/LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_decoupled_balms.yaml --device cuda --batch 2 --size 800
"""
import argparse
import itertools
import os
import statistics
import sys
import time
from types import SimpleNamespace

import torch
from detectron2.solver import build_optimizer
from detectron2.utils.events import EventStorage

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_head_speed import make_batch  # noqa: E402
from balms_det.engine import MetaReweighterHook, build_config  # noqa: E402
from balms_det.modeling import apply_decoupled  # noqa: E402
from detectron2.modeling import build_model  # noqa: E402

DEFAULT_CFG = os.path.join(ROOT, "configs", "LTShapes", "mask_rcnn_R18_FPN_decoupled_balms.yaml")
VARIANTS = ("balanced_softmax", "balms_bank", "balms_images")


def make_cfg(args, variant):
    cfg = build_config(args.config_file, args.opts, validate=False)  # offline: no dataset is read
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.DATASETS.TRAIN = ()
    cfg.MODEL.BALMS.PRIOR.SOURCE = "list"
    cfg.MODEL.BALMS.PRIOR.COUNTS = [float(max(1, int(1000 * 0.85 ** j))) for j in range(k)]
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 2000
    cfg.MODEL.BALMS.DECOUPLED.ENABLED = True
    cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED = variant != "balanced_softmax"
    cfg.MODEL.BALMS.META_REWEIGHTER.META_SOURCE = "images" if variant == "balms_images" else "bank"
    return cfg


def build(args, variant, batches):
    cfg = make_cfg(args, variant)
    torch.manual_seed(0)  # the same initial weights for every variant
    model = apply_decoupled(build_model(cfg), cfg)
    model.train()
    optimizer = build_optimizer(cfg, model)
    hook = None
    if cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED:
        hook = MetaReweighterHook(cfg, meta_loader=itertools.cycle(batches[1:]))
        hook.trainer = SimpleNamespace(model=model, optimizer=optimizer, iter=0, max_iter=10**9, storage=None)
    return SimpleNamespace(cfg=cfg, model=model, optimizer=optimizer, hook=hook, iter=0)


def step(run, batch, storage, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    if run.hook is not None:
        run.hook.trainer.iter, run.hook.trainer.storage = run.iter, storage
        run.hook.before_step()
    loss = sum(run.model(batch).values())
    run.optimizer.zero_grad()
    loss.backward()
    run.optimizer.step()
    if run.hook is not None:
        run.hook.after_step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    run.iter += 1
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-file", default=DEFAULT_CFG)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per variant")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=8, help="images per iteration (training and meta)")
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = ap.parse_args()

    k = build_config(args.config_file, args.opts, validate=False).MODEL.ROI_HEADS.NUM_CLASSES
    batches = [make_batch(args.batch, args.size, k, args.device, seed=s) for s in range(4)]
    runs = {v: build(args, v, batches) for v in VARIANTS}
    for r in runs.values():  # every variant's hook starts before training starts
        if r.hook is not None:
            r.hook.before_train()
    times = {v: [] for v in VARIANTS}
    with EventStorage() as storage:
        for i in range(args.warmup + args.iters):
            order = VARIANTS[i % 3:] + VARIANTS[:i % 3]
            for v in order:
                torch.manual_seed(i)
                t = step(runs[v], batches[0], storage, args.device)
                if i >= args.warmup:
                    times[v].append(t)

    med = {v: statistics.median(t) for v, t in times.items()}
    cfg = runs["balms_bank"].cfg
    print(f"config: {os.path.relpath(args.config_file, ROOT)}  device: {args.device}  batch: {args.batch}x{args.size}px "
          f"(+ as many meta images for 'images')  classes: {k}  ROIs/image: {cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE}  "
          f"iters: {args.iters} (+{args.warmup} warm-up), rotating order, torch threads: {torch.get_num_threads()}")
    print(f"{'decoupled stage 2':44s} {'median s/iter':>14s} {'ratio':>7s} {'median pair ratio':>18s}")
    labels = {"balanced_softmax": "Balanced Softmax (no reweighter)",
              "balms_bank": "BALMS, META_SOURCE bank (default)",
              "balms_images": "BALMS, META_SOURCE images (official)"}
    base = times["balanced_softmax"]
    for v in VARIANTS:
        pair = statistics.median(a / b for a, b in zip(times[v], base))
        print(f"{labels[v]:44s} {med[v]:14.4f} {med[v] / med['balanced_softmax']:6.3f}x {pair:17.3f}x")
    ratio = med["balms_bank"] / med["balanced_softmax"]
    print(f"target (default setting <= 1.05x): {'met' if ratio <= 1.05 else 'NOT met'} ({ratio:.3f}x); "
          f"official setting {med['balms_images'] / med['balanced_softmax']:.3f}x")


if __name__ == "__main__":
    main()
