"""``MetaReweighterHook``: drives the Meta Reweighter of BALMS from a detectron2 trainer.

The math and the state (theta, its Adam moments, the ROI feature bank) live in the box predictors'
:class:`~balms_det.modeling.meta_reweighter.MetaReweighter` modules as training state, outside the
model's ``state_dict``: this hook checkpoints it (``state_dict`` / ``load_state_dict``; detectron2 saves
every hook's state with the trainer's in each checkpoint and gives it back on ``--resume``). The final
checkpoint keeps theta and the Adam state but not the bank (~(16 K + 4096) x D floats, 96 MB for LVIS),
which nothing after training uses; training resumed past it refills the bank from the stream. The
hook also does what needs the trainer:

* ``before_train``: finds the predictors with a meta reweighter, checks that only box predictors are
  trainable (the meta step reuses the training step's box features) and that the optimizer is SGD;
  with ``META_SOURCE: images``, builds the class-balanced meta loader
  (:func:`~balms_det.data.samplers.build_meta_train_loader`).
* ``before_step``: hands each reweighter the main optimizer's current SGD rule (LR, momentum buffer,
  weight decay) for the virtual step and whether a meta step is due (every ``PERIOD`` iterations);
  with ``images``, first runs the next meta images through the frozen detector (no gradient) so each
  predictor keeps their ROIs' box features and labels as its meta batch. That forward is not a
  training step: what the detector logs in it (RPN, ROI sampling, mask statistics) goes to a
  throwaway ``EventStorage``, not to the trainer's (``metrics.json`` has the training batch's alone),
  and it runs under the trainer's precision (``AMPTrainer``'s autocast).
* ``after_step``: EventStorage scalars every ``LOG_PERIOD`` (TensorBoard, ``metrics.json``).
* ``after_train``: ``OUTPUT_DIR/meta_weights.{json,csv,png}`` (main process).

Use it in a ``DefaultTrainer`` subclass::

    def build_hooks(self):
        hooks = super().build_hooks()
        if self.cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED:
            hooks.insert(1, MetaReweighterHook(self.cfg))  # after IterationTimer, before the writers
        return hooks
"""
import contextlib
import functools
import logging

import torch
from detectron2.config import configurable
from detectron2.engine import AMPTrainer, HookBase
from detectron2.utils import comm
from detectron2.utils.events import EventStorage

from balms_eval.groups import LVIS_THRESHOLDS
from ..data.samplers import build_meta_train_loader

from ..modeling.ddp import unwrap
from ..modeling.meta_step import sgd_rules
from ..modeling.output_layers import LongTailOutputLayers
from .meta_weights import class_table, training_image_counts_from_config, weight_summary, write_meta_weights

__all__ = ["MetaReweighterHook", "meta_reweighted_predictors", "capture_meta_batches", "step_autocast"]

logger = logging.getLogger(__name__)


def meta_reweighted_predictors(model):
    """``[(name, predictor)]``: the box predictors of ``model`` that have a meta reweighter."""
    return [
        (name, m)
        for name, m in unwrap(model).named_modules()
        if isinstance(m, LongTailOutputLayers) and m.meta_reweighter is not None
    ]


def check_only_predictors_trainable(model, predictors):
    """The meta step treats the box features as constants: nothing upstream of the box predictors
    may be trainable. Raises ``ValueError`` naming the offending parameters."""
    prefixes = tuple(name + "." for name, _ in predictors)
    bad = [n for n, p in unwrap(model).named_parameters() if p.requires_grad and not n.startswith(prefixes)]
    if bad:
        raise ValueError(
            f"The meta reweighter reuses the training step's box features, so only the box predictor may be "
            f"trainable (MODEL.BALMS.DECOUPLED.TRAINABLE); these parameters are trainable too: {bad[:8]}"
        )


def step_autocast(trainer, model):
    """The autocast context of the trainer's training step, for a forward that should run as that step
    does: ``AMPTrainer``'s (``autocast(dtype=trainer.precision)``, on the model's device; a
    ``DefaultTrainer`` runs its step with the ``AMPTrainer`` it holds as ``_trainer``), else none."""
    loop = getattr(trainer, "_trainer", trainer)
    if not isinstance(loop, AMPTrainer):
        return contextlib.nullcontext()
    param = next(model.parameters(), None)
    return torch.autocast(param.device.type if param is not None else "cuda", dtype=loop.precision)


@contextlib.contextmanager
def capture_meta_batches(predictors):
    """Within this context a training-mode forward makes each predictor keep its ROIs' box features and
    labels as its reweighter's meta batch (and compute no classification loss)."""
    for _, p in predictors:
        p.meta_reweighter.capturing = True
    try:
        yield
    finally:
        for _, p in predictors:
            p.meta_reweighter.capturing = False


class MetaReweighterHook(HookBase):
    @configurable
    def __init__(self, *, period=1, log_period=20, meta_loader=None, output_dir=None, train_datasets=(),
                 frequency_thresholds=LVIS_THRESHOLDS, image_counts=None):
        """
        ``MetaReweighterHook(cfg)`` (``MODEL.BALMS.META_REWEIGHTER``, ``OUTPUT_DIR``, datasets), or with
        explicit arguments (Python configs):

        Args:
            period: a meta step every ``period`` iterations. log_period: scalars every ``log_period``.
            meta_loader: iterable of meta image batches for a reweighter with ``source="images"``
                (from config, default :func:`~balms_det.data.samplers.build_meta_train_loader`).
            output_dir: where ``meta_weights.{json,csv,png}`` go after training (None: not written).
            train_datasets, frequency_thresholds, image_counts: the classes' names, training images
                and r/c/f groups of the scalars and outputs (see :func:`.meta_weights.class_table`).
        """
        if period < 1 or log_period < 1:
            raise ValueError("MODEL.BALMS.META_REWEIGHTER.PERIOD and LOG_PERIOD must be >= 1")
        self.period = int(period)
        self.log_period = int(log_period)
        self.output_dir = output_dir
        train_datasets = [train_datasets] if isinstance(train_datasets, str) else list(train_datasets)
        self._table_args = (train_datasets, tuple(frequency_thresholds), image_counts)
        self._meta_loader = meta_loader
        self._meta_iter = None
        self._classes = None
        self.source = None  # the reweighters' (found in before_train)

    @classmethod
    def from_config(cls, cfg, meta_loader=None):
        m = cfg.MODEL.BALMS.META_REWEIGHTER
        if not m.ENABLED:
            raise ValueError("MetaReweighterHook needs MODEL.BALMS.META_REWEIGHTER.ENABLED")
        if meta_loader is None and m.META_SOURCE == "images":
            meta_loader = functools.partial(build_meta_train_loader, cfg)  # built in before_train
        return {
            "period": m.PERIOD, "log_period": m.LOG_PERIOD, "meta_loader": meta_loader, "output_dir": cfg.OUTPUT_DIR,
            "train_datasets": list(cfg.DATASETS.TRAIN),
            "frequency_thresholds": tuple(cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS),
            "image_counts": functools.partial(training_image_counts_from_config, cfg),
        }

    def before_train(self):
        model = self.trainer.model
        self.predictors = meta_reweighted_predictors(model)
        if not self.predictors:
            raise ValueError(
                "MODEL.BALMS.META_REWEIGHTER.ENABLED, but the model has no LongTailOutputLayers "
                "with a meta reweighter (MODEL.ROI_HEADS.NAME: LongTailROIHeads or LongTailCascadeROIHeads, "
                "or their old names BalancedSoftmaxROIHeads / BalancedSoftmaxCascadeROIHeads)"
            )
        check_only_predictors_trainable(model, self.predictors)
        self._rules()  # fails early on a non-SGD optimizer
        self.source = self.predictors[0][1].meta_reweighter.source
        if self.source == "images":
            if self._meta_loader is None:
                raise ValueError("MetaReweighterHook: the reweighters take meta images (source 'images'); "
                                 "give the hook a meta_loader (e.g. build_meta_train_loader)")
            if isinstance(self._meta_loader, functools.partial):  # from config: built now
                self._meta_loader = self._meta_loader()
            self._meta_iter = iter(self._meta_loader)
        self._classes = class_table(self.predictors[0][1], *self._table_args)

    def state_dict(self):
        """Each meta reweighter's training state, by its predictor's name (the bank left out of the final
        checkpoint, ``iter + 1 >= max_iter``, where detectron2 writes ``model_final``)."""
        trainer = self.trainer
        final = trainer.iter + 1 >= getattr(trainer, "max_iter", float("inf"))
        return {"reweighters": {name: p.meta_reweighter.training_state(with_bank=not final)
                                for name, p in meta_reweighted_predictors(trainer.model)}}

    def load_state_dict(self, state_dict):
        predictors = dict(meta_reweighted_predictors(self.trainer.model))
        saved = state_dict.get("reweighters", {})
        unknown = sorted(set(saved) - set(predictors))
        if unknown:
            raise ValueError(f"The checkpoint's meta reweighter state is for predictors {unknown}, this model has "
                             f"{sorted(predictors)}")
        for name, state in saved.items():
            predictors[name].meta_reweighter.load_training_state(state)
            if state.get("bank") is None and predictors[name].meta_reweighter.bank is not None:
                logger.info(f"Meta reweighter of {name}: the checkpoint (a final one) has no ROI feature bank; "
                            "it refills from the training stream")

    def _rules(self):
        opt = self.trainer.optimizer
        return [sgd_rules(opt, dict(p.cls_score.named_parameters())) for _, p in self.predictors]

    def before_step(self):
        it = self.trainer.iter
        due = it % self.period == 0
        if due and self.source == "images":
            data = next(self._meta_iter)
            model = unwrap(self.trainer.model)
            # not a training step: its events go to a throwaway storage (EventStorage is a stack)
            with EventStorage(it), step_autocast(self.trainer, model), capture_meta_batches(self.predictors), \
                    torch.no_grad():
                model(data)
        for (_, p), rules in zip(self.predictors, self._rules()):
            p.meta_reweighter.prepare(it, rules, due)

    def after_step(self):
        it = self.trainer.iter
        if (it + 1) % self.log_period and it + 1 != self.trainer.max_iter:
            return
        storage = self.trainer.storage
        for k, (_, p) in enumerate(self.predictors):
            prefix = "meta/" if len(self.predictors) == 1 else f"meta/stage{k}/"
            r = p.meta_reweighter
            scalars = weight_summary(r.class_weights(), self._classes["frequency"])
            scalars["loss"] = r.last_meta_loss.item()
            for name, value in scalars.items():
                storage.put_scalar(prefix + name, value, smoothing_hint=False)

    def after_train(self):
        if not comm.is_main_process() or not getattr(self, "predictors", None) or self.output_dir is None:
            return
        paths = write_meta_weights(
            self.output_dir, self._classes, [p.meta_reweighter for _, p in self.predictors],
            iteration=self.trainer.iter,
        )
        logger.info(f"Meta reweighter: per-class weights written to {paths}")
