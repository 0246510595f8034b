"""tools/train_net.py end to end on lt_shapes_mini: train, --eval-only, --resume, 2 processes, errors."""
import json
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


def test_eval_only_from_checkpoint(trained, datasets_dir, tmp_path):
    out, _ = trained
    proc = _train(datasets_dir, tmp_path, "MODEL.WEIGHTS", str(out / "model_final.pth"),
                  args=["--eval-only"])
    assert "model_final.pth" in proc.stdout
    assert proc.stdout.count("copypaste: AP,AP50,AP75,APs,APm,APl,APr,APc,APf") == 2  # bbox, segm
    assert "Starting training" not in proc.stdout
    final = _metrics(tmp_path)[-1]  # the results, as a training run's final evaluation line
    assert final["bbox/AP"] == pytest.approx(_metrics(out)[-1]["bbox/AP"]) and "segm/APr" in final


def test_resume_continues_from_last_checkpoint(trained, datasets_dir, tmp_path):
    out, _ = trained
    # Copy the run, drop the final checkpoint so that "last" is the one saved at iteration 2.
    import shutil

    run = tmp_path / "run"
    shutil.copytree(out, run)
    os.remove(run / "model_final.pth")
    (run / "last_checkpoint").write_text("model_0000001.pth")
    proc = _train(datasets_dir, run, "SOLVER.MAX_ITER", "6", args=["--resume"])
    assert "Starting training from iteration 2" in proc.stdout
    iters = [m["iteration"] for m in _metrics(run) if "total_loss" in m]
    assert max(iters) == 5 and os.path.isfile(run / "model_final.pth")


def test_two_processes_on_cpu(datasets_dir, tmp_path):
    proc = _train(datasets_dir, tmp_path, args=["--num-gpus", "2"])
    assert "world size: 2" in proc.stdout.lower() or "Rank of current process: 1" in proc.stdout
    iters = [m["iteration"] for m in _metrics(tmp_path) if "total_loss" in m]
    assert max(iters) == 3 and os.path.isfile(tmp_path / "model_final.pth")


def test_config_key_typo_names_key_and_file(datasets_dir, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(f'_BASE_: "{CONFIG}"\nMODEL:\n  ROI_HEADS:\n    NUM_CLASSE: 3\n')
    proc = run_tool(["tools/train_net.py", "--config-file", str(bad)], datasets_dir, check=False)
    assert proc.returncode != 0
    assert "NUM_CLASSE" in proc.stdout and "bad.yaml" in proc.stdout
    proc = run_tool(["tools/train_net.py", "--config-file", CONFIG, "SOLVER.MAX_ITR", "3"],
                    datasets_dir, check=False)
    assert proc.returncode != 0 and "SOLVER.MAX_ITR" in proc.stdout


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
