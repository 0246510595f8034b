"""The model inside a DistributedDataParallel wrapper (what detectron2's trainers hold under DDP)."""

__all__ = ["unwrap"]


def unwrap(model):
    """``model.module`` for a DDP-wrapped model, else ``model``."""
    return model.module if hasattr(model, "module") else model
