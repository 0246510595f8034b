"""Entry-point helpers shared by tools/ and user scripts (config loading, CPU DDP, the training hooks,
atomic checkpoints with a safe resume, a checked start, one run per output folder)."""
from .checkpoint import AtomicCheckpointer
from .classifier_reinit import ClassifierReinitHook
from .defaults import (build_config, cpu_ddp_support, create_ddp_model, exit_on_config_error, finish_eval_only,
                       merge_config)
from .meta_reweighter_hook import MetaReweighterHook
from .run_lock import OutputDirInUseError, RunLock, hold_output_dir
from .start_checks import check_resume, resume_or_load_checked

__all__ = ["AtomicCheckpointer", "ClassifierReinitHook", "build_config", "check_resume", "cpu_ddp_support",
           "create_ddp_model", "exit_on_config_error", "finish_eval_only", "hold_output_dir", "merge_config",
           "MetaReweighterHook", "OutputDirInUseError", "resume_or_load_checked", "RunLock"]
