#!/usr/bin/env python
"""Training-iteration time of the Balanced Softmax head vs detectron2's stock head, in one run.

Both models are built from the same config (default: the lt_shapes R18-FPN base), with the same
initial weights, and run full training iterations (forward, backward, SGD step with learning rate 0,
so both keep identical weights and see identical proposals) on the same synthetic batch. Iterations
alternate between the two models (ABBA order) so that drifts in machine load hit both equally.
Prints median times and the ratio balanced / stock (target <= 1.02). Offline: the class prior is a synthetic long-tailed list.

    OMP_NUM_THREADS=1 python benchmarks/bench_head_speed.py --iters 30
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


def make_cfg(args, head, cls_loss):
    cfg = build_config(args.config_file, args.opts)
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    cfg.MODEL.DEVICE = args.device
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.ROI_HEADS.NAME = head
    cfg.MODEL.BALMS.CLS_LOSS = cls_loss
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


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config-file", default=DEFAULT_CFG)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--iters", type=int, default=30, help="timed iterations per model")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--size", type=int, default=160)
    ap.add_argument("--cls-loss", default="balanced_softmax")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides KEY VALUE ...")
    args = ap.parse_args()

    torch.manual_seed(0)
    stock = build_model(make_cfg(args, "StandardROIHeads", "softmax"))
    bal_cfg = make_cfg(args, "BalancedSoftmaxROIHeads", args.cls_loss)
    bal = build_model(bal_cfg)
    missing = bal.load_state_dict(stock.state_dict(), strict=False)  # same initial weights
    assert not missing.unexpected_keys, missing
    models = {"stock": stock, "balanced": bal}
    # lr = 0: the optimizer step is computed but the weights stay identical, so both models see the
    # same proposals and the same number of foreground ROIs every iteration (only the head differs).
    opts = {k: torch.optim.SGD(m.parameters(), lr=0.0, momentum=0.9) for k, m in models.items()}
    for m in models.values():
        m.train()
    batch = make_batch(args.batch, args.size, bal_cfg.MODEL.ROI_HEADS.NUM_CLASSES, args.device)

    times = {k: [] for k in models}
    for i in range(args.warmup + args.iters):
        order = ("stock", "balanced") if i % 2 == 0 else ("balanced", "stock")
        for k in order:
            t = step(models[k], opts[k], batch, args.device)
            if i >= args.warmup:
                times[k].append(t)

    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"config: {os.path.relpath(args.config_file)}  device: {args.device}  batch: {args.batch}x{args.size}px  "
          f"iters: {args.iters} (+{args.warmup} warm-up), interleaved ABBA, torch threads: {torch.get_num_threads()}")
    print(f"{'head':28s} {'median s/iter':>14s} {'mean s/iter':>12s}")
    print(f"{'StandardROIHeads (softmax)':28s} {med['stock']:14.4f} {statistics.mean(times['stock']):12.4f}")
    print(f"{'BalancedSoftmaxROIHeads':28s} {med['balanced']:14.4f} {statistics.mean(times['balanced']):12.4f}"
          f"  ({args.cls_loss})")
    ratios = sorted(b / s for b, s in zip(times["balanced"], times["stock"]))
    print(f"ratio balanced / stock: {med['balanced'] / med['stock']:.3f} (median of per-pair ratios "
          f"{statistics.median(ratios):.3f})")


if __name__ == "__main__":
    main()
