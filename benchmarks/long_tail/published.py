"""Published LVIS numbers (Mask R-CNN R-50-FPN unless said), each with its source, and the benchmark row
that runs the same method. Copied from the sources, none derived; None = not published there. Numbers
compare only within a ``group`` (one source's runs: its own baseline, schedule and framework)."""
from dataclasses import dataclass
from typing import Optional

# The sources (repository @ commit).
SOURCES = {
    "S1": "janghyuncho/ECM-Loss @ a637240 (mmdet 2.25.2 fork)",
    "S2": "open-mmlab/mmdetection (configs/seesaw_loss/ @ 10e91fd, da7301b; issue #3022)",
    "S3": "facebookresearch/detectron2 @ 02b5c4e",
    "S4": "xingyizhou/CenterNet2 @ bfc8b72",
    "S5": "cunjunyu/BalancedMetaSoftmax-InstanceSeg @ b7d4bd9 (code), 25f0cdd (README); a co-author's fork of "
          "the official BALMS repository",
    "S6": "open-mmlab/mmcv v1.5.1 @ 8708851",
    "S7": "facebookresearch/Detic @ 436cda2",
    "S8": "tztztztztz/eqlv2 @ 907fad9 (mmdet 2.3)",
    "S9": "tydpan/NorCal @ 23e5ab6",
    "S10": "Megvii-BaseDetection/DisAlign @ a2fc350 (cvpods)",
}
_CV05 = "instance_seg/lvis0.5/mask_rcnn/res50/mask_rcnn.res50.fpn.lvis.multiscale"
_CV1 = "instance_seg/lvis1.0/mask_rcnn/res50/mask_rcnn.res50.fpn.lvisv1.multiscale"


@dataclass(frozen=True)
class Published:
    method: str  # as the source names it
    short: str  # in sentences
    lvis: str  # "v0.5" or "v1"
    setup: str  # framework, schedule
    ap: Optional[float]  # mask AP
    apr: Optional[float]
    apc: Optional[float]
    apf: Optional[float]
    box_ap: Optional[float]
    source: str  # "S8 README.md"
    row: Optional[str]  # this benchmark's row of the same method
    group: str  # numbers of one group compare with each other only
    note: str = ""


def _p(method, short, lvis, setup, ap, apr, apc, apf, box_ap, source, row, group, note=""):
    return Published(method, short, lvis, setup, ap, apr, apc, apf, box_ap, source, row, group, note)


PUBLISHED = [
    # LVIS v0.5
    _p("softmax CE, no RFS", "softmax", "v0.5", "cvpods, 90k iterations", 20.7, 2.4, 20.2, 28.7, 20.4,
       f"S10 {_CV05}.1x/README.md", "softmax", "S10, cvpods, LVIS v0.5"),
    _p("softmax CE + RFS 1e-3", "softmax + RFS", "v0.5", "cvpods, 90k iterations", 24.2, 14.5, 24.0, 28.3, 23.5,
       f"S10 {_CV05}.rfs.1x/README.md", "softmax_rfs", "S10, cvpods, LVIS v0.5"),
    _p("cosine classifier + RFS", "cosine + RFS", "v0.5", "cvpods, 90k iterations", 24.9, 13.0, 25.8, 28.6, 24.6,
       f"S10 {_CV05}.rfs.cos_norm.1x/README.md", "softmax_normed_rfs", "S10, cvpods, LVIS v0.5"),
    _p("sigmoid + RFS (BALMS stage 1)", "sigmoid + RFS", "v0.5", "detectron2, 90k iterations", 24.1, 13.4, 24.3,
       28.1, 23.4, "S5 README.md", "sigmoid_rfs", "S5, BALMS, LVIS v0.5"),
    _p("Balanced Softmax (decoupled stage 2)", "Balanced Softmax", "v0.5", "detectron2, stage 2 22k iterations",
       26.4, 15.9, 27.3, 29.6, 25.9, "S5 README.md", "bsig_decoupled_rfs", "S5, BALMS, LVIS v0.5"),
    _p("BALMS (Balanced Softmax + Meta Reweighter, stage 2)", "BALMS", "v0.5", "detectron2, stage 2 22k iterations",
       27.0, 17.3, 28.1, 29.5, 26.4, "S5 README.md", "balms_sigmoid_decoupled_rfs", "S5, BALMS, LVIS v0.5"),
    _p("NorCal (on detectron2's RFS model)", "NorCal", "v0.5", "post-hoc", None, None, None, None, None,
       "S9 README.md", "softmax_rfs+norcal", "S9, NorCal, LVIS v0.5", "the paper's table was not readable; the README has none"),
    # LVIS v1
    _p("softmax CE, uniform sampler", "softmax", "v1", "mmdet 2.3, 1x (12 epochs)", 16.1, 0.0, 12.0, 27.4, None,
       "S8 README.md", "softmax", "S8, EQLv2's mmdet 2.3, LVIS v1"),
    _p("softmax CE + RFS 1e-3", "softmax + RFS", "v1", "mmdet 2.3, 1x", 22.2, 11.5, 21.2, 28.0, None,
       "S8 README.md", "softmax_rfs", "S8, EQLv2's mmdet 2.3, LVIS v1"),
    _p("EQLv2 (uniform sampler)", "EQLv2", "v1", "mmdet 2.3, 1x", 23.7, 14.9, 22.8, 28.6, 24.2,
       "S8 README.md", "eqlv2", "S8, EQLv2's mmdet 2.3, LVIS v1"),
    _p("cRT (decoupled)", "cRT", "v1", "mmdet 2.3, decoupled", 22.1, 11.9, 20.2, 29.0, None,
       "S8 README.md", "crt", "S8, EQLv2's mmdet 2.3, LVIS v1"),
    _p("softmax CE, no RFS", "softmax", "v1", "cvpods, 180k iterations", 18.3, 1.0, 15.6, 28.9, 18.8,
       f"S10 {_CV1}.1x/README.md", "softmax", "S10, cvpods, LVIS v1"),
    _p("softmax CE + RFS 1e-3", "softmax + RFS", "v1", "cvpods, 180k iterations", 22.5, 12.3, 20.9, 28.7, 22.9,
       f"S10 {_CV1}.rfs.1x/README.md", "softmax_rfs", "S10, cvpods, LVIS v1"),
    _p("cosine classifier + RFS", "cosine + RFS", "v1", "cvpods, 180k iterations", 23.3, 13.8, 22.1, 28.9, 23.8,
       f"S10 {_CV1}.rfs.cos_norm.1x/README.md", "softmax_normed_rfs", "S10, cvpods, LVIS v1"),
    _p("softmax CE + RFS 1e-3", "softmax + RFS", "v1", "mmdet 2.25, 1x", 21.7, None, None, None, 22.5,
       "S1 configs/lvis/README.md", "softmax_rfs", "S1, ECM's mmdet 2.25, LVIS v1"),
    _p("ECM (RFS, normed, clip 5, warm-up 10k)", "ECM", "v1", "mmdet 2.25, 1x", 26.4, None, None, None, 26.9,
       "S1 README.md", "ecm_authors", "S1, ECM's mmdet 2.25, LVIS v1"),
    _p("Seesaw (RFS)", "Seesaw", "v1", "mmdet, 2x (24 epochs)", 26.4, None, None, None, 27.6,
       "S2 configs/seesaw_loss/README.md", "seesaw", "S2, mmdet, LVIS v1", "26.8 with the normed mask head"),
    _p("federated loss (CenterNet2 R-50, RFS)", "federated (CenterNet2)", "v1", "detectron2, 90k iterations",
       None, None, None, None, 28.3, "S4 docs/MODEL_ZOO.md", "federated_authors", "S4, CenterNet2, LVIS v1",
       "not Mask R-CNN: box AP only (26.5 without the federated loss); no Mask R-CNN R-50 number found"),
    _p("logit adjustment", "logit adjustment", "v1", "", None, None, None, None, None, "", "softmax+la", "-",
       "not found on LVIS in any source read"),
    _p("Balanced Softmax / BALMS", "Balanced Softmax", "v1", "", None, None, None, None, None, "S5 README.md",
       "balanced_softmax", "-", "not published: the authors' repository is LVIS v0.5 only"),
]
