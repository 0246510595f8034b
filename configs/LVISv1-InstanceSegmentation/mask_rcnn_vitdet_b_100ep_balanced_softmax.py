"""ViTDet-B Mask R-CNN, ViTDet's LVIS recipe (vitdet_lvis_base.py) unchanged but the box classification:
Balanced Softmax (tau = 1) with the training json's image counts, in place of the federated sigmoid loss."""
from detectron2.config import LazyCall as L

from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import BalancedSoftmaxLoss, deferred_class_prior

from .vitdet_lvis_base import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads = long_tail_roi_heads(
    model.roi_heads,
    cls_loss=L(BalancedSoftmaxLoss)(tau=1.0, prior=L(deferred_class_prior)(datasets="${dataloader.train.dataset.names}")),
)
train.output_dir = "./output/lvis_v1/vitdet_b_balanced_softmax"
