"""Class priors: every source, zero counts, length mismatch, several datasets."""
import json
import math
import logging
import uuid

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog

from balms_det import add_balms_config
from balms_det.modeling.priors import (
    class_prior,
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


# ------------------------------------------------------------------ the sampler's prior (PRIOR.SAMPLER train)
def _image(*classes, crowd=()):
    return {"annotations": [{"category_id": c} for c in classes] + [{"category_id": c, "iscrowd": 1} for c in crowd]}


# 4 images: class 0 in 3 of them (f = 3/4), classes 1 and 2 in one each (f = 1/4); class 0 twice in image 0
HAND = [_image(0, 0), _image(0), _image(0, 1), _image(2)]


@pytest.mark.parametrize("sqrt", [False, True])
def test_rfs_prior_by_hand(sqrt):
    # threshold 0.5: r(c) = max(1, g(0.5 / f(c))), g = sqrt or identity; an image repeats max over its classes
    from balms_det.modeling.priors import sampler_image_weights

    g = math.sqrt if sqrt else (lambda x: x)
    r = [1.0, 1.0, g(2.0), g(2.0)]  # image 2 holds class 1 (f 1/4), image 3 class 2 (f 1/4)
    w = sampler_image_weights(HAND, "RepeatFactorTrainingSampler", 0.5, sqrt)
    assert w.dtype == torch.float64 and w.tolist() == pytest.approx(r, rel=1e-6)
    c, n = counts_from_dataset_dicts(HAND, 3, "image_count", w)
    assert c.tolist() == pytest.approx([r[0] + r[1] + r[2], r[2], r[3]], rel=1e-6)
    assert n == pytest.approx(sum(r), rel=1e-6)
    c, _ = counts_from_dataset_dicts(HAND, 3, "instance_count", w)
    assert c.tolist() == pytest.approx([2 * r[0] + r[1] + r[2], r[2], r[3]], rel=1e-6)


def test_class_balanced_prior_by_hand():
    # 3 classes, drawn uniformly; class 0's 3 images share its third, classes 1 and 2 have one image each
    from balms_det.modeling.priors import sampler_image_weights

    p = [1 / 9, 1 / 9, 1 / 9 + 1 / 3, 1 / 3]  # per draw
    w = sampler_image_weights(HAND, "ClassBalancedSampler")
    assert w.tolist() == pytest.approx([4 * q for q in p], rel=1e-12) and w.sum().item() == pytest.approx(4)
    c, _ = counts_from_dataset_dicts(HAND, 3, "image_count", w)
    # class 0: drawn itself, or class 1 (image 2 holds both); class 1: image 2 drawn; class 2: image 3
    assert c.tolist() == pytest.approx([4 * (3 / 9 + 1 / 3), 4 * (1 / 9 + 1 / 3), 4 / 3], rel=1e-12)


def _long_tail_dicts(num_images=60, num_classes=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    dicts = []
    for _ in range(num_images):
        k = int(torch.randint(1, 3, (1,), generator=g))
        # class c with probability ~ 2^-c: a long tail
        classes = torch.multinomial(torch.tensor([2.0 ** -c for c in range(num_classes)]), k, generator=g).tolist()
        dicts.append(_image(*classes, *classes[:1]))
    return dicts


def _empirical_per_pass(dicts, sampler, num_classes, passes):
    import itertools

    counts = torch.zeros(num_classes, dtype=torch.float64)
    indices = list(itertools.islice(iter(sampler), passes))
    for i in indices:
        for c in {a["category_id"] for a in dicts[i]["annotations"]}:
            counts[c] += 1
    return counts, len(indices)


def test_rfs_prior_matches_the_real_sampler_over_many_epochs():
    """The expected counts against the label counts of detectron2's RepeatFactorTrainingSampler itself
    (its stochastic rounding included), over 2,000 epochs: within 5 standard errors."""
    from detectron2.data.samplers import RepeatFactorTrainingSampler

    from balms_det.modeling.priors import sampler_image_weights

    dicts, k, epochs = _long_tail_dicts(), 6, 2000
    w = sampler_image_weights(dicts, "RepeatFactorTrainingSampler", 0.3, True)
    expected, per_pass = counts_from_dataset_dicts(dicts, k, "image_count", w)
    raw, _ = counts_from_dataset_dicts(dicts, k, "image_count")
    assert (expected > raw).any() and expected[0] == pytest.approx(raw[0], rel=0.5)  # the tail is lifted
    sampler = RepeatFactorTrainingSampler(w.float(), seed=1)
    # one epoch of the sampler has floor(r_i) + Bernoulli(frac r_i) copies of image i: take whole epochs
    g = torch.Generator().manual_seed(1)
    counts = torch.zeros(k, dtype=torch.float64)
    for _ in range(epochs):
        for i in sampler._get_epoch_indices(g).tolist():
            for c in {a["category_id"] for a in dicts[i]["annotations"]}:
                counts[c] += 1
    frac = w - w.floor()
    var = torch.zeros(k, dtype=torch.float64)
    for i, d in enumerate(dicts):
        for c in {a["category_id"] for a in d["annotations"]}:
            var[c] += frac[i] * (1 - frac[i])
    se = (var / epochs).sqrt() + 1e-9
    assert ((counts / epochs - expected).abs() <= 5 * se).all(), (counts / epochs, expected, se)


def test_class_balanced_prior_matches_the_real_sampler():
    from balms_det.data.samplers import ClassBalancedSampler
    from balms_det.modeling.priors import sampler_image_weights

    dicts, k = _long_tail_dicts(seed=3), 6
    w = sampler_image_weights(dicts, "ClassBalancedSampler")
    expected, per_pass = counts_from_dataset_dicts(dicts, k, "image_count", w)
    assert per_pass == pytest.approx(len(dicts))
    draws = 200 * len(dicts)
    counts, n = _empirical_per_pass(dicts, ClassBalancedSampler(dicts, seed=5), k, draws)
    p = expected / len(dicts)  # probability that a draw holds the class
    se = (p * (1 - p) / n).sqrt()
    assert ((counts / n - p).abs() <= 5 * se).all(), (counts / n, p)


def test_sampler_prior_from_config(caplog):
    """PRIOR.SAMPLER train reads DATALOADER.SAMPLER_TRAIN / REPEAT_THRESHOLD / REPEAT_SQRT and counts the
    loader's images (empty ones filtered); with the stock sampler it is the SOURCE's counts."""
    cfg = get_cfg()
    add_balms_config(cfg)
    dicts = HAND + [{"annotations": []}]  # an empty image: the loader (FILTER_EMPTY_ANNOTATIONS) drops it
    for d in dicts:
        for a in d["annotations"]:
            a.update(bbox=[0, 0, 1, 1], bbox_mode=0)
    name = _register(dicts=dicts, class_image_count=[{"id": i + 1, "image_count": n} for i, n in enumerate([3, 1, 1])],
                     thing_classes=["a", "b", "c"])
    cfg.DATASETS.TRAIN = (name,)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.BALMS.PRIOR.SOURCE = "metadata"
    raw = class_prior_from_config(cfg)
    cfg.MODEL.BALMS.PRIOR.SAMPLER = "train"
    assert torch.equal(class_prior_from_config(cfg).counts, raw.counts)  # TrainingSampler: nothing changes
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    cfg.DATALOADER.REPEAT_THRESHOLD = 0.5
    cfg.DATALOADER.REPEAT_SQRT = False
    with caplog.at_level(logging.INFO, logger="balms_det.modeling.priors"):
        p = class_prior_from_config(cfg, need_num_images=True)
    assert p.counts.tolist() == pytest.approx([4.0, 2.0, 2.0]) and p.num_images == pytest.approx(6.0)
    assert "RepeatFactorTrainingSampler (threshold 0.5)" in caplog.text and "0: 3 -> 4.0" in caplog.text
    cfg.DATALOADER.SAMPLER_TRAIN = "WeightedTrainingSampler"
    with pytest.raises(ValueError, match="WeightedTrainingSampler.*PRIOR.SAMPLER none"):
        class_prior_from_config(cfg)
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 10
    with pytest.raises(ValueError, match="NUM_IMAGES"):
        class_prior_from_config(cfg)
    cfg.MODEL.BALMS.PRIOR.SAMPLER = "yes"
    with pytest.raises(ValueError, match="PRIOR.SAMPLER"):
        class_prior_from_config(cfg)


def test_checkpoint_keeps_the_prior_it_was_trained_with(lt_shapes):
    """A model trained with the sampler's prior saves it; loading into a model built with the raw prior
    gives the sampler's (the prior is the loss's buffer)."""
    from detectron2.modeling import build_model

    from balms_det.engine import build_config

    def model(*opts):
        cfg = build_config("configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.yaml",
                           ["DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler",
                            "DATALOADER.REPEAT_THRESHOLD", "0.1", *opts])
        return build_model(cfg)

    from balms_det.modeling import resolve_priors

    trained = model("MODEL.BALMS.PRIOR.SAMPLER", "train")
    fresh = model()
    for m in (trained, fresh):  # what the trainer does before a fresh run
        assert resolve_priors(m) == 1
    a, b = (m.roi_heads.box_predictor.cls_loss.class_counts for m in (trained, fresh))
    assert not torch.equal(a, b) and (a >= b).all()
    fresh.load_state_dict(trained.state_dict())
    assert torch.equal(fresh.roi_heads.box_predictor.cls_loss.class_counts, a)


def test_lvis_v1_prior_comes_from_detectron2s_metadata_without_any_file():
    """The LVIS v1 configs' prior: detectron2's class_image_count of lvis_v1_train (no annotation file is
    read, none is needed); a Python config's default source prefers that metadata too."""
    from detectron2.data.datasets.lvis_v1_category_image_count import LVIS_CATEGORY_IMAGE_COUNT

    from balms_det.engine import build_config
    from balms_det.modeling import class_prior

    cfg = build_config("configs/LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_balanced_softmax.yaml",
                       validate=False)
    assert cfg.MODEL.BALMS.PRIOR.SOURCE == "metadata"
    expected = [float(c["image_count"]) for c in sorted(LVIS_CATEGORY_IMAGE_COUNT, key=lambda c: c["id"])]
    assert class_prior_from_config(cfg).counts.tolist() == expected
    assert class_prior("lvis_v1_train", num_classes=1203).counts.tolist() == expected


def test_number_of_images_counted_from_the_json_without_loading_the_dataset(tmp_path):
    """The sigmoid variant's number of training images, where the source does not give it: the images of
    the dataset's json_file, counted by a streaming pass (the dataset itself is never loaded)."""
    f = _lvis_json(tmp_path / "a.json", [3, 5], [3, 5], num_images=17)

    def never():
        raise AssertionError("the dataset must not be loaded to count its images")

    name = _register(json_file=f, class_image_count=[{"id": 1, "image_count": 3}, {"id": 2, "image_count": 5}])
    DatasetCatalog.remove(name)
    DatasetCatalog.register(name, never)
    p = class_prior(name, source="metadata", num_classes=2, need_num_images=True)
    assert p.counts.tolist() == [3.0, 5.0] and p.num_images == 17


# ------------------------------------------------------------------ own data: COCO-format files
def _coco_json(path, num_classes=3):
    """A COCO-format file: categories without 'image_count' (what register_coco_instances users have)."""
    data = {"images": [{"id": 1, "file_name": "a.png", "height": 8, "width": 8}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}],
            "categories": [{"id": i, "name": f"class{i}"} for i in range(1, num_classes + 1)]}
    path.write_text(json.dumps(data))
    return str(path)


def _register_coco(path):
    from detectron2.data.datasets import register_coco_instances

    name = f"prior_coco_{uuid.uuid4().hex[:8]}"
    register_coco_instances(name, {}, _coco_json(path), str(path.parent))
    return name


def test_json_prior_of_a_coco_file_names_the_sources_that_count_it(tmp_path):
    """MODEL.BALMS.PRIOR.SOURCE json (the default) on a COCO-format training set: the prior's error says
    which sources count it, in the config's keys; the source it names works."""
    from balms_det.modeling.deferred_prior import deferred_prior_from_config

    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.DATASETS.TRAIN = (_register_coco(tmp_path / "train.json"),)
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    fix = "set MODEL.BALMS.PRIOR.SOURCE dataset (counts the training annotations) or metadata"
    for compute in (class_prior_from_config, lambda c: deferred_prior_from_config(c)(3)):
        with pytest.raises(ValueError) as info:
            compute(cfg)
        msg = str(info.value)
        assert fix in msg and "train.json have no 'image_count' field (3 of 3, e.g. id 1 'class1'" in msg, msg
        assert "not in the loaded weights" not in msg and "\n" not in msg, msg  # one fix, the one that applies
    cfg.MODEL.BALMS.PRIOR.SOURCE = "dataset"
    assert class_prior_from_config(cfg).counts.tolist() == [1.0, 1.0, 1.0]  # class 1 seen once, 2 and 3: MIN_COUNT


YAML_KEY = r"[A-Z]{2,}[A-Z_]*\.[A-Z]|NUM_CLASSES|NUM_IMAGES|MIN_COUNT|SAMPLER_TRAIN"


def test_python_prior_errors_name_the_arguments_not_yaml_keys(tmp_path):
    """class_prior / deferred_class_prior (Python configs) say what to pass, in their arguments' names:
    no message names a YAML key."""
    import re

    from balms_det.modeling.deferred_prior import deferred_class_prior
    from balms_det.modeling.priors import class_prior

    coco = _register_coco(tmp_path / "train.json")
    lvis = _register(_lvis_json(tmp_path / "lvis.json", [3, 1, 2], [3, 1, 2]), dicts=[{"annotations": []}])
    rfs = "RepeatFactorTrainingSampler"
    cases = [  # (call, what the message must say)
        (lambda: deferred_class_prior(datasets=coco)(3), "set source='dataset' (counts the training annotations)"),
        (lambda: class_prior(json_file=str(tmp_path / "train.json"), num_classes=3), "datasets=..., source='dataset'"),
        (lambda: class_prior(counts=[1, 2], num_classes=3), "num_classes=3"),
        (lambda: class_prior(lvis, sampler=rfs, counts=[1, 2, 3], num_classes=3), "json_file= / counts="),
        (lambda: class_prior(sampler=rfs, num_classes=3), "(datasets=)"),
        (lambda: class_prior(lvis, sampler=rfs, num_images=5, num_classes=3), "set num_images=0"),
        (lambda: class_prior(lvis, sampler="WeightedTrainingSampler", num_classes=3), "sampler=None"),
        (lambda: class_prior(lvis, sampler=rfs), "(num_classes=)"),
        (lambda: class_prior(coco, source="dataset"), "(num_classes=)"),
        (lambda: class_prior(source="list", num_classes=3), "(counts=)"),
        (lambda: class_prior((), source="json", num_classes=3), "(datasets=)"),
        (lambda: class_prior(counts=[1, 0, 3], num_classes=3, min_count=0), "min_count=0"),
        (lambda: class_prior(counts=[1, 2, 3], num_classes=3, need_num_images=True), "(num_images=)"),
        (lambda: deferred_class_prior(datasets="prior_test_not_registered", source="dataset")(3),
         "give the counts (counts=[one per class])"),
    ]
    for k, (call, says) in enumerate(cases):
        with pytest.raises((ValueError, KeyError)) as info:
            call()
        msg = str(info.value)
        assert says in msg and not re.search(YAML_KEY, msg), (k, msg[:600])
