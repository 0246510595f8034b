"""Entry-point helpers shared by tools/ and user scripts (config loading, CPU DDP, the meta reweighter hook)."""
from .classifier_reinit import ClassifierReinitHook
from .defaults import build_config, cpu_ddp_support, create_ddp_model, merge_config
from .meta_reweighter_hook import MetaReweighterHook

__all__ = ["ClassifierReinitHook", "build_config", "cpu_ddp_support", "create_ddp_model", "merge_config", "MetaReweighterHook"]
