"""What the losses' and calibrations' plain functions share: computing in at least float32 under AMP
(:func:`at_least_float32`), one-hot targets (:func:`one_hot_targets`) and the per-ROI reduction
(:func:`reduce_rois`). Each method's own maths lives in its module, beside its registered class.

Precision (AMP): every function of the logits in the method modules is computed in at least float32
(:func:`at_least_float32`): half-precision logits are upcast before any prior shift, the float64
priors are cast to float32 (not to half), and autocast is off inside, so a loss or a calibration
computed under ``torch.autocast`` equals the float32 one from the same logits. Float32 and float64
logits are used as they are.
"""
import functools

import torch

__all__ = ["at_least_float32", "one_hot_targets", "reduce_rois"]

_HALF = (torch.float16, torch.bfloat16)


def at_least_float32(fn):
    """
    Decorator of the functions of the logits (the first argument): ``fn`` is computed in at least
    float32, whatever AMP does. Half-precision logits (float16 / bfloat16) are upcast to float32, and
    ``fn`` runs with autocast off on their device (autocast would run e.g. a matmul in half precision
    even on float32 tensors); float32 and float64 logits are passed as they are, so ``fn`` casts its
    float64 priors to the logits' dtype, float32 or float64, never to half. The result (and the
    gradient inside ``fn``) is float32 for half-precision logits.
    """

    @functools.wraps(fn)
    def wrapper(logits, *args, **kwargs):
        if logits.dtype in _HALF:
            logits = logits.float()
        if logits.device.type not in ("cpu", "cuda"):  # no autocast to turn off there
            return fn(logits, *args, **kwargs)
        with torch.autocast(logits.device.type, enabled=False):
            return fn(logits, *args, **kwargs)

    return wrapper


def one_hot_targets(logits, gt_classes):
    """One-hot targets; a label C (background when C = K) gives an all-zero row.

    Args:
        logits (Tensor): (N, C), float; only its shape, dtype and device are used.
        gt_classes (Tensor): (N,), int64, labels in [0, C].
    Returns:
        Tensor: (N, C), the logits' dtype.
    """
    n, k = logits.shape
    target = logits.new_zeros(n, k + 1)
    target[torch.arange(n, device=logits.device), gt_classes] = 1
    return target[:, :k]


def reduce_rois(per_roi, reduction):
    """Per-ROI losses -> themselves (``"none"``) or their sum divided by N (``"mean"``, the official
    normalisation).

    Args:
        per_roi (Tensor): (N,), float.
        reduction (str): ``"mean"`` or ``"none"``.
    Returns:
        Tensor: scalar (``"mean"``) or (N,) (``"none"``), the dtype of ``per_roi``.
    """
    if reduction == "none":
        return per_roi
    if reduction == "mean":
        return per_roi.sum() / max(per_roi.shape[0], 1)
    raise ValueError(f"Unknown reduction {reduction!r}; expected 'mean' or 'none'")
