"""What the report claims, as data: the paired comparisons, the targets, the sampler's-prior pairs, the
sensitivities and the questions the rows answer. The code that checks them is in ``answer.py`` and
``sections.py``; a new claim is a new entry here."""
from dataclasses import dataclass
from typing import Dict, Tuple

# (what, row a, row b): what a - b measures
CONTRIBUTIONS = [
    ("Sampler: RFS", "softmax_rfs", "softmax"),
    ("Loss without RFS: Balanced Softmax", "balanced_softmax", "softmax"),
    ("Loss with RFS: Balanced Softmax", "balanced_softmax_rfs", "softmax_rfs"),
    ("Classifier: normed", "balanced_softmax_normed_rfs", "balanced_softmax_rfs"),
    ("Classifier: normed, for softmax", "softmax_normed_rfs", "softmax_rfs"),
    ("Classifier: normed, for Seesaw", "seesaw", "seesaw_linear_rfs"),
    ("Loss at equal sampler and classifier: Seesaw vs Balanced Softmax", "seesaw_linear_rfs", "balanced_softmax_rfs"),
    ("Post-hoc instead of training: logit adjustment", "softmax+la", "balanced_softmax"),
    ("Decoupled stage 2", "bs_decoupled", "balanced_softmax"),
    ("Meta Reweighter", "balms_decoupled", "bs_decoupled"),
]


@dataclass(frozen=True)
class Gap:
    """Target: row ``a`` minus row ``b``, paired by seed, at least ``at_least`` on every metric of ``gaps``
    ((metric, at_least, digits written), ...). ``claim`` names the rows as {a} and {b} (their labels)."""
    claim: str
    a: str
    b: str
    gaps: Tuple[Tuple[str, float, int], ...]


@dataclass(frozen=True)
class Spread:
    """Target: ``a`` - ``b`` on ``metric``, paired by seed, no larger than ``a``'s std over its seeds."""
    claim: str
    a: str
    b: str
    metric: str = "APr"


@dataclass(frozen=True)
class Order:
    """Target: the rows' means on ``metric`` increase along ``rows``, as the published numbers of ``group``
    (``published.py``; {published} in ``claim``) do."""
    claim: str
    rows: Tuple[str, ...]
    group: str
    metric: str = "APr"


@dataclass(frozen=True)
class BestOf:
    """Target: the best of ours on APr ahead of every peer on APr, its APf within 1 of the best peer's."""
    claim: str = "Best of ours ({a}) ahead of every peer on APr, APf within 1 of the best peer's"


_BS_VS_SOFTMAX = "{a}: APr ≥ softmax + 5 and APf at most 1 lower"
TARGETS = [
    Gap(_BS_VS_SOFTMAX, "balanced_softmax", "softmax", (("APr", 5, 2), ("APf", -1, 1))),
    Gap(_BS_VS_SOFTMAX, "bs_decoupled", "softmax", (("APr", 5, 2), ("APf", -1, 1))),
    Order("The paper's ordering (LVIS v0.5 APr: {published}; the official chain)",
          ("sigmoid_rfs", "bsig_decoupled", "balms_sigmoid_decoupled"), "S5, BALMS, LVIS v0.5"),
    Gap("{a} ≥ {b} on APr", "balms_decoupled", "bs_decoupled", (("APr", 0, 1),)),
    Gap("{a} ≥ {b} on APr", "balms_decoupled_images", "bs_decoupled", (("APr", 0, 1),)),
    Gap("{a} ≥ {b} on APr", "balms_sigmoid_decoupled", "bsig_decoupled", (("APr", 0, 1),)),
    BestOf(),
]

# Each row with the sampler's prior (MODEL.BALMS.PRIOR.SAMPLER train) and its twin with the raw counts.
SPRIOR_PAIRS = [
    ("balanced_softmax_rfs_sprior", "balanced_softmax_rfs"),
    ("softmax_rfs+la_sprior", "softmax_rfs+la"),
    ("softmax_rfs+norcal_sprior", "softmax_rfs+norcal"),
    ("softmax_normed_rfs+la_sprior", "softmax_normed_rfs+la"),
    ("softmax_normed_rfs+norcal_sprior", "softmax_normed_rfs+norcal"),
    ("bsig_decoupled_rfs_sprior", "bsig_decoupled_rfs"),
    ("balms_sigmoid_decoupled_rfs_sprior", "balms_sigmoid_decoupled_rfs"),
]
# The issue "Balanced Softmax under re-sampling": its targets, checked in the sampler's-prior section.
SPRIOR_TARGETS = [
    Gap("{a} ≥ its raw-prior twin ({b}) on APr, APf at most 1 lower", "balanced_softmax_rfs_sprior",
        "balanced_softmax_rfs", (("APr", 0, 1), ("APf", -1, 1))),
    Spread("At equal sampler and classifier within Seesaw's spread: {a} − {b}, paired APr gap no larger than "
           "{a}'s std over seeds", "seesaw_linear_rfs", "balanced_softmax_rfs_sprior"),
]

# (sensitivity row, the default row it varies, what differs)
SENSITIVITIES = [("balms_decoupled_lr10", "balms_decoupled", "meta LR 0.1 instead of the default 0.01")]


@dataclass(frozen=True)
class Question:
    """A question the rows answer. Every comparison (what, a, b) is judged per metric by the tie rule
    ("higher", "lower", "tie"); a comparison holds when each metric of ``rule`` has one of its verdicts.
    The answer is ``yes`` when every judged comparison holds (``need`` "all") or one does ("any"), else ``no``."""
    text: str
    pairs: Tuple[Tuple[str, str, str], ...]
    rule: Dict[str, Tuple[str, ...]]
    need: str
    yes: str
    no: str


QUESTIONS = [
    Question("Is pure Balanced Softmax better than softmax, without the sampler and the meta step?",
             (("end to end, no RFS", "balanced_softmax", "softmax"),
              ("decoupled stage 2 on the softmax weights, no RFS, no Meta Reweighter", "bs_decoupled", "softmax")),
             {"APr": ("higher",), "APf": ("higher", "tie")}, "all",
             "higher APr, APf not lower, in every comparison",
             "not higher APr with APf kept in every comparison"),
    Question("Does post-hoc calibration rebalance as well?",
             (("logit adjustment vs training with the loss", "softmax+la", "balanced_softmax"),
              ("NorCal vs training with the loss", "softmax+norcal", "balanced_softmax"),
              ("logit adjustment vs the loss, both with RFS", "softmax_rfs+la", "balanced_softmax_rfs"),
              ("NorCal vs the loss, both with RFS", "softmax_rfs+norcal", "balanced_softmax_rfs")),
             {"APr": ("higher", "tie"), "AP": ("higher", "tie")}, "all",
             "every post-hoc row is level with or ahead of the trained loss on APr and AP",
             "a post-hoc row is behind the trained loss on APr or AP"),
    Question("Does re-sampling over-balance Balanced Softmax?",
             (("the loss against softmax, both with RFS", "balanced_softmax_rfs", "softmax_rfs"),
              ("RFS added to the balanced sigmoid stage 2", "bsig_decoupled_rfs", "bsig_decoupled"),
              ("RFS added to the BALMS sigmoid stage 2", "balms_sigmoid_decoupled_rfs", "balms_sigmoid_decoupled")),
             {"APf": ("lower",)}, "any",
             "with RFS the prior-corrected loss loses APf beyond the noise",
             "with RFS the prior-corrected loss loses no APf beyond the noise"),
    Question("Does the sampler's prior fix it?",
             (("Balanced Softmax + RFS", "balanced_softmax_rfs_sprior", "balanced_softmax_rfs"),
              ("balanced sigmoid stage 2 + RFS", "bsig_decoupled_rfs_sprior", "bsig_decoupled_rfs"),
              ("BALMS sigmoid stage 2 + RFS", "balms_sigmoid_decoupled_rfs_sprior", "balms_sigmoid_decoupled_rfs")),
             {"APf": ("higher",), "AP": ("higher", "tie")}, "any",
             "the sampler's prior gains APf beyond the noise, AP kept",
             "the sampler's prior gains no APf beyond the noise with AP kept"),
    Question("Is there a measurable benefit of the meta reweighter?",
             (("bank, softmax chain", "balms_decoupled", "bs_decoupled"),
              ("images (official), softmax chain", "balms_decoupled_images", "bs_decoupled"),
              ("official sigmoid chain", "balms_sigmoid_decoupled", "bsig_decoupled"),
              ("official sigmoid chain, RFS stage 2", "balms_sigmoid_decoupled_rfs", "bsig_decoupled_rfs"),
              ("sensitivity: meta LR x10", "balms_decoupled_lr10", "bs_decoupled")),
             {"APr": ("higher",), "AP": ("higher", "tie")}, "any",
             "a Meta Reweighter row gains APr beyond the noise over its Balanced Softmax twin, AP kept",
             "no Meta Reweighter row gains APr beyond the noise over its Balanced Softmax twin with AP kept"),
    Question("Is decoupled training what makes the gain?",
             (("decoupled vs end to end, Balanced Softmax", "bs_decoupled", "balanced_softmax"),
              ("the official stage 2 over its sigmoid + RFS stage 1", "bsig_decoupled", "sigmoid_rfs"),
              ("the official stage 2 with RFS over its stage 1", "bsig_decoupled_rfs", "sigmoid_rfs")),
             {"APr": ("higher",), "AP": ("higher", "tie")}, "all",
             "the decoupled stage gains APr, AP kept, in every comparison",
             "a decoupled stage does not gain APr with AP kept over the same loss trained end to end"),
]
