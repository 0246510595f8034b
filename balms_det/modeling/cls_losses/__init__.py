"""Classification losses of the box predictor, one registered module per method (``MODEL.BALMS.CLS_LOSS``).
Importing this package registers the built-in ones."""
from .base import CLS_LOSS_REGISTRY, ClsLoss, all_reduce_sum, cls_loss_class
from .softmax import SoftmaxLoss
from .balanced_softmax import BalancedSoftmaxLoss
from .sigmoid import SigmoidLoss
from .balanced_sigmoid import BalancedSigmoidLoss
from .seesaw import SeesawLoss
from .eqlv2 import EQLv2Loss
from .ecm import ECMLoss
from .federated import FederatedLoss

__all__ = [
    "CLS_LOSS_REGISTRY", "ClsLoss", "all_reduce_sum", "cls_loss_class", "SoftmaxLoss", "BalancedSoftmaxLoss",
    "SigmoidLoss", "BalancedSigmoidLoss", "SeesawLoss", "EQLv2Loss", "ECMLoss", "FederatedLoss",
]
