"""Datasets: the synthetic long-tailed LVIS-format dataset (lt_shapes)."""
