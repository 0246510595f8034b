"""Defaults for training entry points: config loading with clear errors, DDP that also works on CPU."""
import contextlib
import os

import yaml
from detectron2.config import get_cfg
from detectron2.engine import defaults as d2_defaults
from detectron2.utils import comm

from ..config import add_balms_config

_D2_CREATE_DDP_MODEL = d2_defaults.create_ddp_model  # detectron2's own, restored after patching


def merge_config(cfg, config_file, opts=()):
    """``cfg.merge_from_file(config_file)`` then ``cfg.merge_from_list(opts)``, with errors that name
    the file (and the ``_BASE_`` chain is followed by detectron2) or the bad command-line key."""
    if config_file:
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"Config file not found: {config_file}")
        try:
            cfg.merge_from_file(config_file)
        except (KeyError, ValueError, AssertionError, yaml.YAMLError) as e:
            raise type(e)(f"Invalid config file {config_file}: {_msg(e)}") from e
    if opts:
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, ValueError, AssertionError) as e:
            raise type(e)(f"Invalid command-line config override {list(opts)}: {_msg(e)}") from e
    return cfg


def _msg(e):
    return e.args[0] if e.args else repr(e)


def build_config(config_file="", opts=()):
    """detectron2's defaults + balms_det's keys, merged with a YAML file and ``KEY VALUE`` overrides."""
    cfg = get_cfg()
    add_balms_config(cfg)
    return merge_config(cfg, config_file, opts)


def create_ddp_model(model, **kwargs):
    """detectron2's ``create_ddp_model``, but a model on CPU (gloo) gets ``device_ids=None``:
    torch's DDP rejects device ids for CPU modules, which makes detectron2's
    ``--num-gpus N`` fail on a machine without GPUs."""
    if comm.get_world_size() > 1 and next(model.parameters()).device.type == "cpu":
        kwargs.setdefault("device_ids", None)
    return _D2_CREATE_DDP_MODEL(model, **kwargs)


@contextlib.contextmanager
def cpu_ddp_support():
    """Within this context, ``DefaultTrainer.__init__`` wraps CPU models in DDP correctly."""
    d2_defaults.create_ddp_model = create_ddp_model
    try:
        yield
    finally:
        d2_defaults.create_ddp_model = _D2_CREATE_DDP_MODEL
