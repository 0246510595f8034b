"""What a training run starts from, checked: a ``--resume`` against the folder's config (:func:`check_resume`),
and a fresh start's weights (:func:`resume_or_load_checked`).

A decoupled stage (``MODEL.BALMS.DECOUPLED.ENABLED``, a Python config's ``decoupled``: stage 2, cRT,
BALMS) trains a few parameters of a trained model and freezes the rest. Without weights, or with the
weights of a model that differs (another class count: the box regressor and the mask predictor are
skipped for their shapes), the frozen part would stay at its random initialisation for the whole run.
The parameters left trainable (the classifier, which cRT re-initialises anyway) may be missing.
"""
import os

import yaml
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY

from ..config_validation import LONG_TAIL_HEADS, config_error
from ..modeling.cls_losses import cls_loss_class
from .checkpoint import AtomicCheckpointer

__all__ = ["check_resume", "resume_or_load_checked", "frozen_state_names"]


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


def _loss_class_of(head_name, cls_loss):
    """The loss class a config with these keys trains (a name where it is not registered), or None for a
    stock head (or an unregistered one)."""
    if head_name not in ROI_HEADS_REGISTRY:
        return None
    head = ROI_HEADS_REGISTRY.get(head_name)
    if not (isinstance(head, type) and issubclass(head, LONG_TAIL_HEADS)):
        return None
    try:
        return cls_loss_class(cls_loss)
    except ValueError:
        return cls_loss


def check_resume(cfg):
    """For a ``--resume`` of ``cfg.OUTPUT_DIR`` that holds a checkpoint (``last_checkpoint``): the config
    saved there by the previous run (``config.yaml``, written by detectron2's ``default_setup``, so read
    this before it) must train the same classes with the same loss. Call before ``default_setup``."""
    folder = cfg.OUTPUT_DIR
    saved_path = os.path.join(folder, "config.yaml")
    if not (os.path.isfile(os.path.join(folder, "last_checkpoint")) and os.path.isfile(saved_path)):
        return
    try:
        with open(saved_path) as f:
            saved = yaml.safe_load(f)
        model = saved["MODEL"]
        saved_k, saved_head = model["ROI_HEADS"]["NUM_CLASSES"], model["ROI_HEADS"]["NAME"]
        saved_loss = model.get("BALMS", {}).get("CLS_LOSS", None)
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return  # not a config this check can read: the checkpoint's shapes are checked when it is loaded
    suggestion = (f"resume with the config it was trained with (--config-file {saved_path}), or train this "
                  "config in another OUTPUT_DIR")
    k = cfg.MODEL.ROI_HEADS.NUM_CLASSES
    if saved_k != k:
        raise config_error("MODEL.ROI_HEADS.NUM_CLASSES", k, f"--resume of OUTPUT_DIR {folder!r}, whose checkpoints "
                           f"were trained with {saved_k} classes ({saved_path})", suggestion)
    ours = _loss_class_of(cfg.MODEL.ROI_HEADS.NAME, cfg.MODEL.BALMS.CLS_LOSS)
    theirs = _loss_class_of(saved_head, saved_loss)
    if ours != theirs:
        what = f"MODEL.BALMS.CLS_LOSS {saved_loss!r}" if theirs is not None else f"the stock head {saved_head!r}"
        value = cfg.MODEL.BALMS.CLS_LOSS if ours is not None else cfg.MODEL.ROI_HEADS.NAME
        key = "MODEL.BALMS.CLS_LOSS" if ours is not None else "MODEL.ROI_HEADS.NAME"
        raise config_error(key, value, f"--resume of OUTPUT_DIR {folder!r}, whose checkpoints were trained with "
                           f"{what} ({saved_path})", suggestion)
