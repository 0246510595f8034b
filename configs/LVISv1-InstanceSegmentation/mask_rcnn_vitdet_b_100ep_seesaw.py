"""ViTDet-B Mask R-CNN, ViTDet's LVIS recipe (vitdet_lvis_base.py) unchanged but the box classification:
Seesaw Loss (p 0.8, q 2.0) with the normalised classifier (T 20), as its authors' LVIS recipe, in place of
the federated sigmoid loss."""
from detectron2.config import LazyCall as L

from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import SeesawLoss

from .vitdet_lvis_base import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads = long_tail_roi_heads(model.roi_heads, cls_loss=L(SeesawLoss)(p=0.8, q=2.0, eps=0.01),
                                      classifier="normed", normed_temperature=20.0)
train.output_dir = "./output/lvis_v1/vitdet_b_seesaw"
