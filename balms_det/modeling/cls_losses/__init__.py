"""Classification losses of the box predictor, one registered module per method (``MODEL.BALMS.CLS_LOSS``),
each file holding the method's maths as plain functions (tensors in, tensor out) beside its module.
Importing this package registers the built-in ones.

Shape shorthand (as detectron2's ``fast_rcnn.py``):
    N: number of sampled ROIs (all images of the batch)
    K: number of foreground classes
    gt_classes: (N,) int64 labels in [0, K], K meaning background

Logits per method (the classifier's outputs, all of them in one tensor): softmax, Balanced Softmax
``K + 1`` (background last); sigmoid, balanced sigmoid, federated ``K`` (no background logit); EQLv2,
ECM ``K + 1`` sigmoid logits, the last one a background ("objectness") logit; Seesaw ``K + 2``, the K
class logits then the objectness pair ``[foreground, background]``. Every loss function returns, with
``reduction="none"``, the (N,) per-ROI losses ``l_i`` whose ``sum / N`` is the published loss
(``reduction="mean"``). The functions have no state: what a method accumulates during training
(Seesaw's class counts, EQLv2's gradient sums) is passed in, its per-step increment is a separate
function, and the loss module keeps the sums. Every function of the logits is computed in at least
float32, also under AMP (:func:`~.utils.at_least_float32`).
"""
from .base import CLS_LOSS_REGISTRY, ClsLoss, all_reduce_sum, cls_loss_class
from .softmax import (BACKGROUND_MODES, SoftmaxLoss, log_prior, softmax_ce_loss, softmax_logit_shift,
                      softmax_probs)
from .balanced_softmax import BalancedSoftmaxLoss, balanced_softmax_loss
from .sigmoid import SigmoidLoss, sigmoid_ce_loss, sigmoid_prior_bias, sigmoid_probs_with_background
from .balanced_sigmoid import BalancedSigmoidLoss, balanced_sigmoid_loss
from .seesaw import SeesawLoss, seesaw_count_increment, seesaw_log_factors, seesaw_loss, seesaw_probs
from .eqlv2 import EQLv2Loss, eqlv2_gradient_increment, eqlv2_loss, eqlv2_weights, objectness_sigmoid_probs
from .ecm import ECMLoss, ecm_loss, ecm_margins
from .federated import FederatedLoss, federated_class_mask, federated_loss
from .utils import at_least_float32

__all__ = [
    "CLS_LOSS_REGISTRY", "ClsLoss", "all_reduce_sum", "cls_loss_class", "at_least_float32",
    "SoftmaxLoss", "BACKGROUND_MODES", "log_prior", "softmax_logit_shift", "softmax_ce_loss", "softmax_probs",
    "BalancedSoftmaxLoss", "balanced_softmax_loss",
    "SigmoidLoss", "sigmoid_ce_loss", "sigmoid_prior_bias", "sigmoid_probs_with_background",
    "BalancedSigmoidLoss", "balanced_sigmoid_loss",
    "SeesawLoss", "seesaw_log_factors", "seesaw_loss", "seesaw_count_increment", "seesaw_probs",
    "EQLv2Loss", "eqlv2_weights", "eqlv2_loss", "eqlv2_gradient_increment", "objectness_sigmoid_probs",
    "ECMLoss", "ecm_margins", "ecm_loss",
    "FederatedLoss", "federated_class_mask", "federated_loss",
]
