"""Frequency groups (rare / common / frequent) of the categories, and where they come from.

LVIS files carry each category's group (``frequency``: "r", "c", "f", set by LVIS from its
training split). Other datasets (COCO format, any detectron2 dataset) get theirs from the number of
TRAINING images of each class and LVIS's rule: rare 1-10 images, common 11-100, frequent > 100
(thresholds (10, 100), configurable; a class with no training image is rare). Groups made from the
counts may be empty (a small dataset under LVIS's thresholds has no frequent class, and APf is NaN): their
:attr:`FrequencyGroups.note` says so, with thresholds that would split the classes (:func:`tertiles`).
"""
import logging
import math
from dataclasses import dataclass
from typing import Optional

from .errors import AnnotationFileError

logger = logging.getLogger(__name__)

LVIS_THRESHOLDS = (10, 100)
FREQUENCIES = ("r", "c", "f")
GROUP_NAMES = {"r": "rare", "c": "common", "f": "frequent"}


@dataclass
class FrequencyGroups:
    """``of``: {category id: "r" | "c" | "f"}; ``source``: where the groups come from (written
    into the per-class outputs); ``image_counts``: {category id: training images} for the
    per-class outputs, or None; ``count_source``: where those counts come from; ``thresholds``: the
    (rare_max, common_max) training images of the groups (LVIS's for LVIS's own groups). Groups made from
    the counts: ``empty``, the groups without a category (their AP is NaN), ``suggested_thresholds``,
    thresholds that put about a third of the categories in each group (:func:`tertiles`; None when every
    group has one, or the counts cannot be split in three), and ``note``, one line saying so (else None)."""

    of: dict
    source: str
    image_counts: Optional[dict] = None
    count_source: Optional[str] = None
    thresholds: tuple = LVIS_THRESHOLDS
    empty: tuple = ()
    suggested_thresholds: Optional[tuple] = None
    note: Optional[str] = None

    def summary(self):
        """The groups as JSON data: thresholds, categories per group, the empty groups, the suggested
        thresholds and the note."""
        return {"thresholds": list(self.thresholds),
                "categories": {g: sum(1 for v in self.of.values() if v == g) for g in FREQUENCIES},
                "empty": list(self.empty),
                "suggested_thresholds": None if self.suggested_thresholds is None else list(self.suggested_thresholds),
                "note": self.note}


def check_thresholds(thresholds):
    """``(rare_max, common_max)``: two whole numbers of images, 0 <= rare_max < common_max."""
    try:
        rare_max, common_max = (int(t) for t in thresholds)
        ok = all(float(t) == int(t) for t in thresholds) and 0 <= rare_max < common_max
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"Frequency thresholds must be two whole numbers of training images [rare_max, common_max] "
                         f"with 0 <= rare_max < common_max (LVIS: [10, 100]), got {thresholds!r}")
    return rare_max, common_max


def group_of(count, thresholds=LVIS_THRESHOLDS):
    """"r" for count <= thresholds[0], "c" for count <= thresholds[1], else "f"."""
    return "r" if count <= thresholds[0] else "c" if count <= thresholds[1] else "f"


def tertiles(counts):
    """(rare_max, common_max): whole numbers of training images that put about a third of ``counts`` (one per
    class) in each of rare / common / frequent (the counts' tertiles, moved so that no group is empty); None
    when the counts take fewer than three values (no thresholds split them in three)."""
    s = sorted(int(c) for c in counts)
    distinct = sorted(set(s))
    if len(distinct) < 3:
        return None
    rare_max, common_max = s[math.ceil(len(s) / 3) - 1], s[math.ceil(2 * len(s) / 3) - 1]
    common_max = min(max(common_max, distinct[1]), distinct[-2])  # something above it, something below it
    rare_max = min(rare_max, max(d for d in distinct if d < common_max))
    return rare_max, common_max


def _group_range(code, thresholds):
    rare_max, common_max = thresholds
    return {"r": f"<= {rare_max}", "c": f"{rare_max + 1} to {common_max}", "f": f"> {common_max}"}[code]


def empty_groups_note(of, image_counts, thresholds, thresholds_name, names=None):
    """(empty groups, suggested thresholds, note) of groups ``of`` ({id: "r"|"c"|"f"}) made from
    ``image_counts`` with ``thresholds``: the note (one line, None when no group is empty) names the empty
    groups, the range of the training counts and the largest, and the tertiles (:func:`tertiles`) as
    thresholds that would split the classes; ``thresholds_name`` says where the thresholds are set, and
    ``names`` ({id: name}) names the class with the most training images."""
    empty = tuple(g for g in FREQUENCIES if g not in set(of.values()))
    if not empty or not of:
        return (), None, None
    counts = {i: int(image_counts.get(i, 0)) for i in of}
    most = max(sorted(counts), key=counts.get)  # (the lowest id of a tie)
    suggested = tertiles(counts.values())
    groups = " or ".join(f"{GROUP_NAMES[g]} ({_group_range(g, thresholds)} training images)" for g in empty)
    aps = " and ".join(f"AP{g}" for g in empty)
    note = (f"no category is {groups} under the frequency thresholds {list(thresholds)} ({thresholds_name}), so "
            f"{aps} {'is' if len(empty) == 1 else 'are'} NaN: the {len(counts)} classes have "
            f"{min(counts.values())} to {counts[most]} training images (the most: "
            f"{(names or {}).get(most, f'id {most}')!r}); ")
    if suggested is None:
        note += "their counts take fewer than 3 values, so no thresholds split them in three"
    else:
        split = [sum(1 for c in counts.values() if group_of(c, suggested) == g) for g in FREQUENCIES]
        note += (f"{list(suggested)}, the tertiles of those counts, would put {split[0]} / {split[1]} / {split[2]} "
                 "of them in rare / common / frequent")
    return empty, suggested, note


def needs_counts(categories):
    """True when some category has no LVIS ``frequency``: the groups then come from counts."""
    return not all(c.get("frequency") in FREQUENCIES for c in categories.values())


def frequency_groups(categories, image_counts=None, count_source=None, thresholds=LVIS_THRESHOLDS,
                     missing_counts_hint="pass the training image counts", thresholds_name="the thresholds argument"):
    """The groups of ``categories`` ({id: category dict}).

    Every category with an LVIS ``frequency``: those (LVIS's own groups); ``image_counts``
    ({category id: training images}) are then only shown in the per-class outputs. Otherwise the
    groups come from ``image_counts`` and ``thresholds``; a category missing from them counts 0
    (rare); a group left without a category gets a note (:func:`empty_groups_note`, naming
    ``thresholds_name``, where the user sets them). Neither: ValueError, with ``missing_counts_hint``
    saying which key or flag gives counts.
    """
    thresholds = check_thresholds(thresholds)
    empty, suggested, note = (), None, None
    if categories and not needs_counts(categories):
        of = {i: c["frequency"] for i, c in categories.items()}
        source = "the 'frequency' field of the evaluated annotation file (LVIS's groups)"
        thresholds = LVIS_THRESHOLDS
    elif image_counts is not None:
        of = {i: group_of(image_counts.get(i, 0), thresholds) for i in categories}
        source = (f"training image counts ({count_source or 'given'}): rare <= {thresholds[0]} < common <= "
                  f"{thresholds[1]} < frequent")
        empty, suggested, note = empty_groups_note(of, image_counts, thresholds, thresholds_name,
                                                   {i: c.get("name") for i, c in categories.items() if c.get("name")})
    else:
        without = [i for i, c in categories.items() if c.get("frequency") not in FREQUENCIES]
        raise ValueError(
            f"APr/APc/APf need a frequency group per category, and {len(without)} categories (e.g. id "
            f"{without[0]}, {categories[without[0]].get('name')!r}) have no LVIS 'frequency' field; their groups "
            f"come from training image counts: {missing_counts_hint}")
    if image_counts is None and categories and all("image_count" in c for c in categories.values()):
        image_counts = {i: int(c["image_count"]) for i, c in categories.items()}
        count_source = "images per class in the EVALUATED annotation file (val counts, not training counts)"
    return FrequencyGroups(of, source, image_counts, count_source, thresholds, empty, suggested, note)


COUNT_KINDS = ("image_count", "instance_count")


def count_per_class(images, count="image_count", weights=None):
    """The one count of training samples per class: ``{category id: count}`` over ``images``, an
    iterable of per-image annotation lists (dicts with ``category_id`` and, optionally, ``iscrowd``).
    Crowd annotations are skipped; ``"image_count"``: images with at least one instance of the class,
    ``"instance_count"``: instances. ``weights``: one number per image (e.g. a sampler's expected
    draws), each image counting that many times (then the counts are floats). Ids are whatever the
    annotations use (contiguous for detectron2's dicts, the file's for an annotation file)."""
    if count not in COUNT_KINDS:
        raise ValueError(f"Unknown count kind {count!r}; expected one of {COUNT_KINDS}")
    counts = {}
    weights = iter(weights) if weights is not None else None
    for annotations in images:
        w = next(weights) if weights is not None else 1
        ids = [a["category_id"] for a in annotations if not a.get("iscrowd", 0)]
        for c in (set(ids) if count == "image_count" else ids):
            counts[c] = counts.get(c, 0) + w
    return counts


def image_counts_from_dataset(dataset):
    """{category id: images} of a COCO/LVIS-format dataset dict: its categories' ``image_count``
    when every category has one (LVIS), else counted from its annotations (:func:`count_per_class`,
    as the training priors count)."""
    categories = dataset.get("categories") or []
    if categories and all("image_count" in c for c in categories):
        return {int(c["id"]): int(c["image_count"]) for c in categories}
    per_image = {}
    for a in dataset.get("annotations") or []:
        per_image.setdefault(a["image_id"], []).append(a)
    counts = count_per_class(per_image.values())
    return {int(c["id"]): 0 for c in categories} | {int(c): n for c, n in counts.items()}


def check_count_categories(categories, image_counts, counted_categories, counts_name, evaluated_name,
                           hint="give the complete training annotation file, or ground truth restricted to the "
                                "categories trained on"):
    """``image_counts`` without the categories they cannot speak for, after checking that
    ``counted_categories`` ({id: category dict}: those the counts were taken over, e.g. a training
    file's) cover the evaluated ``categories``: each listed, under the same "name" where both have
    one. A listed category without training images counts 0 (rare); one not listed has no count,
    and one named otherwise has another class's.

    When the groups come from the counts (some category has no LVIS ``frequency``), a category
    not covered would be put in a group by a count it does not have:
    :class:`~.errors.AnnotationFileError` (``<counts_name>: lacks N of the M categories of
    <evaluated_name> (ids ...): ...; <hint>``).
    Otherwise (LVIS's groups) the counts are only the per-class outputs' x-axis: a warning, and
    those categories' counts are left out (unknown, not 0).
    """
    missing = sorted(set(categories) - set(counted_categories))
    renamed = sorted(c for c in set(categories) & set(counted_categories)
                     if _name(categories[c]) is not None and _name(counted_categories[c]) is not None
                     and _name(categories[c]) != _name(counted_categories[c]))
    if not missing and not renamed:
        return image_counts
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} of the {len(categories)} categories of {evaluated_name} "
                        f"({describe_categories(categories, missing)})")
    if renamed:
        shown = "; ".join(f"id {c} {_name(counted_categories[c])!r}, not {_name(categories[c])!r}"
                          for c in renamed[:3]) + ("; ..." if len(renamed) > 3 else "")
        problems.append(f"names {len(renamed)} of its categories otherwise ({shown})")
    problem = f"{counts_name}: " + " and ".join(problems)
    if needs_counts(categories):
        raise AnnotationFileError(f"{problem}: the frequency groups (APr/APc/APf) of those categories come from its "
                                  f"training counts, which it does not have for them; {hint}")
    logger.warning("%s: their per-class training counts are left out (the groups are %s's LVIS 'frequency'); %s",
                   problem, evaluated_name, hint)
    dropped = set(missing) | set(renamed)
    return {c: n for c, n in image_counts.items() if c not in dropped}


def _name(category):
    name = category.get("name")
    return None if name is None else str(name)


def describe_categories(categories, ids, limit=5):
    """``ids 3 'apple', 7 'banana' and 12 more``: the first ``limit`` of ``ids`` with their names."""
    shown = ", ".join(f"{c} {_name(categories[c])!r}" if _name(categories[c]) is not None else str(c)
                      for c in ids[:limit])
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return f"id{'s' if len(ids) > 1 else ''} {shown}{more}"
