"""Class priors: every source, zero counts, length mismatch, several datasets."""
import json
import logging
import uuid

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from balms_det import add_balms_config
from balms_det.modeling.priors import (
    class_prior_from_config,
    counts_from_dataset_dicts,
    counts_from_lvis_json,
    load_class_prior,
    sanitize_counts,
)


def _lvis_json(path, image_counts, instance_counts, ids=None, num_images=10):
    ids = ids or list(range(1, len(image_counts) + 1))
    cats = [
        {"id": i, "name": f"c{i}", "image_count": a, "instance_count": b, "frequency": "r"}
        for i, a, b in zip(ids, image_counts, instance_counts)
    ]
    data = {"images": [{"id": j} for j in range(num_images)], "annotations": [], "categories": cats}
    path.write_text(json.dumps(data))
    return str(path)


def _register(json_file=None, dicts=None, **meta):
    name = f"prior_test_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: dicts)
    if json_file:
        meta["json_file"] = json_file
    MetadataCatalog.get(name).set(**meta)
    return name


def test_lvis_json_counts_in_contiguous_order(tmp_path):
    # categories listed out of order: the counts must follow the category ids
    f = _lvis_json(tmp_path / "a.json", [5, 3, 9], [7, 3, 20], ids=[3, 1, 2], num_images=12)
    c, n = counts_from_lvis_json(f, "image_count")
    assert c.tolist() == [3.0, 9.0, 5.0] and n == 12
    c, _ = counts_from_lvis_json(f, "instance_count")
    assert c.tolist() == [3.0, 20.0, 7.0]
    # a dataset mapping (as detectron2 sets for COCO-format data) wins
    c, _ = counts_from_lvis_json(f, "image_count", id_map={1: 2, 2: 0, 3: 1})
    assert c.tolist() == [9.0, 5.0, 3.0]


def test_lvis_json_reads_the_images_only_when_asked_and_once_per_process(tmp_path, monkeypatch):
    from balms_eval import json_categories as jc

    calls = []
    find = jc._find
    monkeypatch.setattr(jc, "_find", lambda path, key, count: calls.append(key) or find(path, key, count))
    f = _lvis_json(tmp_path / "a.json", [5, 3, 9], [7, 3, 20], ids=[3, 1, 2], num_images=12)
    c, n = counts_from_lvis_json(f, "image_count", need_num_images=False)
    assert c.tolist() == [3.0, 9.0, 5.0] and n is None and calls == ["categories"]
    c, n = counts_from_lvis_json(f, "instance_count")  # the default: the number of images too
    assert c.tolist() == [3.0, 20.0, 7.0] and n == 12 and calls == ["categories", "images"]
    assert counts_from_lvis_json(f)[1] == 12 and len(calls) == 2  # cached in this process
    # no (or no non-empty) "images": None, as json.load's ``len(data.get("images", [])) or None`` gave
    for images in (None, []):
        data = json.loads((tmp_path / "a.json").read_text())
        data.pop("images") if images is None else data.update(images=images)
        (tmp_path / "b.json").write_text(json.dumps(data))
        assert counts_from_lvis_json(str(tmp_path / "b.json"))[1] is None
    (tmp_path / "c.json").write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(KeyError, match="no top-level 'categories' key"):
        counts_from_lvis_json(str(tmp_path / "c.json"))


def test_dataset_dicts_counts():
    dicts = [
        {"annotations": [{"category_id": 0}, {"category_id": 0}, {"category_id": 2}]},
        {"annotations": [{"category_id": 0}, {"category_id": 1, "iscrowd": 1}]},
        {"annotations": []},
    ]
    c, n = counts_from_dataset_dicts(dicts, 3, "image_count")
    assert c.tolist() == [2.0, 0.0, 1.0] and n == 3
    c, _ = counts_from_dataset_dicts(dicts, 3, "instance_count")
    assert c.tolist() == [3.0, 0.0, 1.0]
    with pytest.raises(ValueError, match="out of range"):
        counts_from_dataset_dicts(dicts, 2)


def test_zero_count_fallback_is_finite_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="balms_det.modeling.priors"):
        c = sanitize_counts([10, 0, 3], 3, min_count=0.5)
    assert c.tolist() == [10.0, 0.5, 3.0]
    assert torch.isfinite(c.log()).all()
    assert "no training samples" in caplog.text and "[1]" in caplog.text
    with pytest.raises(ValueError):
        sanitize_counts([10, 0, 3], 3, min_count=0)
    with pytest.raises(ValueError):
        sanitize_counts([10, -1, 3], 3)


def test_length_mismatch_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        load_class_prior(source="list", counts=[1, 2, 3], num_classes=4)
    name = _register(_lvis_json(tmp_path / "a.json", [1, 2], [1, 2]))
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        load_class_prior(name, source="json", num_classes=3)


def test_several_datasets_are_summed(tmp_path):
    a = _register(_lvis_json(tmp_path / "a.json", [1, 0, 4], [1, 0, 8], num_images=5))
    b = _register(_lvis_json(tmp_path / "b.json", [2, 0, 1], [3, 0, 1], num_images=7))
    p = load_class_prior([a, b], source="json", count="image_count", num_classes=3, min_count=0.25)
    assert p.counts.tolist() == [3.0, 0.25, 5.0] and p.num_images == 12
    assert torch.allclose(p.image_freq(), torch.tensor([3 / 12, 0.25 / 12, 5 / 12], dtype=torch.float64))

    d1 = [{"annotations": [{"category_id": 0}]}, {"annotations": [{"category_id": 2}]}]
    d2 = [{"annotations": [{"category_id": 2}, {"category_id": 2}]}]
    a, b = _register(dicts=d1), _register(dicts=d2)
    p = load_class_prior([a, b], source="dataset", count="instance_count", num_classes=3)
    assert p.counts.tolist() == [1.0, 1.0, 3.0] and p.num_images == 3  # class 1: zero -> MIN_COUNT 1


def test_metadata_source():
    entries = [{"id": 2, "image_count": 7}, {"id": 1, "image_count": 4}]
    name = _register(class_image_count=entries)
    p = load_class_prior(name, source="metadata", num_classes=2)
    assert p.counts.tolist() == [4.0, 7.0] and p.num_images is None
    with pytest.raises(ValueError, match="instance_count"):
        load_class_prior(name, source="metadata", count="instance_count", num_classes=2)
    with pytest.raises(ValueError, match="NUM_IMAGES"):
        p.image_freq()


def test_from_config_and_num_images_fallback():
    cfg = get_cfg()
    add_balms_config(cfg)
    dicts = [{"annotations": [{"category_id": 1}]}] * 4
    cfg.DATASETS.TRAIN = (_register(class_image_count=[{"id": 1, "image_count": 0}, {"id": 2, "image_count": 4}], dicts=dicts),)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.BALMS.PRIOR.SOURCE = "metadata"
    p = class_prior_from_config(cfg, need_num_images=True)
    assert p.counts.tolist() == [1.0, 4.0] and p.num_images == 4  # counted from DatasetCatalog
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 100
    assert class_prior_from_config(cfg).num_images == 100
    cfg.MODEL.BALMS.PRIOR.SOURCE = "list"
    cfg.MODEL.BALMS.PRIOR.COUNTS = [3, 5]
    assert class_prior_from_config(cfg).counts.tolist() == [3.0, 5.0]
    cfg.MODEL.BALMS.PRIOR.SOURCE = "nope"
    with pytest.raises(ValueError, match="prior source"):
        class_prior_from_config(cfg)


def test_lt_shapes_metadata_and_json_agree(tmp_path, monkeypatch):
    """The synthetic dataset's json image counts, its metadata, and its dicts give the same prior."""
    from balms_det.data import register_lt_shapes

    name = f"lt_prior_{uuid.uuid4().hex[:6]}"
    register_lt_shapes(name, "train", str(tmp_path / "lt"), num_train_images=40, num_val_images=4,
                       max_images=20, min_images=1, val_images_per_class=1)
    by_json = load_class_prior(name, source="json", num_classes=40)
    by_meta = load_class_prior(name, source="metadata", num_classes=40)
    by_dicts = load_class_prior(name, source="dataset", num_classes=40)
    assert torch.equal(by_json.counts, by_meta.counts)
    assert torch.equal(by_json.counts, by_dicts.counts)
    assert by_json.num_images == by_dicts.num_images == 40
