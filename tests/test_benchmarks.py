"""The benchmark scripts still run (a small smoke run; their timings are not checked here)."""
import re

from conftest import run_tool


def test_bench_lvis_eval_runs_and_reports_parity(lvis_json, tmp_path):
    out = run_tool(["benchmarks/bench_lvis_eval.py", "--gt", lvis_json, "--dets-per-image", "20",
                    "--repeats", "1"], str(tmp_path)).stdout
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^(bbox|segm)\s+\|.*\|\s*([0-9.e+-]+)\s*$", out, re.M)}
    assert set(rows) == {"bbox", "segm"}, out
    assert all(float(delta) <= 1e-6 for delta in rows.values()), out  # the fast path equals lvis-api
    assert re.search(r"^target \(>= 20x.*bbox .*segm ", out, re.M), out


def test_bench_lvis_eval_whole_process_and_scale_modes_run(lvis_json, tmp_path):
    out = run_tool(["benchmarks/bench_lvis_eval.py", "--gt", lvis_json, "--dets-per-image", "10", "--repeats", "1",
                    "--whole-process"], str(tmp_path)).stdout
    m = re.search(r"^lvis-api process: [0-9.]+ s \| tools/lvis_eval.py: [0-9.]+ s \| ratio [0-9.]+x \| "
                  r"max \|delta\| ([0-9.e+-]+)", out, re.M)
    assert m and float(m.group(1)) <= 1e-6, out  # both processes give the same metrics
    assert re.search(r"^target \(whole process >= 10x", out, re.M), out
    out = run_tool(["benchmarks/bench_lvis_eval.py", "--gt", lvis_json, "--dets-per-image", "10", "--scale",
                    "--replicate", "2"], str(tmp_path)).stdout
    assert re.search(r"^scale: 200 images, 2,000 detections", out, re.M), out
    assert re.search(r"s wall; peak RSS [0-9.]+ GB", out) and re.search(r"^target \(<= 4 GB", out, re.M), out


def test_bench_head_speed_runs_every_loss_interleaved(datasets_dir):
    out = run_tool(["benchmarks/bench_head_speed.py", "--iters", "1", "--warmup", "0", "--size", "96",
                    "--cls-losses", "balanced_softmax", "seesaw:normed", "eqlv2", "--",
                    "MODEL.ROI_HEADS.NUM_CLASSES", "60"], datasets_dir).stdout
    for name in ("balanced_softmax", "seesaw:normed", "eqlv2"):
        assert re.search(rf"^{re.escape(name)}\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+\s+[0-9.]+$", out, re.M), out
    assert "classes: 60" in out and re.search(r"^target <= 1.05x: (met|NOT met)", out, re.M), out


def test_compare_heads_tables_finished_runs_with_summary_and_plot(tmp_path):
    """Finished runs are not repeated: their final metrics are tabled (mean ± std over seeds),
    summarised to JSON and drawn; the numbers come from the runs' metrics.json."""
    import json

    for name, base in (("mask_rcnn_R18_FPN_softmax", 50.0), ("mask_rcnn_R18_FPN_seesaw", 60.0)):
        for seed in (0, 1):
            out = tmp_path / "runs" / f"{name}_itfull_s{seed}"
            out.mkdir(parents=True)
            final = {f"{t}/{m}": base + seed * 2 + i for i, (t, m) in enumerate(
                (t, m) for t in ("bbox", "segm") for m in ("AP", "AP50", "APr", "APc", "APf"))}
            with open(out / "metrics.json", "w") as f:  # a training line, then the final evaluation
                f.write(json.dumps({"iteration": 9, "total_loss": 1.0}) + "\n" + json.dumps(final) + "\n")
    summary, plot = tmp_path / "summary.json", tmp_path / "plot.png"
    out = run_tool(["benchmarks/compare_heads.py", "--configs", "configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml",
                    "configs/LTShapes/mask_rcnn_R18_FPN_seesaw.yaml", "--seeds", "0", "1",
                    "--output", str(tmp_path / "runs"), "--summary", str(summary), "--plot", str(plot)],
                   str(tmp_path)).stdout
    assert "$" not in out, out  # nothing trained
    assert re.search(r"^mask_rcnn_R18_FPN_seesaw\s+61\.0±1\.4\s+62\.0±1\.4", out, re.M), out
    stats = json.loads(summary.read_text())["configs"]["mask_rcnn_R18_FPN_softmax"]["segm/APr"]
    assert stats["per_seed"] == [57.0, 59.0] and stats["mean"] == 58.0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
