"""What a training run starts from, checked when it starts fresh (not resumed): :func:`resume_or_load_checked`.

A decoupled stage (``MODEL.BALMS.DECOUPLED.ENABLED``, a Python config's ``decoupled``: stage 2, cRT,
BALMS) trains a few parameters of a trained model and freezes the rest. Without weights, or with the
weights of a model that differs (another class count: the box regressor and the mask predictor are
skipped for their shapes), the frozen part would stay at its random initialisation for the whole run.
The parameters left trainable (the classifier, which cRT re-initialises anyway) may be missing.
"""
import os

from detectron2.layers import FrozenBatchNorm2d

from ..config_validation import config_error
from .checkpoint import AtomicCheckpointer

__all__ = ["resume_or_load_checked", "frozen_state_names"]


def frozen_state_names(model):
    """Names (state-dict keys) of the frozen state of a decoupled model: its parameters with
    ``requires_grad`` False, and the affine parameters and statistics of its ``FrozenBatchNorm2d`` layers
    (frozen BatchNorm layers become those, their parameters buffers)."""
    names = [n for n, p in model.named_parameters() if not p.requires_grad]
    names += [f"{m}.{b}" if m else b for m, module in model.named_modules() if isinstance(module, FrozenBatchNorm2d)
              for b in ("weight", "bias", "running_mean", "running_var")]
    return names


def _shown(names, shapes, n=4):
    def one(name):
        if name in shapes:
            ckpt, model = shapes[name]
            return f"{name} (shape {tuple(ckpt)} in the checkpoint, {tuple(model)} in the model)"
        return f"{name} (not in the checkpoint)"

    return ", ".join(one(name) for name in names[:n]) + (", ..." if len(names) > n else "")


def resume_or_load_checked(checkpointer, weights, *, resume, decoupled=False, key="MODEL.WEIGHTS"):
    """``checkpointer.resume_or_load(weights, resume=resume)`` (through an :class:`AtomicCheckpointer`;
    ``checkpointer`` is converted when it is not one), and when the run starts fresh (not resuming a
    checkpoint of the output folder):

    * a local ``weights`` path must be a file (one line instead of detectron2's assertion);
    * ``decoupled``: ``weights`` must be given, and every frozen parameter (:func:`frozen_state_names`)
      must have been loaded from them (not missing from the file, not skipped for its shape).

    ``key`` is the config key of ``weights`` in the errors (``train.init_checkpoint`` for Python configs).
    Raises :class:`~balms_det.config_validation.ConfigError`; returns what ``resume_or_load`` returns."""
    checkpointer = AtomicCheckpointer.from_checkpointer(checkpointer)
    fresh = not (resume and checkpointer.has_checkpoint())
    if fresh and decoupled and not weights:
        raise config_error(key, weights, "a decoupled stage trains part of a trained model and freezes the rest, "
                           "which would stay at its random initialisation without weights",
                           "the weights of a trained model with these classes and heads, e.g. a stage-1 run's "
                           "model_final.pth")
    if fresh and weights and "://" not in weights and not os.path.isfile(weights):
        raise config_error(key, weights, "no such file", "the path of a model checkpoint, or a URL "
                           "(detectron2://, https://)")
    loaded = checkpointer.resume_or_load(weights, resume=resume)
    incompatible = checkpointer.incompatible_keys
    if fresh and decoupled and incompatible is not None:
        missing = set(incompatible.missing_keys)
        shapes = {k: (a, b) for k, a, b in incompatible.incorrect_shapes}
        not_loaded = [n for n in frozen_state_names(checkpointer.model) if n in missing or n in shapes]
        if not_loaded:
            raise config_error(key, weights, f"{len(not_loaded)} frozen parameter(s) of this decoupled stage do not "
                               f"come from it ({_shown(not_loaded, shapes)}) and would stay at their random "
                               "initialisation", "the weights of a trained model with these classes and heads "
                               "(or the decoupled trainable patterns matching those parameters)")
    return loaded
