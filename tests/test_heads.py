"""The box predictor and the registered standard / cascade ROI heads, on tiny models and inputs."""
import math
import os
import sys

import pytest
import torch
from detectron2 import model_zoo
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.modeling.box_regression import Box2BoxTransform
from detectron2.modeling.roi_heads.fast_rcnn import FastRCNNOutputLayers
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

import balms_det  # noqa: F401  registers the heads
from conftest import tiny_detection_inputs
from balms_det import LongTailOutputLayers, add_balms_config
from balms_det.modeling.cls_losses.balanced_sigmoid import balanced_sigmoid_loss
from balms_det.modeling.cls_losses.balanced_softmax import balanced_softmax_loss
from balms_det.modeling.cls_losses.sigmoid import sigmoid_ce_loss
from balms_det.modeling.cls_losses.softmax import softmax_logit_shift

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures"))
from pin_cls_losses import flat_layer  # noqa: E402  the box predictor from the old flat keyword arguments

torch.set_num_threads(1)
K = 5
COUNTS = [400.0, 100.0, 30.0, 5.0, 1.0]


def tiny_cfg(head="BalancedSoftmaxROIHeads", cls_loss="balanced_softmax", **balms):
    cfg = get_cfg()
    add_balms_config(cfg)
    cfg.merge_from_file(model_zoo.get_config_file("Base-RCNN-FPN.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[8], [16], [32], [64], [128]]
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 64
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 32
    cfg.MODEL.ROI_HEADS.NAME = head
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = K
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 32
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 16
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    if "Cascade" in head:
        cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True
    cfg.MODEL.BALMS.CLS_LOSS = cls_loss
    cfg.MODEL.BALMS.PRIOR.SOURCE = "list"
    cfg.MODEL.BALMS.PRIOR.COUNTS = COUNTS
    cfg.MODEL.BALMS.PRIOR.NUM_IMAGES = 500
    for k, v in balms.items():
        setattr(cfg.MODEL.BALMS, k, v)
    return cfg


def tiny_inputs(n=2):
    return tiny_detection_inputs(K, n)


def train_step(model, inputs):
    model.train()
    with EventStorage():
        losses = model(inputs)
    total = sum(losses.values())
    total.backward()
    return losses


@pytest.mark.parametrize("head", ["BalancedSoftmaxROIHeads", "BalancedSoftmaxCascadeROIHeads"])
@pytest.mark.parametrize("cls_loss", ["softmax", "balanced_softmax", "sigmoid", "balanced_sigmoid",
                                      "seesaw", "eqlv2", "ecm", "federated"])
def test_heads_train_and_infer(head, cls_loss):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(head, cls_loss))
    preds = model.roi_heads.box_predictor
    preds = list(preds) if isinstance(preds, torch.nn.ModuleList) else [preds]
    assert all(isinstance(p, LongTailOutputLayers) and p.cls_loss.name == cls_loss for p in preds)
    if "Cascade" in head:
        assert len(preds) == 3
    losses = train_step(model, tiny_inputs())
    assert "loss_mask" in losses
    cls_keys = [k for k in losses if k.startswith("loss_cls")]
    assert len(cls_keys) == len(preds)
    assert all(torch.isfinite(v) for v in losses.values())
    for p in preds:
        assert p.cls_score.weight.grad is not None and p.cls_score.weight.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model(tiny_inputs(1))
    inst = out[0]["instances"]
    assert len(inst) > 0 and inst.has("pred_masks")
    assert ((inst.scores >= 0) & (inst.scores <= 1)).all()
    assert (inst.pred_classes < K).all()


def test_old_head_names_are_registry_aliases_of_the_same_classes():
    from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY

    assert ROI_HEADS_REGISTRY.get("BalancedSoftmaxROIHeads") is balms_det.LongTailROIHeads
    assert ROI_HEADS_REGISTRY.get("BalancedSoftmaxCascadeROIHeads") is balms_det.LongTailCascadeROIHeads


def _proposals(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    p = Instances((64, 64))
    xy = torch.rand(n, 2, generator=g) * 30
    p.proposal_boxes = Boxes(torch.cat([xy, xy + 10 + torch.rand(n, 2, generator=g) * 20], 1))
    p.gt_boxes = Boxes(p.proposal_boxes.tensor + torch.randn(n, 4, generator=g))
    labels = torch.randint(0, K, (n,), generator=g)
    labels[: n // 2] = K
    p.gt_classes = labels
    return [p]


def _layer(cls_loss="balanced_softmax", **kw):
    torch.manual_seed(0)
    return flat_layer(
        ShapeSpec(channels=16), box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)),
        num_classes=K, cls_loss=cls_loss, class_counts=COUNTS, num_images=500, **kw,
    )


def test_standalone_layer_losses_match_functions_and_stock():
    x = torch.randn(40, 16)
    props = _proposals()
    gt = props[0].gt_classes
    stock = FastRCNNOutputLayers(16, box2box_transform=Box2BoxTransform((10.0, 10.0, 5.0, 5.0)), num_classes=K)
    for cls_loss in ("softmax", "balanced_softmax", "sigmoid", "balanced_sigmoid"):
        layer = _layer(cls_loss)
        with EventStorage():
            losses = layer.losses(layer(x), props)
        scores = layer(x)[0]
        if cls_loss == "softmax":
            stock.load_state_dict(layer.state_dict())
            with EventStorage():
                ref = stock.losses(stock(x), props)
            assert torch.allclose(losses["loss_cls"], ref["loss_cls"])
            assert torch.allclose(losses["loss_box_reg"], ref["loss_box_reg"])
        elif cls_loss == "balanced_softmax":
            shift = softmax_logit_shift(torch.tensor(COUNTS))
            assert torch.allclose(losses["loss_cls"], balanced_softmax_loss(scores, gt, shift))
        elif cls_loss == "sigmoid":
            assert scores.shape == (40, K)
            assert torch.allclose(losses["loss_cls"], sigmoid_ce_loss(scores, gt))
        else:
            p = torch.tensor(COUNTS, dtype=torch.float64) / 500
            assert torch.allclose(losses["loss_cls"], balanced_sigmoid_loss(scores, gt, p))


def test_sigmoid_classifier_init_and_inference():
    layer = _layer("balanced_sigmoid", sigmoid_prior_prob=0.001)
    assert layer.cls_score.out_features == K
    assert torch.allclose(layer.cls_score.bias, torch.full((K,), -math.log(999.0)))
    x = torch.randn(7, 16)
    probs = layer.predict_probs(layer(x), [Instances((9, 9), proposal_boxes=Boxes(torch.zeros(7, 4)))])[0]
    assert probs.shape == (7, K + 1) and (probs[:, K] == 0).all()
    assert torch.allclose(probs[:, :K], torch.sigmoid(layer.cls_score(x)))


def test_posthoc_inference():
    x = torch.randn(30, 16)
    props = [Instances((64, 64), proposal_boxes=Boxes(torch.rand(30, 4) * 10))]
    plain = _layer("softmax")
    post = _layer("softmax", posthoc_tau=1.0)
    post.load_state_dict(plain.state_dict(), strict=False)
    p0 = plain.predict_probs(plain(x), props)[0]
    p1 = post.predict_probs(post(x), props)[0]
    z = plain(x)[0]
    expect = torch.softmax(z - softmax_logit_shift(torch.tensor(COUNTS)).float(), dim=1)
    assert torch.allclose(p1, expect, atol=1e-6)
    # the rare class gains, the frequent class loses probability mass
    assert (p1[:, K - 1] > p0[:, K - 1]).all() and (p1[:, 0] < p0[:, 0]).all()
    with pytest.raises(ValueError, match="softmax losses only"):
        _layer("sigmoid", posthoc_tau=1.0)


def test_running_background_prior_counts_rois():
    layer = _layer("balanced_softmax", background="running")
    props = _proposals()
    x = torch.randn(40, 16)
    shift0 = layer.cls_loss.logit_shift()
    assert torch.allclose(shift0, torch.zeros_like(shift0))  # no ROIs seen: uniform (smoothing only)
    with EventStorage():
        layer.losses(layer(x), props)
        layer.losses(layer(x), props)
    expect = torch.bincount(props[0].gt_classes, minlength=K + 1).double() * 2
    assert torch.equal(layer.cls_loss.roi_label_counts, expect)
    assert "cls_loss.roi_label_counts" in layer.state_dict()
    layer.eval()  # inference does not count
    layer.predict_probs(layer(x), props)
    assert torch.equal(layer.cls_loss.roi_label_counts, expect)


def test_prior_buffer_is_checkpointed(tmp_path):
    model = build_model(tiny_cfg())
    pred = model.roi_heads.box_predictor
    assert "roi_heads.box_predictor.cls_loss.class_counts" in model.state_dict()
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("m")
    cfg2 = tiny_cfg()
    cfg2.MODEL.BALMS.PRIOR.COUNTS = [1.0, 1.0, 1.0, 1.0, 2.0]
    model2 = build_model(cfg2)
    assert not torch.equal(model2.roi_heads.box_predictor.cls_loss.class_counts, pred.cls_loss.class_counts)
    DetectionCheckpointer(model2).load(str(tmp_path / "m.pth"))
    assert torch.equal(model2.roi_heads.box_predictor.cls_loss.class_counts, pred.cls_loss.class_counts)
    # a loss that does not use the prior does not save it (stage-1 checkpoints keep stage 2's prior)
    assert "roi_heads.box_predictor.cls_loss.class_counts" not in build_model(tiny_cfg(cls_loss="softmax")).state_dict()


def test_bad_config_errors():
    with pytest.raises(ValueError, match="NUM_CLASSES"):
        build_model(_with(tiny_cfg(), COUNTS=[1.0, 2.0]))
    with pytest.raises(ValueError, match="cls_loss"):
        build_model(tiny_cfg(cls_loss="focal"))


def _with(cfg, **prior):
    for k, v in prior.items():
        setattr(cfg.MODEL.BALMS.PRIOR, k, v)
    return cfg
