"""Nothing silently wrong: a config that cannot work is refused before anything is built or trained, with one line
``KEY VALUE: what is wrong; valid: ...`` (``validate`` in ``build_config`` and in both tools; what applies to
Python configs in tools/lazyconfig_train_net.py); a fresh decoupled stage whose frozen parameters do not all come
from its weights, a --resume of a folder trained with another config, a predictor whose parts disagree and
non-finite probabilities at inference each stop with one line. Mostly in-process; three runs of the tools check
the line on stderr, the exit status and that training never started."""
import glob
import os
import uuid
from types import SimpleNamespace

import pytest
import torch
from detectron2.config import LazyConfig

from balms_det.config_validation import ConfigError
from balms_det.engine import build_config
from conftest import REPO, run_tool
from test_train_net import CONFIG as SOFTMAX
from test_train_net import TINY

torch.set_num_threads(1)
LT = os.path.join(REPO, "configs", "LTShapes")
BALANCED = os.path.join(LT, "mask_rcnn_R18_FPN_balanced_softmax.yaml")
SEESAW = os.path.join(LT, "mask_rcnn_R18_FPN_seesaw.yaml")
CRT = os.path.join(LT, "mask_rcnn_R18_FPN_crt_class_balanced.yaml")
LAZY_DECOUPLED = os.path.join(LT, "mask_rcnn_R18_FPN_decoupled_balms.py")
NO_TEST = ["DATASETS.TEST", "()"]


def refused(path, opts, key):
    """build_config's error for ``path`` + ``opts``: one line starting with ``key``, saying what is valid."""
    with pytest.raises(ValueError) as info:
        build_config(path, list(opts))
    msg = str(info.value)
    assert type(info.value).__name__ == "ConfigError" and "\n" not in msg, msg
    assert msg.startswith(f"{key} ") and "; valid: " in msg, msg
    return msg


def tool_error(proc):
    """The tool's one-line error: exit status 1, no traceback, training never started."""
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "Traceback" not in proc.stdout and "Starting training" not in proc.stdout, proc.stdout[-3000:]
    errors = [line for line in proc.stdout.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stdout[-3000:]
    return errors[0]


# ------------------------------------------------------------------ every shipped config passes
def test_every_config_in_configs_passes_validation():
    from balms_det.config_validation import validate_lazy_config

    yamls = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))
    pys = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.py"), recursive=True))
    assert len(yamls) >= 30 and len(pys) >= 8
    for path in yamls:
        build_config(path)
    for path in pys:
        validate_lazy_config(LazyConfig.load(path))


# ------------------------------------------------------------------ the head that reads MODEL.BALMS
@pytest.mark.parametrize("opts", [
    ("MODEL.BALMS.CLS_LOSS", "seesaw"),
    ("MODEL.BALMS.CALIBRATION", "norcal"),
    ("MODEL.BALMS.CLS_LOSS", "no_such_loss"),
    ("MODEL.BALMS.TAU", "0.5"),
    ("MODEL.BALMS.META_REWEIGHTER.ENABLED", "True"),
])
def test_long_tail_keys_on_a_stock_head_are_refused(opts):
    msg = refused(SOFTMAX, opts, opts[0])  # the stock StandardROIHeads: today silently stock softmax
    assert "'StandardROIHeads'" in msg and "LongTailROIHeads" in msg


def test_stock_head_keeps_the_keys_that_work_with_it():
    # cRT / stage 2 of a stock model, the evaluator's keys, the imports, and what a base config shared with the
    # long-tail methods may set (the prior's source, the Meta Reweighter's settings); the old names read every key
    build_config(SOFTMAX, ["MODEL.BALMS.DECOUPLED.ENABLED", "True", "MODEL.BALMS.DECOUPLED.REINIT_CLASSIFIER", "True",
                           "TEST.LVIS_EVAL.BACKEND", "lvis", "MODEL.BALMS.CUSTOM_IMPORTS", "['json']",
                           "MODEL.BALMS.PRIOR.SOURCE", "dataset", "MODEL.BALMS.META_REWEIGHTER.LOG_PERIOD", "2"])
    for head in ("BalancedSoftmaxROIHeads", "LongTailROIHeads"):
        build_config(SOFTMAX, ["MODEL.ROI_HEADS.NAME", head, "MODEL.BALMS.CLS_LOSS", "seesaw"])


# ------------------------------------------------------------------ ranges, names, combinations
@pytest.mark.parametrize("key,value", [
    ("MODEL.BALMS.TAU", "-1.0"),
    ("MODEL.BALMS.LOGIT_ADJUSTMENT.TAU", "-0.5"),
    ("MODEL.BALMS.NORCAL.GAMMA", "-1.0"),
    ("MODEL.BALMS.SIGMOID_PRIOR_PROB", "1.5"),
    ("MODEL.BALMS.SIGMOID_PRIOR_PROB", "0.0"),
    ("MODEL.BALMS.NORMED_TEMPERATURE", "0.0"),
    ("MODEL.BALMS.SEESAW.P", "-0.8"),
    ("MODEL.BALMS.SEESAW.Q", "-2.0"),
    ("MODEL.BALMS.SEESAW.EPS", "0.0"),
    ("MODEL.BALMS.EQLV2.ALPHA", "-4.0"),
    ("MODEL.BALMS.ECM.FG_BG_RATIO", "0.0"),
    ("MODEL.BALMS.FEDERATED.NUM_CLASSES", "0"),
    ("MODEL.BALMS.PRIOR.MIN_COUNT", "0.0"),
    ("MODEL.BALMS.META_REWEIGHTER.PERIOD", "0"),
    ("MODEL.BALMS.META_REWEIGHTER.LR", "-0.01"),
    ("MODEL.BALMS.CLS_LOSS", "seesw"),
    ("MODEL.BALMS.CALIBRATION", "norcl"),
    ("MODEL.BALMS.CLASSIFIER", "cosine"),
    ("MODEL.BALMS.BACKGROUND", "adjusted"),
    ("MODEL.BALMS.PRIOR.SOURCE", "jsn"),
    ("MODEL.BALMS.PRIOR.COUNT", "images"),
    ("MODEL.BALMS.PRIOR.SAMPLER", "yes"),
    ("MODEL.BALMS.META_REWEIGHTER.META_SOURCE", "bnk"),
    ("MODEL.BALMS.META_REWEIGHTER.ON_NONFINITE", "ignore"),
    ("TEST.LVIS_EVAL.BACKEND", "slow"),
    ("TEST.LVIS_EVAL.MAX_DETS_PER_IMAGE", "0"),
    ("TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS", "[100, 10]"),
    ("MODEL.BALMS.DECOUPLED.TRAINABLE", "['roi_heads\\\\.(box']"),
    ("MODEL.ROI_HEADS.NAME", "LongTailROIHead"),
])
def test_a_value_out_of_its_range_or_set_is_refused(key, value):
    refused(BALANCED, [key, value], key)


@pytest.mark.parametrize("opts,key", [
    (["MODEL.BALMS.CLS_LOSS", "seesaw", "MODEL.BALMS.CALIBRATION", "norcal"], "MODEL.BALMS.CALIBRATION"),
    (["MODEL.BALMS.CALIBRATION", "norcal", "MODEL.BALMS.LOGIT_ADJUSTMENT.TAU", "0.5"],
     "MODEL.BALMS.LOGIT_ADJUSTMENT.TAU"),
    (["MODEL.BALMS.NORCAL.GAMMA", "0.5"], "MODEL.BALMS.NORCAL.GAMMA"),
    (["MODEL.BALMS.META_REWEIGHTER.ENABLED", "True"], "MODEL.BALMS.META_REWEIGHTER.ENABLED"),
    (["MODEL.BALMS.META_REWEIGHTER.ENABLED", "True", "MODEL.BALMS.DECOUPLED.ENABLED", "True",
      "MODEL.BALMS.CLS_LOSS", "seesaw"], "MODEL.BALMS.CLS_LOSS"),
    (["MODEL.BALMS.PRIOR.SOURCE", "list", "MODEL.BALMS.PRIOR.COUNTS", "[3.0, 1.0]"], "MODEL.BALMS.PRIOR.COUNTS"),
    (["MODEL.BALMS.PRIOR.SOURCE", "list"], "MODEL.BALMS.PRIOR.COUNTS"),
    (["MODEL.BALMS.PRIOR.SAMPLER", "train", "DATALOADER.SAMPLER_TRAIN", "RandomSubsetTrainingSampler"],
     "DATALOADER.SAMPLER_TRAIN"),
])
def test_combinations_the_predictor_refuses_are_refused_first(opts, key):
    refused(BALANCED, opts, key)


def test_the_old_posthoc_tau_key_says_what_to_write(tmp_path):
    """MODEL.BALMS.POSTHOC_TAU is now CALIBRATION logit_adjustment with LOGIT_ADJUSTMENT.TAU (a renamed key)."""
    old = tmp_path / "old.yaml"
    old.write_text(f'_BASE_: "{BALANCED}"\nMODEL:\n  BALMS:\n    POSTHOC_TAU: 1.0\n')
    for path, opts in ((str(old), []), (BALANCED, ["MODEL.BALMS.POSTHOC_TAU", "1.0"])):
        with pytest.raises(KeyError, match="renamed to MODEL.BALMS.LOGIT_ADJUSTMENT.TAU.*CALIBRATION logit_adjustment"):
            build_config(path, opts)
    cfg = build_config(BALANCED, ["MODEL.BALMS.CALIBRATION", "logit_adjustment",
                                  "MODEL.BALMS.LOGIT_ADJUSTMENT.TAU", "0.5"])
    assert cfg.MODEL.BALMS.LOGIT_ADJUSTMENT.TAU == 0.5


# ------------------------------------------------------------------ datasets and classes
@pytest.mark.parametrize("k", [41, 3])
def test_num_classes_must_match_the_categories_read_from_metadata(k, tmp_path):
    from balms_det.data import register_lt_shapes

    name = f"lt_shapes_never_generated_{uuid.uuid4().hex[:8]}"
    root = tmp_path / "never_generated"
    register_lt_shapes(name, "train", str(root))
    msg = refused(SOFTMAX, ["DATASETS.TRAIN", f"('{name}',)", *NO_TEST, "MODEL.ROI_HEADS.NUM_CLASSES", str(k)],
                  "MODEL.ROI_HEADS.NUM_CLASSES")
    assert f"DATASETS.TRAIN '{name}' has 40 categories" in msg and "valid: 40" in msg
    build_config(SOFTMAX, ["DATASETS.TRAIN", f"('{name}',)", *NO_TEST])  # 40: fine
    assert not root.exists()  # thing_classes only: the dataset was not generated
    msg = refused(SOFTMAX, ["DATASETS.TEST", "('coco_2017_val',)"], "MODEL.ROI_HEADS.NUM_CLASSES")
    assert "DATASETS.TEST 'coco_2017_val' has 80 categories" in msg


def test_an_unregistered_dataset_is_named_with_the_closest_registered():
    msg = refused(SOFTMAX, ["DATASETS.TRAIN", "('lt_shapez_train',)"], "DATASETS.TRAIN")
    assert "not registered" in msg and "'lt_shapes_train'" in msg
    msg = refused(BALANCED, ["DATASETS.TEST", "('lt_shapes_vall',)"], "DATASETS.TEST")  # today: no 'json_file'
    assert "'lt_shapes_val'" in msg and "json_file" not in msg


def test_a_json_prior_on_a_coco_training_set_is_refused_naming_the_sources_that_count_it(tmp_path):
    """register_coco_instances data and MODEL.BALMS.PRIOR.SOURCE json (the default): refused before anything is
    built (only the file's categories are read), naming the sources that count it; a head or loss that needs no
    prior, and the sources it names, pass; a lazily made set (lt_shapes) is not made to check it."""
    import json

    from detectron2.data.datasets import register_coco_instances

    name = f"own_coco_{uuid.uuid4().hex[:8]}"
    cats = [{"id": i, "name": f"class{i}"} for i in (1, 2, 3)]
    (tmp_path / "train.json").write_text(json.dumps({"images": [], "annotations": [], "categories": cats}))
    register_coco_instances(name, {}, str(tmp_path / "train.json"), str(tmp_path))
    opts = ["DATASETS.TRAIN", f"('{name}',)", *NO_TEST, "MODEL.ROI_HEADS.NUM_CLASSES", "3"]
    msg = refused(BALANCED, opts, "MODEL.BALMS.PRIOR.SOURCE")
    assert msg.startswith(f"MODEL.BALMS.PRIOR.SOURCE 'json': DATASETS.TRAIN '{name}': the categories of ") and \
        "have no 'image_count' field (3 of 3, e.g. id 1 'class1'" in msg, msg
    assert msg.endswith("valid: MODEL.BALMS.PRIOR.SOURCE dataset (counts the training annotations) or metadata "
                        "(the training sets' metadata class_image_count), or list with MODEL.BALMS.PRIOR.COUNTS"), msg
    for more in (["MODEL.BALMS.PRIOR.SOURCE", "dataset"], ["MODEL.BALMS.PRIOR.SOURCE", "metadata"],
                 ["MODEL.BALMS.CLS_LOSS", "softmax"],  # a loss that keeps no prior
                 ["MODEL.BALMS.PRIOR.SAMPLER", "train", "DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler"]):
        build_config(BALANCED, opts + more)
    build_config(SOFTMAX, opts)  # the stock head
    from balms_det.data import register_lt_shapes

    lazy = f"lt_shapes_never_generated_{uuid.uuid4().hex[:8]}"
    register_lt_shapes(lazy, "train", str(tmp_path / "never_generated"))
    build_config(BALANCED, ["DATASETS.TRAIN", f"('{lazy}',)", *NO_TEST])
    assert not (tmp_path / "never_generated").exists()


def test_python_config_dataset_names_and_trainable_patterns():
    from balms_det.config_validation import validate_lazy_config

    cfg = LazyConfig.load(LAZY_DECOUPLED)
    cfg.model.roi_heads.box_predictor.cls_loss.prior.datasets = "lt_shapes_trian"  # no metadata 'json_file' today
    with pytest.raises(ValueError, match=r"^model\.roi_heads\.box_predictor\.cls_loss\.prior\.datasets "
                                         r"'lt_shapes_trian': not registered.*'lt_shapes_train'"):
        validate_lazy_config(cfg)
    cfg = LazyConfig.load(LAZY_DECOUPLED)
    cfg.decoupled.trainabel = [r"cls_score\."]  # a typo: ignored today
    with pytest.raises(ValueError, match=r"^decoupled\.trainabel .*; valid: \['trainable'"):
        validate_lazy_config(cfg)


# ------------------------------------------------------------------ the box predictor's parts
def _predictor(**kwargs):
    from detectron2.layers import ShapeSpec
    from detectron2.modeling.box_regression import Box2BoxTransform

    from balms_det.modeling import LongTailOutputLayers

    return LongTailOutputLayers(ShapeSpec(channels=8), box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
                                num_classes=4, **kwargs)


def test_a_registered_class_that_is_not_a_loss_is_refused():
    from balms_det.modeling import CLS_LOSS_REGISTRY

    class NotALoss(torch.nn.Module):  # a user's loss that does not subclass ClsLoss
        def __init__(self, num_classes, **kwargs):
            super().__init__()

    CLS_LOSS_REGISTRY.register(NotALoss)
    try:
        msg = refused(BALANCED, ["MODEL.BALMS.CLS_LOSS", "NotALoss"], "MODEL.BALMS.CLS_LOSS")
        assert "not a ClsLoss subclass" in msg
        with pytest.raises(TypeError, match="ClsLoss"):
            _predictor(cls_loss=NotALoss(4))
    finally:
        CLS_LOSS_REGISTRY._obj_map.pop("NotALoss", None)


def test_a_meta_reweighter_of_another_class_count_is_refused_at_build():
    from balms_det.modeling import MetaReweighter, SoftmaxLoss

    with pytest.raises(ValueError, match="meta_reweighter has 3 classes, the predictor 4"):
        _predictor(cls_loss=SoftmaxLoss(4), meta_reweighter=MetaReweighter(3, 8))


def test_non_finite_probabilities_at_inference_name_the_loss():
    from detectron2.structures import Boxes, Instances

    from balms_det.modeling import SoftmaxLoss

    predictor = _predictor(cls_loss=SoftmaxLoss(4)).eval()
    with torch.no_grad():
        predictor.cls_score.weight.fill_(float("nan"))
        proposals = [Instances((32, 32), proposal_boxes=Boxes(torch.tensor([[1.0, 2.0, 20.0, 24.0]] * 3)))]
        predictions = predictor(torch.randn(3, 8))
        with pytest.raises(FloatingPointError, match="cls_loss 'softmax' with calibration 'none'"):
            predictor.inference(predictions, proposals)  # today: no detections, every metric NaN


# ------------------------------------------------------------------ what a run starts from
def _train_net():
    from test_configs import _trainer_cls

    return _trainer_cls()


@pytest.fixture(scope="module")
def crt_trainer(datasets_dir, tmp_path_factory):
    """tools/train_net.py's Trainer for cRT on lt_shapes_mini (a decoupled stage), not yet loaded."""
    out = tmp_path_factory.mktemp("crt")
    cfg = build_config(CRT, TINY + NO_TEST + ["MODEL.WEIGHTS", "", "OUTPUT_DIR", str(out)])
    cfg.freeze()
    return _train_net()(cfg), out


def _start(trainer, weights):
    trainer.cfg.defrost()
    trainer.cfg.MODEL.WEIGHTS = str(weights)
    trainer.cfg.freeze()
    trainer.resume_or_load(resume=False)


def test_a_decoupled_stage_needs_weights_that_give_every_frozen_parameter(crt_trainer, tmp_path):
    from detectron2.modeling import build_model

    trainer, _ = crt_trainer
    with pytest.raises(ValueError, match=r"^MODEL\.WEIGHTS '': a decoupled stage .*; valid: "):
        _start(trainer, "")  # today: a classifier trained on a random frozen trunk
    with pytest.raises(ValueError, match=r"^MODEL\.WEIGHTS '.*missing\.pth': no such file"):
        _start(trainer, tmp_path / "missing.pth")  # today: an AssertionError's traceback

    # the weights of a 3-class model: box regressor and mask predictor skipped for their shapes
    cfg = build_config(SOFTMAX, TINY + ["MODEL.ROI_HEADS.NUM_CLASSES", "3"], validate=False)
    other = tmp_path / "three_classes.pth"
    torch.save({"model": build_model(cfg).state_dict()}, other)
    with pytest.raises(ValueError) as info:
        _start(trainer, other)  # today: they stay random, frozen, and the run exits 0
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"MODEL.WEIGHTS '{other}': 4 frozen parameter(s)"), msg
    assert "roi_heads.box_predictor.bbox_pred.weight (shape (12, 256) in the checkpoint, (160, 256)" in msg, msg

    # a frozen parameter missing from the file; the trainable classifier may be (cRT re-initialises it)
    full = trainer.model.state_dict()
    stem = "backbone.bottom_up.stem.conv1.weight"
    torch.save({"model": {k: v for k, v in full.items() if k != stem}}, tmp_path / "no_stem.pth")
    with pytest.raises(ValueError, match=r": 1 frozen parameter\(s\) .*stem\.conv1\.weight \(not in the checkpoint\)"):
        _start(trainer, tmp_path / "no_stem.pth")
    torch.save({"model": {k: v for k, v in full.items() if "cls_score" not in k}}, tmp_path / "no_classifier.pth")
    _start(trainer, tmp_path / "no_classifier.pth")


def test_a_python_config_decoupled_stage_needs_its_init_checkpoint(datasets_dir, tmp_path):
    from test_lazy_configs import _entry_point, shrink

    cfg = shrink(LazyConfig.load(LAZY_DECOUPLED), tmp_path)  # (train.init_checkpoint "")
    with pytest.raises(ValueError, match=r"^train\.init_checkpoint '': a decoupled stage "):
        _entry_point().do_train(SimpleNamespace(resume=False), cfg)  # today: trains on a random trunk
    assert not (tmp_path / "model_final.pth").exists()


@pytest.fixture(scope="module")
def seesaw_folder(tmp_path_factory):
    """An output folder of a Seesaw run: its config.yaml and a checkpoint after iteration 1."""
    from detectron2.modeling import build_model

    from balms_det.engine import AtomicCheckpointer

    out = tmp_path_factory.mktemp("seesaw_run")
    cfg = build_config(SEESAW, TINY + NO_TEST + ["OUTPUT_DIR", str(out)])
    (out / "config.yaml").write_text(cfg.dump())
    AtomicCheckpointer(build_model(cfg), str(out)).save("model_0000001", iteration=1)
    return out


def test_resuming_with_another_loss_is_refused(seesaw_folder):
    from detectron2.modeling import build_model

    from balms_det.engine import AtomicCheckpointer

    # what the folder's config says is checked by tools/train_net.py (test_train_net_errors_are_one_line); the
    # checkpoint's shapes by the checkpointer, whatever the entry point
    cfg = build_config(BALANCED, TINY + NO_TEST + ["MODEL.BALMS.CLS_LOSS", "softmax"])  # (no prior to read)
    checkpointer = AtomicCheckpointer(build_model(cfg), str(seesaw_folder))
    with pytest.raises(ValueError) as info:
        checkpointer.resume_or_load("", resume=True)  # today: warnings, then a softmax on a Seesaw classifier
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"--resume '{seesaw_folder}': 2 tensor(s)"), msg
    assert "roi_heads.box_predictor.cls_score.weight (42, 256) in the checkpoint, (41, 256) in the model" in msg


# ------------------------------------------------------------------ the tools: one line, nothing trained
def test_train_net_errors_are_one_line(datasets_dir, seesaw_folder, tmp_path):
    proc = run_tool(["tools/train_net.py", "--config-file", SOFTMAX, *TINY, *NO_TEST, "MODEL.BALMS.CLS_LOSS", "seesaw",
                     "OUTPUT_DIR", str(tmp_path)], datasets_dir, check=False)  # today: trains stock softmax
    assert tool_error(proc).startswith("error: MODEL.BALMS.CLS_LOSS 'seesaw': only a long-tail ROI head reads it")
    assert not os.listdir(tmp_path)

    saved = (seesaw_folder / "config.yaml").read_text()
    proc = run_tool(["tools/train_net.py", "--config-file", BALANCED, "--resume", *TINY, *NO_TEST,
                     "OUTPUT_DIR", str(seesaw_folder)], datasets_dir, check=False)  # today: shape errors
    line = tool_error(proc)
    assert line.startswith("error: MODEL.BALMS.CLS_LOSS 'balanced_softmax': --resume of OUTPUT_DIR"), line
    assert f"trained with MODEL.BALMS.CLS_LOSS 'seesaw' ({seesaw_folder / 'config.yaml'})" in line, line
    assert "another OUTPUT_DIR" in line
    assert (seesaw_folder / "config.yaml").read_text() == saved  # the folder's config is kept


def test_lazyconfig_train_net_errors_are_one_line(datasets_dir, tmp_path):
    proc = run_tool(["tools/lazyconfig_train_net.py", "--config-file", LAZY_DECOUPLED, "train.device=cpu",
                     "dataloader.train.dataset.names=lt_shapes_mini_train", "dataloader.test.dataset.names=[]",
                     "dataloader.evaluator=null", f"train.output_dir={tmp_path}",
                     r"decoupled.trainable=['roi_heads\.(box']"], datasets_dir, check=False)  # today: re's traceback
    line = tool_error(proc)
    assert line.startswith(r"error: decoupled.trainable 'roi_heads\\.(box': not a regular expression"), line
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize("opts, also, text", [
    (["SOLVER.MAX_ITR", "3"], AssertionError, "Non-existent key: SOLVER.MAX_ITR"),  # (yacs: KeyError from a file)
    (["MODEL.BALMS.POSTHOC_TAU", "1.0"], KeyError, "LOGIT_ADJUSTMENT.TAU"),
    (["MODEL.BALMS.TAU", "0"], ValueError, "write a float, e.g. 0.0"),
    (["SOLVER.MAX_ITER"], AssertionError, "odd length"),
])
def test_merge_errors_are_one_line_config_errors(opts, also, text):
    """What yacs refuses while merging is a ConfigError too (the tools print it as one line, no traceback),
    still the error type yacs raised, naming the override and what to write."""
    with pytest.raises(ConfigError) as e:
        build_config(BALANCED, opts)
    assert isinstance(e.value, also) and text in str(e.value) and "\n" not in str(e.value)
