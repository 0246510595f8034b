"""detectron2 ``DatasetEvaluator``: APr/APc/APf for boxes and masks on any COCO- or LVIS-format
dataset, fast (hotcoco) or reference backend, per-class outputs, scalars to EventStorage.

Detections are kept as compact columns (numpy arrays + RLE bytes, ``balms_eval.ResultColumns``)
from ``process()`` on, gathered across ranks in that form, and evaluated from it; no per-detection
dict is ever built except, in chunks, to write ``lvis_instances_results.json``.
"""
import copy
import dataclasses
import functools
import logging
import math
import os
from collections import OrderedDict

import numpy as np

import detectron2.utils.comm as comm
from detectron2.config import CfgNode
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils.events import get_event_storage
from detectron2.utils.file_io import PathManager

from balms_eval import LVIS_MAX_DETS_PER_IMAGE, LVIS_THRESHOLDS, LVISGroundTruth, Masks, ResultColumns, evaluate
from balms_eval.columns import ColumnsBuilder
from balms_eval.metrics import format_metrics
from balms_eval.per_class import format_per_class_tables, per_class_rows, write_per_class_outputs
from balms_eval.results_io import write_results_json

from .training_counts import training_image_counts

logger = logging.getLogger(__name__)

COUNTS_HINT = ("set cfg.DATASETS.TRAIN to the registered training set(s): their metadata 'class_image_count' "
               "is read, or else their annotations are counted (or pass image_counts to LVISEvaluator)")
THRESHOLDS_NAME = "TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS; LVISEvaluator's frequency_thresholds"


def instances_to_columns(instances, image_id):
    """One image's predicted ``Instances`` (on CPU) as :class:`ResultColumns` with contiguous
    class ids: boxes as [x, y, w, h], masks RLE-encoded as detectron2's ``instances_to_coco_json``."""
    n = len(instances)
    boxes = BoxMode.convert(instances.pred_boxes.tensor.numpy(), BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)
    masks = None
    if instances.has("pred_masks"):
        from pycocotools import mask as mask_util

        bitmasks = instances.pred_masks.numpy().astype(np.uint8)
        rles = mask_util.encode(np.asfortranarray(bitmasks.transpose(1, 2, 0))) if n else []
        masks = Masks.from_rles(rles) if n else Masks.from_rles([])
    return ResultColumns(np.full(n, image_id, np.int64), instances.pred_classes.numpy().astype(np.int64),
                         instances.scores.numpy().astype(np.float64), boxes.astype(np.float64).reshape(n, 4), masks)


class LVISEvaluator(DatasetEvaluator):
    """Evaluate instance detection/segmentation on a COCO- or LVIS-format dataset (metadata
    ``json_file``): LVIS's own sets, LVIS-style or COCO-style registered ones.

    Reports, per task ("bbox", "segm"): AP, AP50, AP75, APs, APm, APl, APr, APc, APf in percent
    (NaN where undefined, e.g. no rare category in the set), keeping each image's
    ``max_dets_per_image`` best detections. Ground truth with LVIS's federated fields is scored by
    LVIS's rules, other ground truth exhaustively (COCO's rules, crowd regions ignored). Categories
    without an LVIS ``frequency`` are grouped by ``image_counts`` (training images) and
    ``frequency_thresholds``; a group left without a category (its AP is NaN) is logged, with thresholds
    that would split the classes, and written to per_class_ap.json (``frequency_groups``). Also: a
    ``backend`` ("fast": hotcoco; "lvis": lvis-api / pycocotools), per-class JSON/CSV/PNG in
    ``output_dir``, and the scalars put to the current EventStorage (if any) as ``{task}/{metric}``.
    """

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, *,
                 max_dets_per_image=LVIS_MAX_DETS_PER_IMAGE, backend="fast", per_class=True,
                 image_counts=None, image_count_source=None, frequency_thresholds=LVIS_THRESHOLDS,
                 train_datasets=None):
        """
        ``LVISEvaluator(dataset_name, cfg, distributed, output_dir)``, detectron2's deprecated call with
        a config for ``tasks``, is accepted as detectron2's ``LVISEvaluator`` accepts it (a warning, the
        tasks inferred from the predictions), with the settings :func:`build_lvis_evaluator` takes from
        the config (:func:`lvis_evaluator_settings`; the keywords they cover are refused beside it).

        Args:
            dataset_name: registered dataset with metadata ``json_file`` (COCO or LVIS format).
            tasks: ("bbox",), ("segm",) or both; None: inferred from the predictions. (Or a config.)
            distributed: gather predictions from all ranks to the main process.
            output_dir: where lvis_instances_results.json and the per-class files go.
            max_dets_per_image: detections kept per image (LVIS: 300); -1 or None: all.
            backend: "fast" (hotcoco) or "lvis" (lvis-api / pycocotools references); same numbers.
            per_class: print per-class tables and write per_class_ap.{json,csv,png}.
            image_counts: {category id: training images}: the groups of categories without an LVIS
                ``frequency``, and the per-class outputs' counts (default: the annotation file's
                "image_count", labelled as val counts). ``image_count_source`` says where they come from.
                Or a function returning (image_counts, source), called only if the groups need it.
            frequency_thresholds: (rare_max, common_max) training images of the groups made from
                ``image_counts`` (LVIS: (10, 100)).
            train_datasets: registered training sets whose images per class are the ``image_counts``
                (metadata ``class_image_count``, or counted from their dicts only if the groups need
                them), when ``image_counts`` is not given: what ``build_lvis_evaluator`` passes from
                ``cfg.DATASETS.TRAIN``, and a Python config's ``L(LVISEvaluator)(..., train_datasets=...)``.
        """
        settings = dict(max_dets_per_image=max_dets_per_image, backend=backend, per_class=per_class,
                        frequency_thresholds=frequency_thresholds, train_datasets=train_datasets)
        if isinstance(tasks, CfgNode):  # detectron2's LVISEvaluator(dataset_name, cfg, distributed, output_dir)
            tasks, settings = None, _settings_of_config_call(dataset_name, tasks, settings)
        train_datasets = settings["train_datasets"]
        if image_counts is None and train_datasets:
            train = [train_datasets] if isinstance(train_datasets, str) else list(train_datasets)
            image_counts, image_count_source = training_image_counts(train, count_dicts=False)
            if image_counts is None:  # counted from the dicts only if the groups need them
                image_counts = functools.partial(training_image_counts, train)
        self._tasks = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets_per_image = settings["max_dets_per_image"]
        self._per_class = settings["per_class"]
        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = PathManager.get_local_path(self._metadata.json_file)
        self._gt = LVISGroundTruth(json_file, settings["backend"], image_counts=image_counts,
                                   count_source=image_count_source, thresholds=settings["frequency_thresholds"],
                                   missing_counts_hint=COUNTS_HINT, thresholds_name=THRESHOLDS_NAME)
        logger.info("%s: %s labelling; frequency groups from %s", dataset_name, self._gt.labelling,
                    self._gt.groups.source if self._gt.groups else "(none: no annotations)")
        # Test-set files have no annotations (evaluated by a server).
        self._do_evaluation = self._gt.num_annotations > 0

    def reset(self):
        self._columns = ColumnsBuilder()
        self._num_images = 0

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            self._num_images += 1
            if "instances" in output:
                self._columns.add(instances_to_columns(output["instances"].to("cpu"), input["image_id"]))

    def evaluate(self):
        columns, num_images = self._columns.build(), self._num_images
        if self._distributed:
            comm.synchronize()
            gathered = comm.gather((num_images, columns), dst=0)
            if not comm.is_main_process():
                return {}
            num_images = sum(n for n, _ in gathered)
            columns = gathered[0][1] if len(gathered) == 1 else ResultColumns.concat(c for _, c in gathered)
        if num_images == 0:
            logger.warning("[LVISEvaluator] Did not receive valid predictions.")
            return {}
        return self.evaluate_columns(columns)

    def evaluate_columns(self, columns):
        """Evaluate gathered detections (:class:`ResultColumns` with contiguous class ids, as
        :meth:`process` keeps them): write the results file, evaluate, report."""
        columns = dataclasses.replace(columns, category_id=self._to_dataset_category_ids(columns.category_id))
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "lvis_instances_results.json")
            logger.info("Saving %d detections to %s", len(columns), path)
            write_results_json(columns, path)
        if not self._do_evaluation:
            logger.info("Annotations are not available for evaluation.")
            return {}
        tasks = self._tasks or (("bbox", "segm") if columns.masks is not None else ("bbox",))
        logger.info("Evaluating %s with the %s backend (%s labelling), %s detections per image ...",
                    "+".join(sorted(tasks)), self._gt.backend, self._gt.labelling, self._max_dets_per_image)
        res = evaluate(self._gt, columns, sorted(tasks), max_dets_per_image=self._max_dets_per_image)
        self._results = OrderedDict((task, res[task].metrics_percent()) for task in sorted(tasks))
        for task, metrics in self._results.items():
            logger.info("Evaluation results for %s: \n%s", task, format_metrics(metrics))
        if self._gt.groups.note:  # a frequency group without a category: its AP is NaN
            logger.warning("Frequency groups: %s", self._gt.groups.note)
        if self._per_class:
            self._report_per_class({task: r.per_class_ap for task, r in res.items()})
        self._put_scalars()
        return copy.deepcopy(self._results)

    def _to_dataset_category_ids(self, contiguous):
        """Contiguous class ids -> the annotation file's category ids: the dataset's
        ``thing_dataset_id_to_contiguous_id`` when it has one, else the rank of the sorted ids
        (detectron2's convention: id - 1 for LVIS's 1..K)."""
        id_map = self._metadata.get("thing_dataset_id_to_contiguous_id", None)
        if id_map:
            lookup = np.zeros(max(id_map.values()) + 1, np.int64)
            lookup[list(id_map.values())] = list(id_map.keys())
        else:
            lookup = np.array(sorted(self._gt.categories), np.int64)
        if len(contiguous) and (contiguous.min() < 0 or contiguous.max() >= len(lookup)):
            raise ValueError(f"Predicted class {int(contiguous.max())} is outside the {len(lookup)} categories of "
                             f"the dataset; does MODEL.ROI_HEADS.NUM_CLASSES match it?")
        return lookup[contiguous]

    def _report_per_class(self, per_class_ap):
        rows = per_class_rows(self._gt.categories, per_class_ap, self._gt.groups)
        logger.info("\n" + format_per_class_tables(rows, self._gt.groups, self._gt.labelling))
        if self._output_dir:
            paths = write_per_class_outputs(rows, self._output_dir, self._gt.groups, self._gt.labelling)
            logger.info("Per-class results written to %s", ", ".join(paths))

    def _put_scalars(self):
        try:
            storage = get_event_storage()
        except AssertionError:  # not inside an EventStorage (e.g. evaluation-only run)
            return
        scalars = {f"{task}/{k}": v for task, m in self._results.items() for k, v in m.items() if not math.isnan(v)}
        storage.put_scalars(**scalars, smoothing_hint=False)


def lvis_evaluator_settings(cfg):
    """The :class:`LVISEvaluator` keywords ``cfg`` gives: ``cfg.TEST.LVIS_EVAL`` (see balms_det/config.py;
    the defaults without it) and the training sets ``cfg.DATASETS.TRAIN``."""
    eval_cfg = cfg.TEST.get("LVIS_EVAL", None)
    return dict(
        max_dets_per_image=eval_cfg.MAX_DETS_PER_IMAGE if eval_cfg is not None else LVIS_MAX_DETS_PER_IMAGE,
        backend=eval_cfg.BACKEND if eval_cfg is not None else "fast",
        per_class=eval_cfg.PER_CLASS if eval_cfg is not None else True,
        train_datasets=list(cfg.DATASETS.TRAIN),
        frequency_thresholds=tuple(eval_cfg.FREQUENCY_THRESHOLDS) if eval_cfg is not None else LVIS_THRESHOLDS)


# The keywords of LVISEvaluator that a config gives (lvis_evaluator_settings), and their defaults.
_CONFIG_KEYWORDS = dict(max_dets_per_image=LVIS_MAX_DETS_PER_IMAGE, backend="fast", per_class=True,
                        frequency_thresholds=tuple(LVIS_THRESHOLDS), train_datasets=None)


def _settings_of_config_call(dataset_name, cfg, given):
    """detectron2's deprecated ``LVISEvaluator(dataset_name, cfg, ...)``: the settings of ``cfg``
    (:func:`lvis_evaluator_settings`), with a warning as detectron2's; refused with any of the
    keywords ``given`` (name -> value) set besides its default."""
    mixed = sorted(k for k, v in given.items() if (tuple(v) if isinstance(v, list) else v) != _CONFIG_KEYWORDS[k])
    if mixed:
        raise TypeError(f"LVISEvaluator({dataset_name!r}, cfg, ...) takes its settings from the config "
                        f"(TEST.LVIS_EVAL, DATASETS.TRAIN); it cannot also take {mixed}: give either the "
                        "config or these keywords")
    logger.warning("LVISEvaluator instantiated with a config (detectron2's deprecated call): tasks inferred from "
                   "the predictions, settings from TEST.LVIS_EVAL and DATASETS.TRAIN (build_lvis_evaluator's)")
    return lvis_evaluator_settings(cfg)


def build_lvis_evaluator(cfg, dataset_name, output_folder=None):
    """The :class:`LVISEvaluator` configured by ``cfg.TEST.LVIS_EVAL`` (see balms_det/config.py),
    with training images per class from ``cfg.DATASETS.TRAIN`` (metadata ``class_image_count``,
    or counted from the registered dicts). ``output_folder`` defaults to OUTPUT_DIR/inference."""
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
    return LVISEvaluator(dataset_name, distributed=True, output_dir=output_folder, **lvis_evaluator_settings(cfg))
