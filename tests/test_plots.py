"""The long-tail plots: per_class_ap.png (balms_eval/per_class.py) and meta_weights.png
(balms_det/engine/meta_weights.py). Their x axis (training images, log) spans the data, not a fixed
10^3; the group bands and mean lines stay inside it; the footnote is readable (no doubled
parentheses, wrapped inside the figure)."""
from types import SimpleNamespace

import pytest
import torch
from matplotlib.figure import Figure

from balms_eval.groups import frequency_groups
from balms_eval.per_class import plot_per_class_ap

MAX_COUNT = 29  # the largest training class of a small dataset


@pytest.fixture
def saved_figures(monkeypatch):
    """The Figures saved during the test (the plots build them with Figure + savefig)."""
    saved = []
    original = Figure.savefig

    def savefig(self, *args, **kwargs):
        saved.append(self)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", savefig)
    return saved


def _rows(counts, frequency=None):
    return [{"category_id": i + 1, "name": f"class_{i + 1}",
             "frequency": (frequency or {}).get(i + 1, "r" if n <= 10 else "c"),
             "train_image_count": n, "AP_bbox": 10.0 + i, "AP_segm": 5.0 + i} for i, n in enumerate(counts)]


def _counted_groups(counts):
    """Groups made from training counts, as with a COCO-format set and a training file."""
    categories = {i + 1: {"id": i + 1, "name": f"class_{i + 1}"} for i in range(len(counts))}
    return frequency_groups(categories, {i + 1: n for i, n in enumerate(counts)},
                            count_source="training images per class in train.json (counted from its annotations)")


def _check_axes(fig, max_count):
    axes = fig.axes
    assert axes
    for ax in axes:
        lo, hi = ax.get_xlim()
        assert max_count < hi <= 1.5 * max_count, (lo, hi)
        for patch in ax.patches:  # the r/c/f bands: inside the axis
            x0, x1 = sorted((patch.get_x(), patch.get_x() + patch.get_width())) if hasattr(patch, "get_x") else (
                patch.get_xy()[:, 0].min(), patch.get_xy()[:, 0].max())
            assert lo - 1e-9 <= x0 <= x1 <= hi + 1e-9, (x0, x1, lo, hi)


def test_per_class_plot_x_axis_spans_the_data(tmp_path, saved_figures):
    counts = [1, 2, 3, 5, 8, 12, 20, MAX_COUNT]
    assert plot_per_class_ap(_rows(counts), str(tmp_path / "p.png"), _counted_groups(counts))
    _check_axes(saved_figures[-1], MAX_COUNT)


def test_per_class_plot_lvis_groups_beyond_the_data(tmp_path, saved_figures):
    # LVIS groups (from LVIS's own training counts) with a frequent class of few images here:
    # its mean line stays on the axis, over its points
    counts = [3, 12, MAX_COUNT]
    cats = {i + 1: {"id": i + 1, "name": f"class_{i + 1}", "frequency": f} for i, f in enumerate("rcf")}
    groups = frequency_groups(cats, {i + 1: n for i, n in enumerate(counts)}, count_source="training images")
    assert plot_per_class_ap(_rows(counts, {1: "r", 2: "c", 3: "f"}), str(tmp_path / "p.png"), groups)
    fig = saved_figures[-1]
    _check_axes(fig, MAX_COUNT)
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        for coll in ax.collections:
            for seg in getattr(coll, "get_segments", lambda: [])():
                assert lo - 1e-9 <= seg[:, 0].min() and seg[:, 0].max() <= hi + 1e-9
        assert any(t.get_text().startswith("APf=") for t in ax.texts)


def test_per_class_plot_footnote_has_no_doubled_parentheses(tmp_path, saved_figures):
    counts = [1, 5, 12, MAX_COUNT]
    groups = _counted_groups(counts)
    assert "))" in groups.source  # the groups' source quotes the counts' source, in parentheses
    assert plot_per_class_ap(_rows(counts), str(tmp_path / "p.png"), groups)
    fig = saved_figures[-1]
    note = " ".join(t.get_text() for t in fig.texts)
    assert "((" not in note and "))" not in note
    assert "train.json" in note and "rare <= 10" in note  # what it said is still said
    # the footnote fits the figure's width (it was cut at the right edge)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    width = fig.bbox.width
    for t in fig.texts:
        box = t.get_window_extent(renderer)
        assert 0 <= box.x0 and box.x1 <= width + 1, (t.get_text(), box, width)


def test_meta_weights_plot_x_axis_spans_the_data(tmp_path, saved_figures):
    from balms_det.engine.meta_weights import write_meta_weights

    counts = [1.0, 4.0, 11.0, 20.0, float(MAX_COUNT)]
    classes = {"name": [f"c{i}" for i in range(5)], "category_id": list(range(1, 6)), "train_image_count": counts,
               "frequency": ["r", "r", "c", "c", "c"], "thresholds": (10, 100)}
    theta = torch.linspace(-1, 1, 5)
    reweighter = SimpleNamespace(theta=theta, class_weights=lambda: torch.sigmoid(theta))
    paths = write_meta_weights(str(tmp_path), classes, [reweighter])
    assert paths[-1].endswith("meta_weights.png")
    _check_axes(saved_figures[-1], MAX_COUNT)
