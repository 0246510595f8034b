"""All config keys balms_det adds to detectron2's defaults (``add_balms_config``).

Every key has a default, so a stock detectron2 config plus ``add_balms_config`` behaves exactly like
stock detectron2 until a YAML opts in (e.g. ``MODEL.ROI_HEADS.NAME: LongTailROIHeads``).
"""
from detectron2.config import CfgNode as CN


def add_balms_config(cfg):
    """Add balms_det's config keys (in place) to a detectron2 config. Safe to call twice."""
    if "BALMS" in cfg.MODEL:
        return cfg
    _add_classifier_config(cfg)
    _add_peers_config(cfg)
    _add_decoupled_config(cfg)
    _add_meta_reweighter_config(cfg)
    _add_evaluation_config(cfg)
    return cfg


def _add_classifier_config(cfg):
    # Box predictor of the long-tail ROI heads (balms_det/modeling/). Used when MODEL.ROI_HEADS.NAME is
    # LongTailROIHeads or LongTailCascadeROIHeads (old names: BalancedSoftmaxROIHeads, ...CascadeROIHeads).
    cfg.MODEL.BALMS = CN()
    # Classification loss, a name in CLS_LOSS_REGISTRY (balms_det/modeling/cls_losses/): "softmax" (stock CE,
    # K+1 logits), "balanced_softmax" (CE on z + TAU*shift), "sigmoid" (K sigmoid logits), "balanced_sigmoid"
    # (official BALMS variant), a peer ("seesaw", "eqlv2", "ecm", "federated"), or your registered class's name.
    cfg.MODEL.BALMS.CLS_LOSS = "balanced_softmax"
    # Python modules imported when the config is built (dotted names or .py paths): your registered losses.
    cfg.MODEL.BALMS.CUSTOM_IMPORTS = []
    # Balanced Softmax temperature: 1.0 = BALMS Eq. 4, 0.25 = Eq. 10, 0.0 = plain CE (unitless).
    cfg.MODEL.BALMS.TAU = 1.0
    # Post-hoc calibration at inference, a name in CALIBRATION_REGISTRY (balms_det/modeling/calibrations/):
    # "none", "logit_adjustment" (LOGIT_ADJUSTMENT.TAU), "norcal" (NORCAL.GAMMA); softmax losses only.
    cfg.MODEL.BALMS.CALIBRATION = "none"
    cfg.MODEL.BALMS.LOGIT_ADJUSTMENT = CN()
    # Post-hoc logit adjustment's tau: predict with softmax(z - TAU * shift), the loss's logit prior (> 0, unitless).
    cfg.MODEL.BALMS.LOGIT_ADJUSTMENT.TAU = 1.0
    cfg.register_renamed_key("MODEL.BALMS.POSTHOC_TAU", "MODEL.BALMS.LOGIT_ADJUSTMENT.TAU",
                             message="post-hoc logit adjustment is a calibration: set MODEL.BALMS.CALIBRATION "
                             "logit_adjustment, and its tau (default 1.0) as MODEL.BALMS.LOGIT_ADJUSTMENT.TAU")
    cfg.MODEL.BALMS.NORCAL = CN()
    # NorCal exponent gamma: scores / n_j^GAMMA, background kept, renormalised (the authors' code: 0 = off).
    cfg.MODEL.BALMS.NORCAL.GAMMA = 1.0
    # Background logit: "unadjusted" (shift 0; foreground shifted by the dataset prior) or "running"
    # (all K+1 logits shifted by the log running frequency of sampled ROI labels, background included).
    cfg.MODEL.BALMS.BACKGROUND = "unadjusted"
    # With BACKGROUND "unadjusted": shift foreground by log(K*pi_j) (True) instead of log(n_j) (False).
    cfg.MODEL.BALMS.CENTER_PRIOR = True
    # Pseudo-count added to every running ROI label count (BACKGROUND "running"), in ROIs.
    cfg.MODEL.BALMS.ROI_COUNT_SMOOTHING = 1.0
    # Initial probability p0 of the sigmoid classifiers: bias = -log((1 - p0) / p0).
    cfg.MODEL.BALMS.SIGMOID_PRIOR_PROB = 0.001

    # Where the class counts n_j come from (balms_det/modeling/priors.py).
    cfg.MODEL.BALMS.PRIOR = CN()
    # "json" (LVIS categories of the dataset's json_file), "metadata" (class_image_count),
    # "dataset" (counted from DatasetCatalog dicts), "list" (PRIOR.COUNTS). Summed over DATASETS.TRAIN.
    cfg.MODEL.BALMS.PRIOR.SOURCE = "json"
    # Which count: "image_count" (images containing the class) or "instance_count" (annotations).
    cfg.MODEL.BALMS.PRIOR.COUNT = "image_count"
    # Explicit per-class counts, contiguous-id order (SOURCE "list"); length must be NUM_CLASSES.
    cfg.MODEL.BALMS.PRIOR.COUNTS = []
    # Number of training images (sigmoid variant: p_j = n_j / NUM_IMAGES); 0 = from the source.
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 0
    # Count used for classes with zero training samples (so that log n_j is finite); logged.
    cfg.MODEL.BALMS.PRIOR.MIN_COUNT = 1.0
    # "none": the dataset's counts (SOURCE); "train": the expected counts of one pass of the training sampler
    # (DATALOADER.SAMPLER_TRAIN: RepeatFactorTrainingSampler with REPEAT_THRESHOLD, ClassBalancedSampler),
    # counted from the training images: the labels the loss sees after re-sampling. Stock sampler: the same.
    cfg.MODEL.BALMS.PRIOR.SAMPLER = "none"


def _add_peers_config(cfg):
    # The peer losses of MODEL.BALMS.CLS_LOSS (balms_det/modeling/cls_losses/, one file each) and the classifier.
    # "linear" (nn.Linear) or "normed" (cosine classifier T * <x/|x|, w/|w|> + b, the Seesaw/ECM recipes).
    cfg.MODEL.BALMS.CLASSIFIER = "linear"
    # Temperature T of the "normed" classifier (unitless; the Seesaw / ECM LVIS recipes use 20).
    cfg.MODEL.BALMS.NORMED_TEMPERATURE = 20.0
    # Seesaw Loss (Wang et al., CVPR 2021); K + 2 logits (classes + objectness pair).
    cfg.MODEL.BALMS.SEESAW = CN()
    # Mitigation exponent p: (N_j / N_i)^p for classes j rarer than the label i (0 = off).
    cfg.MODEL.BALMS.SEESAW.P = 0.8
    # Compensation exponent q: (sigma_j / sigma_i)^q for classes j scored above the label i (0 = off).
    cfg.MODEL.BALMS.SEESAW.Q = 2.0
    # Floor of the label's probability sigma_i in the compensation factor (the code's eps).
    cfg.MODEL.BALMS.SEESAW.EPS = 0.01
    # EQLv2 (Tan et al., CVPR 2021); K + 1 sigmoid logits, the last one background.
    cfg.MODEL.BALMS.EQLV2 = CN()
    # Slope gamma of the mapping f(g) = 1 / (1 + exp(-gamma (g - mu))) of the pos/neg gradient ratio g.
    cfg.MODEL.BALMS.EQLV2.GAMMA = 12.0
    # Centre mu of that mapping (gradient ratio at which the negative weight is 0.5).
    cfg.MODEL.BALMS.EQLV2.MU = 0.8
    # Positive weight gain alpha: q_j = 1 + alpha (1 - f(g_j)).
    cfg.MODEL.BALMS.EQLV2.ALPHA = 4.0
    # ECM Loss (Cho & Kraehenbuehl, ECCV 2022); K + 1 sigmoid logits, margins from MODEL.BALMS.PRIOR.
    cfg.MODEL.BALMS.ECM = CN()
    # Background count as a multiple of the summed class counts (the authors' 6.3313, from Mask R-CNN).
    cfg.MODEL.BALMS.ECM.FG_BG_RATIO = 6.3313
    # Federated sigmoid loss (Zhou et al., 2021; detectron2's USE_FED_LOSS through this head); K logits.
    cfg.MODEL.BALMS.FEDERATED = CN()
    # Classes per step: the batch's ground-truth classes plus negatives sampled up to this number.
    cfg.MODEL.BALMS.FEDERATED.NUM_CLASSES = 50
    # Sampling weight of a class: its image count (MODEL.BALMS.PRIOR) to this power.
    cfg.MODEL.BALMS.FEDERATED.FREQ_WEIGHT_POWER = 0.5
    # Initial probability p0 of its sigmoids: bias = -log((1 - p0) / p0); 0.0 = bias 0 (detectron2's).
    cfg.MODEL.BALMS.FEDERATED.PRIOR_PROB = 0.0


def _add_decoupled_config(cfg):
    # Decoupled training, stage 2 (balms_det/modeling/decoupled.py): load a stage-1 checkpoint
    # (MODEL.WEIGHTS) and train only some parameters. The sampler is DATALOADER.SAMPLER_TRAIN
    # (detectron2's names, or "ClassBalancedSampler" from balms_det/data/samplers.py).
    cfg.MODEL.BALMS.DECOUPLED = CN()
    # Freeze every parameter whose name matches none of TRAINABLE.
    cfg.MODEL.BALMS.DECOUPLED.ENABLED = False
    # Regular expressions (re.search on parameter names) of the parameters that stay trainable.
    cfg.MODEL.BALMS.DECOUPLED.TRAINABLE = [r"roi_heads\.box_predictor\.(\d+\.)?cls_score\."]
    # Re-initialise the classifier before stage 2 (cRT); only when starting fresh, not on --resume.
    cfg.MODEL.BALMS.DECOUPLED.REINIT_CLASSIFIER = False
    # Replace BatchNorm layers whose parameters are all frozen by FrozenBatchNorm2d (eval-mode BN).
    cfg.MODEL.BALMS.DECOUPLED.FREEZE_BN = True


def _add_meta_reweighter_config(cfg):
    # Meta Reweighter (BALMS = Balanced Softmax + Meta Reweighter; balms_det/modeling/meta_reweighter.py,
    # driven by balms_det/engine/meta_reweighter_hook.py): learned per-class weights w = sigmoid(theta)
    # of the foreground ROIs' classification loss, one Adam step on theta per meta step. Decoupled only.
    cfg.MODEL.BALMS.META_REWEIGHTER = CN()
    # Learn the weights (needs MODEL.BALMS.DECOUPLED.ENABLED and MetaReweighterHook in the trainer).
    cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED = False
    # Adam learning rate of theta (the official 0.01).
    cfg.MODEL.BALMS.META_REWEIGHTER.LR = 0.01
    # Meta batch: "bank" (class-balanced ROIs from a bank of the training stream's box features, no
    # extra forward) or "images" (official: class-balanced images through the frozen detector).
    cfg.MODEL.BALMS.META_REWEIGHTER.META_SOURCE = "bank"
    # A meta step every PERIOD iterations (1 = every iteration, as the official code), in iterations.
    cfg.MODEL.BALMS.META_REWEIGHTER.PERIOD = 1
    # "bank": foreground box features kept per class (ring buffer), in ROIs.
    cfg.MODEL.BALMS.META_REWEIGHTER.BANK_PER_CLASS = 16
    # "bank": background box features kept (ring buffer), in ROIs.
    cfg.MODEL.BALMS.META_REWEIGHTER.BANK_BACKGROUND = 4096
    # "bank": ROIs per meta batch; 0 = as many as the training batch, with its foreground fraction.
    cfg.MODEL.BALMS.META_REWEIGHTER.META_ROIS = 0
    # Meta loss: "plain" (paper: no prior adjustment, no weights) or "adjusted" (the training loss without
    # weights: what the official instance-segmentation code computes, its logits being edited in place).
    cfg.MODEL.BALMS.META_REWEIGHTER.META_LOSS = "plain"
    # Non-finite meta loss / hypergradient / theta: "raise" (stop, naming the iteration) or "skip".
    cfg.MODEL.BALMS.META_REWEIGHTER.ON_NONFINITE = "raise"
    # EventStorage scalars (meta loss; mean w over r/c/f; min/max w) every LOG_PERIOD iterations.
    cfg.MODEL.BALMS.META_REWEIGHTER.LOG_PERIOD = 20


def _add_evaluation_config(cfg):
    # LVIS-style evaluation of COCO/LVIS-format sets (balms_eval/, balms_det/evaluation/, build_lvis_evaluator).
    cfg.TEST.LVIS_EVAL = CN()
    # "fast" (hotcoco, Rust) or "lvis" (the slow references: lvis-api, pycocotools for exhaustive GT); same numbers.
    cfg.TEST.LVIS_EVAL.BACKEND = "fast"
    # Detections kept per image (highest scores, all classes) before AP, in detections; LVIS: 300.
    cfg.TEST.LVIS_EVAL.MAX_DETS_PER_IMAGE = 300
    # Print per-class AP tables and write per_class_ap.{json,csv,png} to the output dir.
    cfg.TEST.LVIS_EVAL.PER_CLASS = True
    # [rare_max, common_max] training images per class (DATASETS.TRAIN) grouping categories that have no
    # LVIS "frequency" into APr/APc/APf; LVIS: [10, 100] (rare 1-10, common 11-100, frequent > 100).
    cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS = [10, 100]
