"""Distributed LVIS evaluation equals one process: LVISEvaluator on 2 gloo ranks, one of which has no
detections, against one process on the same inputs; ResultColumns.concat / Masks.concat, which join
the ranks' columns. (tools/train_net.py --eval-only on 1 vs 2 processes: tests/test_train_net.py.)"""
import json
import math
import os

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_util

from balms_eval import Masks, ResultColumns
from balms_eval.columns import ColumnsBuilder
from conftest import end_gloo_worker, run_tool
from test_evaluation_evaluator import fake_model_outputs

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

TESTS = os.path.dirname(os.path.abspath(__file__))
DATASET = "balms_test_lvis_v0.5_val_100"


# ---- the columns the ranks' detections are joined in ------------------------------------------------

def _part(image_ids, seed, h=12, w=10):
    """Columns of len(image_ids) detections with random masks (distinct RLE counts of varied lengths)."""
    rng = np.random.default_rng(seed)
    n = len(image_ids)
    bits = (rng.random((h, w, n)) < rng.uniform(0.1, 0.9, n)).astype(np.uint8)
    rles = mask_util.encode(np.asfortranarray(bits)) if n else []
    return ResultColumns(np.asarray(image_ids, np.int64), rng.integers(1, 9, n), rng.random(n), rng.random((n, 4)),
                         Masks.from_rles(rles))


def _columns_as_tuples(c):
    return [(e["image_id"], e["category_id"], e["score"], e["bbox"], e["segmentation"]["size"],
             e["segmentation"]["counts"]) for e in c.entries()]


def test_concat_offsets_rows_and_masks_with_an_empty_part_in_the_middle():
    a, empty, b = _part([1, 1, 2], seed=0), _part([], seed=1), _part([3, 4, 4, 5], seed=2)
    shared = _part([6, 7, 8, 9, 10], seed=3)
    taken = shared.take(np.array([4, 1]))  # shares shared's counts buffer: offsets past unused bytes
    parts = [a, empty, b, taken]
    joined = ResultColumns.concat(parts)
    assert len(joined) == 9
    assert _columns_as_tuples(joined) == sum((_columns_as_tuples(p) for p in parts), [])
    assert joined.image_id.tolist() == [1, 1, 2, 3, 4, 4, 5, 10, 7]
    # each mask decodes to its part's mask, at the right row
    for k, (p, i) in enumerate([(p, i) for p in parts for i in range(len(p))]):
        decoded = [mask_util.decode(m.rles(j, j + 1)[0]) for m, j in ((joined.masks, k), (p.masks, i))]
        assert np.array_equal(*decoded)
    # Masks.concat directly: offsets are byte offsets into the joined counts; areas kept when every part has them
    for p in parts:
        p.masks.compute_area()
    masks = Masks.concat([p.masks for p in parts])
    assert masks.counts == b"".join(p.masks.counts for p in parts)
    starts = [len(a.masks.counts) + s for s in b.masks.start.tolist()]
    assert masks.start.tolist()[:3] == a.masks.start.tolist() and masks.start.tolist()[3:7] == starts
    assert masks.area.tolist() == sum((p.masks.area.tolist() for p in parts), [])
    assert masks.rles() == joined.masks.rles()
    # the per-image builder (process()) joins the same way
    builder = ColumnsBuilder()
    for p in parts:
        builder.add(p)
    assert _columns_as_tuples(builder.build()) == _columns_as_tuples(joined)
    # only empty parts, or none
    assert len(ResultColumns.concat([empty, empty])) == 0 and len(ResultColumns.concat([])) == 0
    assert ResultColumns.concat([empty, None]).masks.rles() == []


# ---- LVISEvaluator on 2 gloo ranks -----------------------------------------------------------------

def _register(lvis_json):
    from detectron2.data import MetadataCatalog

    if DATASET not in MetadataCatalog.list():
        MetadataCatalog.get(DATASET).set(json_file=lvis_json, evaluator_type="lvis")


def _empty_outputs(inputs):
    from detectron2.structures import Boxes, Instances

    outputs = []
    for x in inputs:
        inst = Instances((x["height"], x["width"]))
        inst.pred_boxes = Boxes(torch.zeros(0, 4))
        inst.scores = torch.zeros(0)
        inst.pred_classes = torch.zeros(0, dtype=torch.int64)
        inst.pred_masks = torch.zeros(0, x["height"], x["width"], dtype=torch.bool)
        outputs.append({"instances": inst})
    return outputs


def _shares(lvis_dict):
    """{scenario: [(inputs, outputs) of rank 0, of rank 1]}: 12 images, the ranks' shares unequal,
    one rank's images without detections (Instances of length 0)."""
    inputs, outputs = fake_model_outputs(lvis_dict, num_images=12, fps_per_image=8, seed=3)
    return {
        "rank1_empty": [(inputs[:7], outputs[:7]), (inputs[7:], _empty_outputs(inputs[7:]))],
        "rank0_empty": [(inputs[:4], _empty_outputs(inputs[:4])), (inputs[4:], outputs[4:])],
    }


def _evaluate(inputs, outputs, output_dir, distributed):
    from balms_det.evaluation import LVISEvaluator

    ev = LVISEvaluator(DATASET, distributed=distributed, output_dir=output_dir)
    ev.reset()
    for i in range(0, len(inputs), 3):  # batches, as inference_on_dataset gives them
        ev.process(inputs[i:i + 3], outputs[i:i + 3])
    return ev.evaluate()


def _rank_worker(rank, store, out_dir, shares):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    for scenario, per_rank in shares.items():
        results = _evaluate(*per_rank[rank], os.path.join(out_dir, scenario), distributed=True)
        assert (results != {}) == (rank == 0), results  # the gathered results are the main process's
        if rank == 0:
            with open(os.path.join(out_dir, scenario, "results.json"), "w") as f:
                json.dump(results, f)
    end_gloo_worker()


def run_two_ranks(lvis_json, out_dir):
    """Evaluate :func:`_shares` on 2 gloo ranks, forked from a fresh process (hotcoco's thread pool,
    once started, does not survive a fork: a pytest process that already evaluated cannot fork)."""
    import torch.multiprocessing as mp

    from balms_eval import per_class

    per_class.plot_per_class_ap = lambda *args: False  # (the plot is not compared: skip its ~1 s)
    _register(lvis_json)
    with open(lvis_json) as f:
        shares = _shares(json.load(f))
    mp.start_processes(_rank_worker, args=(os.path.join(out_dir, "store"), out_dir, shares), nprocs=2,
                       start_method="fork")


def _same(a, b):
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def test_two_ranks_one_without_detections_equal_one_process(lvis_json, lvis_dict, datasets_dir, tmp_path, monkeypatch):
    run_tool(["-c", f"import sys; sys.path.insert(0, {TESTS!r}); import test_evaluation_distributed as t; "
                    f"t.run_two_ranks({lvis_json!r}, {str(tmp_path)!r})"], datasets_dir, timeout=300)
    from balms_eval import per_class

    monkeypatch.setattr(per_class, "plot_per_class_ap", lambda *args: False)
    _register(lvis_json)
    for scenario, per_rank in _shares(lvis_dict).items():
        inputs = per_rank[0][0] + per_rank[1][0]
        outputs = per_rank[0][1] + per_rank[1][1]
        single = _evaluate(inputs, outputs, str(tmp_path / "single" / scenario), distributed=False)
        two = json.loads((tmp_path / scenario / "results.json").read_text())
        assert list(two) == list(single) == ["bbox", "segm"]
        for task in single:
            assert single[task].keys() == two[task].keys()
            for k, v in single[task].items():
                assert _same(two[task][k], v), (scenario, task, k, two[task][k], v)
        assert single["segm"]["AP50"] > 1.0  # real numbers: the jittered ground truth is found
        per_class_single = json.loads((tmp_path / "single" / scenario / "per_class_ap.json").read_text())
        per_class_two = json.loads((tmp_path / scenario / "per_class_ap.json").read_text())
        assert per_class_two == per_class_single
        assert sum(r["AP_segm"] is not None for r in per_class_two["categories"]) > 20
        saved = [json.loads((tmp_path / d / "lvis_instances_results.json").read_text())
                 for d in (scenario, os.path.join("single", scenario))]
        assert len(saved[0]) == len(saved[1]) == sum(len(o["instances"]) for o in outputs) > 50
        assert saved[0] == saved[1]  # every detection of both ranks, in rank order
