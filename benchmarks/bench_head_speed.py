#!/usr/bin/env python
"""Training-iteration time of balms_det's head with each classification loss vs detectron2's stock
head, all in one run.

Every model is built from the same config (default: the lt_shapes R18-FPN base), with the same
initial weights, and runs full training iterations (forward, backward, SGD step with learning rate 0,
so all keep identical weights and see identical proposals) on the same synthetic batch. Iterations
are interleaved: each round runs every model once, in an order that rotates and reverses from round
to round, so that drifts in machine load hit all equally. Prints median times and, per loss, the
ratio loss / stock (median of times and median of per-round ratios) and whether it is <= --target.
Offline: the class prior is a synthetic long-tailed list.
A loss written ``LOSS:normed`` uses the normalised classifier (MODEL.BALMS.CLASSIFIER "normed").

    OMP_NUM_THREADS=1 python benchmarks/bench_head_speed.py --iters 30
    python benchmarks/bench_head_speed.py --cls-losses seesaw eqlv2 -- MODEL.ROI_HEADS.NUM_CLASSES 1203
    python benchmarks/bench_head_speed.py --config-file configs/LVISv1-InstanceSegmentation/Base-BALMS-MaskRCNN-R50-FPN.yaml --device cuda
"""
import argparse
import os
import statistics
import sys
import time

import torch
from detectron2.modeling import build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from balms_det.engine import build_config  # noqa: E402

DEFAULT_CFG = os.path.join(os.path.dirname(__file__), "..", "configs", "LTShapes", "Base-MaskRCNN-R18-FPN.yaml")


DEFAULT_LOSSES = ["balanced_softmax", "seesaw", "eqlv2", "ecm", "federated", "seesaw:normed", "ecm:normed"]


def make_cfg(args, head, cls_loss):
    cfg = build_config(args.config_file, args.opts, validate=False)  # offline: no dataset is read
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NAME = head
    cls_loss, _, classifier = cls_loss.partition(":")
    cfg.MODEL.BALMS.CLS_LOSS = cls_loss
    cfg.MODEL.BALMS.CLASSIFIER = classifier or "linear"
    cfg.MODEL.BALMS.PRIOR.SOURCE = "list"
    cfg.MODEL.BALMS.PRIOR.COUNTS = [float(max(1, int(1000 * 0.85 ** j))) for j in range(k)]
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 2000
    return cfg


def make_batch(num_images, size, num_classes, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = []
    for _ in range(num_images):
        n = 6
        xy = torch.rand(n, 2, generator=g) * size * 0.7
        wh = 8 + torch.rand(n, 2, generator=g) * size * 0.3
        boxes = torch.cat([xy, (xy + wh).clamp(max=size - 1)], 1)
        masks = torch.zeros(n, size, size, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes.round().long().tolist()):
            masks[i, y0:y1, x0:x1] = True
        inst = Instances((size, size))
        inst.gt_boxes = Boxes(boxes)
        inst.gt_classes = torch.randint(0, num_classes, (n,), generator=g)
        inst.gt_masks = BitMasks(masks)
        batch.append({"image": (torch.rand(3, size, size, generator=g) * 255).to(device),
                      "instances": inst.to(device)})
    return batch


def step(model, opt, batch, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    with EventStorage():
        losses = model(batch)
    loss = sum(losses.values())
    opt.zero_grad()
    loss.backward()
    opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - t


def round_order(names, i):
    """Round i's order: rotated by i, reversed every other round (ABBA for two models)."""
    r = i % len(names)
    order = names[r:] + names[:r]
    return order[::-1] if (i // len(names)) % 2 else order


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-file", default=DEFAULT_CFG)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per model")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--cls-losses", nargs="+", default=DEFAULT_LOSSES,
                    help="MODEL.BALMS.CLS_LOSS values (LOSS:normed for the normalised classifier)")
    ap.add_argument("--target", type=float, default=1.05, help="ratio to report as met or not")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ..., after --")
    args = ap.parse_args()
    args.opts = [o for o in args.opts if o != "--"]

    torch.manual_seed(0)
    stock = build_model(make_cfg(args, "StandardROIHeads", "softmax"))
    models = {"stock": stock}
    for loss in args.cls_losses:
        cfg = make_cfg(args, "LongTailROIHeads", loss)
        m = build_model(cfg)
        state = {k: v for k, v in stock.state_dict().items()
                 if "box_predictor.cls_score" not in k or v.shape == m.state_dict()[k].shape}
        missing = m.load_state_dict(state, strict=False)  # same initial weights (the classifier
        assert not missing.unexpected_keys, missing      # too where its shape is the stock one)
        models[loss] = m
    num_classes = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    # lr = 0: the optimizer step is computed but the weights stay identical, so all models see the
    # same proposals and the same number of foreground ROIs every iteration (only the head differs).
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.0, momentum=0.9) for k, m in models.items()}
    for m in models.values():
        m.train()
    batch = make_batch(args.batch, args.size, num_classes, args.device)

    names = list(models)
    times = {k: [] for k in names}
    for i in range(args.warmup + args.iters):
        for k in round_order(names, i):
            t = step(models[k], opts[k], batch, args.device)
            if i >= args.warmup:
                times[k].append(t)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"config: {os.path.relpath(args.config_file)}  classes: {num_classes}  device: {args.device}  "
          f"batch: {args.batch}x{args.size}px  iters: {args.iters} (+{args.warmup} warm-up), interleaved "
          f"(rotating order), torch threads: {torch.get_num_threads()}")
    print(f"{'head / loss':28s} {'median s/iter':>14s} {'mean s/iter':>12s} {'ratio':>7s} {'pair ratio':>11s}")
    print(f"{'StandardROIHeads (softmax)':28s} {med['stock']:14.4f} {statistics.mean(times['stock']):12.4f}")
    worst = 0.0
    for k in names[1:]:
        pair = statistics.median(b / s for b, s in zip(times[k], times["stock"]))
        ratio = med[k] / med["stock"]
        worst = max(worst, ratio)
        print(f"{k:28s} {med[k]:14.4f} {statistics.mean(times[k]):12.4f} {ratio:7.3f} {pair:11.3f}")
    print(f"target <= {args.target:.2f}x: {'met' if worst <= args.target else 'NOT met'} "
          f"(largest ratio {worst:.3f})")


if __name__ == "__main__":
    main()
