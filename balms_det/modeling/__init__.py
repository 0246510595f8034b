"""Long-tail ROI heads: the losses (one registered module per method, its maths as plain functions in its file),
post-hoc calibrations, class priors, the meta reweighter, the classifier module, the box predictor
that composes them, registered heads, stage 2."""
from .classifiers import NormedLinear
from .priors import ClassPrior, class_prior, class_prior_from_config, load_class_prior
from .deferred_prior import DeferredPrior, deferred_class_prior, resolve_priors
from .cls_losses import (  # registers the built-in losses; their maths, plain functions
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
    balanced_sigmoid_loss,
    balanced_softmax_loss,
    ecm_loss,
    ecm_margins,
    eqlv2_loss,
    eqlv2_weights,
    federated_loss,
    seesaw_loss,
    seesaw_probs,
    sigmoid_ce_loss,
    softmax_logit_shift,
)
from .calibrations import (  # registers the built-in calibrations
    CALIBRATION_REGISTRY, Calibration, LogitAdjustment, NoCalibration, NorCal, norcal_probs, posthoc_adjust,
)
from .meta_reweighter import MetaReweighter
from .meta_step import meta_hypergradient, roi_loss_weights
from .output_layers import LongTailOutputLayers
from .roi_heads import LongTailCascadeROIHeads, LongTailROIHeads  # registers heads
from .decoupled import apply_decoupled, freeze_for_decoupled, reinit_classifier
