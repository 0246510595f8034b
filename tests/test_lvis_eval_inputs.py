"""tools/lvis_eval.py on input files it cannot use: every malformed ground-truth (--gt) or training
(--train-gt) annotation file ends the run with one line, ``error: <file>: <what is wrong>``, and exit
status 1 (never a traceback), on both backends; a --train-gt without some of the ground truth's
categories is refused when the groups come from its counts, and warned about (those counts left out)
when the ground truth carries LVIS's own groups. In-process (main(argv)), a few as real processes."""
import importlib.util
import json
import logging
import os
import re
import subprocess
import sys

import pytest

from conftest import REPO

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")  # lvis-api: np.float, logger.warn

TOOL = os.path.join(REPO, "tools", "lvis_eval.py")


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("lvis_eval_inputs_tool", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _square(x, y, s):
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def tiny_dataset():
    """3 images of 64 x 64, categories 1, 2, 5 (no LVIS frequency), 6 instances."""
    anns = []
    for img in (1, 2, 3):
        for c, (x, y) in list(((1, (4, 4)), (2, (30, 30)), (5, (10, 40))))[:img]:
            anns.append({"id": len(anns) + 1, "image_id": img, "category_id": c, "bbox": [x, y, 16, 16], "area": 256,
                         "segmentation": _square(x, y, 16), "iscrowd": 0})
    return {"images": [{"id": i, "height": 64, "width": 64, "file_name": f"{i}.png"} for i in (1, 2, 3)],
            "categories": [{"id": 1, "name": "circle"}, {"id": 2, "name": "square"}, {"id": 5, "name": "triangle"}],
            "annotations": anns}


def _detections(dataset, masks=False):
    from pycocotools import mask as mask_util

    out = []
    for a in dataset["annotations"]:
        det = {"image_id": a["image_id"], "category_id": a["category_id"], "bbox": a["bbox"], "score": 0.9}
        if masks:
            rle = mask_util.merge(mask_util.frPyObjects(a["segmentation"], 64, 64))
            det["segmentation"] = {"size": rle["size"], "counts": rle["counts"].decode()}
        out.append(det)
    return out


@pytest.fixture
def files(tmp_path):
    """A valid gt.json, train.json (the same dataset) and res.json (boxes) in tmp_path."""
    data = tiny_dataset()
    paths = {k: str(tmp_path / f"{k}.json") for k in ("gt", "train", "res")}
    for key, content in (("gt", data), ("train", data), ("res", _detections(data))):
        with open(paths[key], "w") as f:
            json.dump(content, f)
    return paths


def _edit(change):
    data = tiny_dataset()
    change(data)
    return json.dumps(data)


def _set(section, i, **values):
    return lambda d: d[section][i].update(values)


def _drop(section, i, key):
    return lambda d: d[section][i].pop(key)


def run_main(tool, capsys, args):
    """main(args) expected to stop: (exit message, everything printed)."""
    with pytest.raises(SystemExit) as e:
        tool.main(args)
    out = capsys.readouterr()
    return str(e.value.code), out.out + out.err


def assert_one_error_line(message, printed, path, expected):
    assert message.startswith(f"error: {path}: "), message
    assert "\n" not in message, message
    assert expected in message, message
    assert "Traceback" not in printed, printed


# (case id, content of the file: text, or a change to the tiny dataset; what the message must say)
BOTH_FILES = [
    ("not-json", "{'images': []}", "is not valid JSON"),
    ("empty-file", "", "file is empty"),
    ("json-list", "[1, 2, 3]", "expected a JSON object with the lists 'images', 'annotations' and 'categories'"),
    ("no-categories", _edit(lambda d: d.pop("categories")), "no categories: 'categories' is missing or empty"),
    ("no-images", _edit(lambda d: d.pop("images")), "no images: 'images' is missing or empty"),
    ("categories-not-list", _edit(lambda d: d.update(categories={"1": "circle"})), "'categories' is an object"),
    ("category-without-id", _edit(_drop("categories", 0, "id")), "categories[0] has no 'id'"),
    ("category-id-string", _edit(_set("categories", 1, id="2")), "categories[1] (id='2'): id '2' is not an integer"),
    ("unknown-category-id", _edit(_set("annotations", 2, category_id=99)),
     "category_id 99 is not a category of the file (3 categories, ids 1..5)"),
    ("unknown-image-id", _edit(_set("annotations", 3, image_id=42)), "image_id 42 is not an image of the file"),
    ("no-category-id", _edit(_drop("annotations", 1, "category_id")), "annotations[1] (id=2): no 'category_id'"),
    ("image_count-not-numeric", _edit(lambda d: [c.update(image_count="many") for c in d["categories"]]),
     "image_count 'many' is not a whole number of images >= 0"),
    ("iscrowd-string", _edit(_set("annotations", 0, iscrowd="yes")), "iscrowd 'yes' is not 0 or 1"),
]
GT_ONLY = [  # fields only evaluation reads (a training file's counts read ids and iscrowd)
    ("no-annotations", _edit(lambda d: d.pop("annotations")), "no annotations (an image-info or test-set file?)"),
    ("bbox-3-numbers", _edit(_set("annotations", 0, bbox=[1, 2, 3])), "bbox [1, 2, 3] is not 4 numbers"),
    ("bbox-strings", _edit(_set("annotations", 0, bbox=["1", 2, 3, 4])), "is not 4 numbers [x, y, width, height]"),
    ("bbox-negative", _edit(_set("annotations", 0, bbox=[1, 2, -3, 4])), "has a negative width or height"),
    ("segmentation-string", _edit(_set("annotations", 0, segmentation="mask")),
     "segmentation 'mask' is a string; expected polygons"),
    ("segmentation-number", _edit(_set("annotations", 4, segmentation=7)), "segmentation 7 is a number"),
    ("rle-without-counts", _edit(_set("annotations", 0, segmentation={"size": [64, 64]})), "needs 'size' and 'counts'"),
    ("area-missing", _edit(_drop("annotations", 0, "area")), "no 'area'"),
    ("area-string", _edit(_set("annotations", 0, area="big")), "area 'big' is not a number"),
    ("duplicate-annotation-id", _edit(_set("annotations", 1, id=1)), "annotation id 1 appears"),
    ("duplicate-image-id", _edit(_set("images", 1, id=1)), "image id 1 appears"),
    ("image-without-height", _edit(_drop("images", 0, "height")), "height"),
    ("neg_category_ids-unknown", _edit(_set("images", 0, neg_category_ids=[77])),
     "neg_category_ids lists 77, not a category id of the file"),
    ("frequency-unknown", _edit(_set("categories", 0, frequency="rare")),
     "frequency 'rare' is not one of 'r', 'c', 'f'"),
]
TRAIN_ONLY = [
    ("no-annotations-no-image_count", _edit(lambda d: d.pop("annotations")),
     "no 'annotations' to count training images per class from"),
]


@pytest.mark.parametrize("backend", ["fast", "lvis"])
@pytest.mark.parametrize("case, content, expected", BOTH_FILES + GT_ONLY, ids=[c[0] for c in BOTH_FILES + GT_ONLY])
def test_malformed_ground_truth_is_one_error_line(tool, files, tmp_path, capsys, backend, case, content, expected):
    path = str(tmp_path / f"gt-{case}.json")
    with open(path, "w") as f:
        f.write(content)
    message, printed = run_main(tool, capsys, ["--gt", path, "--results", files["res"], "--train-gt", files["train"],
                                               "--backend", backend, "--no-per-class"])
    assert_one_error_line(message, printed, path, expected)


@pytest.mark.parametrize("case, content, expected", BOTH_FILES + TRAIN_ONLY,
                         ids=[c[0] for c in BOTH_FILES + TRAIN_ONLY])
def test_malformed_training_file_is_one_error_line(tool, files, tmp_path, capsys, case, content, expected):
    path = str(tmp_path / f"train-{case}.json")
    with open(path, "w") as f:
        f.write(content)
    message, printed = run_main(tool, capsys, ["--gt", files["gt"], "--results", files["res"], "--train-gt", path,
                                               "--no-per-class"])
    assert_one_error_line(message, printed, path, expected)


@pytest.mark.parametrize("which", ["gt", "train"])
@pytest.mark.parametrize("problem", ["directory", "missing", "unreadable"])
def test_annotation_path_that_is_not_a_readable_file(tool, files, tmp_path, capsys, monkeypatch, which, problem):
    path = {"directory": str(tmp_path), "missing": str(tmp_path / "nope.json"), "unreadable": files[which]}[problem]
    if problem == "unreadable":  # (chmod 000 does not stop root) the read itself fails, as without permission
        from balms_eval import results_io

        def no_permission(name, *args, **kwargs):
            if os.fspath(name) == path:
                raise PermissionError(13, "Permission denied", name)
            return open(name, *args, **kwargs)

        monkeypatch.setattr(results_io, "open", no_permission, raising=False)
    args = {"gt": files["gt"], "train": files["train"], which: path}
    message, printed = run_main(tool, capsys, ["--gt", args["gt"], "--results", files["res"],
                                               "--train-gt", args["train"], "--no-per-class"])
    expected = {"directory": "is a directory, not the", "missing": "file not found",
                "unreadable": "cannot read the"}[problem]
    assert_one_error_line(message, printed, path, expected)
    if problem == "unreadable":
        assert message.endswith("Permission denied"), message


# Checked only by the reference backend: hotcoco's loader accepts these and its index cannot show
# them without reading every annotation into Python (annotation_validation.check_hotcoco_ground_truth).
REFERENCE_ONLY = [
    ("annotation-without-id", _edit(_drop("annotations", 0, "id")), "annotations[0]: no 'id'"),
    ("bbox-missing", _edit(_drop("annotations", 0, "bbox")), "no 'bbox'"),
    ("polygon-of-2-points", _edit(_set("annotations", 0, segmentation=[[4, 4, 20, 20]])), ">= 3 points each"),
    ("rle-of-another-size", _edit(_set("annotations", 0, segmentation={"size": [10, 10], "counts": "PP"})),
     "RLE size [10, 10] is not the image's [height, width] = [64, 64]"),
]


@pytest.mark.parametrize("case, content, expected", REFERENCE_ONLY, ids=[c[0] for c in REFERENCE_ONLY])
def test_malformed_ground_truth_reference_backend(tool, files, tmp_path, capsys, case, content, expected):
    path = str(tmp_path / f"gt-{case}.json")
    with open(path, "w") as f:
        f.write(content)
    message, printed = run_main(tool, capsys, ["--gt", path, "--results", files["res"], "--train-gt", files["train"],
                                               "--backend", "lvis", "--no-per-class"])
    assert_one_error_line(message, printed, path, expected)


def test_ground_truth_without_masks_refuses_segm_on_the_reference_backend(tool, files, tmp_path, capsys):
    data = tiny_dataset()
    data["annotations"][2]["segmentation"] = []  # boxes only (as some COCO-format sets write it)
    gt, res = tmp_path / "boxes_only.json", tmp_path / "masks.json"
    gt.write_text(json.dumps(data))
    res.write_text(json.dumps(_detections(tiny_dataset(), masks=True)))
    message, printed = run_main(tool, capsys, ["--gt", str(gt), "--results", str(res), "--train-gt", files["train"],
                                               "--backend", "lvis", "--no-per-class"])
    assert_one_error_line(message, printed, str(gt), "annotations[2] (id=3) has no mask")
    tool.main(["--gt", str(gt), "--results", str(res), "--train-gt", files["train"], "--backend", "lvis",
               "--iou-type", "bbox", "--no-per-class"])  # boxes are fine


def test_federated_ground_truth_without_frequency_on_both_backends(tool, files, tmp_path, capsys):
    # LVIS's federated fields on categories without an LVIS frequency (groups from --train-gt): lvis-api
    # reads every category's "frequency"; the reference backend gives it the groups, and equals the fast one.
    data = tiny_dataset()
    data["images"][0]["neg_category_ids"] = [5]
    data["images"][1]["not_exhaustive_category_ids"] = [2]
    gt = tmp_path / "federated.json"
    gt.write_text(json.dumps(data))
    dets = _detections(data) + [{"image_id": 1, "category_id": 5, "bbox": [40, 4, 10, 10], "score": 0.95},
                                {"image_id": 2, "category_id": 2, "bbox": [4, 30, 10, 10], "score": 0.95}]
    res = tmp_path / "res.json"
    res.write_text(json.dumps(dets))
    metrics = {b: tool.main(["--gt", str(gt), "--results", str(res), "--train-gt", files["train"], "--backend", b,
                             "--no-per-class"]) for b in ("fast", "lvis")}
    assert "federated labelling" in capsys.readouterr().out
    assert metrics["lvis"]["bbox"] == pytest.approx(metrics["fast"]["bbox"], abs=1e-4)
    assert 0 < metrics["fast"]["bbox"]["AP"] < 100  # the false positive on image 1 counts


# ---- a training file that does not cover the ground truth's categories ---------------------------

def _partial_training_file(tmp_path, keep=(1, 2), rename=None):
    data = tiny_dataset()
    data["categories"] = [dict(c, name=(rename or {}).get(c["id"], c["name"])) for c in data["categories"]
                          if c["id"] in keep]
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] in keep]
    path = tmp_path / "train_partial.json"
    path.write_text(json.dumps(data))
    return str(path)


@pytest.mark.parametrize("backend", ["fast", "lvis"])
def test_training_file_without_some_categories_is_refused(tool, files, tmp_path, capsys, backend):
    # Categories without an LVIS frequency are grouped by --train-gt's counts: one missing there would
    # silently be rare (0 images) and skew APr.
    train = _partial_training_file(tmp_path)
    message, printed = run_main(tool, capsys, ["--gt", files["gt"], "--results", files["res"], "--train-gt", train,
                                               "--backend", backend, "--no-per-class"])
    assert_one_error_line(message, printed, train, f"lacks 1 of the 3 categories of {files['gt']} (id 5 'triangle')")
    assert "give the complete training annotation file, or ground truth restricted to the categories trained on" \
        in message
    # listed with no training image: a real count of 0 (rare), not a missing one
    data = tiny_dataset()
    data["annotations"] = [a for a in data["annotations"] if a["category_id"] != 5]
    (tmp_path / "train_zero.json").write_text(json.dumps(data))
    tool.main(["--gt", files["gt"], "--results", files["res"], "--train-gt", str(tmp_path / "train_zero.json"),
               "--backend", backend])
    out = capsys.readouterr().out
    assert "Per-class AP, rare (r): 3 of 3 categories" in out and re.search(r"\| triangle +\| +5 \| +0 \|", out), out


def test_training_file_naming_a_category_otherwise_is_refused(tool, files, tmp_path, capsys):
    train = _partial_training_file(tmp_path, keep=(1, 2, 5), rename={2: "rhombus"})
    message, printed = run_main(tool, capsys, ["--gt", files["gt"], "--results", files["res"], "--train-gt", train,
                                               "--no-per-class"])
    assert_one_error_line(message, printed, train, "names 1 of its categories otherwise (id 2 'rhombus', not 'square')")


def test_training_file_without_some_categories_with_lvis_groups_warns(tool, files, tmp_path, capsys, caplog):
    # LVIS ground truth carries its groups: the training counts are only the per-class x-axis, so the
    # run goes on, says which categories have no count, and shows none for them (not 0).
    data = tiny_dataset()
    for c, freq in zip(data["categories"], "rcf"):
        c["frequency"] = freq
    gt = tmp_path / "lvis_style.json"
    gt.write_text(json.dumps(data))
    train = _partial_training_file(tmp_path)
    with caplog.at_level(logging.WARNING, logger="balms_eval"):
        tool.main(["--gt", str(gt), "--results", files["res"], "--train-gt", train])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(w.startswith(f"{train}: lacks 1 of the 3 categories of {gt} (id 5 'triangle')") and
               "per-class training counts are left out" in w for w in warnings), warnings
    out = capsys.readouterr().out
    assert re.search(r"\| triangle +\| +5 \| +- +\|", out) and re.search(r"\| circle +\| +1 \| +3 +\|", out), out


# ---- as a real process: what a user sees -------------------------------------------------------

@pytest.mark.parametrize("which", ["gt", "train"])
def test_as_a_process_the_last_line_is_the_error(files, tmp_path, which):
    path = tmp_path / "bad.json"
    path.write_text(_edit(_drop("categories", 0, "id")))
    args = {"gt": files["gt"], "train": files["train"], which: str(path)}
    proc = subprocess.run([sys.executable, TOOL, "--gt", args["gt"], "--results", files["res"], "--train-gt",
                           args["train"]], capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"error: {path}: categories[0] has no 'id'; every category needs " \
                                                   "an integer id >= 0", proc.stderr
