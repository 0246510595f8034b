"""Where a model's class prior comes from: nothing is read when a model is built; a checkpoint carries the
prior it was trained with, so inference (``--eval-only``, ``DefaultPredictor``) needs no training set; a
fresh training run takes its config's prior, a resumed one the checkpoint's; under DDP the main process
computes it once for every rank."""
import numpy as np
import pytest
import torch
import torch.distributed as dist
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from balms_det.modeling import ClassPrior, resolve_priors
from balms_det.modeling.cls_losses import BalancedSoftmaxLoss
from balms_det.modeling.deferred_prior import DeferredPrior
from test_heads import COUNTS, K, tiny_cfg

torch.set_num_threads(1)


def _unregistered_training_set(cfg):
    """As a user without the training annotations: the prior's source names a set that is not registered."""
    cfg.MODEL.BALMS.PRIOR.SOURCE = "json"
    cfg.DATASETS.TRAIN = ("balms_test_not_registered_train",)
    return cfg


def _image(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (64, 80, 3), dtype=np.uint8)


@pytest.mark.parametrize("cls_loss, extra", [("balanced_softmax", {}), ("balanced_sigmoid", {}),
                                             ("softmax", {"CALIBRATION": "norcal"})])
def test_inference_from_a_checkpoint_needs_no_training_set(cls_loss, extra, tmp_path):
    trained = build_model(tiny_cfg(cls_loss=cls_loss, **extra))
    resolve_priors(trained)
    DetectionCheckpointer(trained, save_dir=str(tmp_path)).save("model_final")
    cfg = _unregistered_training_set(tiny_cfg(cls_loss=cls_loss, **extra))
    cfg.MODEL.WEIGHTS = str(tmp_path / "model_final.pth")
    deployed = DefaultPredictor(cfg)  # builds the model and loads the weights: no training set read
    loss = deployed.model.roi_heads.box_predictor.cls_loss
    assert loss.prior_ready and loss.class_counts.tolist() == COUNTS
    cfg_a = tiny_cfg(cls_loss=cls_loss, **extra)
    cfg_a.MODEL.WEIGHTS = cfg.MODEL.WEIGHTS
    a, b = DefaultPredictor(cfg_a)(_image())["instances"], deployed(_image())["instances"]
    assert len(b) > 0 and torch.equal(a.scores, b.scores) and torch.equal(a.pred_classes, b.pred_classes)


def test_inference_without_any_prior_says_what_to_do(tmp_path):
    stock = build_model(tiny_cfg(cls_loss="softmax"))  # a loss that keeps no prior
    DetectionCheckpointer(stock, save_dir=str(tmp_path)).save("stage1")
    cfg = _unregistered_training_set(tiny_cfg(cls_loss="softmax", CALIBRATION="logit_adjustment"))  # LA needs the prior
    cfg.MODEL.WEIGHTS = str(tmp_path / "stage1.pth")
    predictor = DefaultPredictor(cfg)
    with pytest.raises(Exception, match=r"(?s)not in the loaded weights.*not_registered_train.*"
                                        r"register the training set.*PRIOR.SOURCE list"):
        predictor(_image())


def test_fresh_run_takes_the_config_prior_and_resume_the_checkpoint(tmp_path):
    other = [1.0, 2.0, 3.0, 4.0, 5.0]
    cfg = tiny_cfg()
    cfg.MODEL.BALMS.PRIOR.COUNTS = other
    stage1 = build_model(cfg)
    DetectionCheckpointer(stage1, save_dir=str(tmp_path)).save("stage1")
    for override, expected in ((False, other), (True, COUNTS)):  # resume / fresh run from the weights
        model = build_model(_deferred(tiny_cfg()))
        DetectionCheckpointer(model).load(str(tmp_path / "stage1.pth"))
        loss = model.roi_heads.box_predictor.cls_loss
        assert loss.prior_ready and loss.class_counts.tolist() == other  # loaded with the weights
        assert resolve_priors(model, override=override) == (1 if override else 0)
        assert loss.class_counts.tolist() == expected


def _deferred(cfg):
    """The prior from a registered training set's metadata (computed when needed, as every source but
    ``list``), whose counts are COUNTS."""
    from detectron2.data import MetadataCatalog

    name = "balms_test_prior_lifecycle_train"
    MetadataCatalog.get(name).set(class_image_count=[{"id": i + 1, "image_count": c} for i, c in enumerate(COUNTS)])
    cfg.DATASETS.TRAIN = (name,)
    cfg.MODEL.BALMS.PRIOR.SOURCE = "metadata"
    return cfg


def test_a_cascade_computes_its_prior_once():
    calls = []
    prior = DeferredPrior(lambda k, need: calls.append(k) or ClassPrior(torch.ones(k, dtype=torch.float64), 3), "t")
    losses = [BalancedSoftmaxLoss(K, prior=prior) for _ in range(3)]
    model = torch.nn.ModuleList(losses)
    assert not any(loss.prior_ready for loss in losses)
    assert resolve_priors(model) == 3 and calls == [K]
    assert all(loss.prior_ready and loss.class_counts.sum() == K for loss in losses)


def _ddp_worker(rank, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    torch.set_num_threads(1)

    def compute(num_classes, need):
        if rank != 0:
            raise AssertionError("only the main process computes the prior")
        return ClassPrior(torch.arange(1.0, num_classes + 1, dtype=torch.float64), 9)

    loss = BalancedSoftmaxLoss(K, prior=DeferredPrior(compute, "t"))
    resolve_priors(torch.nn.ModuleList([loss]))
    torch.save(loss.class_counts, f"{out_file}.{rank}")
    from conftest import end_gloo_worker

    end_gloo_worker()


def test_under_ddp_the_main_process_computes_the_prior_for_every_rank(tmp_path):
    import torch.multiprocessing as mp

    out = str(tmp_path / "counts")
    mp.start_processes(_ddp_worker, args=(str(tmp_path / "init"), out), nprocs=2, start_method="spawn")
    a, b = torch.load(f"{out}.0"), torch.load(f"{out}.1")
    assert a.tolist() == b.tolist() == [float(i) for i in range(1, K + 1)]
