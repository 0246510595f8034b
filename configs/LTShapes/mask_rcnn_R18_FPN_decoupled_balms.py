"""Python-config twin of mask_rcnn_R18_FPN_decoupled_balms.yaml: BALMS, decoupled stage 2 from the softmax
baseline's weights: Balanced Softmax + Meta Reweighter (bank meta batches), only the classifier trains,
300 iterations with steps at 150 and 240, no warm-up."""
from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

from balms_det.engine import MetaReweighterHook
from balms_det.lazy import long_tail_roi_heads
from balms_det.modeling import BalancedSoftmaxLoss, MetaReweighter, deferred_class_prior

from .base_mask_rcnn_R18_FPN import dataloader, model, optimizer, train

model.roi_heads = long_tail_roi_heads(
    model.roi_heads,
    cls_loss=L(BalancedSoftmaxLoss)(tau=1.0, prior=L(deferred_class_prior)(datasets="${dataloader.train.dataset.names}")),
    meta_reweighter=L(MetaReweighter)(num_classes=40, feature_dim=256, lr=0.01, source="bank"),
)
decoupled = dict(trainable=[r"roi_heads\.box_predictor\.cls_score\."], freeze_bn=True, reinit_classifier=False)
meta_reweighter_hook = L(MetaReweighterHook)(
    period=1, log_period=20, output_dir="${train.output_dir}", train_datasets="${dataloader.train.dataset.names}",
)
train.init_checkpoint = "./output/lt_shapes_softmax/model_final.pth"
train.max_iter = 300
train.output_dir = "./output/lazy_lt_shapes_decoupled_balms"
lr_multiplier = L(WarmupParamScheduler)(
    scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[150, 240], num_updates=300),
    warmup_length=0.0,
    warmup_factor=1.0,
)
