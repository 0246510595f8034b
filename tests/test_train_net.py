"""tools/train_net.py end to end on lt_shapes_mini: train, --eval-only (1 and 2 processes: the same numbers),
--resume, 2 processes, errors."""
import json
import math
import os

import pytest

from conftest import REPO, run_tool

CONFIG = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml")
TINY = [
    "DATASETS.TRAIN", "('lt_shapes_mini_train',)", "DATASETS.TEST", "('lt_shapes_mini_val',)",
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "4", "SOLVER.STEPS", "()",
    "SOLVER.WARMUP_ITERS", "2", "SOLVER.CHECKPOINT_PERIOD", "2", "DATALOADER.NUM_WORKERS", "0",
    "TEST.DETECTIONS_PER_IMAGE", "20", "MODEL.RPN.POST_NMS_TOPK_TEST", "50",
]


def _metrics(out):
    with open(os.path.join(out, "metrics.json")) as f:
        return [json.loads(line) for line in f]


def _train(datasets_dir, out, *extra, args=()):
    return run_tool(["tools/train_net.py", "--config-file", CONFIG, *args, *TINY,
                     "OUTPUT_DIR", str(out), *extra], datasets_dir)


@pytest.fixture(scope="module")
def trained(datasets_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("train")
    proc = _train(datasets_dir, out)
    return out, proc.stdout


def test_train_then_evaluate(trained):
    out, log = trained
    assert os.path.isfile(out / "model_final.pth") and os.path.isfile(out / "model_0000001.pth")
    iters = [m["iteration"] for m in _metrics(out) if "total_loss" in m]
    assert iters and max(iters) == 3
    assert "copypaste: AP,AP50,AP75,APs,APm,APl,APr,APc,APf" in log  # final LVIS evaluation
    assert "Starting training from iteration 0" in log


ODD = "lt_shapes_mini_val_odd7"  # 7 images: 4 and 3 on 2 ranks
ODD_MODULE = """\"\"\"Registers {name}: the first 7 images of lt_shapes_mini_val (MODEL.BALMS.CUSTOM_IMPORTS).\"\"\"
from balms_det.data.lvis_style import register_lvis_style_instances

register_lvis_style_instances({name!r}, {json_file!r}, {image_root!r})
"""


@pytest.fixture(scope="module")
def odd_subset(trained, tmp_path_factory):
    """Config overrides importing a file that registers ODD (its annotation file: those 7 images)."""
    from detectron2.data import MetadataCatalog

    meta = MetadataCatalog.get("lt_shapes_mini_val")
    with open(meta.json_file) as f:
        val = json.load(f)
    images = sorted(val["images"], key=lambda im: im["id"])[:7]
    ids = {im["id"] for im in images}
    folder = tmp_path_factory.mktemp("odd")
    (folder / "val7.json").write_text(json.dumps(dict(val, images=images, annotations=[
        a for a in val["annotations"] if a["image_id"] in ids])))
    module = folder / "register_val7.py"
    module.write_text(ODD_MODULE.format(name=ODD, json_file=str(folder / "val7.json"), image_root=meta.image_root))
    return ["MODEL.BALMS.CUSTOM_IMPORTS", f"['{module}']"]


@pytest.fixture(scope="module")
def eval_only(trained, odd_subset, datasets_dir, tmp_path_factory):
    """--eval-only of the trained model in one process, on lt_shapes_mini_val and ODD."""
    out, _ = trained
    run = tmp_path_factory.mktemp("eval_only")
    proc = _train(datasets_dir, run, "MODEL.WEIGHTS", str(out / "model_final.pth"),
                  "DATASETS.TEST", f"('lt_shapes_mini_val', '{ODD}')", *odd_subset, args=["--eval-only"])
    return run, proc.stdout


def test_eval_only_from_checkpoint(trained, eval_only):
    out, _ = trained
    run, log = eval_only
    assert "model_final.pth" in log
    assert log.count("copypaste: AP,AP50,AP75,APs,APm,APl,APr,APc,APf") == 4  # bbox, segm of each test set
    assert "Starting training" not in log
    final = _metrics(run)[-1]  # the results, as a training run's final evaluation line
    assert final["lt_shapes_mini_val/bbox/AP"] == pytest.approx(_metrics(out)[-1]["bbox/AP"])
    assert f"{ODD}/segm/APr" in final


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_eval_only_on_two_processes_equals_one(trained, eval_only, odd_subset, datasets_dir, tmp_path):
    # 7 images on 2 gloo ranks (4 + 3): the gathered evaluation equals one process's, exactly.
    out, _ = trained
    one, one_log = eval_only
    proc = _train(datasets_dir, tmp_path, "MODEL.WEIGHTS", str(out / "model_final.pth"), "DATASETS.TEST", f"('{ODD}',)",
                  *odd_subset, args=["--eval-only", "--num-gpus", "2"])
    assert "Start inference on 4 batches" in proc.stdout  # rank 0's share (rank 1: 3)
    assert "Start inference on 7 batches" in one_log
    expected = {k[len(ODD) + 1:]: v for k, v in _metrics(one)[-1].items() if k.startswith(ODD + "/")}
    got = _metrics(tmp_path)[-1]
    assert len(expected) == 18 and got.keys() == expected.keys()
    assert all(_same(got[k], v) for k, v in expected.items()), {k: (got[k], v) for k, v in expected.items()}
    # (the 4-iteration model's APs are ~0 here: the detections below are what tells the ranks' results apart)
    folder = os.path.join("inference", ODD)
    per_class = [json.loads((run / folder / "per_class_ap.json").read_text()) for run in (one, tmp_path)]
    assert per_class[0] == per_class[1]
    assert sum(r["AP_segm"] is not None for r in per_class[0]["categories"]) >= 5
    detections = [json.loads((run / folder / "lvis_instances_results.json").read_text()) for run in (one, tmp_path)]
    assert len(detections[0]) == len(detections[1]) > 10
    assert detections[0] == detections[1]  # both ranks' detections, in image order


def test_resume_continues_from_last_checkpoint(trained, datasets_dir, tmp_path):
    out, _ = trained
    # Copy the run, drop the final checkpoint so that "last" is the one saved at iteration 2.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    os.remove(run / "model_final.pth")
    (run / "last_checkpoint").write_text("model_0000001.pth")
    proc = _train(datasets_dir, run, "SOLVER.MAX_ITER", "6", "DATASETS.TEST", "()", args=["--resume"])  # (no eval)
    assert "Starting training from iteration 2" in proc.stdout
    iters = [m["iteration"] for m in _metrics(run) if "total_loss" in m]
    assert max(iters) == 5 and os.path.isfile(run / "model_final.pth")


def test_two_processes_on_cpu(datasets_dir, tmp_path):
    # (no final evaluation: 2-process evaluation is test_eval_only_on_two_processes_equals_one's)
    proc = _train(datasets_dir, tmp_path, "DATASETS.TEST", "()", args=["--num-gpus", "2"])
    assert "world size: 2" in proc.stdout.lower() or "Rank of current process: 1" in proc.stdout
    iters = [m["iteration"] for m in _metrics(tmp_path) if "total_loss" in m]
    assert max(iters) == 3 and os.path.isfile(tmp_path / "model_final.pth")


def test_config_key_typo_names_key_and_file(tmp_path):
    # (in-process: build_config is what the tool's setup() calls; test_unknown_dataset_name runs the tool)
    from balms_det.engine import build_config

    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{CONFIG}"\nMODEL:\n  ROI_HEADS:\n    NUM_CLASSE: 3\n')
    with pytest.raises(KeyError, match=r"bad\.yaml.*NUM_CLASSE"):
        build_config(str(bad))
    with pytest.raises(AssertionError, match=r"SOLVER\.MAX_ITR"):
        build_config(CONFIG, ["SOLVER.MAX_ITR", "3"])


def test_unknown_dataset_name(datasets_dir, tmp_path):
    proc = run_tool(["tools/train_net.py", "--config-file", CONFIG, *TINY, "OUTPUT_DIR", str(tmp_path),
                     "DATASETS.TRAIN", "('lt_shapez_train',)"], datasets_dir, check=False)
    assert proc.returncode != 0 and "lt_shapez_train" in proc.stdout and "not registered" in proc.stdout


def test_fast_evaluation_equals_lvis_api_on_model_output(trained, datasets_dir):
    """Real Mask R-CNN detections (empty masks, ties and all): both backends agree."""
    import math

    from balms_det.evaluation import METRICS, LVISGroundTruth, evaluate_lvis

    out, _ = trained
    with open(out / "inference" / "lt_shapes_mini_val" / "lvis_instances_results.json") as f:
        results = json.load(f)
    assert len(results) > 100
    gt_json = os.path.join(datasets_dir, "lt_shapes_mini", "lt_shapes_val.json")
    for iou_type in ("bbox", "segm"):
        fast = evaluate_lvis(LVISGroundTruth(gt_json, "fast"), results, iou_type)
        ref = evaluate_lvis(LVISGroundTruth(gt_json, "lvis"), results, iou_type)
        for k in METRICS:
            a, b = fast.metrics[k], ref.metrics[k]
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= 1e-6, (iou_type, k, a, b)
