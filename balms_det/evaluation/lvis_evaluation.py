"""detectron2 ``DatasetEvaluator`` for LVIS-format datasets: APr/APc/APf for boxes and masks,
fast (hotcoco) or reference (lvis-api) backend, per-class outputs, scalars to EventStorage."""
import copy
import itertools
import json
import logging
import math
import os
from collections import OrderedDict

import torch

import detectron2.utils.comm as comm
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.evaluation.coco_evaluation import instances_to_coco_json
from detectron2.utils.events import get_event_storage
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import create_small_table

from .backends import LVIS_MAX_DETS_PER_IMAGE, LVISGroundTruth, evaluate_lvis
from .per_class import format_per_class_tables, per_class_rows, write_per_class_outputs

logger = logging.getLogger(__name__)


def resolve_image_counts(categories, class_image_count=None, source_name=None):
    """Images per category for the per-class outputs, and where they come from.

    ``class_image_count`` (a training set's metadata, a list of {"id", "image_count"} as
    detectron2's LVIS v1 metadata) wins; otherwise the "image_count" of the evaluated
    annotation file's categories, labelled as such (these are not training counts).
    Returns ({category id: count}, source text), or (None, None) when neither exists.
    """
    if class_image_count:
        counts = {int(d["id"]): int(d["image_count"]) for d in class_image_count}
        return counts, f"training images per class (class_image_count of {source_name or 'the training set'})"
    if categories and all("image_count" in c for c in categories.values()):
        counts = {int(i): int(c["image_count"]) for i, c in categories.items()}
        return counts, "images per class in the EVALUATED annotation file (val counts, not training counts)"
    return None, None


class LVISEvaluator(DatasetEvaluator):
    """Evaluate instance detection/segmentation on an LVIS-format dataset (LVIS's own sets or
    any dataset registered LVIS-style, whose metadata has ``json_file``).

    Reports, per task ("bbox", "segm"): AP, AP50, AP75, APs, APm, APl, APr, APc, APf in percent
    (NaN where undefined, e.g. no rare category in the set), keeping each image's
    ``max_dets_per_image`` best detections and LVIS's federated rules. Same behaviour as
    detectron2's ``LVISEvaluator`` for the results file and category ids, plus: a ``backend``
    ("fast": hotcoco, "lvis": lvis-api), per-class JSON/CSV/PNG in ``output_dir``, and the scalars
    put to the current EventStorage (if any) as ``{task}/{metric}``.
    """

    def __init__(self, dataset_name, tasks=None, distributed=True, output_dir=None, *,
                 max_dets_per_image=LVIS_MAX_DETS_PER_IMAGE, backend="fast", per_class=True,
                 image_counts=None, image_count_source=None):
        """
        Args:
            dataset_name: registered dataset with metadata ``json_file`` (LVIS format).
            tasks: ("bbox",), ("segm",) or both; None: inferred from the predictions.
            distributed: gather predictions from all ranks to the main process.
            output_dir: where lvis_instances_results.json and the per-class files go.
            max_dets_per_image: detections kept per image (LVIS: 300); -1 or None: all.
            backend: "fast" (hotcoco) or "lvis" (lvis-api reference); same numbers.
            per_class: print per-class tables and write per_class_ap.{json,csv,png}.
            image_counts: {category id: training images} for the per-class outputs; None: the
                annotation file's "image_count" (val counts, labelled as such).
            image_count_source: text saying where ``image_counts`` come from.
        """
        self._tasks = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets_per_image = max_dets_per_image
        self._per_class = per_class
        self._cpu_device = torch.device("cpu")
        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = PathManager.get_local_path(self._metadata.json_file)
        self._gt = LVISGroundTruth(json_file, backend)
        # Test-set files have no annotations (evaluated by the LVIS server).
        self._do_evaluation = self._gt.num_annotations > 0
        if image_counts is None:
            image_counts, image_count_source = resolve_image_counts(self._gt.categories)
        self._image_counts, self._image_count_source = image_counts, image_count_source

    def reset(self):
        self._predictions = []

    def process(self, inputs, outputs):
        for input, output in zip(inputs, outputs):
            prediction = {"image_id": input["image_id"]}
            if "instances" in output:
                instances = output["instances"].to(self._cpu_device)
                prediction["instances"] = instances_to_coco_json(instances, input["image_id"])
            self._predictions.append(prediction)

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            predictions = self._predictions
        if len(predictions) == 0:
            logger.warning("[LVISEvaluator] Did not receive valid predictions.")
            return {}
        results = list(itertools.chain(*[p.get("instances", []) for p in predictions]))
        self._to_dataset_category_ids(results)
        if self._output_dir:
            PathManager.mkdirs(self._output_dir)
            path = os.path.join(self._output_dir, "lvis_instances_results.json")
            logger.info("Saving results to %s", path)
            with PathManager.open(path, "w") as f:
                f.write(json.dumps(results))
        if not self._do_evaluation:
            logger.info("Annotations are not available for evaluation.")
            return {}
        tasks = self._tasks or (("bbox", "segm") if any("segmentation" in r for r in results) else ("bbox",))
        self._results = OrderedDict()
        per_class_ap = {}
        for task in sorted(tasks):
            logger.info("Evaluating %s with the %s backend, %s detections per image ...",
                        task, self._gt.backend, self._max_dets_per_image)
            res = evaluate_lvis(self._gt, results, task, max_dets_per_image=self._max_dets_per_image)
            self._results[task] = res.metrics_percent()
            per_class_ap[task] = res.per_class_ap
            logger.info("Evaluation results for %s: \n%s", task, create_small_table(self._results[task]))
        if self._per_class and per_class_ap:
            self._report_per_class(per_class_ap)
        self._put_scalars()
        return copy.deepcopy(self._results)

    def _to_dataset_category_ids(self, results):
        # As detectron2: datasets with a dataset-id mapping use it; LVIS-style ones are 1-based.
        if hasattr(self._metadata, "thing_dataset_id_to_contiguous_id"):
            reverse = {v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()}
            for r in results:
                r["category_id"] = reverse[r["category_id"]]
        else:
            for r in results:
                r["category_id"] += 1

    def _report_per_class(self, per_class_ap):
        rows = per_class_rows(self._gt.categories, per_class_ap, self._image_counts)
        logger.info("\n" + format_per_class_tables(rows, self._image_count_source))
        if self._output_dir:
            paths = write_per_class_outputs(rows, self._output_dir, self._image_count_source)
            logger.info("Per-class results written to %s", ", ".join(paths))

    def _put_scalars(self):
        try:
            storage = get_event_storage()
        except AssertionError:  # not inside an EventStorage (e.g. evaluation-only run)
            return
        scalars = {f"{task}/{k}": v for task, m in self._results.items() for k, v in m.items() if not math.isnan(v)}
        storage.put_scalars(**scalars, smoothing_hint=False)


def build_lvis_evaluator(cfg, dataset_name, output_folder=None):
    """The :class:`LVISEvaluator` configured by ``cfg.TEST.LVIS_EVAL`` (see balms_det/config.py),
    with training-image counts per class from ``cfg.DATASETS.TRAIN[0]``'s metadata
    ``class_image_count`` when it has one. ``output_folder`` defaults to OUTPUT_DIR/inference."""
    if output_folder is None:
        output_folder = os.path.join(cfg.OUTPUT_DIR, "inference")
    eval_cfg = cfg.TEST.get("LVIS_EVAL", None)
    backend = eval_cfg.BACKEND if eval_cfg is not None else "fast"
    max_dets = eval_cfg.MAX_DETS_PER_IMAGE if eval_cfg is not None else LVIS_MAX_DETS_PER_IMAGE
    per_class = eval_cfg.PER_CLASS if eval_cfg is not None else True
    image_counts, source = None, None
    if len(cfg.DATASETS.TRAIN):
        train_name = cfg.DATASETS.TRAIN[0]
        class_image_count = MetadataCatalog.get(train_name).get("class_image_count")
        if class_image_count:
            image_counts, source = resolve_image_counts(None, class_image_count, train_name)
    return LVISEvaluator(dataset_name, distributed=True, output_dir=output_folder, max_dets_per_image=max_dets,
                         backend=backend, per_class=per_class, image_counts=image_counts,
                         image_count_source=source)
