"""`import balms_det` registers datasets with detectron2; broken inputs give clear errors."""
import json
import os

import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog

import balms_det  # noqa: F401
from balms_det.data import register_lt_shapes, register_lvis_style_instances


def test_builtin_names_registered():
    for name in ("lt_shapes_train", "lt_shapes_val", "lt_shapes_mini_train", "lt_shapes_mini_val"):
        assert name in DatasetCatalog.list()
        assert MetadataCatalog.get(name).evaluator_type == "lvis"


def test_generated_on_first_use(tmp_path):
    register_lt_shapes("lazy_test_val", "val", str(tmp_path), num_train_images=30,
                       num_val_images=5, max_images=10, val_images_per_class=1)
    try:
        meta = MetadataCatalog.get("lazy_test_val")
        assert meta.evaluator_type == "lvis" and len(meta.thing_classes) == 40
        assert not os.path.exists(tmp_path / "COMPLETE")  # registering generates nothing
        assert os.path.isfile(meta.json_file)  # reading a file-backed field generates
        assert len(DatasetCatalog.get("lazy_test_val")) == 5
    finally:
        DatasetCatalog.remove("lazy_test_val")
        MetadataCatalog.remove("lazy_test_val")


def test_builtin_mini_dataset(datasets_dir):
    counts = MetadataCatalog.get("lt_shapes_mini_train").class_image_count
    assert [c["id"] for c in counts] == list(range(1, 41)) and sum(c["image_count"] for c in counts) > 0
    dicts = DatasetCatalog.get("lt_shapes_mini_train")
    assert len(dicts) == 80
    rec = dicts[0]
    assert os.path.isfile(rec["file_name"]) and rec["height"] == rec["width"] == 160
    assert all(0 <= a["category_id"] < 40 for r in dicts for a in r["annotations"])
    assert "neg_category_ids" in rec and "not_exhaustive_category_ids" in rec


def test_register_custom_lvis_style_dataset(lt_shapes):
    register_lvis_style_instances("custom_lvis_test", lt_shapes["val_json"], lt_shapes["val_images"])
    try:
        meta = MetadataCatalog.get("custom_lvis_test")
        assert meta.thing_classes == MetadataCatalog.get("lt_shapes_val").thing_classes
        assert len(DatasetCatalog.get("custom_lvis_test")) == 100
    finally:
        DatasetCatalog.remove("custom_lvis_test")
        MetadataCatalog.remove("custom_lvis_test")


def test_missing_and_malformed_json(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        register_lvis_style_instances("bad1", missing, str(tmp_path))
    broken = tmp_path / "broken.json"
    broken.write_text('{"images": [')
    with pytest.raises(ValueError, match="broken.json"):
        register_lvis_style_instances("bad2", str(broken), str(tmp_path))
    notlvis = tmp_path / "notlvis.json"
    notlvis.write_text(json.dumps({"images": []}))
    with pytest.raises(ValueError, match=r"notlvis.json.*missing \['annotations', 'categories'\]"):
        register_lvis_style_instances("bad3", str(notlvis), str(tmp_path))
    badids = tmp_path / "badids.json"
    badids.write_text(json.dumps({"images": [], "annotations": [],
                                  "categories": [{"id": 3, "name": "x"}]}))
    with pytest.raises(ValueError, match="badids.json.*1..K"):
        register_lvis_style_instances("bad4", str(badids), str(tmp_path))


def test_unknown_dataset_name():
    with pytest.raises(KeyError, match="lt_shapez_train"):
        DatasetCatalog.get("lt_shapez_train")
