"""All config keys balms_det adds to detectron2's defaults (``add_balms_config``).

Every key has a default, so a stock detectron2 config plus ``add_balms_config`` behaves exactly like
stock detectron2 until a YAML opts in (e.g. ``MODEL.ROI_HEADS.NAME: BalancedSoftmaxROIHeads``).
"""
from detectron2.config import CfgNode as CN


def add_balms_config(cfg):
    """Add balms_det's config keys (in place) to a detectron2 config. Safe to call twice."""
    if "BALMS" in cfg.MODEL:
        return cfg
    _add_classifier_config(cfg)
    _add_evaluation_config(cfg)
    return cfg


def _add_classifier_config(cfg):
    # Box classifier of the Balanced Softmax ROI heads (balms_det/modeling/).
    cfg.MODEL.BALMS = CN()


def _add_evaluation_config(cfg):
    # LVIS-style evaluation (balms_det/evaluation/).
    pass
