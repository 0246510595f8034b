"""A model for inference from a YAML or a Python (LazyConfig) config and its weights: detectron2's
``DefaultPredictor`` for both kinds of config, as ``tools/train_net.py`` / ``tools/lazyconfig_train_net.py``
build the model (balms_det's heads, ``MODEL.BALMS.CUSTOM_IMPORTS``, stage-2 freezing), built for
inference only: no training set is read (a trained checkpoint carries its class prior)."""
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import CfgNode
from detectron2.data import transforms as T

from balms_eval.groups import LVIS_THRESHOLDS

__all__ = ["Predictor", "config_datasets", "is_python_config", "load_config"]


def is_python_config(config_file):
    """True for a Python (LazyConfig) config, False for a YAML one."""
    return os.path.splitext(config_file)[1] == ".py"


def load_config(config_file, opts=()):
    """A YAML config (a ``CfgNode``: detectron2's and balms_det's keys, ``KEY VALUE`` ``opts``,
    ``MODEL.BALMS.CUSTOM_IMPORTS`` imported) or a Python one (LazyConfig, ``key=value`` ``opts``)."""
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"Config file not found: {config_file}")
    if is_python_config(config_file):
        from detectron2.config import LazyConfig

        return LazyConfig.apply_overrides(LazyConfig.load(config_file), list(opts))
    from .defaults import build_config

    return build_config(config_file, opts)


def _names(value):
    """Dataset names of a config value: a name, a list of names, or nothing."""
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]


def config_datasets(cfg):
    """(test sets, training sets, (rare_max, common_max)) of a config from :func:`load_config`: the dataset
    names that name the classes and give their groups, and the training images per class of the groups
    made from counts (``TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS``, or the evaluator's ``frequency_thresholds``)."""
    if isinstance(cfg, CfgNode):
        return list(cfg.DATASETS.TEST), list(cfg.DATASETS.TRAIN), tuple(cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS)
    loader = cfg.get("dataloader", None) or {}
    evaluator = loader.get("evaluator", None) or {}
    thresholds = evaluator.get("frequency_thresholds", None) if hasattr(evaluator, "get") else None
    return (_names((loader.get("test", None) or {}).get("dataset", {}).get("names", None)),
            _names((loader.get("train", None) or {}).get("dataset", {}).get("names", None)),
            tuple(thresholds or LVIS_THRESHOLDS))


class Predictor:
    """``predictor(image)`` -> the model's ``Instances`` for one RGB image (H, W, 3) uint8, in its pixels.

    Attributes: ``model`` (in eval mode), ``num_classes`` (of its ROI heads; None if it has none).
    """

    def __init__(self, model, augmentations, input_format, device):
        self.model = model.eval()
        self.augmentations = T.AugmentationList(list(augmentations))
        if input_format not in ("RGB", "BGR"):
            raise ValueError(f"Model input format {input_format!r}: RGB or BGR images only")
        self.input_format = input_format
        self.device = device
        self.num_classes = getattr(getattr(model, "roi_heads", None), "num_classes", None)

    @classmethod
    def from_config(cls, cfg, weights=None):
        """The model of ``cfg`` (from :func:`load_config`) with ``weights`` (default: the config's
        ``MODEL.WEIGHTS`` / ``train.init_checkpoint``)."""
        if isinstance(cfg, CfgNode):
            return cls._from_yaml_config(cfg, weights)
        return cls._from_python_config(cfg, weights)

    @classmethod
    def _from_yaml_config(cls, cfg, weights):
        from detectron2.modeling import build_model

        from ..modeling import apply_decoupled

        weights = _weights(weights or cfg.MODEL.WEIGHTS, "MODEL.WEIGHTS")
        model = apply_decoupled(build_model(cfg), cfg)  # as tools/train_net.py: the checkpoint's layout
        DetectionCheckpointer(model).load(weights)
        augs = [T.ResizeShortestEdge([cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST)]
        return cls(model, augs, cfg.INPUT.FORMAT, cfg.MODEL.DEVICE)

    @classmethod
    def _from_python_config(cls, cfg, weights):
        from detectron2.config import instantiate

        from ..modeling.decoupled import freeze_for_decoupled

        weights = _weights(weights or cfg.train.get("init_checkpoint", ""), "train.init_checkpoint")
        model = instantiate(cfg.model)
        device = cfg.train.get("device", "cpu")
        model.to(device)
        decoupled = cfg.get("decoupled", None)
        if decoupled:  # as tools/lazyconfig_train_net.py builds a stage-2 model (the checkpoint's layout)
            freeze_for_decoupled(model, **{k: v for k, v in decoupled.items() if k in ("trainable", "freeze_bn")})
        DetectionCheckpointer(model).load(weights)
        mapper = (cfg.dataloader.get("test", None) or {}).get("mapper", None) or {}
        augs = instantiate(mapper.get("augmentations", None)) or []
        input_format = mapper.get("image_format", None) or getattr(model, "input_format", "BGR")
        return cls(model, augs, input_format, device)

    @torch.no_grad()
    def __call__(self, image):
        """``Instances`` predicted on ``image`` (H, W, 3) uint8 RGB, boxes and masks in its pixels."""
        height, width = image.shape[:2]
        if self.input_format == "BGR":
            image = image[:, :, ::-1]
        aug_input = T.AugInput(image)
        self.augmentations(aug_input)
        tensor = torch.as_tensor(aug_input.image.astype("float32").transpose(2, 0, 1)).to(self.device)
        return self.model([{"image": tensor, "height": height, "width": width}])[0]["instances"]


def _weights(path, key):
    if not path:
        raise ValueError(f"No weights: give --weights, or {key} in the config or its overrides (a model with "
                         "untrained heads would draw noise)")
    if "://" not in path and not os.path.isfile(path):
        raise FileNotFoundError(f"Weights not found: {path}")
    return path
