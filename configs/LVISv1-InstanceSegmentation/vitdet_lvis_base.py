"""ViTDet's LVIS recipe (Li et al., ECCV 2022; detectron2's projects/ViTDet/configs/LVIS/) as the base of the
long-tail ViTDet configs. Where detectron2's ViTDet project configs are importable (a detectron2 source
checkout: set DETECTRON2_VITDET_CONFIGS to its projects/ViTDet/configs), its
``LVIS/mask_rcnn_vitdet_b_100ep.py`` is loaded as it is. Otherwise (pip wheels ship only the model zoo's
``common/`` configs) the same recipe is put together from ``common/models/mask_rcnn_vitdet.py`` (the
ViT-B Mask R-CNN): LSJ 1024 augmentation, batch 64, AdamW with layer-wise LR decay 0.7, 100 epochs
(156,250 iterations), MAE init, AMP, RFS 0.001, 300 detections with score threshold 0.02.
ViTDet's own box predictor (the federated sigmoid loss) is what the variants replace."""
import os
from functools import partial

import detectron2.data.transforms as T
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig
from detectron2.data.detection_utils import get_fed_loss_cls_weights
from detectron2.data.samplers import RepeatFactorTrainingSampler
from detectron2.modeling.backbone.vit import get_vit_lr_decay_rate
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

import balms_det  # noqa: F401
from balms_det.evaluation import LVISEvaluator

_VITDET = os.environ.get("DETECTRON2_VITDET_CONFIGS", "")
_LVIS_B = os.path.join(_VITDET, "LVIS", "mask_rcnn_vitdet_b_100ep.py")

if _VITDET and os.path.isfile(_LVIS_B):
    _cfg = LazyConfig.load(_LVIS_B)
    model, dataloader, optimizer, lr_multiplier, train = (
        _cfg.model, _cfg.dataloader, _cfg.optimizer, _cfg.lr_multiplier, _cfg.train)
else:
    model = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
    dataloader = model_zoo.get_config("common/data/coco.py").dataloader
    optimizer = model_zoo.get_config("common/optim.py").AdamW
    train = model_zoo.get_config("common/train.py").train

    image_size = 1024
    dataloader.train.mapper.augmentations = [
        L(T.RandomFlip)(horizontal=True),
        L(T.ResizeScale)(min_scale=0.1, max_scale=2.0, target_height=image_size, target_width=image_size),
        L(T.FixedSizeCrop)(crop_size=(image_size, image_size), pad=False),
    ]
    dataloader.train.mapper.image_format = "RGB"
    dataloader.train.mapper.recompute_boxes = True  # LSJ crops cut the masks: boxes from the masks
    dataloader.train.mapper.instance_mask_format = "bitmask"  # crops of bit masks (polygons would need shapely)
    dataloader.train.total_batch_size = 64
    dataloader.test.mapper.augmentations = [L(T.ResizeShortestEdge)(short_edge_length=image_size,
                                                                    max_size=image_size)]
    dataloader.train.dataset.names = "lvis_v1_train"
    dataloader.train.sampler = L(RepeatFactorTrainingSampler)(
        repeat_factors=L(RepeatFactorTrainingSampler.repeat_factors_from_category_frequency)(
            dataset_dicts="${dataloader.train.dataset}", repeat_thresh=0.001),
    )
    dataloader.test.dataset.names = "lvis_v1_val"

    model.roi_heads.num_classes = 1203
    model.roi_heads.box_predictor.test_score_thresh = 0.02
    model.roi_heads.box_predictor.test_topk_per_image = 300
    model.roi_heads.box_predictor.use_sigmoid_ce = True  # ViTDet's LVIS loss: federated sigmoid CE
    model.roi_heads.box_predictor.use_fed_loss = True
    model.roi_heads.box_predictor.get_fed_loss_cls_weights = lambda: get_fed_loss_cls_weights(
        dataloader.train.dataset.names, 0.5)

    optimizer.lr = 2e-4
    optimizer.params.lr_factor_func = partial(get_vit_lr_decay_rate, num_layers=12, lr_decay_rate=0.7)
    optimizer.params.overrides = {"pos_embed": {"weight_decay": 0.0}}
    train.max_iter = 156250
    train.amp.enabled = True
    train.ddp.fp16_compression = True
    train.init_checkpoint = "detectron2://ImageNetPretrained/MAE/mae_pretrain_vit_base.pth?matching_heuristics=True"
    lr_multiplier = L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(values=[1.0, 0.1, 0.01], milestones=[138889, 150463],
                                             num_updates=156250),
        warmup_length=250 / 156250,
        warmup_factor=0.001,
    )

# balms_det's evaluator (APr / APc / APf, per-class outputs), LVIS's 300 detections per image
dataloader.evaluator = L(LVISEvaluator)(dataset_name="${..test.dataset.names}", max_dets_per_image=300,
                                        output_dir="${train.output_dir}/inference")
