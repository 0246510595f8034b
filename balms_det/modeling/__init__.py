"""Balanced Softmax ROI heads: losses (and the peers' losses), class priors, the meta reweighter, the
classifier module, the box predictor, registered heads, stage 2."""
from .losses import (
    balanced_sigmoid_loss,
    balanced_softmax_loss,
    posthoc_adjust,
    sigmoid_ce_loss,
    softmax_logit_shift,
)
from . import peer_losses
from .classifiers import NormedLinear
from .priors import ClassPrior, class_prior_from_config, load_class_prior
from .meta_reweighter import MetaReweighter, meta_hypergradient, roi_loss_weights
from .output_layers import BalancedSoftmaxOutputLayers
from .roi_heads import BalancedSoftmaxCascadeROIHeads, BalancedSoftmaxROIHeads  # registers heads
from .decoupled import ClassifierReinitHook, apply_decoupled, reinit_classifier
