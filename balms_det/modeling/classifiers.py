"""The box classifier module (``cls_score``): a linear layer or the normalised (cosine) one.

``MODEL.BALMS.CLASSIFIER``: ``"linear"`` (``nn.Linear``, detectron2's) or ``"normed"``
(:class:`NormedLinear`, the classifier of the Seesaw and ECM LVIS recipes, mmdetection's
``NormedLinear`` with ``power = 1``).
"""
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["CLASSIFIERS", "NormedLinear", "build_classifier"]

CLASSIFIERS = ("linear", "normed")


class NormedLinear(nn.Linear):
    """
    ``z_j = T * <x / (|x| + eps), w_j / (|w_j| + eps)> + b_j``: cosine similarity of the feature and
    the class weight, scaled by the temperature ``T``. Parameters ``weight`` / ``bias`` as
    ``nn.Linear`` (same state-dict keys). Norms are taken in float32, so half-precision inputs (AMP)
    do not overflow.
    """

    def __init__(self, in_features, out_features, temperature=20.0, eps=1e-6, bias=True):
        super().__init__(in_features, out_features, bias=bias)
        if temperature <= 0:
            raise ValueError(f"NormedLinear temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)
        self.eps = eps

    def forward(self, x):
        dtype = torch.promote_types(x.dtype, torch.float32)  # at least float32 for the norms
        xf, wf = x.to(dtype), self.weight.to(dtype)
        x_n = xf / (xf.norm(dim=1, keepdim=True) + self.eps) * self.temperature
        w_n = wf / (wf.norm(dim=1, keepdim=True) + self.eps)
        return F.linear(x_n.to(x.dtype), w_n.to(self.weight.dtype), self.bias)

    def extra_repr(self):
        return super().extra_repr() + f", temperature={self.temperature}"


def build_classifier(kind, in_features, out_features, temperature=20.0):
    """``nn.Linear`` (``kind="linear"``) or :class:`NormedLinear` (``"normed"``)."""
    if kind == "linear":
        return nn.Linear(in_features, out_features)
    if kind == "normed":
        return NormedLinear(in_features, out_features, temperature=temperature)
    raise ValueError(f"Unknown classifier {kind!r}; expected one of {CLASSIFIERS}")
