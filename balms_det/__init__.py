"""balms_det: ``import balms_det`` registers its datasets, ROI heads and evaluators with detectron2."""
from .config import add_balms_config
from . import data  # noqa: F401  registers lt_shapes_{train,val}
from . import evaluation  # noqa: F401
from . import modeling  # noqa: F401  registers the Balanced Softmax ROI heads
from .modeling import BalancedSoftmaxCascadeROIHeads, BalancedSoftmaxOutputLayers, BalancedSoftmaxROIHeads

__all__ = [
    "add_balms_config",
    "BalancedSoftmaxROIHeads",
    "BalancedSoftmaxCascadeROIHeads",
    "BalancedSoftmaxOutputLayers",
]
