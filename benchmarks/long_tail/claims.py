"""What the report claims, as data: the paired comparisons and the targets. The code that checks them is
in ``answer.py``; a new claim is a new entry here."""
from dataclasses import dataclass
from typing import Tuple

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
class Order:
    """Target: the rows' means on ``metric`` increase along ``rows`` (a published ordering)."""
    claim: str
    rows: Tuple[str, ...]
    metric: str = "APr"


@dataclass(frozen=True)
class BestOf:
    """Target: the best of ours on APr ahead of every peer on APr, its APf within 1 of the best peer's."""
    claim: str = "Best of ours ({a}) ahead of every peer on APr, APf within 1 of the best peer's"


_BS_VS_SOFTMAX = "{a}: APr ≥ softmax + 5 and APf at most 1 lower"
TARGETS = [
    Gap(_BS_VS_SOFTMAX, "balanced_softmax", "softmax", (("APr", 5, 2), ("APf", -1, 1))),
    Gap(_BS_VS_SOFTMAX, "bs_decoupled", "softmax", (("APr", 5, 2), ("APf", -1, 1))),
    Order("The paper's ordering (LVIS v0.5 APr: sigmoid + RFS 13.4 < Balanced Softmax 15.9 < BALMS 17.3; the "
          "official chain)", ("sigmoid_rfs", "bsig_decoupled", "balms_sigmoid_decoupled")),
    Gap("{a} ≥ {b} on APr", "balms_decoupled", "bs_decoupled", (("APr", 0, 1),)),
    Gap("{a} ≥ {b} on APr", "balms_decoupled_images", "bs_decoupled", (("APr", 0, 1),)),
    Gap("{a} ≥ {b} on APr", "balms_sigmoid_decoupled", "bsig_decoupled", (("APr", 0, 1),)),
    BestOf(),
]
