"""tools/predict.py and balms_det.visualization: a 4-iteration model on lt_shapes_mini drawn on an image and a
folder (small and large images), on a registered dataset with its ground truth (YAML and Python config: the
same pictures), from its evaluation's results file (the same pictures again, without a model), on a dataset
registered by MODEL.BALMS.CUSTOM_IMPORTS; the label layout (inside the picture, off each other) and where
the classes' frequency groups come from."""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from balms_det.visualization import ClassInfo, Objects, class_info, draw_panels, layout_labels, overlap_area
from balms_det.visualization.draw import GROUP_RGB
from conftest import REPO, few_val_import_file, run_tool
from test_train_net import CONFIG, TINY

LAZY_CONFIG = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_softmax.py")
# the Python twin of CONFIG with TINY's test-time sizes (20 detections per image, 50 proposals)
LAZY_TINY = ["model.roi_heads.box_predictor.test_topk_per_image=20", "model.proposal_generator.post_nms_topk=[300,50]",
             "dataloader.test.dataset.names=lt_shapes_mini_val", "dataloader.train.dataset.names=lt_shapes_mini_train"]
VAL = "lt_shapes_mini_val"


def _tool():
    spec = importlib.util.spec_from_file_location("balms_predict_tool", os.path.join(REPO, "tools", "predict.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def trained(datasets_dir, tmp_path_factory):
    """A 4-iteration model and its final evaluation's results file on lt_shapes_mini_val."""
    out = tmp_path_factory.mktemp("train")
    run_tool(["tools/train_net.py", "--config-file", CONFIG, *TINY, "OUTPUT_DIR", str(out)], datasets_dir)
    results = out / "inference" / VAL / "lvis_instances_results.json"
    assert results.is_file()
    return out / "model_final.pth", results


@pytest.fixture(scope="module")
def tool(datasets_dir):
    return _tool()


def _png(path):
    return np.asarray(Image.open(path).convert("RGB"))


def _group_pixels(picture):
    """Pixels of exactly a frequency group's colour: label backgrounds (and the legend's small swatches)."""
    return int(sum((picture == np.array(c, np.uint8)).all(-1).sum() for c in GROUP_RGB.values()))


def _check_drawn(picture, image_hw, panels=1):
    """Size: each panel the image scaled so that its longer side is >= 640 px, side by side, a title above and a
    legend below. Something drawn: many pixels of the groups' colours (the legend has ~500)."""
    h, w = image_hw
    scale = max(1.0, 640 / max(h, w))
    pw, ph = round(w * scale), round(h * scale)
    assert panels * pw <= picture.shape[1] <= panels * pw + panels * 60, (picture.shape, pw)
    assert ph + 30 <= picture.shape[0] <= ph + 200, (picture.shape, ph)
    assert _group_pixels(picture) > 3000


@pytest.fixture(scope="module")
def dataset_pictures(tool, trained, tmp_path_factory):
    """The YAML-config model's pictures of 2 lt_shapes_mini_val images with the ground truth."""
    weights, _ = trained
    out = tmp_path_factory.mktemp("dataset_pictures")
    assert tool.main(["--config-file", CONFIG, "--weights", str(weights), "--dataset", VAL, "--max-images", "2", "--gt",
                      "--score-thresh", "0", "--output", str(out), *TINY]) == 0
    return out


def test_an_image_and_a_folder_small_and_large(trained, datasets_dir, tmp_path):
    weights, _ = trained
    from detectron2.data import DatasetCatalog

    val = DatasetCatalog.get(VAL)
    small = val[0]["file_name"]
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(val[1]["file_name"], folder / "b.png")
    Image.open(val[2]["file_name"]).resize((1000, 750)).save(folder / "large.jpg")  # the model sees it at 160 px
    (folder / "notes.txt").write_text("not an image")
    out = tmp_path / "out"
    run_tool(["tools/predict.py", "--config-file", CONFIG, "--output", str(out), "--score-thresh", "0",
              "--input", small, str(folder), "--", "MODEL.WEIGHTS", str(weights), *TINY], datasets_dir)
    names = sorted(os.listdir(out))
    assert names == ["000001000001.png", "b.png", "large.png"]
    for name, hw in (("000001000001.png", (160, 160)), ("b.png", (160, 160)), ("large.png", (750, 1000))):
        _check_drawn(_png(out / name), hw)
    # labels scale with the picture: the large one's are taller
    assert _png(out / "large.png").shape[0] - 750 > _png(out / "b.png").shape[0] - 640


def test_a_dataset_with_its_ground_truth(dataset_pictures):
    names = sorted(os.listdir(dataset_pictures))
    assert names == ["000001000001.png", "000001000002.png"]
    for name in names:
        _check_drawn(_png(dataset_pictures / name), (160, 160), panels=2)


def test_a_python_config_draws_the_same(tool, trained, dataset_pictures, tmp_path):
    weights, _ = trained
    assert tool.main(["--config-file", LAZY_CONFIG, "--weights", str(weights), "--dataset", VAL, "--max-images", "2",
                      "--gt", "--score-thresh", "0", "--output", str(tmp_path), *LAZY_TINY]) == 0
    for name in os.listdir(dataset_pictures):
        assert np.array_equal(_png(tmp_path / name), _png(dataset_pictures / name)), name


def test_a_results_file_draws_the_same_without_a_model(tool, trained, dataset_pictures, tmp_path):
    _, results = trained
    assert tool.main(["--results", str(results), "--dataset", VAL, "--max-images", "2", "--gt", "--score-thresh", "0",
                      "--output", str(tmp_path)]) == 0
    for name in os.listdir(dataset_pictures):
        assert np.array_equal(_png(tmp_path / name), _png(dataset_pictures / name)), name
    # a score threshold above every detection: the image and the ground truth only
    assert tool.main(["--results", str(results), "--dataset", VAL, "--max-images", "1", "--gt",
                      "--score-thresh", "0.99", "--output", str(tmp_path / "none")]) == 0
    empty, drawn = _png(tmp_path / "none" / "000001000001.png"), _png(dataset_pictures / "000001000001.png")
    assert empty.shape == drawn.shape and _group_pixels(drawn) > _group_pixels(empty) + 3000


def test_a_dataset_registered_by_custom_imports(trained, datasets_dir, tmp_path):
    weights, _ = trained
    module = few_val_import_file(tmp_path)  # registers lt_shapes_mini_val_first3
    out = tmp_path / "out"
    proc = run_tool(["tools/predict.py", "--config-file", CONFIG, "--weights", str(weights), "--dataset",
                     "lt_shapes_mini_val_first3", "--gt", "--output", str(out), "--score-thresh", "0", *TINY,
                     "MODEL.BALMS.CUSTOM_IMPORTS", f"['{module}']"], datasets_dir)
    assert len(os.listdir(out)) == 3 and "LVIS 'frequency' of lt_shapes_mini_val_first3" in proc.stdout
    _check_drawn(_png(out / "000001000003.png"), (160, 160), panels=2)


def test_a_results_file_on_a_dataset_registered_by_a_config(tool, trained, tmp_path):
    # no model: the config only registers the dataset (CUSTOM_IMPORTS); its first 3 images' detections
    _, results = trained
    module = few_val_import_file(tmp_path)
    assert tool.main(["--results", str(results), "--config-file", CONFIG, "--dataset", "lt_shapes_mini_val_first3",
                      "--score-thresh", "0", "--output", str(tmp_path / "out"), *TINY,
                      "MODEL.BALMS.CUSTOM_IMPORTS", f"['{module}']"]) == 0
    assert sorted(os.listdir(tmp_path / "out")) == [f"00000100000{i}.png" for i in (1, 2, 3)]
    _check_drawn(_png(tmp_path / "out" / "000001000003.png"), (160, 160))


def test_a_results_file_on_a_coco_format_dataset(tool, trained, tmp_path):
    # COCO format: category ids 10, 20, ..., no 'frequency' and no training set: no groups (colours per class)
    from detectron2.data import MetadataCatalog
    from detectron2.data.datasets import register_coco_instances

    _, results = trained
    meta = MetadataCatalog.get(VAL)
    val = json.loads(open(meta.json_file).read())
    coco_id = {c["id"]: 10 * c["id"] for c in val["categories"]}
    images = sorted(val["images"], key=lambda im: im["id"])[:2]
    keep = {im["id"] for im in images}
    coco = {"images": [{k: im[k] for k in ("id", "width", "height")} | {"file_name": "val/" + im["file_name"]}
                       for im in images],
            "annotations": [dict(a, category_id=coco_id[a["category_id"]], iscrowd=0) for a in val["annotations"]
                            if a["image_id"] in keep],
            "categories": [{"id": coco_id[c["id"]], "name": c["name"]} for c in val["categories"]]}
    (tmp_path / "coco.json").write_text(json.dumps(coco))
    detections = [dict(r, category_id=coco_id[r["category_id"]]) for r in json.loads(results.read_text())
                  if r["image_id"] in keep]
    (tmp_path / "results.json").write_text(json.dumps(detections))
    register_coco_instances("balms_test_predict_coco", {}, str(tmp_path / "coco.json"), meta.image_root)
    assert tool.main(["--results", str(tmp_path / "results.json"), "--dataset", "balms_test_predict_coco", "--gt",
                      "--score-thresh", "0", "--output", str(tmp_path / "out")]) == 0
    info = class_info(["balms_test_predict_coco"])
    assert info.groups is None and info.category_ids == [10 * i for i in range(1, 41)]
    assert info.names == MetadataCatalog.get(VAL).thing_classes
    picture = _png(tmp_path / "out" / "000001000001.png")
    assert picture.shape[1] > 2 * 640 and _group_pixels(picture) < 1000  # no group colours in the labels


def test_errors_are_one_line(tool, trained, datasets_dir, tmp_path):
    weights, results = trained
    with pytest.raises(SystemExit):  # argparse: a results file names its dataset
        tool.parse_args(["--results", str(results), "--input", "a.png", "--output", str(tmp_path)])
    proc = run_tool(["tools/predict.py", "--results", str(tmp_path / "missing.json"), "--dataset", VAL, "--output",
                     str(tmp_path)], datasets_dir, check=False)
    assert proc.returncode == 1 and proc.stdout.strip().splitlines()[-1].startswith("error: ")
    assert "missing.json" in proc.stdout and "Traceback" not in proc.stdout
    with pytest.raises(ValueError, match="No weights"):
        tool.main(["--config-file", CONFIG, "--dataset", VAL, "--output", str(tmp_path), *TINY])


# --- the label layout, without drawing ---------------------------------------------------------------------------

def _pairwise_overlap(boxes):
    a = overlap_area(boxes, boxes)
    np.fill_diagonal(a, 0)
    return a.max() if len(boxes) > 1 else 0.0


def _inside(boxes, canvas):
    return (boxes[:, 0] >= 0).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 2] <= canvas[0]).all() and (
        boxes[:, 3] <= canvas[1]).all()


def test_layout_keeps_labels_inside_and_apart():
    canvas = (640, 480)
    # labels of objects at every edge and corner (naively drawn above the box, they would be cut off)
    anchors = np.array([[0, 0, 40, 40], [600, 0, 640, 30], [0, 440, 50, 480], [590, 450, 640, 480],
                        [300, 0, 340, 20], [630, 200, 640, 260]], float)
    sizes = np.array([[120, 16]] * len(anchors), float)
    boxes, shown = layout_labels(anchors, sizes, canvas)
    assert shown.all() and _inside(boxes, canvas) and _pairwise_overlap(boxes) == 0
    assert np.allclose(boxes[:, 2:] - boxes[:, :2], sizes)
    # ten objects in one spot: each label gets a free spot (naively all ten would stack on one)
    anchors = np.array([[300, 200, 340, 240]] * 10, float) + np.arange(10)[:, None]
    sizes = np.array([[90 + 5 * k, 16] for k in range(10)], float)
    boxes, shown = layout_labels(anchors, sizes, canvas)
    assert shown.all() and _inside(boxes, canvas) and _pairwise_overlap(boxes) == 0
    near = np.abs(boxes[:, 1] - anchors[:, 1]).max()
    assert near < 6 * 16  # and stays near its object
    # the first label goes to its first choice: just above its object, left-aligned
    assert boxes[0].tolist() == [300, 184, 390, 200]


def test_layout_leaves_out_labels_that_find_no_room():
    canvas = (160, 60)
    anchors = np.array([[10, 10, 150, 50]] * 30, float)
    sizes = np.array([[150, 14]] * 30, float)
    boxes, shown = layout_labels(anchors, sizes, canvas)
    assert 0 < shown.sum() < 30 and shown[0]
    assert _inside(boxes, canvas) and _pairwise_overlap(boxes[shown]) == 0
    # with overlap allowed, all are kept (the least overlapping spots)
    boxes, shown = layout_labels(anchors, sizes, canvas, max_overlap=None)
    assert shown.all() and _inside(boxes, canvas)
    # a label wider than the picture starts at its left edge
    boxes, shown = layout_labels([[50, 20, 60, 30]], [[200, 14]], canvas)
    assert shown.all() and boxes[0, 0] == 0 and boxes[0, 1] >= 0


def test_draw_panels_sizes_and_fonts():
    classes = ClassInfo(["a_long_class_name_" * 3, "b"], [1, 2], ["r", "f"], "test groups")
    rng = np.random.default_rng(0)
    for hw, min_size in (((160, 120), 640), ((1000, 800), 640)):
        image = rng.integers(0, 255, (*hw, 3), dtype=np.uint8)
        boxes = np.array([[0, 0, hw[1] / 4, hw[0] / 4], [hw[1] / 2, hw[0] / 2, hw[1], hw[0]]])
        objects = Objects(boxes, [0, 1], [0.9, 0.6])
        picture = draw_panels(image, [("title", objects)], classes, min_size=min_size, note="score >= 0.5")
        scale = max(1.0, min_size / max(hw))
        assert picture.shape[1] >= round(hw[1] * scale) and picture.shape[0] > round(hw[0] * scale)
        assert _group_pixels(picture) > 1000  # two labels in the group colours


def test_results_and_ground_truth_objects():
    mask = np.zeros((20, 30), bool)
    mask[2:6, 3:9] = True
    from pycocotools import mask as mask_util

    rle = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    rle["counts"] = rle["counts"].decode()
    entries = [{"image_id": 1, "category_id": 7, "bbox": [3, 2, 6, 4], "score": 0.4, "segmentation": rle},
               {"image_id": 1, "category_id": 5, "bbox": [1, 1, 2, 2], "score": 0.9, "segmentation": rle}]
    objects = Objects.from_results(entries, {5: 0, 7: 1}, 20, 30, score_thresh=0.3)
    assert objects.classes.tolist() == [0, 1] and objects.scores.tolist() == [0.9, 0.4]  # highest first
    assert objects.boxes[1].tolist() == [3, 2, 9, 6] and np.array_equal(objects.masks[1], mask)
    assert len(Objects.from_results(entries, {5: 0, 7: 1}, 20, 30, score_thresh=0.5)) == 1
    with pytest.raises(ValueError, match=r"category ids \[7\]"):
        Objects.from_results(entries, {5: 0}, 20, 30)
    gt = Objects.from_annotations([{"category_id": 3, "bbox": [3, 2, 6, 4], "bbox_mode": 1,
                                    "segmentation": [[3, 2, 9, 2, 9, 6, 3, 6]]},
                                   {"category_id": 1, "bbox": [0, 0, 5, 5], "bbox_mode": 1, "iscrowd": 1,
                                    "segmentation": [[0, 0, 5, 0, 5, 5]]}], 20, 30)
    assert len(gt) == 1 and gt.scores is None and gt.boxes[0].tolist() == [3, 2, 9, 6] and gt.masks[0].sum() > 20


def test_class_groups_from_frequency_from_training_counts_or_none(datasets_dir, tmp_path):
    from detectron2.data import MetadataCatalog

    from balms_det.data.lvis_style import register_lvis_style_instances

    info = class_info([VAL])
    assert len(info) == 40 and info.category_ids == list(range(1, 41)) and set(info.groups) <= {"r", "c", "f"}
    assert info.group_source == f"LVIS 'frequency' of {VAL}"
    # an LVIS-format file without 'frequency': groups from the training images per class, with the thresholds
    val = json.loads(open(MetadataCatalog.get(VAL).json_file).read())
    for c in val["categories"]:
        del c["frequency"]
    (tmp_path / "val.json").write_text(json.dumps(val))
    register_lvis_style_instances("balms_test_predict_nofreq", str(tmp_path / "val.json"),
                                  MetadataCatalog.get(VAL).image_root)
    train_counts = {d["id"]: d["image_count"] for d in MetadataCatalog.get("lt_shapes_mini_train").class_image_count}
    info = class_info(["balms_test_predict_nofreq"], ["lt_shapes_mini_train"], thresholds=(3, 20))
    expected = ["r" if train_counts[i] <= 3 else "c" if train_counts[i] <= 20 else "f" for i in range(1, 41)]
    assert info.groups == expected and "rare <= 3" in info.group_source
    assert class_info(["balms_test_predict_nofreq"], ["balms_test_not_registered"]).groups is None
    assert class_info(["balms_test_not_registered"], num_classes=3).names == ["0", "1", "2"]
    with pytest.raises(ValueError, match="predicts 3 classes"):
        class_info([VAL], num_classes=3)
