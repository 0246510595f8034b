"""Python-config twin of Base-MaskRCNN-R18-FPN.yaml: the small lt_shapes Mask R-CNN (ResNet-18 + FPN from
scratch, 160 px, 40 classes) built from detectron2's model-zoo pieces (common/models/mask_rcnn_fpn.py,
common/data/coco.py, common/optim.py, common/train.py) with the YAML's sizes and schedule.
Run with tools/lazyconfig_train_net.py; variants import this file and swap the box predictor."""
import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import ResNet
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

import balms_det  # noqa: F401  registers lt_shapes_{train,val}
from balms_det.evaluation import LVISEvaluator

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
dataloader = model_zoo.get_config("common/data/coco.py").dataloader
optimizer = model_zoo.get_config("common/optim.py").SGD
train = model_zoo.get_config("common/train.py").train

# model: as the YAML (R18 with BN from scratch, FPN 64 channels, small anchors, light heads)
model.pixel_mean = [103.53, 116.28, 123.675]
model.pixel_std = [57.375, 57.12, 58.395]
model.backbone.bottom_up.stem.norm = "BN"
model.backbone.bottom_up.stages = L(ResNet.make_default_stages)(depth=18, norm="BN")
model.backbone.bottom_up.freeze_at = 0
model.backbone.out_channels = 64
model.proposal_generator.head.in_channels = 64
model.proposal_generator.anchor_generator.sizes = [[8], [16], [32], [64], [128]]
model.proposal_generator.pre_nms_topk = (1000, 500)
model.proposal_generator.post_nms_topk = (300, 200)
model.proposal_generator.batch_size_per_image = 128
model.roi_heads.num_classes = 40
model.roi_heads.batch_size_per_image = 128
model.roi_heads.box_head.input_shape = ShapeSpec(channels=64, height=7, width=7)
model.roi_heads.box_head.fc_dims = [256, 256]
model.roi_heads.box_predictor.input_shape = ShapeSpec(channels=256)
model.roi_heads.box_predictor.test_score_thresh = 0.0001
model.roi_heads.box_predictor.test_topk_per_image = 100
model.roi_heads.mask_head.input_shape = ShapeSpec(channels=64, width=14, height=14)
model.roi_heads.mask_head.conv_dims = [64, 64, 64]  # 2 convs + the deconv's channels

# data: lt_shapes at 160 px, batch 8; LVIS-style evaluation (APr / APc / APf)
dataloader.train.dataset.names = "lt_shapes_train"
dataloader.train.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=(160,), sample_style="choice",
                                                                 max_size=160), L(T.RandomFlip)(horizontal=True)]
dataloader.train.total_batch_size = 8
dataloader.train.num_workers = 1
dataloader.test.dataset.names = "lt_shapes_val"
dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=160, max_size=160)]
dataloader.test.num_workers = 1
dataloader.evaluator = L(LVISEvaluator)(
    dataset_name="${..test.dataset.names}", train_datasets="${..train.dataset.names}", max_dets_per_image=300,
    output_dir="${train.output_dir}/inference",
)

# schedule: 1,200 iterations, LR 0.02 with steps at 900 and 1,100, 100 warm-up iterations
train.max_iter = 1200
train.device = "cpu"
train.eval_period = 0  # evaluate once, at the end
train.checkpointer.period = 500
train.output_dir = "./output/lazy_lt_shapes"
train.seed = 0
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[900, 1100], num_updates=1200),
    warmup_length=100 / 1200,
    warmup_factor=0.001,
)
