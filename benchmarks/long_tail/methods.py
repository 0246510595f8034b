"""The methods table: every row of the benchmark as data (name, block, label, its lt_shapes config and the
keys on top), and the sets the answers read (the project's rows, the peers, the sensitivities).

A method is the difference of its lt_shapes YAML from ``LT_BASE`` plus a few ``KEY VALUE`` pairs (the
controlled rows, the authors' recipes), applied on top of ``--base-config``.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

LT = "configs/LTShapes"
LT_BASE = f"{LT}/Base-MaskRCNN-R18-FPN.yaml"
TASKS = ("bbox", "segm")
METRICS = ("AP", "APr", "APc", "APf")

RFS = ("DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler", "DATALOADER.REPEAT_THRESHOLD", "0.1")
NORMED = ("MODEL.BALMS.CLASSIFIER", "normed")
OURS = ("MODEL.ROI_HEADS.NAME", "LongTailROIHeads")
SPRIOR = ("MODEL.BALMS.PRIOR.SAMPLER", "train")  # the prior of the training sampler's labels
POSTHOC_LA = OURS + ("MODEL.BALMS.CLS_LOSS", "softmax", "MODEL.BALMS.CALIBRATION", "logit_adjustment")
NORCAL = OURS + ("MODEL.BALMS.CLS_LOSS", "softmax", "MODEL.BALMS.CALIBRATION", "norcal")
# The authors' recipes scaled to 1,200 iterations (sources: recipes.py). ECM (mmdet r50_ecm_1x.py): mmcv's
# grad_clip=dict(max_norm=5, norm_type=2), one L2 norm over the whole model; warm-up 10,000 of ~90k
# iterations at ratio 1e-4.
ECM_RECIPE = ("SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "full_model",
              "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "5.0", "SOLVER.CLIP_GRADIENTS.NORM_TYPE", "2.0",
              "SOLVER.WARMUP_ITERS", "133", "SOLVER.WARMUP_FACTOR", "0.0001")
# Federated loss as CenterNet2 trains it (LVIS_CenterNet2_R50_Fed_1x.yaml): CLIP_GRADIENTS enabled with
# detectron2's defaults (value clipping at 1.0), warm-up 4,000 of 90k iterations at factor 2.5e-4, the
# classifier's bias at prior probability 0.01.
FED_RECIPE = ("SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "value",
              "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "1.0", "SOLVER.WARMUP_ITERS", "53",
              "SOLVER.WARMUP_FACTOR", "0.00025", "MODEL.BALMS.FEDERATED.PRIOR_PROB", "0.01")


@dataclass
class Method:
    name: str
    block: int
    label: str
    config: str  # an lt_shapes YAML: the method is its difference from LT_BASE
    extra: Tuple[str, ...] = ()  # KEY VALUE pairs on top (controlled rows, authors' recipes)
    stage1: Optional[str] = None  # block 3: the method whose final weights it starts from
    eval_only: bool = False  # post-hoc: no training, one evaluation of the stage-1 weights
    sensitivity: bool = False  # a setting's sensitivity, not a method: left out of the "best" answers


def _m(name, block, label, config, *extra, stage1=None, eval_only=False, sensitivity=False):
    return Method(name, block, label, f"{LT}/mask_rcnn_R18_FPN_{config}.yaml", tuple(extra), stage1, eval_only,
                  sensitivity)


METHODS = [
    # 1. end to end, as each method's authors train it (on the shared schedule; "authors' recipe": theirs)
    _m("softmax", 1, "softmax (stock head)", "softmax"),
    _m("balanced_softmax", 1, "Balanced Softmax", "balanced_softmax"),
    _m("sigmoid_rfs", 1, "sigmoid + RFS (official BALMS stage 1)", "sigmoid"),
    _m("seesaw", 1, "Seesaw (normed, RFS)", "seesaw"),
    _m("eqlv2", 1, "EQLv2 (uniform)", "eqlv2"),
    _m("ecm", 1, "ECM (normed, RFS)", "ecm"),
    _m("ecm_authors", 1, "ECM (normed, RFS) (authors' recipe: whole-model grad clip 5, warm-up 133 at 1e-4)", "ecm",
       *ECM_RECIPE),
    _m("federated", 1, "federated (RFS)", "federated"),
    _m("federated_authors", 1, "federated (RFS) (authors' recipe, CenterNet2: grad value clip 1, warm-up 53 at "
       "2.5e-4, bias prior 0.01)", "federated", *FED_RECIPE),
    # 2. controlled: the sampler and the classifier apart from the loss
    _m("softmax_rfs", 2, "softmax + RFS", "softmax", *RFS),
    _m("balanced_softmax_rfs", 2, "Balanced Softmax + RFS", "balanced_softmax_rfs"),
    _m("balanced_softmax_normed_rfs", 2, "Balanced Softmax + normed + RFS", "balanced_softmax", *RFS, *NORMED),
    _m("seesaw_linear_rfs", 2, "Seesaw (linear, RFS)", "seesaw_linear_rfs"),
    _m("softmax_normed_rfs", 2, "softmax (normed, RFS)", "softmax", *OURS, "MODEL.BALMS.CLS_LOSS", "softmax",
       *RFS, *NORMED),
    _m("balanced_softmax_rfs_sprior", 2, "Balanced Softmax + RFS, sampler's prior", "balanced_softmax", *RFS,
       *SPRIOR),
    # 3. from the same stage-1 weights per seed
    _m("softmax+la", 3, "softmax + post-hoc LA (tau 1)", "softmax", *POSTHOC_LA, stage1="softmax", eval_only=True),
    _m("softmax+norcal", 3, "softmax + NorCal", "softmax", *NORCAL, stage1="softmax", eval_only=True),
    _m("softmax_rfs+la", 3, "softmax + RFS + post-hoc LA", "softmax", *POSTHOC_LA, stage1="softmax_rfs",
       eval_only=True),
    _m("softmax_rfs+norcal", 3, "softmax + RFS + NorCal", "softmax", *NORCAL, stage1="softmax_rfs",
       eval_only=True),
    _m("softmax_normed_rfs+la", 3, "softmax (normed, RFS) + post-hoc LA", "softmax", *POSTHOC_LA, *NORMED,
       stage1="softmax_normed_rfs", eval_only=True),
    _m("softmax_normed_rfs+norcal", 3, "softmax (normed, RFS) + NorCal", "softmax", *NORCAL, *NORMED,
       stage1="softmax_normed_rfs", eval_only=True),
    _m("softmax_rfs+la_sprior", 3, "softmax + RFS + post-hoc LA, sampler's prior", "softmax", *POSTHOC_LA, *RFS,
       *SPRIOR, stage1="softmax_rfs", eval_only=True),
    _m("softmax_rfs+norcal_sprior", 3, "softmax + RFS + NorCal, sampler's prior", "softmax", *NORCAL, *RFS, *SPRIOR,
       stage1="softmax_rfs", eval_only=True),
    _m("softmax_normed_rfs+la_sprior", 3, "softmax (normed, RFS) + post-hoc LA, sampler's prior", "softmax",
       *POSTHOC_LA, *NORMED, *RFS, *SPRIOR, stage1="softmax_normed_rfs", eval_only=True),
    _m("softmax_normed_rfs+norcal_sprior", 3, "softmax (normed, RFS) + NorCal, sampler's prior", "softmax", *NORCAL,
       *NORMED, *RFS, *SPRIOR, stage1="softmax_normed_rfs", eval_only=True),
    _m("crt", 3, "cRT (class-balanced)", "crt_class_balanced", stage1="softmax"),
    _m("bs_decoupled", 3, "Balanced Softmax decoupled (tau 1)", "decoupled_balanced_softmax", stage1="softmax"),
    _m("bs_decoupled_tau0.25", 3, "Balanced Softmax decoupled (tau 1/4)", "decoupled_balanced_softmax",
       "MODEL.BALMS.TAU", "0.25", stage1="softmax"),
    _m("balms_decoupled", 3, "BALMS decoupled (bank)", "decoupled_balms", stage1="softmax"),
    _m("balms_decoupled_images", 3, "BALMS decoupled (images, official)", "decoupled_balms",
       "MODEL.BALMS.META_REWEIGHTER.META_SOURCE", "images", stage1="softmax"),
    _m("bsig_decoupled", 3, "balanced sigmoid decoupled (official chain)", "decoupled_balanced_sigmoid",
       stage1="sigmoid_rfs"),
    _m("balms_sigmoid_decoupled", 3, "BALMS sigmoid decoupled (official chain)", "decoupled_balms_sigmoid",
       stage1="sigmoid_rfs"),
    # the official stage 2 samples with RFS (its balanced_softmax_decouple_resampling config): raw and sampler's prior
    _m("bsig_decoupled_rfs", 3, "balanced sigmoid decoupled + RFS (official stage 2)", "decoupled_balanced_sigmoid",
       *RFS, stage1="sigmoid_rfs"),
    _m("bsig_decoupled_rfs_sprior", 3, "balanced sigmoid decoupled + RFS, sampler's prior",
       "decoupled_balanced_sigmoid", *RFS, *SPRIOR, stage1="sigmoid_rfs"),
    _m("balms_sigmoid_decoupled_rfs", 3, "BALMS sigmoid decoupled + RFS (official stage 2)",
       "decoupled_balms_sigmoid", *RFS, stage1="sigmoid_rfs"),
    _m("balms_sigmoid_decoupled_rfs_sprior", 3, "BALMS sigmoid decoupled + RFS, sampler's prior",
       "decoupled_balms_sigmoid", *RFS, *SPRIOR, stage1="sigmoid_rfs"),
    # sensitivity, not a method: the learned weights stay near their 0.5 start at the default meta LR 0.01
    _m("balms_decoupled_lr10", 3, "BALMS decoupled (bank), meta LR x10 [sensitivity]", "decoupled_balms",
       "MODEL.BALMS.META_REWEIGHTER.LR", "0.1", stage1="softmax", sensitivity=True),
]
BLOCKS = {1: "end to end (authors' recipes)", 2: "controlled (sampler / classifier)",
          3: "from the same stage-1 weights"}
# For the answer: the project's methods (Balanced Softmax family, BALMS, logit adjustment) and the peers
OURS_ROWS = {"balanced_softmax", "balanced_softmax_rfs", "balanced_softmax_normed_rfs", "softmax+la", "softmax_rfs+la",
             "softmax_normed_rfs+la",
             "bs_decoupled", "bs_decoupled_tau0.25", "balms_decoupled", "balms_decoupled_images", "bsig_decoupled",
             "balms_sigmoid_decoupled", "balanced_softmax_rfs_sprior", "softmax_rfs+la_sprior",
             "softmax_normed_rfs+la_sprior", "bsig_decoupled_rfs", "bsig_decoupled_rfs_sprior",
             "balms_sigmoid_decoupled_rfs", "balms_sigmoid_decoupled_rfs_sprior"}
PEER_ROWS = {"seesaw", "eqlv2", "ecm", "ecm_authors", "federated", "federated_authors", "seesaw_linear_rfs",
             "softmax+norcal", "softmax_rfs+norcal", "softmax_normed_rfs+norcal", "softmax_rfs+norcal_sprior",
             "softmax_normed_rfs+norcal_sprior", "crt"}
