"""balms_det.solver.build_optimizer: SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model" clips the whole model's
gradient norm (torch.nn.utils.clip_grad_norm_ over all parameters); detectron2's types are detectron2's."""
import copy

import pytest
import torch
from torch import nn

from balms_det.engine import build_config
from balms_det.solver import build_optimizer


def _cfg(clip_type=None, clip_value=0.5, norm_type=2.0):
    cfg = build_config("", ["SOLVER.BASE_LR", "0.1", "SOLVER.MOMENTUM", "0.0", "SOLVER.WEIGHT_DECAY", "0.0"])
    if clip_type:
        cfg.merge_from_list(["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", clip_type,
                             "SOLVER.CLIP_GRADIENTS.CLIP_VALUE", str(clip_value),
                             "SOLVER.CLIP_GRADIENTS.NORM_TYPE", str(norm_type)])
    return cfg


def _model_with_grads():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 2, bias=False))
    model[3].weight.requires_grad_(False)  # frozen: not the optimizer's, not in the norm
    (model(torch.randn(4, 6)) ** 2).sum().mul(50).backward()
    return model


def _copy(model):
    """A deep copy with the gradients (a parameter's deepcopy leaves them out)."""
    out = copy.deepcopy(model)
    for p, q in zip(model.parameters(), out.parameters()):
        q.grad = None if p.grad is None else p.grad.clone()
    return out


def _sgd_by_hand(model, lr=0.1):
    with torch.no_grad():
        for p in model.parameters():
            if p.grad is not None:
                p -= lr * p.grad


@pytest.mark.parametrize("norm_type", [2.0, 1.0])
def test_full_model_clipping_is_clip_grad_norm_over_all_parameters(norm_type):
    model = _model_with_grads()
    reference = _copy(model)
    trainable = [p for p in reference.parameters() if p.requires_grad]
    total = torch.nn.utils.clip_grad_norm_(trainable, 0.5, norm_type)
    assert total > 2.0  # far above the limit: the step is clipped
    _sgd_by_hand(reference)
    per_tensor = _copy(model)  # what detectron2's "norm" type does: each tensor on its own
    for p in per_tensor.parameters():
        if p.grad is not None:
            torch.nn.utils.clip_grad_norm_(p, 0.5, norm_type)
    _sgd_by_hand(per_tensor)

    optimizer = build_optimizer(_cfg("full_model", 0.5, norm_type), model)
    assert isinstance(optimizer, torch.optim.SGD) and type(optimizer).__name__.endswith("WithGradientClip")
    optimizer.step()
    for p, q, r in zip(model.parameters(), reference.parameters(), per_tensor.parameters()):
        torch.testing.assert_close(p, q)
    assert not all(torch.allclose(p, r) for p, r in zip(model.parameters(), per_tensor.parameters()))
    # the gradients were scaled together: their joint norm is the limit
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g, norm_type) for g in grads]),
                                    norm_type).item() == pytest.approx(0.5, rel=1e-4)


def test_other_clip_types_are_detectron2s():
    model = _model_with_grads()
    assert type(build_optimizer(_cfg(), model)) is torch.optim.SGD  # clipping off: detectron2's plain SGD
    reference = _copy(model)
    for p in reference.parameters():
        if p.grad is not None:
            torch.nn.utils.clip_grad_value_(p, 0.01)
    _sgd_by_hand(reference)
    build_optimizer(_cfg("value", 0.01), model).step()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q)
