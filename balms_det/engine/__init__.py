"""Entry-point helpers shared by tools/ and user scripts (config loading, CPU DDP, the training hooks,
atomic checkpoints with a safe resume, a checked start, one run per output folder)."""
from .checkpoint import AtomicCheckpointer
from .classifier_reinit import ClassifierReinitHook
from .decoupled_start import resume_or_load_checked
from .defaults import build_config, cpu_ddp_support, create_ddp_model, exit_on_config_error, merge_config
from .meta_reweighter_hook import MetaReweighterHook
from .run_lock import OutputDirInUseError, RunLock, hold_output_dir

__all__ = ["AtomicCheckpointer", "ClassifierReinitHook", "build_config", "cpu_ddp_support", "create_ddp_model",
           "exit_on_config_error", "merge_config", "MetaReweighterHook", "OutputDirInUseError", "RunLock",
           "hold_output_dir", "resume_or_load_checked"]
