"""Deferred class priors: computed when first needed, not when a model is built.

A model built from a config holds its loss's prior as a placeholder (:class:`DeferredPrior`): nothing
is read at build, so a model is built for inference without its training set (a trained model's
checkpoint carries its prior). Before training, :func:`resolve_priors` sets it: a fresh run takes its
config's prior, a resumed run keeps the checkpoint's; under DDP the main process computes it once.
"""
from detectron2.utils import comm

from .cls_losses.base import ClsLoss
from .ddp import unwrap
from .prior_messages import CONFIG_NAMES, PYTHON_NAMES, MissingCountsError
from .priors import class_prior, class_prior_from_config

__all__ = ["DeferredPrior", "deferred_class_prior", "deferred_prior_from_config", "resolve_priors"]


class DeferredPrior:
    """A class prior computed when first needed, once: ``fn(num_classes, need_num_images) -> ClassPrior``.
    Building a model with one reads nothing (so inference needs no training set: a trained model's
    checkpoint carries its prior); the losses sharing it (a cascade's stages) compute it once. ``names``:
    what its errors call the settings (:data:`~.prior_messages.CONFIG_NAMES`, or a Python config's
    :data:`~.prior_messages.PYTHON_NAMES`)."""

    def __init__(self, fn, description="", names=CONFIG_NAMES):
        self._fn = fn
        self.description = description
        self.names = names
        self._computed = {}

    def __call__(self, num_classes=None, need_num_images=False):
        key = (num_classes, bool(need_num_images))
        if key not in self._computed:
            try:
                self._computed[key] = self._fn(num_classes, need_num_images)
            except MissingCountsError as e:  # the source lacks the counts: its message names the sources that have them
                raise MissingCountsError(f"The class prior ({self.description}) could not be computed: {e}") from e
            except (ValueError, KeyError, FileNotFoundError, OSError) as e:
                n = self.names
                counts = "counts=[one per class]" if n.python else f"{n.set('source', 'list')}, {n.counts}"
                raise type(e)(f"The class prior ({self.description}) is not in the loaded weights and could not be "
                              f"computed: {e}. Load weights trained with this loss (a checkpoint carries its prior), "
                              f"register the training set, or give the counts ({counts})") from e
        return self._computed[key]

    def __repr__(self):
        return f"DeferredPrior({self.description})"


def deferred_class_prior(datasets=(), **kwargs) -> DeferredPrior:
    """:func:`class_prior`'s arguments, computed when first needed (Python configs:
    ``prior=L(deferred_class_prior)(datasets="lvis_v1_train")``); ``num_classes`` defaults to the loss's."""
    def fn(num_classes, need_num_images):
        kw = dict(kwargs)
        kw.setdefault("num_classes", num_classes)
        kw["need_num_images"] = kw.get("need_num_images", False) or need_num_images
        return class_prior(datasets, **kw)

    return DeferredPrior(fn, f"class_prior of {datasets!r}", kwargs.get("names", PYTHON_NAMES))


def deferred_prior_from_config(cfg) -> DeferredPrior:
    """:func:`class_prior_from_config` of a copy of ``cfg``, computed when first needed."""
    cfg = cfg.clone()
    source, train = cfg.MODEL.BALMS.PRIOR.SOURCE, list(cfg.DATASETS.TRAIN)
    return DeferredPrior(lambda num_classes, need: class_prior_from_config(cfg, num_classes, need),
                         f"MODEL.BALMS.PRIOR {source} of DATASETS.TRAIN {train}", CONFIG_NAMES)


def resolve_priors(model, override=False):
    """Set the deferred prior of every loss of ``model`` that has one, before training: with ``override``
    (a run starting fresh, from ``MODEL.WEIGHTS``) even where the weights carried a prior, since this run
    trains with its own config's; else (``--resume``) only where none was loaded. Distributed: the main
    process computes each prior once and every rank receives it. Returns the number of losses set."""
    losses = [m for m in unwrap(model).modules() if isinstance(m, ClsLoss) and m.prior_provider is not None
              and (override or not m.prior_ready)]
    computed = {}
    for loss in losses:
        key = (id(loss.prior_provider), loss.num_classes, loss.needs_num_images)
        if key not in computed:
            computed[key] = _on_main_process(loss.prior_provider, loss.num_classes, loss.needs_num_images)
        loss.set_prior(computed[key])
    return len(losses)


def _on_main_process(fn, *args):
    """``fn(*args)`` computed by the main process and given to every rank (its error raised on every rank)."""
    if comm.get_world_size() == 1:
        return fn(*args)
    result = None
    if comm.is_main_process():
        try:
            result = fn(*args)
        except Exception as e:  # every rank must leave the gather: the error travels with it
            result = e
    result = comm.all_gather(result)[0]
    if isinstance(result, Exception):
        raise result
    return result
