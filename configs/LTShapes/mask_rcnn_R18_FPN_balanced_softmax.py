"""Python-config twin of mask_rcnn_R18_FPN_balanced_softmax.yaml: Balanced Softmax (tau = 1) end to end,
the class prior read from the training set's LVIS image counts."""
from detectron2.config import LazyCall as L

from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import BalancedSoftmaxLoss, deferred_class_prior

from .base_mask_rcnn_R18_FPN import dataloader, lr_multiplier, model, optimizer, train

model.roi_heads = long_tail_roi_heads(
    model.roi_heads,
    cls_loss=L(BalancedSoftmaxLoss)(tau=1.0, prior=L(deferred_class_prior)(datasets="${dataloader.train.dataset.names}")),
)
train.output_dir = "./output/lazy_lt_shapes_balanced_softmax"
