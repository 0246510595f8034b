"""The synthetic long-tailed dataset: LVIS rule, determinism, valid polygons, federated fields."""
import hashlib
import json
import os
from collections import Counter, defaultdict

import numpy as np
import pytest
from lvis import LVIS

from balms_det.data import class_names, frequency_group, generate_lt_shapes

SMALL = dict(num_train_images=40, num_val_images=10, max_images=20, min_images=1,
             val_images_per_class=2, image_size=96, min_size=10, max_size=30)


def _load(path):
    with open(path) as f:
        return json.load(f)


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for name in sorted(files):
            if name.endswith((".json", ".png")):
                with open(os.path.join(dirpath, name), "rb") as f:
                    h.update(name.encode() + f.read())
    return h.hexdigest()


def test_frequency_rule_and_long_tail(lt_shapes):
    train = _load(lt_shapes["train_json"])
    counted = defaultdict(set)
    instances = Counter()
    for a in train["annotations"]:
        counted[a["category_id"]].add(a["image_id"])
        instances[a["category_id"]] += 1
    groups = Counter()
    for c in train["categories"]:
        n = len(counted[c["id"]])
        assert c["image_count"] == n and c["instance_count"] == instances[c["id"]]
        assert n >= 1, f"class {c['name']} has no training image"
        want = "r" if n <= 10 else ("c" if n <= 100 else "f")
        assert c["frequency"] == want, (c["name"], n, c["frequency"])
        groups[c["frequency"]] += 1
    assert all(groups[g] >= 5 for g in "rcf"), groups  # every group is populated
    assert [c["name"] for c in train["categories"]] == class_names()


def test_val_measures_every_class(lt_shapes):
    train, val = _load(lt_shapes["train_json"]), _load(lt_shapes["val_json"])
    assert val["categories"] == train["categories"]  # as in LVIS: val lists train's statistics
    per_class = Counter()
    for img_cls in {(a["image_id"], a["category_id"]) for a in val["annotations"]}:
        per_class[img_cls[1]] += 1
    rare = [c["id"] for c in train["categories"] if c["frequency"] == "r"]
    assert min(per_class[c] for c in rare) >= 8, "too few rare-class val images to measure APr"
    assert set(per_class) == {c["id"] for c in val["categories"]}


def test_polygons_valid_and_lvis_api_reads_it(lt_shapes):
    from pycocotools import mask as mask_util

    for split in ("train", "val"):
        data = _load(lt_shapes[f"{split}_json"])
        imgs = {i["id"]: i for i in data["images"]}
        for a in data["annotations"]:
            img = imgs[a["image_id"]]
            assert a["segmentation"], a["id"]
            for poly in a["segmentation"]:
                assert len(poly) >= 6 and len(poly) % 2 == 0
                xs, ys = np.array(poly[0::2]), np.array(poly[1::2])
                assert xs.min() >= 0 and ys.min() >= 0
                assert xs.max() < img["width"] and ys.max() < img["height"]
            rle = mask_util.merge(mask_util.frPyObjects(a["segmentation"], img["height"], img["width"]))
            assert a["area"] == pytest.approx(float(mask_util.area(rle))) and a["area"] > 0
            assert np.allclose(a["bbox"], mask_util.toBbox(rle))
        api = LVIS(lt_shapes[f"{split}_json"])
        assert len(api.get_img_ids()) == len(data["images"])
        assert len(api.get_cat_ids()) == len(class_names())
        assert os.path.isfile(os.path.join(lt_shapes[f"{split}_images"], split,
                                           data["images"][0]["file_name"]))


def test_federated_fields(lt_shapes):
    for split in ("train", "val"):
        data = _load(lt_shapes[f"{split}_json"])
        pos = defaultdict(set)
        for a in data["annotations"]:
            pos[a["image_id"]].add(a["category_id"])
        n_neg = n_ne = 0
        for img in data["images"]:
            neg, ne = set(img["neg_category_ids"]), set(img["not_exhaustive_category_ids"])
            assert not neg & pos[img["id"]], "a verified-absent class is annotated"
            assert ne <= pos[img["id"]], "not-exhaustive classes must be present"
            n_neg += len(neg)
            n_ne += len(ne)
        assert n_neg > 0 and n_ne > 0


def test_deterministic_by_seed(tmp_path):
    a = generate_lt_shapes(str(tmp_path / "a"), seed=3, **SMALL)
    generate_lt_shapes(str(tmp_path / "b"), seed=3, **SMALL)
    generate_lt_shapes(str(tmp_path / "c"), seed=4, **SMALL)
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")
    # A second call reuses the files; other parameters for the same root are refused.
    assert generate_lt_shapes(str(tmp_path / "a"), seed=3, **SMALL) == a
    with pytest.raises(RuntimeError, match="other parameters"):
        generate_lt_shapes(str(tmp_path / "a"), seed=5, **SMALL)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="num_imgs"):
        generate_lt_shapes(str(tmp_path), num_imgs=3)
    with pytest.raises(ValueError, match="min_images"):
        generate_lt_shapes(str(tmp_path), min_images=50, max_images=10)


@pytest.mark.parametrize("n,group", [(1, "r"), (10, "r"), (11, "c"), (100, "c"), (101, "f")])
def test_frequency_group_boundaries(n, group):
    assert frequency_group(n) == group
