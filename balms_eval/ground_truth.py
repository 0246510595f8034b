"""Ground truth: a COCO- or LVIS-format annotation file loaded once, with what every evaluation
of it needs: its labelling (federated or exhaustive), the categories' frequency groups, and (fast
backend) the index the filter reads.

Labelling: LVIS labels each image only for some categories, listed as present (annotated),
``neg_category_ids`` (verified absent) or ``not_exhaustive_category_ids``; other categories are not
scored in that image ("federated"). A file whose images carry none of these lists (COCO format) is
exhaustively labelled: every category absent from an image is verified absent there. The rule:
federated when any image has a non-empty ``neg_category_ids`` or ``not_exhaustive_category_ids``
(hotcoco drops empty lists when loading, so absent and empty are the same), else exhaustive.
"""
import contextlib
import copy
import io
import logging
import os

import numpy as np

from .errors import AnnotationFileError
from .groups import LVIS_THRESHOLDS, check_count_categories, frequency_groups, needs_counts
from .annotation_validation import FEDERATED_KEYS, check_annotation_dataset, check_hotcoco_ground_truth

BACKENDS = ("fast", "lvis")
LABELLINGS = ("federated", "exhaustive")


def labelling_of(images):
    """"federated" if any image lists neg_category_ids or not_exhaustive_category_ids, else "exhaustive"."""
    return "federated" if any(img.get(k) for img in images.values() for k in FEDERATED_KEYS) else "exhaustive"


class LVISGroundTruth:
    """A COCO/LVIS-format annotation file (path or dict) loaded once for one backend.

    Attributes:
        backend: "fast" (hotcoco) or "lvis" (the references: lvis-api for federated ground truth,
            pycocotools' COCOeval for exhaustive).
        api: the backend's dataset object (``hotcoco.COCO``, ``lvis.LVIS`` or pycocotools' ``COCO``).
        name: the annotation file's path ("the ground-truth dict" when given a dict), as the errors name it.
        images: {image id: image dict}; categories: {category id: category dict}.
        num_annotations: number of ground-truth instances (0 for a test-set file).
        without_mask: the first annotation without a mask ("segmentation" absent, null or []), which
            segm evaluation cannot score (reference backend; None for the fast one, which reads the box).
        labelling: "federated" or "exhaustive" (module doc).
        groups: the categories' :class:`~.groups.FrequencyGroups` (None for a file without annotations
            whose categories have no frequency: nothing to evaluate).
        scored_keys, annotated_category_ids: see :func:`_federated_index` (fast backend only).

    Args:
        image_counts: {category id: training images}: the groups of categories without an LVIS
            ``frequency``, and the per-class outputs' counts. ``count_source`` says where they come from.
            Or a function returning (image_counts, count_source), called only when the groups need it.
        count_categories: the categories ({id: category dict}) ``image_counts`` (a dict) were taken
            over, e.g. a training file's, named ``count_file`` in the errors: the evaluated categories
            must be among them (:func:`~.groups.check_count_categories`); None: not checked, a
            category without a count counts 0.
        thresholds: (rare_max, common_max) training images, for groups made from ``image_counts``.
        missing_counts_hint: the end of the error raised when groups are needed and no counts given.
        thresholds_name: where the caller's user sets ``thresholds`` (a config key, a flag), named by the
            groups' note when a group made from the counts has no category.

    Raises :class:`~.errors.JSONFileError` for a file that is missing, unreadable or not JSON, and
    :class:`~.errors.AnnotationFileError` (``<file>: <entry>: <what is wrong>``) for one that is not
    a usable COCO/LVIS annotation file (see annotation_validation.py: the fast backend checks what hotcoco
    loaded, the reference backend the whole file, before lvis-api / pycocotools index it).
    """

    def __init__(self, annotations, backend="fast", *, image_counts=None, count_source=None,
                 thresholds=LVIS_THRESHOLDS, missing_counts_hint="pass image_counts (training images per category)",
                 count_categories=None, count_file="the training counts", thresholds_name="the thresholds argument"):
        if backend not in BACKENDS:
            raise ValueError(f"Unknown LVIS evaluation backend {backend!r}; expected one of {BACKENDS}")
        self.backend = backend
        self.without_mask = None
        if isinstance(annotations, (str, os.PathLike)):
            annotations = os.fspath(annotations)
        self.name = annotations if isinstance(annotations, str) else "the ground-truth dict"
        if backend == "fast":
            self.api = _hotcoco_api(annotations, self.name)
            self.images, self.categories = self.api.imgs, self.api.cats  # (dicts built on each access)
            check_hotcoco_ground_truth(self.api, self.name, self.images, self.categories)
            self.labelling = labelling_of(self.images)
            self.num_annotations = len(self.api.get_ann_ids())
        else:
            dataset = _load_dict(annotations)
            _, _, anns = check_annotation_dataset(dataset, self.name)
            # lvis-api and pycocotools fail on an instance without a mask only when segm evaluation
            # reads it: which one, for evaluate() to say before
            self.without_mask = next((f"annotations[{i}] (id={a['id']})" for i, a in enumerate(anns or ())
                                      if not a.get("segmentation")), None)
            self.labelling = labelling_of({im["id"]: im for im in dataset.get("images", [])})
            self.api = _lvis_api(dataset) if self.labelling == "federated" else _pycocotools_api(dataset)
            self.num_annotations = len(self.api.dataset.get("annotations", []))
            self.images, self.categories = dict(self.api.imgs), dict(self.api.cats)
        self.groups = None
        if callable(image_counts):  # deferred (it may load a training set): only if the groups need it
            image_counts, count_source = image_counts() if needs_counts(self.categories) else (None, None)
        elif image_counts is not None and count_categories is not None:
            image_counts = check_count_categories(self.categories, image_counts, count_categories, count_file,
                                                  self.name)
        if self.num_annotations or not needs_counts(self.categories):
            self.groups = frequency_groups(self.categories, image_counts, count_source, thresholds,
                                          missing_counts_hint, thresholds_name)
        if backend == "lvis" and self.labelling == "federated" and self.groups and needs_counts(self.categories):
            # lvis-api reads every category's "frequency" (for its own APr/APc/APf, not used here):
            # the groups, where categories have none (in the api's index only, not self.categories)
            for c, cat in self.categories.items():
                self.api.cats[c] = dict(cat, frequency=self.groups.of[c])
        self.key_stride = max(self.categories, default=0) + 1
        if backend == "fast":  # what every fast evaluation reads, built with the ground truth
            self.scored_keys, self.annotated_category_ids = _federated_index(
                self.api, self.images, self.categories, self.key_stride)

    def annotations_of(self, image_ids):
        """The ground-truth annotation dicts of ``image_ids`` (fast backend)."""
        return self.api.load_anns(self.api.get_ann_ids(img_ids=list(image_ids)))


def _federated_index(api, images, categories, key_stride):
    """From hotcoco's category -> image index (no annotation is read into Python):

    * the sorted (image, category) pairs LVIS scores, annotated in the image or in its
      neg_category_ids, encoded as image_id * key_stride + category_id (for the federated filter);
    * the sorted ids of the categories with ground truth: the only ones with an AP.
    """
    images_of = {c: api.get_img_ids(cat_ids=[c]) for c in categories}
    keys = [i * key_stride + c for c, imgs in images_of.items() for i in imgs]
    keys += [i * key_stride + c for i, im in images.items() for c in im.get("neg_category_ids") or ()]
    return np.unique(np.array(keys, np.int64)), np.array(sorted(c for c, imgs in images_of.items() if imgs), np.int64)


def _load_dict(annotations):
    if isinstance(annotations, str):
        from .results_io import load_json

        return load_json(annotations, "annotation")
    return annotations


def _hotcoco_api(annotations, name):
    import hotcoco

    try:
        return hotcoco.COCO(annotations)
    except (ValueError, TypeError, OSError) as first_error:
        # Read the file here to name what is wrong (a missing file, not JSON, a field of the wrong
        # type: hotcoco's own message gives only a line and column). hotcoco's loader is also strict
        # about fields evaluation never reads (e.g. an integer "info.version"): if the checks find
        # nothing, retry without them before giving up.
        annotations_dict = _load_dict(annotations)
        check_annotation_dataset(annotations_dict, name)
        slim = {k: v for k, v in annotations_dict.items() if k not in ("info", "licenses")}
        try:
            return hotcoco.COCO(slim)
        except (ValueError, TypeError):
            raise AnnotationFileError(f"{name}: hotcoco cannot load it: {first_error}") from first_error


def _lvis_api(dataset):
    from lvis import LVIS

    api = LVIS.__new__(LVIS)  # lvis-api only reads files; build it from the dict
    api.logger = logging.getLogger("lvis.lvis")
    api.dataset = copy.deepcopy(dataset)
    api.dataset.setdefault("annotations", [])  # (an image-info file)
    for img in api.dataset["images"]:  # absent means empty, as in hotcoco
        for key in FEDERATED_KEYS:
            img.setdefault(key, [])
    api._create_index()
    return api


def _pycocotools_api(dataset):
    from pycocotools.coco import COCO

    api = COCO()
    api.dataset = copy.deepcopy(dataset)
    with contextlib.redirect_stdout(io.StringIO()):  # "creating index..."
        api.createIndex()
    return api
