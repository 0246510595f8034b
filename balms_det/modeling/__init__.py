"""Long-tail ROI heads: the losses (one registered module per method, the maths as plain functions),
post-hoc calibrations, class priors, the meta reweighter, the classifier module, the box predictor
that composes them, registered heads, stage 2."""
from .losses import (
    balanced_sigmoid_loss,
    balanced_softmax_loss,
    norcal_probs,
    posthoc_adjust,
    sigmoid_ce_loss,
    softmax_logit_shift,
)
from . import peer_losses
from .classifiers import NormedLinear
from .priors import ClassPrior, class_prior, class_prior_from_config, load_class_prior
from .deferred_prior import DeferredPrior, deferred_class_prior, resolve_priors
from .cls_losses import (  # registers the built-in losses
    CLS_LOSS_REGISTRY,
    BalancedSigmoidLoss,
    BalancedSoftmaxLoss,
    ClsLoss,
    ECMLoss,
    EQLv2Loss,
    FederatedLoss,
    SeesawLoss,
    SigmoidLoss,
    SoftmaxLoss,
)
from .calibrations import CALIBRATION_REGISTRY, Calibration, LogitAdjustment, NoCalibration, NorCal
from .meta_reweighter import MetaReweighter
from .meta_step import meta_hypergradient, roi_loss_weights
from .output_layers import LongTailOutputLayers
from .legacy_output_layers import BalancedSoftmaxOutputLayers
from .roi_heads import (  # registers heads
    BalancedSoftmaxCascadeROIHeads,
    BalancedSoftmaxROIHeads,
    LongTailCascadeROIHeads,
    LongTailROIHeads,
)
from .decoupled import apply_decoupled, freeze_for_decoupled, reinit_classifier
