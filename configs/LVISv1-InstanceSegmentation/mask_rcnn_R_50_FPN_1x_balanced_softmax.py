"""Python-config twin of mask_rcnn_R_50_FPN_1x_balanced_softmax.yaml: Mask R-CNN R50-FPN on LVIS v1 with
Balanced Softmax (tau = 1), the BALMS paper's stage-1 recipe: 90k iterations, LR 0.02, batch 16,
repeat-factor sampling t = 0.001, 300 detections per image, score threshold 1e-4; the class prior from
the training json's image counts. Built from detectron2's model-zoo pieces."""
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.data.samplers import RepeatFactorTrainingSampler

import balms_det  # noqa: F401
from balms_det.evaluation import LVISEvaluator
from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import BalancedSoftmaxLoss, deferred_class_prior

model = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
dataloader = model_zoo.get_config("common/data/coco.py").dataloader
optimizer = model_zoo.get_config("common/optim.py").SGD
lr_multiplier = model_zoo.get_config("common/coco_schedule.py").lr_multiplier_1x
train = model_zoo.get_config("common/train.py").train

dataloader.train.dataset.names = "lvis_v1_train"
dataloader.train.sampler = L(RepeatFactorTrainingSampler)(
    repeat_factors=L(RepeatFactorTrainingSampler.repeat_factors_from_category_frequency)(
        dataset_dicts="${dataloader.train.dataset}", repeat_thresh=0.001),
)
dataloader.test.dataset.names = "lvis_v1_val"
dataloader.evaluator = L(LVISEvaluator)(dataset_name="${..test.dataset.names}", max_dets_per_image=300,
                                        output_dir="${train.output_dir}/inference")

model.roi_heads.num_classes = 1203
model.roi_heads.box_predictor.test_score_thresh = 0.0001
model.roi_heads.box_predictor.test_topk_per_image = 300
model.roi_heads = long_tail_roi_heads(
    model.roi_heads,
    cls_loss=L(BalancedSoftmaxLoss)(tau=1.0, prior=L(deferred_class_prior)(datasets="${dataloader.train.dataset.names}")),
)
train.init_checkpoint = "detectron2://ImageNetPretrained/MSRA/R-50.pkl"
train.output_dir = "./output/lvis_v1/lazy_balanced_softmax"
