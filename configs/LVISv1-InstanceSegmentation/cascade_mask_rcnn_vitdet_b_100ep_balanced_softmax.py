"""ViTDet-B Cascade Mask R-CNN, ViTDet's LVIS recipe (vitdet_lvis_base.py; the cascade as ViTDet's: three
stages with IoU 0.5 / 0.6 / 0.7, 4conv1fc box heads with LayerNorm, class-agnostic regression) with
Balanced Softmax (tau = 1) in every stage in place of the federated sigmoid loss."""
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.matcher import Matcher
from detectron2.modeling.roi_heads import CascadeROIHeads, FastRCNNConvFCHead, FastRCNNOutputLayers

from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import BalancedSoftmaxLoss, deferred_class_prior

from .vitdet_lvis_base import dataloader, lr_multiplier, model, optimizer, train

_heads = model.roi_heads
model.roi_heads = L(CascadeROIHeads)(
    num_classes=1203,
    batch_size_per_image=_heads.batch_size_per_image,
    positive_fraction=_heads.positive_fraction,
    proposal_matchers=[L(Matcher)(thresholds=[t], labels=[0, 1], allow_low_quality_matches=False)
                       for t in (0.5, 0.6, 0.7)],
    box_in_features=_heads.box_in_features,
    box_pooler=_heads.box_pooler,
    box_heads=[L(FastRCNNConvFCHead)(input_shape=ShapeSpec(channels=256, height=7, width=7),
                                     conv_dims=[256, 256, 256, 256], fc_dims=[1024], conv_norm="LN")
               for _ in range(3)],
    box_predictors=[L(FastRCNNOutputLayers)(input_shape=ShapeSpec(channels=1024), num_classes=1203,
                                            test_score_thresh=0.02, test_topk_per_image=300,
                                            box2box_transform=L(Box2BoxTransform)(weights=w),
                                            cls_agnostic_bbox_reg=True)
                    for w in ((10, 10, 5, 5), (20, 20, 10, 10), (30, 30, 15, 15))],
    mask_in_features=_heads.mask_in_features,
    mask_pooler=_heads.mask_pooler,
    mask_head=_heads.mask_head,
)
model.roi_heads = long_tail_roi_heads(
    model.roi_heads,
    cls_loss=L(BalancedSoftmaxLoss)(tau=1.0, prior=L(deferred_class_prior)(datasets="${dataloader.train.dataset.names}")),
)
train.output_dir = "./output/lvis_v1/vitdet_b_cascade_balanced_softmax"
