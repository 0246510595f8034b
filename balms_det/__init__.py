"""balms_det: ``import balms_det`` registers its datasets, ROI heads, losses, calibrations and evaluators
with detectron2."""
from .config import add_balms_config
from . import data  # noqa: F401  registers lt_shapes_{train,val}
from . import evaluation  # noqa: F401
from . import modeling  # noqa: F401  registers the ROI heads, the losses and the calibrations
from .config_validation import ConfigError, validate
from .modeling import (
    CALIBRATION_REGISTRY,
    CLS_LOSS_REGISTRY,
    Calibration,
    ClsLoss,
    LongTailCascadeROIHeads,
    LongTailOutputLayers,
    LongTailROIHeads,
)

__all__ = [
    "add_balms_config",
    "validate",
    "ConfigError",
    "CLS_LOSS_REGISTRY",
    "ClsLoss",
    "CALIBRATION_REGISTRY",
    "Calibration",
    "LongTailROIHeads",
    "LongTailCascadeROIHeads",
    "LongTailOutputLayers",
]
