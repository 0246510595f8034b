#!/usr/bin/env python
"""Train / evaluate with a Python (LazyConfig) config: detectron2's usual entry point for them, with
balms_det's hooks and evaluator. Examples::

    python tools/lazyconfig_train_net.py --config-file configs/LTShapes/mask_rcnn_R18_FPN_balanced_softmax.py
    python tools/lazyconfig_train_net.py --config-file CFG --num-gpus 2                 # gloo on CPU
    python tools/lazyconfig_train_net.py --config-file CFG --eval-only train.init_checkpoint=model_final.pth
    python tools/lazyconfig_train_net.py --config-file CFG --resume train.max_iter=2000  # key=value overrides

What a config may hold besides detectron2's ``model``, ``dataloader``, ``optimizer``, ``lr_multiplier``
and ``train``:

* ``decoupled = dict(trainable=[...], freeze_bn=True, reinit_classifier=False)``: stage 2 (every
  parameter but ``trainable``'s frozen after the model is built, and each frozen one must come from
  ``train.init_checkpoint`` when the run starts fresh; cRT re-initialises the classifier once, after
  ``train.init_checkpoint`` is loaded and never on ``--resume``);
* ``meta_reweighter_hook = L(MetaReweighterHook)(...)``: how the Meta Reweighter is driven when the
  model has one (default: every iteration, scalars every 20, ``meta_weights.*`` in ``train.output_dir``).

Like ``tools/train_net.py``, ``--eval-only`` appends its results to ``train.output_dir/metrics.json``, and a
config that cannot work (an unregistered dataset name, a ``decoupled.trainable`` that is not a regular
expression, a decoupled stage without its weights) stops it with one line, ``error: KEY VALUE: ...``.
"""
import logging

from detectron2.config import LazyConfig, instantiate
from detectron2.engine import (
    AMPTrainer,
    SimpleTrainer,
    default_argument_parser,
    default_setup,
    default_writers,
    hooks,
    launch,
)
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import balms_det  # noqa: F401  registers datasets, heads, losses, evaluators
from balms_det.config_validation import validate_lazy_config
from balms_det.engine import (AtomicCheckpointer, ClassifierReinitHook, MetaReweighterHook, create_ddp_model,
                              exit_on_config_error, finish_eval_only, hold_output_dir, resume_or_load_checked)
from balms_det.engine.meta_reweighter_hook import meta_reweighted_predictors
from balms_det.modeling import resolve_priors
from balms_det.modeling.decoupled import freeze_for_decoupled

logger = logging.getLogger("balms_det")


def build_model(cfg):
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    decoupled = cfg.get("decoupled", None)
    if decoupled:  # stage 2: freeze all but the classifier before the optimizer sees the parameters
        kw = {k: v for k, v in decoupled.items() if k in ("trainable", "freeze_bn")}
        freeze_for_decoupled(model, **kw)
    return model


def do_test(cfg, model):
    if cfg.dataloader.get("evaluator", None) is None:  # none, or dataloader.evaluator=null
        return {}
    ret = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
    print_csv_format(ret)
    return ret


def meta_reweighter_hook(cfg, model):
    """The hook driving the model's Meta Reweighter(s), or None when it has none."""
    if not meta_reweighted_predictors(model):
        return None
    if "meta_reweighter_hook" in cfg:
        return instantiate(cfg.meta_reweighter_hook)
    return MetaReweighterHook(output_dir=cfg.train.output_dir)


def do_train(args, cfg):
    model = build_model(cfg)
    logger.info("Model:\n{}".format(model))
    cfg.optimizer.params.model = model
    optim = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **cfg.train.ddp)  # balms_det's: also a CPU (gloo) model
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, train_loader, optim)
    checkpointer = AtomicCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    meta_hook = meta_reweighter_hook(cfg, model)
    decoupled = cfg.get("decoupled", None) or {}
    trainer.register_hooks([
        ClassifierReinitHook() if decoupled.get("reinit_classifier", False) else None,  # cRT, not on resume
        hooks.IterationTimer(),
        meta_hook,  # after IterationTimer, before the writers
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, lambda: do_test(cfg, model)),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
        if comm.is_main_process() else None,
    ])
    # a decoupled stage's frozen parameters must all come from train.init_checkpoint (checked on a fresh start)
    resume_or_load_checked(checkpointer, cfg.train.init_checkpoint, resume=args.resume, decoupled=bool(decoupled),
                           key="train.init_checkpoint")
    start_iter = trainer.iter + 1 if args.resume and checkpointer.has_checkpoint() else 0
    resolve_priors(model, override=start_iter == 0)  # the config's prior when fresh, the checkpoint's on resume
    trainer.train(start_iter, cfg.train.max_iter)


@exit_on_config_error()  # in each worker process too: one line, no traceback
def main(args):
    cfg = LazyConfig.load(args.config_file)
    cfg = validate_lazy_config(LazyConfig.apply_overrides(cfg, args.opts))
    default_setup(cfg, args)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="balms_det")
    if args.eval_only:
        model = build_model(cfg)
        model = create_ddp_model(model)
        AtomicCheckpointer(model).load(cfg.train.init_checkpoint)
        return finish_eval_only(cfg.train.output_dir, do_test(cfg, model))  # + one line of metrics.json
    do_train(args, cfg)


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    with exit_on_config_error():  # a bad config: one line "error: KEY VALUE: ...", exit status 1
        cfg = validate_lazy_config(LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts))
        with hold_output_dir(cfg.train.output_dir, enabled=args.machine_rank == 0):  # one run per train.output_dir
            launch(main, args.num_gpus, num_machines=args.num_machines, machine_rank=args.machine_rank,
                   dist_url=args.dist_url, args=(args,))
