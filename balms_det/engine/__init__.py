"""Entry-point helpers shared by tools/ and user scripts (config loading, CPU DDP)."""
from .defaults import build_config, cpu_ddp_support, create_ddp_model, merge_config

__all__ = ["build_config", "cpu_ddp_support", "create_ddp_model", "merge_config"]
