"""Python-config twin of mask_rcnn_R18_FPN_softmax.yaml: the stock softmax head (baseline)."""
from .base_mask_rcnn_R18_FPN import dataloader, lr_multiplier, model, optimizer, train

train.output_dir = "./output/lazy_lt_shapes_softmax"
