"""LVISEvaluator through process()/evaluate() with detectron2 Instances (LVIS and COCO-format sets),
build_lvis_evaluator from a config, ground truth fed back through process(), and tools/lvis_eval.py (in-process;
once as a subprocess, torch-free), bad results files included."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from detectron2.config import get_cfg
from detectron2.data import MetadataCatalog
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from balms_det.config import add_balms_config
from conftest import REPO
from balms_det.evaluation import METRICS, LVISEvaluator, LVISGroundTruth, build_lvis_evaluator, evaluate_lvis

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lvis-api: np.float, logger.warn



@pytest.fixture(scope="module")
def dataset_name(lvis_json):
    name = "balms_test_lvis_v0.5_val_100"
    if name not in MetadataCatalog.list():
        MetadataCatalog.get(name).set(json_file=lvis_json, evaluator_type="lvis")
    train = "balms_test_lvis_train_counts"
    if train not in MetadataCatalog.list():
        MetadataCatalog.get(train).set(class_image_count=[{"id": i, "image_count": 7 * i} for i in range(1, 1231)])
    return name


def fake_model_outputs(lvis_dict, num_images=12, fps_per_image=10, seed=0, contiguous=None):
    """(inputs, outputs) as a model would give them: jittered ground truth + random boxes, with
    masks, contiguous 0-based classes (``contiguous``: {category id: class}; default LVIS's id - 1)."""
    rng = np.random.default_rng(seed)
    contiguous = contiguous or {c["id"]: c["id"] - 1 for c in lvis_dict["categories"]}
    images = sorted(lvis_dict["images"], key=lambda im: im["id"])[:num_images]
    inputs, outputs = [], []
    for img in images:
        h, w = img["height"], img["width"]
        anns = [a for a in lvis_dict["annotations"] if a["image_id"] == img["id"]]
        boxes, classes, masks = [], [], []
        for a in anns:
            x, y, bw, bh = a["bbox"]
            t = rng.normal(0, 0.05, 4) * [bw, bh, bw, bh]
            boxes.append([x + t[0], y + t[1], x + bw + t[2], y + bh + t[3]])
            classes.append(contiguous[a["category_id"]])
            masks.append(mask_util.decode(mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))))
        for _ in range(fps_per_image):
            x0, y0 = rng.uniform(0, w - 50), rng.uniform(0, h - 50)
            boxes.append([x0, y0, x0 + 40, y0 + 40])
            classes.append(int(rng.integers(0, len(contiguous))))
            m = np.zeros((h, w), np.uint8)
            m[int(y0):int(y0) + 40, int(x0):int(x0) + 40] = 1
            masks.append(m)
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.tensor(rng.uniform(0.05, 1.0, len(boxes)), dtype=torch.float32)
        inst.pred_classes = torch.tensor(classes, dtype=torch.int64)
        inst.pred_masks = torch.from_numpy(np.stack(masks).astype(bool)) if masks else torch.zeros((0, h, w), dtype=torch.bool)
        inputs.append({"image_id": img["id"], "height": h, "width": w})
        outputs.append({"instances": inst})
    return inputs, outputs


def test_evaluator_process_evaluate_matches_lvis_api(dataset_name, lvis_dict, lvis_json, tmp_path):
    inputs, outputs = fake_model_outputs(lvis_dict)
    ev = LVISEvaluator(dataset_name, distributed=False, output_dir=str(tmp_path), backend="fast")
    ev.reset()
    for i in range(0, len(inputs), 4):  # batches, as in inference_on_dataset
        ev.process(inputs[i:i + 4], outputs[i:i + 4])
    with EventStorage(0) as storage:
        results = ev.evaluate()
    assert list(results) == ["bbox", "segm"]
    with open(tmp_path / "lvis_instances_results.json") as f:
        saved = json.load(f)
    assert len(saved) == sum(len(o["instances"]) for o in outputs)
    assert {r["category_id"] for r in saved} <= set(range(1, 1231))  # contiguous + 1
    ref_gt = LVISGroundTruth(lvis_json, "lvis")
    for task in ("bbox", "segm"):
        ref = evaluate_lvis(ref_gt, saved, task).metrics_percent()
        for k in METRICS:
            assert abs(results[task][k] - ref[k]) <= 1e-4 or (math.isnan(ref[k]) and math.isnan(results[task][k])), (task, k)
        assert results[task]["AP50"] > 5.0  # ids mapped right: jittered ground truth is found
        assert storage.latest()[f"{task}/AP"][0] == pytest.approx(results[task]["AP"])
    rows = json.loads((tmp_path / "per_class_ap.json").read_text())
    assert "val counts" in rows["image_count_source"]
    evaluated = [r for r in rows["categories"] if r["AP_bbox"] is not None]
    assert evaluated and all(set(r) >= {"category_id", "name", "frequency", "train_image_count", "AP_segm"} for r in evaluated)
    assert (tmp_path / "per_class_ap.csv").read_text().startswith("category_id,name,frequency,train_image_count,AP_bbox,AP_segm")
    assert (tmp_path / "per_class_ap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_build_lvis_evaluator_from_config(dataset_name, lvis_dict, tmp_path):
    cfg = get_cfg()
    add_balms_config(cfg)
    assert cfg.TEST.LVIS_EVAL.BACKEND == "fast" and cfg.TEST.LVIS_EVAL.MAX_DETS_PER_IMAGE == 300
    cfg.TEST.LVIS_EVAL.BACKEND = "lvis"
    cfg.TEST.LVIS_EVAL.MAX_DETS_PER_IMAGE = 5
    cfg.DATASETS.TRAIN = ("balms_test_lvis_train_counts",)
    cfg.OUTPUT_DIR = str(tmp_path)
    ev = build_lvis_evaluator(cfg, dataset_name)
    assert ev._gt.backend == "lvis" and ev._max_dets_per_image == 5
    inputs, outputs = fake_model_outputs(lvis_dict, num_images=3, fps_per_image=3)
    for o in outputs:
        o["instances"].remove("pred_masks")
    ev.reset()
    ev.process(inputs, outputs)
    results = ev.evaluate()  # no EventStorage here: must not fail
    assert list(results) == ["bbox"]
    rows = json.loads((tmp_path / "inference" / "per_class_ap.json").read_text())
    assert rows["image_count_source"].startswith("training images")
    assert rows["categories"][9]["train_image_count"] == 70  # from the training set's metadata


def test_detectron2s_call_with_a_config_is_build_lvis_evaluators(dataset_name, lvis_dict, tmp_path):
    """``LVISEvaluator(name, cfg, True, output_dir)``, the call of detectron2's tools/train_net.py and its
    projects: as detectron2's, a warning and the tasks inferred from the predictions; the settings are
    those build_lvis_evaluator takes from the same config (TEST.LVIS_EVAL, DATASETS.TRAIN)."""
    import logging

    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.TEST.LVIS_EVAL.BACKEND = "lvis"
    cfg.TEST.LVIS_EVAL.MAX_DETS_PER_IMAGE = 5
    cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS = (5, 50)
    cfg.DATASETS.TRAIN = ("balms_test_lvis_train_counts",)
    warned = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = warned.append
    logger = logging.getLogger("balms_det.evaluation.lvis_evaluation")
    logger.addHandler(handler)
    try:
        ev = LVISEvaluator(dataset_name, cfg, True, str(tmp_path / "d2_call"))
    finally:
        logger.removeHandler(handler)
    assert any("config" in r.getMessage() for r in warned)
    ref = build_lvis_evaluator(cfg, dataset_name, str(tmp_path / "built"))
    assert ev._tasks is None and ev._distributed is True
    assert (ev._gt.backend, ev._max_dets_per_image, ev._per_class) == ("lvis", 5, True)
    inputs, outputs = fake_model_outputs(lvis_dict, num_images=3, fps_per_image=3)
    for o in outputs:
        o["instances"].remove("pred_masks")
    results = {}
    for name, e in (("d2_call", ev), ("built", ref)):
        e.reset()
        e.process(inputs, outputs)
        results[name] = e.evaluate()
    assert list(results["d2_call"]) == ["bbox"]  # inferred: no masks
    assert json.dumps(results["d2_call"]) == json.dumps(results["built"])
    rows = {name: json.loads((tmp_path / name / "per_class_ap.json").read_text()) for name in results}
    assert rows["d2_call"] == rows["built"]
    assert rows["d2_call"]["categories"][9]["train_image_count"] == 70  # from DATASETS.TRAIN's metadata
    # the settings come from the config: the keywords it covers are refused beside it
    with pytest.raises(TypeError, match="max_dets_per_image"):
        LVISEvaluator(dataset_name, cfg, True, str(tmp_path), max_dets_per_image=10)


@pytest.fixture(scope="module")
def lvis_eval_tool():
    """tools/lvis_eval.py as a module: main(argv) in-process (as a script: test_cli_on_coco_format_...)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("lvis_eval_tool", os.path.join(REPO, "tools", "lvis_eval.py"))
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    return tool


def test_cli_writes_metrics_in_percent(lvis_eval_tool, lvis_json, lvis_dict, tmp_path, capsys):
    from fake_detections import make_fake_lvis_detections

    results = make_fake_lvis_detections(lvis_dict, seed=5, dets_per_image=40)
    res_file = tmp_path / "model_results.json"
    res_file.write_text(json.dumps(results))
    out = tmp_path / "out"
    lvis_eval_tool.main(["--gt", lvis_json, "--results", str(res_file), "--iou-type", "bbox", "segm",
                         "--output", str(out)])
    stdout = capsys.readouterr().out
    assert "APr" in stdout and "Per-class AP, frequent" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    gt = LVISGroundTruth(lvis_json, "fast")
    for task in ("bbox", "segm"):
        expected = evaluate_lvis(gt, results, task).metrics
        assert set(metrics[task]) == set(METRICS)
        for k in METRICS:
            assert metrics[task][k] == pytest.approx(100 * expected[k], abs=1e-6)
        assert metrics[task]["AP"] > 1.0  # percent, not a fraction
    assert (out / "per_class_ap.png").is_file()

    bad = results[:3] + [dict(results[3], category_id=0)]
    res_file.write_text(json.dumps(bad))
    with pytest.raises(SystemExit) as e:
        lvis_eval_tool.main(["--gt", lvis_json, "--results", str(res_file)])
    assert "results[3]" in str(e.value) and "category_id 0 is not a category" in str(e.value)


def test_cli_nan_in_results_file_says_it_is_not_json_and_where(lvis_eval_tool, lvis_json, lvis_dict, tmp_path,
                                                                monkeypatch):
    # Python's json.dump writes float("nan") as NaN, which is not JSON: orjson (and any strict
    # reader) stops there; the message must say why and at which entry.
    a = lvis_dict["annotations"][0]
    results = [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.5}
               for _ in range(5)]
    results[3]["score"] = float("nan")
    results[4]["bbox"] = [1.0, 2.0, float("inf"), 3.0]
    path = tmp_path / "nan.json"
    with open(path, "w") as f:
        json.dump(results, f)
    assert "NaN" in path.read_text()
    args = ["--gt", lvis_json, "--results", str(path)]
    with pytest.raises(SystemExit, match=r"not valid JSON: NaN at results\[3\]\.score \(line 1, column \d+\)\. "
                                         r"JSON has no NaN or Infinity"):
        lvis_eval_tool.main(args)
    results[3]["score"] = 0.5
    with open(path, "w") as f:
        json.dump(results, f)
    with pytest.raises(SystemExit, match=r"Infinity at results\[4\]\.bbox\[2\]"):
        lvis_eval_tool.main(args)
    from balms_eval import results_io

    monkeypatch.setattr(results_io, "LOCATE_MAX_BYTES", 10)  # a file too large to read twice: the position only
    with pytest.raises(SystemExit, match=r"Infinity at line 1, column \d+ \(char \d+\)\. JSON has no NaN"):
        lvis_eval_tool.main(args)


def test_cli_empty_results_say_the_list_is_empty(lvis_eval_tool, lvis_json, tmp_path, caplog):
    path = tmp_path / "empty.json"
    path.write_text("[]")
    with pytest.raises(SystemExit) as e:
        lvis_eval_tool.main(["--gt", lvis_json, "--results", str(path)])
    message = str(e.value)
    assert "results list is empty" in message and "ground truth" not in message, message
    # the API gives NaN metrics, and says why
    with caplog.at_level("WARNING", logger="balms_eval"):
        res = evaluate_lvis(LVISGroundTruth(lvis_json, "fast"), [], "bbox")
    assert all(math.isnan(v) for v in res.metrics.values())
    assert "results list is empty" in caplog.text and "ground truth" not in caplog.text, caplog.text


def test_ground_truth_fed_back_through_process_scores_100(datasets_dir, tmp_path):
    # The ground truth of lt_shapes_mini val given to process() as a model's output (score 1, XYXY
    # boxes, bit masks, contiguous classes): process()'s conversion must give back the same boxes
    # and masks, so every AP that is defined is 100.
    name = "lt_shapes_mini_val"
    json_file = MetadataCatalog.get(name).json_file  # (generates lt_shapes_mini)
    with open(json_file) as f:
        val = json.load(f)
    contiguous = {c: i for i, c in enumerate(sorted(c["id"] for c in val["categories"]))}
    inputs, outputs = [], []
    for img in sorted(val["images"], key=lambda im: im["id"]):
        h, w = img["height"], img["width"]
        anns = [a for a in val["annotations"] if a["image_id"] == img["id"]]
        inst = Instances((h, w))
        inst.pred_boxes = Boxes(torch.tensor([[x, y, x + bw, y + bh] for x, y, bw, bh in (a["bbox"] for a in anns)],
                                             dtype=torch.float32).reshape(-1, 4))
        inst.scores = torch.ones(len(anns))
        inst.pred_classes = torch.tensor([contiguous[a["category_id"]] for a in anns], dtype=torch.int64)
        masks = [mask_util.decode(mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))) for a in anns]
        inst.pred_masks = torch.from_numpy(np.stack(masks).astype(bool) if masks else np.zeros((0, h, w), bool))
        inputs.append({"image_id": img["id"], "height": h, "width": w})
        outputs.append({"instances": inst})
    assert len(inputs) == 20 and sum(len(o["instances"]) for o in outputs) == len(val["annotations"]) > 40
    ev = LVISEvaluator(name, distributed=False, output_dir=str(tmp_path))
    ev.reset()
    for i in range(0, len(inputs), 4):
        ev.process(inputs[i:i + 4], outputs[i:i + 4])
    results = ev.evaluate()
    for task in ("bbox", "segm"):
        defined = {k: v for k, v in results[task].items() if not math.isnan(v)}
        assert {"AP", "AP50", "AP75", "APs", "APm", "APr", "APc"} <= set(defined), (task, results[task])
        assert all(v == pytest.approx(100.0, abs=1e-9) for v in defined.values()), (task, results[task])
    rows = json.loads((tmp_path / "per_class_ap.json").read_text())["categories"]
    evaluated = [r for r in rows if r["AP_bbox"] is not None]
    assert len(evaluated) == len(val["categories"])  # every class is in val
    assert all(r["AP_bbox"] == pytest.approx(100.0) and r["AP_segm"] == pytest.approx(100.0) for r in evaluated)


def _as_coco(lvis_style_json, path):
    """An LVIS-format file as plain COCO: no federated fields, no frequency or counts, category ids
    3 * id + 5 (not 1..K, as COCO's own), every 10th instance a crowd region."""
    data = json.loads(open(lvis_style_json).read())
    new_id = {c["id"]: 3 * c["id"] + 5 for c in data["categories"]}
    coco = {
        "images": [{k: v for k, v in im.items() if k not in ("neg_category_ids", "not_exhaustive_category_ids")}
                   for im in data["images"]],
        "annotations": [dict(a, category_id=new_id[a["category_id"]], iscrowd=int(k % 10 == 9))
                        for k, a in enumerate(data["annotations"])],
        "categories": [{"id": new_id[c["id"]], "name": c["name"]} for c in data["categories"]],
    }
    path.write_text(json.dumps(coco))
    return coco


def test_coco_format_dataset_needs_only_build_lvis_evaluator(lt_shapes, tmp_path):
    # A new user's script: COCO-format train/val registered the stock detectron2 way, training
    # counts from cfg.DATASETS.TRAIN (no class_image_count: counted from the dicts), exhaustive rules.
    from detectron2.data import DatasetCatalog
    from detectron2.data.datasets import register_coco_instances

    from balms_eval import image_counts_from_dataset

    train_json, val_json = tmp_path / "train.json", tmp_path / "val.json"
    train = _as_coco(lt_shapes["train_json"], train_json)
    val = _as_coco(lt_shapes["val_json"], val_json)
    register_coco_instances("coco_lt_train", {}, str(train_json), lt_shapes["train_images"])
    register_coco_instances("coco_lt_val", {}, str(val_json), lt_shapes["val_images"])
    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.DATASETS.TRAIN = ("coco_lt_train",)
    cfg.OUTPUT_DIR = str(tmp_path / "run")
    ev = build_lvis_evaluator(cfg, "coco_lt_val")
    DatasetCatalog.get("coco_lt_val")  # what building the test loader does (fills the id map)
    id_map = MetadataCatalog.get("coco_lt_val").thing_dataset_id_to_contiguous_id
    inputs, outputs = fake_model_outputs(val, num_images=40, fps_per_image=6, contiguous=id_map)
    ev.reset()
    for i in range(0, len(inputs), 8):
        ev.process(inputs[i:i + 8], outputs[i:i + 8])
    results = ev.evaluate()  # distributed=True in one process: the gather path
    out = tmp_path / "run" / "inference"
    saved = json.loads((out / "lvis_instances_results.json").read_text())
    assert len(saved) == sum(len(o["instances"]) for o in outputs)
    assert {r["category_id"] for r in saved} <= set(id_map)  # mapped back to the file's ids
    counts = image_counts_from_dataset(train)
    ref_gt = LVISGroundTruth(str(val_json), "lvis", image_counts=counts)  # pycocotools
    assert ref_gt.labelling == "exhaustive"
    for task in ("bbox", "segm"):
        ref = evaluate_lvis(ref_gt, saved, task).metrics_percent()
        for k in METRICS:
            assert abs(results[task][k] - ref[k]) <= 1e-4 or (math.isnan(ref[k]) and math.isnan(results[task][k])), (task, k)
        assert results[task]["AP50"] > 5.0 and not math.isnan(results[task]["APr"])
    rows = json.loads((out / "per_class_ap.json").read_text())
    assert rows["labelling"] == "exhaustive"
    assert "training image counts" in rows["groups_source"] and "coco_lt_train" in rows["groups_source"]
    assert {r["frequency"] for r in rows["categories"]} == {"r", "c", "f"}
    by_id = {r["category_id"]: r for r in rows["categories"]}
    assert all(by_id[c]["train_image_count"] == n for c, n in counts.items())


def test_coco_format_dataset_without_training_counts_says_which_key(lt_shapes, tmp_path):
    from detectron2.data.datasets import register_coco_instances

    _as_coco(lt_shapes["val_json"], tmp_path / "val.json")
    register_coco_instances("coco_lt_val_nocounts", {}, str(tmp_path / "val.json"), lt_shapes["val_images"])
    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.DATASETS.TRAIN = ()
    with pytest.raises(ValueError, match="cfg.DATASETS.TRAIN"):
        build_lvis_evaluator(cfg, "coco_lt_val_nocounts", str(tmp_path))


def test_cli_on_coco_format_with_train_gt_imports_no_torch(lvis_eval_tool, lt_shapes, tmp_path):
    from fake_detections import make_fake_lvis_detections

    val = _as_coco(lt_shapes["val_json"], tmp_path / "val.json")
    _as_coco(lt_shapes["train_json"], tmp_path / "train.json")
    (tmp_path / "res.json").write_text(json.dumps(make_fake_lvis_detections(val, seed=1, dets_per_image=30)))
    code = ("import runpy, sys; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__'); "
            "print('heavy modules:', sorted(m for m in ('torch', 'detectron2') if m in sys.modules))")
    args = [sys.executable, "-c", code, os.path.join(REPO, "tools", "lvis_eval.py"), "--gt", str(tmp_path / "val.json"),
            "--results", str(tmp_path / "res.json")]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(args + ["--train-gt", str(tmp_path / "train.json"), "--frequency-thresholds", "5", "50"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "heavy modules: []" in proc.stdout
    assert "exhaustive labelling" in proc.stdout and "rare <= 5 < common <= 50" in proc.stdout
    with pytest.raises(SystemExit, match="pass --train-gt"):  # (in-process: only the message is checked)
        lvis_eval_tool.main(args[4:])


def _small_coco(path, images_per_class):
    """A COCO-format file: class c (id c + 1) in images_per_class[c] images, one 10 x 10 box each."""
    images, anns = [], []
    for c, n in enumerate(images_per_class):
        for _ in range(n):
            i = len(images) + 1
            images.append({"id": i, "file_name": f"{i}.png", "height": 32, "width": 32})
            anns.append({"id": len(anns) + 1, "image_id": i, "category_id": c + 1, "bbox": [4.0, 6.0, 10.0, 10.0],
                         "area": 100.0, "iscrowd": 0})
    cats = [{"id": c + 1, "name": f"class{c + 1}"} for c in range(len(images_per_class))]
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return {"images": images, "annotations": anns}


def test_an_empty_frequency_group_is_said_in_the_log_and_the_per_class_outputs(tmp_path, caplog):
    """A small COCO-format set under LVIS's thresholds has no frequent class: APf stays NaN (the mean over no
    class), and the log, the per-class table and per_class_ap.json say which group is empty, the largest
    training count, and thresholds that split the classes (the tertiles of their training image counts)."""
    import logging
    import uuid

    from detectron2.data.datasets import register_coco_instances

    tag = uuid.uuid4().hex[:6]
    _small_coco(tmp_path / "train.json", [1, 3, 12])
    val = _small_coco(tmp_path / "val.json", [1, 1, 1])
    register_coco_instances(f"small_train_{tag}", {}, str(tmp_path / "train.json"), str(tmp_path))
    register_coco_instances(f"small_val_{tag}", {}, str(tmp_path / "val.json"), str(tmp_path))
    inputs = [{"image_id": im["id"], "height": 32, "width": 32} for im in val["images"]]
    outputs = []
    for a in val["annotations"]:  # the ground truth as detections
        inst = Instances((32, 32))
        inst.pred_boxes = Boxes(torch.tensor([[4.0, 6.0, 14.0, 16.0]]))
        inst.scores = torch.ones(1)
        inst.pred_classes = torch.tensor([a["category_id"] - 1])
        outputs.append({"instances": inst})

    def evaluate(out, thresholds):
        ev = LVISEvaluator(f"small_val_{tag}", ("bbox",), distributed=False, output_dir=str(out),
                           train_datasets=[f"small_train_{tag}"], frequency_thresholds=thresholds)
        ev.reset()
        ev.process(inputs, outputs)
        with caplog.at_level(logging.INFO, logger="balms_det.evaluation.lvis_evaluation"):
            caplog.clear()
            return ev.evaluate()["bbox"], json.loads((out / "per_class_ap.json").read_text())["frequency_groups"]

    res, groups = evaluate(tmp_path / "lvis", (10, 100))
    assert math.isnan(res["APf"]) and res["APr"] == pytest.approx(100.0) and res["APc"] == pytest.approx(100.0)
    note = ("no category is frequent (> 100 training images) under the frequency thresholds [10, 100] "
            "(TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS; LVISEvaluator's frequency_thresholds), so APf is NaN: the 3 "
            "classes have 1 to 12 training images (the most: 'class3'); [1, 3], the tertiles of those counts, "
            "would put 1 / 1 / 1 of them in rare / common / frequent")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [f"Frequency groups: {note}"], warnings
    assert f"(empty groups: {note})" in caplog.text  # under the per-class tables
    assert groups == {"thresholds": [10, 100], "categories": {"r": 2, "c": 1, "f": 0}, "empty": ["f"],
                      "suggested_thresholds": [1, 3], "note": note}
    res, groups = evaluate(tmp_path / "split", (1, 3))  # the suggested thresholds: every group has its class
    assert all(res[k] == pytest.approx(100.0) for k in ("APr", "APc", "APf")), res
    assert groups["empty"] == [] and groups["note"] is None and "Frequency groups" not in caplog.text
