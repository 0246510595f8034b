#!/usr/bin/env python
"""Train / evaluate Mask R-CNN with balms_det's heads, datasets and evaluators.

The detectron2 way: ``default_argument_parser`` + ``launch``; a ``DefaultTrainer`` subclass that only
says what differs. Examples::

    python tools/train_net.py --config-file configs/LTShapes/mask_rcnn_R18_FPN_softmax.yaml
    python tools/train_net.py --config-file CFG --num-gpus 2            # 2 processes (gloo on CPU)
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth  # + metrics.json
    python tools/train_net.py --config-file CFG --resume                # continue from last_checkpoint

A config that cannot work (balms_det.config_validation) stops it before anything is built, with one line
``error: KEY VALUE: what is wrong; valid: ...`` and exit status 1.
"""
import logging
import os

from detectron2.engine import DefaultTrainer, default_argument_parser, default_setup, launch
from detectron2.evaluation import verify_results
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import balms_det  # noqa: F401  registers datasets, heads, evaluators
from balms_det.data.samplers import build_balms_train_loader
from balms_det.engine import (AtomicCheckpointer, ClassifierReinitHook, MetaReweighterHook, build_config,
                              check_resume, cpu_ddp_support, exit_on_config_error, finish_eval_only, hold_output_dir,
                              resume_or_load_checked)
from balms_det.evaluation import build_lvis_evaluator
from balms_det.modeling import apply_decoupled, resolve_priors
from balms_det.solver import build_optimizer


class Trainer(DefaultTrainer):
    def __init__(self, cfg):
        with cpu_ddp_support():  # `--num-gpus N` on a CPU-only machine trains with gloo
            super().__init__(cfg)

    @classmethod
    def build_model(cls, cfg):
        return apply_decoupled(super().build_model(cfg), cfg)  # stage 2: freeze all but TRAINABLE

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_optimizer(cfg, model)  # + SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"

    @classmethod
    def build_train_loader(cls, cfg):
        return build_balms_train_loader(cfg)  # detectron2's samplers + ClassBalancedSampler

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        if output_folder is None:
            output_folder = os.path.join(cfg.OUTPUT_DIR, "inference", dataset_name)
        return build_lvis_evaluator(cfg, dataset_name, output_folder)  # TEST.LVIS_EVAL.*

    def resume_or_load(self, resume=True):
        # detectron2's, with the start checked (a MODEL.WEIGHTS file that exists; a decoupled stage's frozen
        # parameters all loaded from it): a one-line ConfigError before training
        resume_or_load_checked(self.checkpointer, self.cfg.MODEL.WEIGHTS, resume=resume,
                               decoupled=self.cfg.MODEL.BALMS.DECOUPLED.ENABLED)
        if resume and self.checkpointer.has_checkpoint():
            self.start_iter = self.iter + 1
        # this run's class prior: its config's when starting fresh (stage 2 too), the checkpoint's on resume
        resolve_priors(self.model, override=self.start_iter == 0)

    def build_hooks(self):
        # (called by DefaultTrainer.__init__ right after it made self.checkpointer: the hooks get this one)
        self.checkpointer = AtomicCheckpointer.from_checkpointer(self.checkpointer)  # atomic saves, safe resume
        hooks = super().build_hooks()
        if self.cfg.MODEL.BALMS.META_REWEIGHTER.ENABLED:  # BALMS: after IterationTimer, before writers
            hooks.insert(1, MetaReweighterHook(self.cfg))
        if self.cfg.MODEL.BALMS.DECOUPLED.REINIT_CLASSIFIER:  # cRT: after MODEL.WEIGHTS, not on resume
            hooks.insert(0, ClassifierReinitHook())
        return hooks


def setup(args):
    cfg = build_config(args.config_file, args.opts)  # checked (balms_det.config_validation.validate)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="balms_det")
    return cfg


@exit_on_config_error()  # in each worker process too: one line, no traceback
def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = Trainer.build_model(cfg)
        AtomicCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        res = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            res.update(Trainer.test_with_TTA(cfg, model))
        verify_results(cfg, res)
        return finish_eval_only(cfg.OUTPUT_DIR, res)  # + one line of metrics.json, as a training run's end
    trainer = Trainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    logging.getLogger(__name__).info("Command Line Args: %s", args)
    with exit_on_config_error():  # a bad config: one line "error: KEY VALUE: ...", exit status 1
        cfg = build_config(args.config_file, args.opts)  # checked before anything is built
        if args.resume:
            check_resume(cfg)  # (before default_setup overwrites OUTPUT_DIR/config.yaml)
        with hold_output_dir(cfg.OUTPUT_DIR, enabled=args.machine_rank == 0):  # one run per OUTPUT_DIR
            launch(
                main,
                args.num_gpus,
                num_machines=args.num_machines,
                machine_rank=args.machine_rank,
                dist_url=args.dist_url,
                args=(args,),
            )
