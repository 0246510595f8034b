"""Datasets: the synthetic long-tailed LVIS-format dataset (lt_shapes), registered on import."""
from . import builtin  # noqa: F401  registers lt_shapes_train / lt_shapes_val
from .builtin import register_lt_shapes
from .lt_shapes import class_names, frequency_group, generate_lt_shapes
from .lvis_style import load_lvis_style_json, register_lvis_style_instances

__all__ = [
    "class_names",
    "frequency_group",
    "generate_lt_shapes",
    "load_lvis_style_json",
    "register_lt_shapes",
    "register_lvis_style_instances",
]
