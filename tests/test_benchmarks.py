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
