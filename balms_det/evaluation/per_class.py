"""The per-class outputs live in the torch-free ``balms_eval.per_class``; this module keeps the
names other balms_det code imports from here (``balms_det/engine/meta_weights.py``)."""
from balms_eval.per_class import (  # noqa: F401
    COLUMNS,
    FREQUENCY_GROUPS,
    GROUP_COLORS,
    GROUP_EDGES,
    format_per_class_tables,
    group_edges,
    per_class_rows,
    plot_per_class_ap,
    write_per_class_outputs,
)
