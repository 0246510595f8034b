"""Defaults for training entry points: config loading with clear errors (the config checked before anything is
built, one line and no traceback from the tools), DDP that also works on CPU."""
import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import sys

import yaml
from detectron2.config import get_cfg
from detectron2.engine import defaults as d2_defaults
from detectron2.evaluation.testing import flatten_results_dict
from detectron2.utils import comm
from torch.multiprocessing import ProcessExitedException

from ..config import add_balms_config
from ..modeling.calibrations import CALIBRATION_REGISTRY
from ..modeling.cls_losses import CLS_LOSS_REGISTRY
from ..config_validation import ConfigError
from ..config_validation import validate as validate_config

_D2_CREATE_DDP_MODEL = d2_defaults.create_ddp_model  # detectron2's own, restored after patching


def merge_config(cfg, config_file, opts=()):
    """``cfg.merge_from_file(config_file)`` then ``cfg.merge_from_list(opts)``, with errors that name
    the file (and the ``_BASE_`` chain is followed by detectron2) or the bad command-line key: a
    :class:`ConfigError` that is also the error yacs raised (KeyError for an unknown or renamed key,
    ValueError for a value of another type, AssertionError for an odd number of overrides), one line."""
    if config_file:
        if not os.path.isfile(config_file):
            raise FileNotFoundError(f"Config file not found: {config_file}")
        try:
            cfg.merge_from_file(config_file)
        except (KeyError, ValueError, AssertionError, yaml.YAMLError) as e:
            raise _merge_error(e, f"Invalid config file {config_file}") from e
    if opts:
        try:
            cfg.merge_from_list(list(opts))
        except (KeyError, ValueError, AssertionError) as e:
            raise _merge_error(e, f"Invalid command-line config override {list(opts)}") from e
    return cfg


class _ConfigKeyError(ConfigError, KeyError):
    __str__ = ValueError.__str__  # a KeyError would print its message quoted


class _ConfigAssertionError(ConfigError, AssertionError):
    pass


def _merge_error(e, where):
    msg = " ".join((e.args[0] if e.args else repr(e)).split())  # one line
    if "Type mismatch" in msg and "float" in msg:
        msg += " (write a float, e.g. 0.0 instead of 0)"
    cls = (_ConfigKeyError if isinstance(e, KeyError) else _ConfigAssertionError if isinstance(e, AssertionError)
           else ConfigError)
    return cls(f"{where}: {msg}")


def build_config(config_file="", opts=(), *, validate=True):
    """detectron2's defaults + balms_det's keys, merged with a YAML file and ``KEY VALUE`` overrides, then
    checked (:func:`~balms_det.config_validation.validate`: a one-line ``ConfigError``). A script that edits
    the config further passes ``validate=False`` and calls ``validate(cfg)`` once it is complete."""
    cfg = get_cfg()
    add_balms_config(cfg)
    config_dir = os.path.dirname(os.path.abspath(config_file)) if config_file else None
    # the modules the file and the overrides import come first: the losses and calibrations they register may
    # add config keys of their own (ClsLoss.add_config), which the file then sets
    peek = cfg.clone()
    peek.set_new_allowed(True)
    try:
        merge_config(peek, config_file, opts)
    except (ValueError, KeyError, AssertionError):
        pass  # the merge below says what is wrong
    import_custom_modules(peek, config_dir)
    for registry in (CLS_LOSS_REGISTRY, CALIBRATION_REGISTRY):
        for _, registered in registry:
            add_config = getattr(registered, "add_config", None)  # (a class that is not a loss: validate says so)
            if callable(add_config):
                add_config(cfg)
    merge_config(cfg, config_file, opts)
    import_custom_modules(cfg, config_dir)  # (imported above: the paths, resolved, written back)
    if validate:
        validate_config(cfg)
    return cfg


@contextlib.contextmanager
def exit_on_config_error():
    """For entry points: a :class:`~balms_det.config_validation.ConfigError` raised within ends the process
    with its one line, ``error: KEY VALUE: ...``, on stderr and exit status 1 (no traceback). Also a decorator:
    on the function that ``launch`` runs in each worker process, a worker ends the same way, and the launching
    process, around ``launch``, then exits with status 1 too, without torch's traceback of the worker's exit."""
    try:
        yield
    except ConfigError as e:
        sys.exit(f"error: {e}")
    except ProcessExitedException as e:
        if e.exit_code != 1:
            raise
        sys.exit(1)  # a worker printed why


def import_custom_modules(cfg, config_dir=None):
    """Import ``MODEL.BALMS.CUSTOM_IMPORTS``, so that the losses / calibrations they register can be named
    in the config: dotted module names, or ``.py`` files (taken from the working directory, else from
    ``config_dir``, the config file's folder; written back to ``cfg`` as absolute paths, so that runs
    started elsewhere find them). A file is imported once per process, under a name made from its path."""
    resolved = []
    for name in cfg.MODEL.BALMS.CUSTOM_IMPORTS:
        if not name.endswith(".py"):
            importlib.import_module(name)
            resolved.append(name)
            continue
        path = os.path.abspath(name)
        if not os.path.isfile(path) and config_dir:
            path = os.path.join(config_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"MODEL.BALMS.CUSTOM_IMPORTS: no file {name} (in {os.getcwd()}"
                                    + (f" or {config_dir})" if config_dir else ")"))
        resolved.append(path)
        module_name = "balms_custom_" + hashlib.sha1(path.encode()).hexdigest()[:12]
        if module_name in sys.modules:
            continue
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
    if resolved != list(cfg.MODEL.BALMS.CUSTOM_IMPORTS) and not cfg.is_frozen():
        cfg.MODEL.BALMS.CUSTOM_IMPORTS = resolved


def finish_eval_only(output_dir, results):
    """The end of an evaluation-only run: its results appended to ``output_dir/metrics.json`` as one line
    (as a training run's final evaluation; main process), then every rank leaves together, as detectron2's
    EvalHook does (a rank > 0 that exits while rank 0 still evaluates could abort at shutdown under gloo,
    its thread freeing the gather's tensors). Returns ``results``."""
    if comm.is_main_process():
        with open(os.path.join(output_dir, "metrics.json"), "a") as f:
            f.write(json.dumps(flatten_results_dict(results)) + "\n")
    comm.synchronize()
    return results


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
