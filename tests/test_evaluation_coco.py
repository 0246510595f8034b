"""COCO-format (exhaustively labelled) ground truth: per-class AP equal to pycocotools' COCOeval, APr/
APc/APf from training image counts, no silent federated rule; frequency groups and their sources."""
import copy
import math

import numpy as np
import pytest

from balms_eval import LVISGroundTruth, evaluate, frequency_groups, image_counts_from_dataset
from fake_detections import make_fake_lvis_detections

TOL = 1e-6


@pytest.fixture(scope="module")
def coco_case(lvis_dict):
    """40 real LVIS v0.5 val images as a COCO-format file (no federated fields, no frequency), every
    9th instance a crowd region, plus three categories without ground truth; made-up training counts.
    Detections: 310 per image (LVIS's 300 cap matters)."""
    images = sorted(lvis_dict["images"], key=lambda im: im["id"])[:40]
    ids = {im["id"] for im in images}
    anns = [dict(a, iscrowd=int(k % 9 == 0)) for k, a in enumerate(a for a in lvis_dict["annotations"] if a["image_id"] in ids)]
    with_gt = sorted({a["category_id"] for a in anns})
    no_gt = [c["id"] for c in lvis_dict["categories"] if c["id"] not in set(with_gt)][:3]
    cats = [c for c in lvis_dict["categories"] if c["id"] in set(with_gt) | set(no_gt)]
    gt = {
        "images": [{k: v for k, v in im.items() if k not in ("neg_category_ids", "not_exhaustive_category_ids")}
                   for im in images],
        "annotations": anns,
        "categories": [{"id": c["id"], "name": c["name"]} for c in cats],
    }
    counts = {c["id"]: (3, 30, 300)[c["id"] % 3] + c["id"] % 7 for c in cats}  # a third in each group
    dets = make_fake_lvis_detections(gt, seed=2, dets_per_image=310, skip_images=0)
    dets.append(dict(dets[0], category_id=no_gt[0], score=0.999))  # a category with no ground truth
    return gt, counts, dets, no_gt


def _pycocotools_per_class(gt, dets, iou_type, max_dets=300):
    """pycocotools' COCOeval, as is, on each image's ``max_dets`` best detections (LVIS's cap)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    by_image = {}
    for k, d in enumerate(dets):
        by_image.setdefault(d["image_id"], []).append((-d["score"], k, d))
    capped = [d for v in by_image.values() for _, _, d in sorted(v, key=lambda x: x[:2])[:max_dets]]
    results = [{k: v for k, v in d.items() if not (iou_type == "segm" and k == "bbox")} for d in copy.deepcopy(capped)]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = copy.deepcopy(gt)
        coco.createIndex()
        ev = COCOeval(coco, coco.loadRes(results), iou_type)
        ev.params.maxDets = [1, 10, max_dets]
        ev.evaluate()
        ev.accumulate()
    precision = ev.eval["precision"][..., -1]  # T x R x K x A at 300 detections

    def mean(p):
        return float(p[p > -1].mean()) if (p > -1).any() else math.nan

    summary = {"AP": mean(precision[..., 0]), "AP50": mean(precision[0, ..., 0]), "AP75": mean(precision[5, ..., 0]),
               "APs": mean(precision[..., 1]), "APm": mean(precision[..., 2]), "APl": mean(precision[..., 3])}
    per_class = {c: mean(precision[:, :, k, 0]) for k, c in enumerate(ev.params.catIds)}
    return summary, per_class


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_exhaustive_ground_truth_equals_pycocotools(coco_case, iou_type, monkeypatch):
    from balms_eval import backends

    gt_dict, counts, dets, no_gt = coco_case
    ref_summary, ref_per_class = _pycocotools_per_class(gt_dict, dets, iou_type)
    for backend in ("fast", "streamed", "lvis"):  # streamed: the fast backend's path for large sets
        if backend == "streamed":
            monkeypatch.setattr(backends, "BATCH_MAX_DETECTIONS", 0)
            monkeypatch.setattr(backends, "SHARD_IMAGES", 6)
        gt = LVISGroundTruth(gt_dict, "lvis" if backend == "lvis" else "fast", image_counts=counts,
                             count_source="the training set")
        assert gt.labelling == "exhaustive"
        res = evaluate(gt, dets, (iou_type,))[iou_type]
        for c, ap in ref_per_class.items():
            assert (math.isnan(ap) and math.isnan(res.per_class_ap[c])) or abs(res.per_class_ap[c] - ap) <= TOL, (
                backend, c, res.per_class_ap[c], ap)
        for k, v in ref_summary.items():
            assert abs(res.metrics[k] - v) <= TOL, (backend, k, res.metrics[k], v)
        # APr/APc/APf: the mean per-class AP of each group, groups by LVIS's rule on the training counts
        for code, lo, hi in (("r", 0, 10), ("c", 11, 100), ("f", 101, math.inf)):
            aps = [ap for c, ap in ref_per_class.items() if lo <= counts[c] <= hi and not math.isnan(ap)]
            assert aps and abs(res.metrics["AP" + code] - np.mean(aps)) <= TOL, (backend, code)
        assert all(math.isnan(res.per_class_ap[c]) for c in no_gt)
    crowd = sum(a["iscrowd"] for a in gt_dict["annotations"])
    assert crowd > 10 and 0.02 < ref_summary["AP"] < 0.9  # real numbers, crowd regions in play


def test_exhaustive_is_not_the_federated_rule(coco_case):
    # The same set with LVIS's federated fields (no category verified absent anywhere): detections of
    # classes absent from an image are then not counted, and AP goes up. Without the fields, they are
    # false positives (COCO), as pycocotools counts them above.
    gt_dict, counts, dets, _ = coco_case
    federated = copy.deepcopy(gt_dict)
    federated["images"][0]["not_exhaustive_category_ids"] = [gt_dict["annotations"][0]["category_id"]]
    exhaustive_gt = LVISGroundTruth(gt_dict, image_counts=counts)
    federated_gt = LVISGroundTruth(federated, image_counts=counts)
    assert (exhaustive_gt.labelling, federated_gt.labelling) == ("exhaustive", "federated")
    ap_exhaustive = evaluate(exhaustive_gt, dets, ("bbox",))["bbox"].metrics["AP"]
    ap_federated = evaluate(federated_gt, dets, ("bbox",))["bbox"].metrics["AP"]
    assert ap_federated > ap_exhaustive + 0.02


def test_groups_come_from_training_counts_or_fail_clearly(coco_case):
    gt_dict, counts, _, _ = coco_case
    gt = LVISGroundTruth(gt_dict, image_counts=counts, count_source="the training set", thresholds=(10, 100))
    assert "training image counts (the training set)" in gt.groups.source
    assert {gt.groups.of[c] for c in counts} == {"r", "c", "f"}
    assert all(gt.groups.of[c] == ("r" if n <= 10 else "c" if n <= 100 else "f") for c, n in counts.items())
    wide = LVISGroundTruth(gt_dict, image_counts=counts, thresholds=(50, 500))
    assert all(wide.groups.of[c] == ("r" if n <= 50 else "c" if n <= 500 else "f") for c, n in counts.items())
    with pytest.raises(ValueError, match="have no LVIS 'frequency'.*pass --train-gt"):
        LVISGroundTruth(gt_dict, missing_counts_hint="pass --train-gt TRAIN.json")
    with pytest.raises(ValueError, match="thresholds"):
        LVISGroundTruth(gt_dict, image_counts=counts, thresholds=(100, 10))
    # LVIS files keep LVIS's own groups, whatever the counts
    lvis_cats = {1: {"id": 1, "frequency": "f"}, 2: {"id": 2, "frequency": "r"}}
    assert frequency_groups(lvis_cats, {1: 3, 2: 900}).of == {1: "f", 2: "r"}


def test_image_counts_from_dataset_skip_crowd_and_prefer_lvis_counts():
    dataset = {"categories": [{"id": 1}, {"id": 7}], "annotations": [
        {"image_id": 1, "category_id": 1}, {"image_id": 1, "category_id": 1}, {"image_id": 2, "category_id": 1},
        {"image_id": 3, "category_id": 7, "iscrowd": 1}]}
    assert image_counts_from_dataset(dataset) == {1: 2, 7: 0}
    lvis = dict(dataset, categories=[{"id": 1, "image_count": 40}, {"id": 7, "image_count": 2}])
    assert image_counts_from_dataset(lvis) == {1: 40, 7: 2}
