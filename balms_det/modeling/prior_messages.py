"""What the class prior's errors say: its settings named as the user writes them (a YAML config's keys, or
:func:`~balms_det.modeling.priors.class_prior`'s arguments), and the fix of counts a source does not have."""
from dataclasses import dataclass

__all__ = ["PriorNames", "CONFIG_NAMES", "PYTHON_NAMES", "MissingCountsError", "missing_counts_problem",
           "count_source_fix"]


@dataclass(frozen=True)
class PriorNames:
    """What the prior's errors call its settings, so that a message names what the user writes: a YAML
    config's keys, or :func:`class_prior`'s arguments (``python``)."""

    datasets: str
    source: str
    counts: str
    num_images: str
    num_classes: str
    min_count: str
    python: bool

    def name(self, setting):
        """``setting`` (a field name) as the user writes it: ``MODEL.BALMS.PRIOR.COUNTS`` / ``counts=``."""
        return getattr(self, setting) + ("=" if self.python else "")

    def set(self, setting, value):
        """``setting`` given ``value``: ``MODEL.BALMS.PRIOR.SOURCE dataset`` / ``source='dataset'``."""
        return f"{getattr(self, setting)}={value!r}" if self.python else f"{getattr(self, setting)} {value}"


CONFIG_NAMES = PriorNames("DATASETS.TRAIN", "MODEL.BALMS.PRIOR.SOURCE", "MODEL.BALMS.PRIOR.COUNTS",
                          "MODEL.BALMS.PRIOR.NUM_IMAGES", "MODEL.ROI_HEADS.NUM_CLASSES", "MODEL.BALMS.PRIOR.MIN_COUNT",
                          python=False)
PYTHON_NAMES = PriorNames("datasets", "source", "counts", "num_images", "num_classes", "min_count", python=True)


class MissingCountsError(ValueError):
    """The prior's source has no counts for these classes (a COCO-format file under source "json", metadata
    without ``class_image_count``); the message says which source has them."""


def missing_counts_problem(json_file, categories, count="image_count"):
    """What is wrong when ``categories`` (an annotation file's) lack the field ``count``, in words; None when
    every category has it."""
    missing = [c for c in categories if count not in c]
    if not missing:
        return None
    shown = ", ".join(f"{c['id']} {c['name']!r}" if "name" in c else str(c["id"]) for c in missing[:3])
    return (f"the categories of {json_file} have no {count!r} field ({len(missing)} of {len(categories)}, e.g. id "
            f"{shown}): a COCO-format file (only LVIS files count the images of each category)")


def count_source_fix(names=CONFIG_NAMES, source="json"):
    """The other sources of the counts (the fix of a :class:`MissingCountsError` of ``source``):
    ``MODEL.BALMS.PRIOR.SOURCE dataset (...) or metadata (...), or list with ...``."""
    what = {"dataset": "counts the training annotations", "metadata": "the training sets' metadata class_image_count"}
    others = [s for s in what if s != source]
    if names.python:
        return " or ".join(f"source={s!r} ({what[s]})" for s in others) + ", or counts=[one per class]"
    return f"{names.source} " + " or ".join(f"{s} ({what[s]})" for s in others) + f", or list with {names.counts}"
