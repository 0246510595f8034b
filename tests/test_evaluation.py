"""LVIS evaluation (balms_eval): the fast backend (hotcoco) equals lvis-api on real LVIS v0.5 ground
truth and on the synthetic dataset; LVIS's federated rules; bad input gives errors naming the entry."""
import copy
import json
import math

import numpy as np
import pytest

from balms_eval import METRICS, LVISGroundTruth, LVISResultsError, evaluate_lvis
from fake_detections import make_fake_lvis_detections
from balms_eval.metrics import per_class_ap_from_precision

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lvis-api: np.float, logger.warn

TOL = 1e-6  # as a fraction: 1e-4 percentage points


def assert_metrics_equal(fast, ref, tol=TOL):
    for k in METRICS:
        a, b = fast.metrics[k], ref.metrics[k]
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol, f"{fast.iou_type} {k}: fast {a} vs lvis-api {b}"
    assert fast.per_class_ap.keys() == ref.per_class_ap.keys()
    for c, a in fast.per_class_ap.items():
        b = ref.per_class_ap[c]
        assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= tol, f"category {c}: fast {a} vs lvis-api {b}"


@pytest.fixture(scope="module")
def lvis_gts(lvis_json):
    return {b: LVISGroundTruth(lvis_json, b) for b in ("fast", "lvis")}


@pytest.fixture(scope="module")
def few_image_gts(lvis_dict):
    """Both backends on 21 of the 100 images (the first 20 by id, and the first annotation's), every
    category kept: lvis-api's time grows with images x categories whatever the detections, so the
    tests with a few detections on a few images use these."""
    ids = set(sorted(im["id"] for im in lvis_dict["images"])[:20]) | {lvis_dict["annotations"][0]["image_id"]}
    gt = dict(lvis_dict, images=[im for im in lvis_dict["images"] if im["id"] in ids],
              annotations=[a for a in lvis_dict["annotations"] if a["image_id"] in ids])
    return {b: LVISGroundTruth(gt, b) for b in ("fast", "lvis")}


@pytest.fixture(scope="module")
def fake_results(lvis_dict):
    # 310 per image so that LVIS's 300 cap matters; the first image gets none.
    return make_fake_lvis_detections(lvis_dict, seed=0, dets_per_image=310)


def test_fake_results_cover_the_federated_cases(lvis_dict, fake_results):
    per_image = {}
    for r in fake_results:
        per_image.setdefault(r["image_id"], []).append(r)
    images = {im["id"]: im for im in lvis_dict["images"]}
    assert len(per_image) == len(images) - 1  # one image without detections
    assert max(len(v) for v in per_image.values()) > 300
    on_neg = sum(r["category_id"] in images[r["image_id"]]["neg_category_ids"] for r in fake_results)
    on_nonexh = sum(r["category_id"] in images[r["image_id"]]["not_exhaustive_category_ids"] for r in fake_results)
    assert on_neg > 100 and on_nonexh > 10
    no_gt = {c["id"] for c in lvis_dict["categories"]} - {a["category_id"] for a in lvis_dict["annotations"]}
    assert any(r["category_id"] in no_gt for r in fake_results)  # categories absent from val


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_fast_equals_lvis_api_on_real_lvis(lvis_gts, fake_results, iou_type):
    before = copy.deepcopy(fake_results[:50])
    fast = evaluate_lvis(lvis_gts["fast"], fake_results, iou_type)
    ref = evaluate_lvis(lvis_gts["lvis"], fake_results, iou_type)
    assert_metrics_equal(fast, ref)
    assert fake_results[:50] == before  # inputs untouched
    # the numbers are real, not a degenerate all-NaN/all-zero agreement
    for k in METRICS:
        assert 0.0 < fast.metrics[k] < 1.0, (k, fast.metrics[k])
    assert sum(not math.isnan(v) for v in fast.per_class_ap.values()) > 150


def test_per_class_ap_is_the_mean_the_groups_average(lvis_gts, fake_results):
    # APr/APc/APf are means over the categories of the group of their per-class AP
    res = evaluate_lvis(lvis_gts["fast"], fake_results, "bbox")
    for code in "rcf":
        aps = [ap for c, ap in res.per_class_ap.items()
               if lvis_gts["fast"].categories[c]["frequency"] == code and not math.isnan(ap)]
        assert abs(np.mean(aps) - res.metrics["AP" + code]) < 1e-9


def test_per_class_ap_from_precision():
    p = -np.ones((2, 3, 3, 4))
    p[:, :, 0, 0] = [[0.2, 0.4, 0.6], [0.0, 0.0, 0.0]]
    p[0, :, 2, 0] = 1.0  # category 30 only has values at one IoU threshold (other: -1)
    ap = per_class_ap_from_precision(p, [10, 20, 30])
    assert ap[10] == pytest.approx(0.2) and math.isnan(ap[20]) and ap[30] == 1.0


def _exact_detections(lvis_dict, image_ids=None):
    rng = np.random.default_rng(1)
    return [{"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": float(rng.uniform(0.5, 1))}
            for a in lvis_dict["annotations"] if image_ids is None or a["image_id"] in image_ids]


@pytest.mark.parametrize("backend", ["fast", "lvis"])
def test_federated_rules(lvis_gts, lvis_dict, backend):
    gt = lvis_gts[backend]
    base = _exact_detections(lvis_dict)
    img_id, nonexh = 89648, 998  # category 998 ("sock") is not exhaustively annotated in image 89648
    assert nonexh in gt.images[img_id]["not_exhaustive_category_ids"]
    present = 1014  # exhaustively annotated and present in image 89648
    in_image = {a["category_id"] for a in lvis_dict["annotations"] if a["image_id"] == img_id}
    with_gt = {a["category_id"] for a in lvis_dict["annotations"]}
    unverified = next(c for c in sorted(with_gt) if c not in in_image and c not in gt.images[img_id]["neg_category_ids"])
    neg_img, neg = next((i, c) for i in sorted(gt.images) for c in gt.images[i]["neg_category_ids"] if c in with_gt)
    far = {"bbox": [0.0, 0.0, 3.0, 3.0], "score": 0.99}  # matches nothing
    fps = [dict(far, image_id=img_id, category_id=c) for c in (nonexh, present, unverified)]
    fps.append(dict(far, image_id=neg_img, category_id=neg))
    # per-class AP is per category, so one run with all four false positives tests each rule
    ap = evaluate_lvis(gt, base, "bbox").per_class_ap
    ap_fp = evaluate_lvis(gt, base + fps, "bbox").per_class_ap
    assert ap_fp[nonexh] == ap[nonexh]  # not-exhaustive category: an unmatched detection is ignored
    assert ap_fp[present] < ap[present]  # exhaustive category present in the image: a false positive
    assert ap_fp[unverified] == ap[unverified]  # neither present nor verified absent: not evaluated
    assert ap_fp[neg] < ap[neg]  # verified absent (neg_category_ids): a false positive


def test_edge_cases_match_lvis_api(lvis_gts, lvis_dict):
    gt = lvis_gts["fast"]
    images = sorted(gt.images)
    # detections on 30 of the 100 images only, plus one on a category with no ground truth in val
    # (listed in that image's neg_category_ids, so it is evaluated, but its AP is undefined)
    dets = _exact_detections(lvis_dict, set(images[:30]))
    img, no_gt_cat = next((i, c) for i in images for c in gt.images[i]["neg_category_ids"]
                          if gt.categories[c]["image_count"] == 0)
    dets.append({"image_id": img, "category_id": no_gt_cat, "bbox": [1.0, 1.0, 20.0, 20.0], "score": 0.9})
    fast = evaluate_lvis(gt, dets, "bbox")
    assert_metrics_equal(fast, evaluate_lvis(lvis_gts["lvis"], dets, "bbox"))
    assert math.isnan(fast.per_class_ap[no_gt_cat])
    assert 0.0 < fast.metrics["AP"] < 1.0


@pytest.mark.parametrize("backend", ["fast", "lvis"])
@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_empty_results_give_nan(lvis_gts, backend, iou_type):
    res = evaluate_lvis(lvis_gts[backend], [], iou_type)
    assert all(math.isnan(v) for v in res.metrics.values())


def test_max_dets_per_image_is_applied(small_federated_case):
    path, dets = small_federated_case
    fast, ref = LVISGroundTruth(path, "fast"), LVISGroundTruth(path, "lvis")
    capped = evaluate_lvis(fast, dets, "bbox", max_dets_per_image=20)
    assert_metrics_equal(capped, evaluate_lvis(ref, dets, "bbox", max_dets_per_image=20))
    full = evaluate_lvis(fast, dets, "bbox")
    assert capped.metrics["AP"] != full.metrics["AP"]
    # -1: no cap at all (310 detections per image), also past hotcoco's default of 300
    uncapped = evaluate_lvis(fast, dets, "bbox", max_dets_per_image=-1)
    assert_metrics_equal(uncapped, evaluate_lvis(ref, dets, "bbox", max_dets_per_image=-1))
    assert uncapped.metrics["AP"] != full.metrics["AP"]


# ---- bad input ----------------------------------------------------------------------------------

def _one_good(lvis_dict):
    a = lvis_dict["annotations"][0]
    img = next(im for im in lvis_dict["images"] if im["id"] == a["image_id"])
    from pycocotools import mask as mask_util

    rle = mask_util.merge(mask_util.frPyObjects(a["segmentation"], img["height"], img["width"]))
    return {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.5,
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}


@pytest.mark.parametrize("backend", ["fast", "lvis"])
@pytest.mark.parametrize("change, iou_type, message", [
    (dict(category_id=99999), "bbox", "category_id 99999 is not a category"),
    (dict(image_id=-5), "bbox", "image_id -5 is not an image"),
    (dict(score="high"), "bbox", "score 'high' is not a finite number"),
    (dict(bbox=[1, 2, 3]), "bbox", "is not 4 finite numbers"),
    (dict(segmentation={"size": [10, 10], "counts": "PP"}), "segm", "RLE size [10, 10] is not the image's"),
    (dict(segmentation={"counts": "PP"}), "segm", "needs 'size' and 'counts'"),
    (dict(segmentation=[[1.0, 2.0, 3.0]]), "segm", "list of polygons"),
    ("bad_counts", "segm", "malformed mask: invalid RLE"),
])
def test_bad_results_name_the_entry(lvis_gts, lvis_dict, backend, change, iou_type, message):
    good = _one_good(lvis_dict)
    if change == "bad_counts":
        h, w = good["segmentation"]["size"]
        change = dict(segmentation={"size": [h, w], "counts": "o!!"})
    bad = dict(good, **change)
    results = [dict(good) for _ in range(5)] + [bad] + [dict(good)]
    with pytest.raises(LVISResultsError) as e:
        evaluate_lvis(lvis_gts[backend], results, iou_type)
    assert "results[5]" in str(e.value) and message in str(e.value), str(e.value)


def test_missing_key_and_not_a_list(lvis_gts, lvis_dict):
    good = _one_good(lvis_dict)
    bad = {k: v for k, v in good.items() if k != "score"}
    with pytest.raises(LVISResultsError, match=r"results\[1\].*missing 'score'"):
        evaluate_lvis(lvis_gts["fast"], [good, bad], "bbox")
    with pytest.raises(LVISResultsError, match="must be a list"):
        evaluate_lvis(lvis_gts["fast"], {"a": 1}, "bbox")


def test_polygon_detections_are_accepted(few_image_gts, lvis_dict):
    a = lvis_dict["annotations"][0]
    dets = [{"image_id": a["image_id"], "category_id": a["category_id"], "segmentation": a["segmentation"], "score": 0.9}]
    fast = evaluate_lvis(few_image_gts["fast"], dets, "segm")
    assert_metrics_equal(fast, evaluate_lvis(few_image_gts["lvis"], dets, "segm"))
    assert fast.per_class_ap[a["category_id"]] > 0


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_non_uniform_results_are_read_entry_by_entry(few_image_gts, lvis_dict, fake_results, iou_type):
    # The vectorised reader takes dicts of ints/floats with RLE masks; anything else valid (float
    # ids, tuple boxes and RLE sizes, polygons mixed with RLEs) goes entry by entry, same numbers.
    imgs = {im["id"]: im for im in lvis_dict["images"]}
    plain = [r for r in fake_results if r["image_id"] in set(sorted(imgs)[:20])]
    odd = []
    for i, r in enumerate(plain):
        r = dict(r, image_id=float(r["image_id"]) if i % 7 == 0 else r["image_id"], bbox=tuple(r["bbox"]))
        if i % 5 == 0:
            r["segmentation"] = dict(r["segmentation"], size=tuple(r["segmentation"]["size"]))
        odd.append(r)
    a = next(a for a in lvis_dict["annotations"] if a["image_id"] in set(sorted(imgs)[:20]))
    poly = {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"],
            "segmentation": a["segmentation"], "score": 0.95}
    assert {r["image_id"] for r in plain} <= set(few_image_gts["fast"].images)
    fast = evaluate_lvis(few_image_gts["fast"], odd + [poly], iou_type)
    assert_metrics_equal(fast, evaluate_lvis(few_image_gts["lvis"], plain + [poly], iou_type))
    assert_metrics_equal(evaluate_lvis(few_image_gts["fast"], odd + [poly], iou_type, check=False), fast, tol=0.0)


# ---- synthetic dataset --------------------------------------------------------------------------

@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_fast_equals_lvis_api_on_synthetic(lt_shapes, iou_type):
    with open(lt_shapes["val_json"]) as f:
        val = json.load(f)
    results = make_fake_lvis_detections(val, seed=3, dets_per_image=60)
    fast = evaluate_lvis(LVISGroundTruth(lt_shapes["val_json"], "fast"), results, iou_type)
    ref = evaluate_lvis(LVISGroundTruth(lt_shapes["val_json"], "lvis"), results, iou_type)
    assert_metrics_equal(fast, ref)
    assert 0.0 < fast.metrics["AP"] < 1.0


# ---- federated pre-filter of the fast path ------------------------------------------------------

def _unscored_category(lvis_dict, img):
    pos = {a["category_id"] for a in lvis_dict["annotations"] if a["image_id"] == img["id"]}
    return next(c["id"] for c in lvis_dict["categories"]
                if c["id"] not in pos and c["id"] not in img["neg_category_ids"])


def test_prefilter_keeps_exactly_what_lvis_counts(lvis_gts, lvis_dict):
    from balms_eval.filtering import federated_keep
    from balms_eval.reading import read_results

    img = next(im for im in lvis_dict["images"] if im["neg_category_ids"])
    pos = next(a for a in lvis_dict["annotations"] if a["image_id"] == img["id"])
    other = _unscored_category(lvis_dict, img)
    box = pos["bbox"]
    dets = [
        {"image_id": img["id"], "category_id": other, "bbox": box, "score": 0.9},  # never counted
        {"image_id": img["id"], "category_id": pos["category_id"], "bbox": box, "score": 0.5},
        {"image_id": img["id"], "category_id": img["neg_category_ids"][0], "bbox": box, "score": 0.5},
        {"image_id": img["id"], "category_id": pos["category_id"], "bbox": box, "score": 0.4},
    ]
    gt = lvis_gts["fast"]

    def kept(dets, max_dets):
        columns = read_results(dets, gt.images, ("bbox",))
        return np.flatnonzero(federated_keep(gt, columns, max_dets)).tolist()

    assert kept(dets, -1) == [1, 2, 3]
    # The cap comes first and counts the unscored detection; ties keep results order.
    assert kept(dets, 2) == [1]
    assert kept(dets, 3) == [1, 2]
    assert kept(dets[:1], 300) == []


def _lvis_api_own(gt_path, dets, iou_type, max_dets):
    """lvis-api as is (LVIS, LVISResults, LVISEval.run()): its own summary ``get_results()`` (-1 as NaN)
    and AP per category from its precision array. Detections as detectron2 gives them to it: for segm
    without "bbox" (lvis-api would take the box's area)."""
    from lvis import LVIS, LVISEval, LVISResults

    gt = LVIS(gt_path)
    results = [{k: v for k, v in r.items() if not (iou_type == "segm" and k == "bbox")} for r in copy.deepcopy(dets)]
    ev = LVISEval(gt, LVISResults(gt, results, max_dets=max_dets), iou_type)
    ev.params.max_dets = max_dets
    ev.run()
    summary = {k: math.nan if v == -1 else float(v) for k, v in ev.get_results().items() if k in METRICS}
    precision = np.moveaxis(np.asarray(ev.eval["precision"])[..., 0], 2, 0)  # K x T x R, all areas
    per_class = {c: float(p[p > -1].mean()) if (p > -1).any() else math.nan
                 for c, p in zip(ev.params.cat_ids, precision)}
    return summary, per_class


@pytest.fixture(scope="module")
def small_federated_case(lvis_dict, tmp_path_factory):
    """6 real LVIS v0.5 val images (the one with a rare category, 5 with common ones) and the categories
    they annotate or list in their federated fields: lvis-api evaluates it in a second. 310 detections
    per image, scores rounded to 0.1: many ties, also across each image's 300th detection."""
    freq = {c["id"]: c["frequency"] for c in lvis_dict["categories"]}
    cats_of = {}
    for a in lvis_dict["annotations"]:
        cats_of.setdefault(a["image_id"], set()).add(a["category_id"])
    images = sorted(lvis_dict["images"], key=lambda im: im["id"])
    chosen = [im for im in images if any(freq[c] == "r" for c in cats_of.get(im["id"], ()))]
    chosen += [im for im in images if im not in chosen and any(freq[c] == "c" for c in cats_of.get(im["id"], ()))][:5]
    anns = [a for a in lvis_dict["annotations"] if a["image_id"] in {im["id"] for im in chosen}]
    cat_ids = {a["category_id"] for a in anns} | {
        c for im in chosen for k in ("neg_category_ids", "not_exhaustive_category_ids") for c in im[k]}
    gt = dict(lvis_dict, images=chosen, annotations=anns,
              categories=[c for c in lvis_dict["categories"] if c["id"] in cat_ids])
    path = tmp_path_factory.mktemp("small_lvis") / "gt.json"
    path.write_text(json.dumps(gt))
    dets = make_fake_lvis_detections(gt, seed=4, dets_per_image=310, skip_images=0)
    for r in dets:
        r["score"] = round(r["score"], 1)
    return str(path), dets


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_summary_equals_lvis_api_own_results_with_ties(small_federated_case, iou_type):
    # Not only the precision array: every reported number (AP..APl, APr/APc/APf: groups, area ranges,
    # IoU thresholds) against what lvis-api itself reports, 300 detections per image, tied scores.
    path, dets = small_federated_case
    scores = {}
    for r in dets:
        scores.setdefault(r["image_id"], []).append(r["score"])
    at_cap = [sorted(s, reverse=True)[299:301] for s in scores.values()]
    assert sum(a == b for a, b in at_cap) >= 3 and len(set(r["score"] for r in dets)) <= 11  # ties, also at the cap
    summary, per_class = _lvis_api_own(path, dets, iou_type, max_dets=300)
    assert all(0.0 < summary[k] < 1.0 for k in ("AP", "APs", "APm", "APl", "APr", "APc", "APf")), summary
    for backend in ("fast", "lvis"):
        res = evaluate_lvis(LVISGroundTruth(path, backend), dets, iou_type)
        for k in METRICS:
            a, b = res.metrics[k], summary[k]
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL, f"{backend} {k}: {a} vs lvis-api {b}"
        for c, b in per_class.items():
            a = res.per_class_ap[c]
            assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL, f"{backend} class {c}: {a} vs lvis-api {b}"
    # a cap that cuts through the ties at another place
    fast = evaluate_lvis(LVISGroundTruth(path, "fast"), dets, iou_type, max_dets_per_image=50)
    summary, _ = _lvis_api_own(path, dets, iou_type, max_dets=50)
    assert all(abs(fast.metrics[k] - summary[k]) <= TOL for k in METRICS), (fast.metrics, summary)


def test_only_unscored_detections_give_zero_ap(few_image_gts, lvis_dict):
    img = next(im for im in lvis_dict["images"] if im["id"] == min(few_image_gts["fast"].images))
    dets = [{"image_id": img["id"], "category_id": _unscored_category(lvis_dict, img),
             "bbox": [1.0, 1.0, 10.0, 10.0], "score": 0.9}]
    fast = evaluate_lvis(few_image_gts["fast"], dets, "bbox")
    assert_metrics_equal(fast, evaluate_lvis(few_image_gts["lvis"], dets, "bbox"))
    assert fast.metrics["AP"] == 0.0


@pytest.mark.parametrize("iou_type", ["bbox", "segm"])
def test_zero_area_detections_are_not_evaluated(few_image_gts, lvis_dict, iou_type):
    # lvis-api skips detections of area 0 (Mask R-CNN outputs empty masks); hotcoco alone would
    # count them as false positives.
    from pycocotools import mask as mask_util

    a = lvis_dict["annotations"][0]
    img = next(im for im in lvis_dict["images"] if im["id"] == a["image_id"])
    h, w = img["height"], img["width"]
    good = mask_util.merge(mask_util.frPyObjects(a["segmentation"], h, w))
    empty = mask_util.encode(np.zeros((h, w, 1), np.uint8, order="F"))[0]
    dets = [
        {"image_id": img["id"], "category_id": a["category_id"], "score": 0.5, "bbox": a["bbox"],
         "segmentation": {"size": [h, w], "counts": good["counts"].decode()}},
        {"image_id": img["id"], "category_id": a["category_id"], "score": 0.9,
         "bbox": [a["bbox"][0], a["bbox"][1], 0.0, a["bbox"][3]],
         "segmentation": {"size": [h, w], "counts": empty["counts"].decode()}},
    ]
    fast = evaluate_lvis(few_image_gts["fast"], dets, iou_type)
    ref = evaluate_lvis(few_image_gts["lvis"], dets, iou_type)
    assert_metrics_equal(fast, ref)
    alone = evaluate_lvis(few_image_gts["fast"], dets[:1], iou_type)
    assert fast.per_class_ap[a["category_id"]] == alone.per_class_ap[a["category_id"]]


def test_streamed_shards_equal_one_batch(lvis_gts, fake_results, monkeypatch):
    # Above BATCH_MAX_DETECTIONS the fast backend feeds hotcoco's StreamingEval shard by shard
    # (bounded memory at LVIS v1 val scale); here forced, with shards of 7 images.
    from balms_eval import backends, evaluate

    batch = evaluate(lvis_gts["fast"], fake_results)
    monkeypatch.setattr(backends, "BATCH_MAX_DETECTIONS", 0)
    monkeypatch.setattr(backends, "SHARD_IMAGES", 7)
    streamed = evaluate(lvis_gts["fast"], fake_results)
    for iou_type in ("bbox", "segm"):
        assert_metrics_equal(streamed[iou_type], batch[iou_type], tol=1e-12)


def test_tertiles_split_the_training_counts_in_three_non_empty_groups():
    from balms_eval.groups import group_of, tertiles

    for counts, expected, sizes in (([1, 3, 12], (1, 3), [1, 1, 1]), (list(range(1, 41)), (14, 27), [14, 13, 13]),
                                    ([1, 1, 1, 1, 1, 1, 5, 9], (1, 5), [6, 1, 1]), ([0, 1, 2], (0, 1), [1, 1, 1])):
        assert tertiles(counts) == expected
        assert [sum(group_of(c, expected) == g for c in counts) for g in "rcf"] == sizes
    assert tertiles([5, 5, 9]) is None and tertiles([]) is None  # fewer than three values: no split in three
