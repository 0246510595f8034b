"""Where to put the label of each drawn object: inside the picture, next to its object, not on another label.

Shape shorthand: N labels; boxes are [x0, y0, x1, y1] in canvas pixels, x to the right, y down.
"""
import numpy as np

__all__ = ["layout_labels", "overlap_area"]


def overlap_area(a, b):
    """(len(a), len(b)) intersection areas of the boxes ``a`` (M, 4) and ``b`` (K, 4)."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _preferred(box, w, h):
    """Top-left corners to try first, best first: above the box (left-aligned, then right-aligned), inside
    its top-left corner, below it, inside its bottom-left corner."""
    x0, y0, x1, y1 = box
    return [(x0, y0 - h), (x1 - w, y0 - h), (x0, y0), (x0, y1), (x1 - w, y1), (x0, y1 - h)]


def _search(box, w, h, steps_x=4, steps_y=20):
    """Top-left corners around the first preferred one, nearest first (half a label per step; moving
    sideways costs more than moving up or down, which keeps a label over its own object's column)."""
    x0, y0 = box[0], box[1] - h
    dx = np.arange(-steps_x, steps_x + 1) * (w / 2.0)
    dy = np.arange(-steps_y, steps_y + 1) * (h / 2.0)
    gx, gy = np.meshgrid(dx, dy)
    gx, gy = gx.ravel(), gy.ravel()
    cost = 2.0 * np.abs(gx) / max(w, 1.0) + np.abs(gy) / max(h, 1.0)
    order = np.argsort(cost, kind="stable")
    return np.stack([x0 + gx[order], y0 + gy[order]], axis=1)


def layout_labels(anchors, sizes, canvas_size, gap=1.0, max_overlap=0.0):
    """Boxes for the labels of ``anchors``, placed in the given order (put the most important first).

    Args:
        anchors: (N, 4) the boxes of the labelled objects.
        sizes: (N, 2) each label's (width, height), in pixels.
        canvas_size: (width, height) of the picture.
        gap: pixels kept free between two labels.
        max_overlap: how much of a label may lie on the labels placed before it (and within ``gap`` of
            them), as a fraction of its area (summed over those labels); a label that finds no such spot
            is left out. None: every label is kept.
    Returns:
        (boxes, shown): (N, 4) float array, each label's box, and (N,) bool, the labels kept. Every box lies
        inside the canvas (one wider or taller than the canvas at its left or top edge). A label goes to a spot
        with the least overlap with the labels before it (none, where there is room) among: above its object
        (left-, then right-aligned), inside its top-left corner, below it, inside its bottom-left corner,
        then spots further away, nearest first; of those, to the first one, unless a later one hides less of
        the other objects' boxes (each place further down the list costs 1% of the label's area hidden).
        A left-out label keeps its best spot in ``boxes`` and blocks nothing.
    """
    anchors = np.asarray(anchors, np.float64).reshape(-1, 4)
    sizes = np.asarray(sizes, np.float64).reshape(-1, 2)
    if len(anchors) != len(sizes):
        raise ValueError(f"layout_labels: {len(anchors)} anchors but {len(sizes)} label sizes")
    cw, ch = float(canvas_size[0]), float(canvas_size[1])
    boxes = np.zeros((len(anchors), 4))
    shown = np.zeros(len(anchors), bool)
    for i, (box, (w, h)) in enumerate(zip(anchors, sizes)):
        corners = np.concatenate([np.array(_preferred(box, w, h)), _search(box, w, h)])
        corners[:, 0] = np.clip(corners[:, 0], 0.0, max(cw - w, 0.0))
        corners[:, 1] = np.clip(corners[:, 1], 0.0, max(ch - h, 0.0))
        candidates = np.concatenate([corners, corners + [w, h]], axis=1)
        placed = boxes[shown]
        overlap = overlap_area(candidates, placed + [-gap, -gap, gap, gap]).sum(axis=1) if len(placed) else \
            np.zeros(len(candidates))
        others = np.delete(anchors, i, axis=0)
        cover = np.clip(overlap_area(candidates, others).sum(axis=1) / max(w * h, 1.0), 0, 1) if len(others) else 0.0
        # least overlap with the labels first; then the nearest spot that leaves the other objects visible
        # (a spot 10 places further down the list is worth covering 10% less of them)
        cost = overlap * 1e6 + cover + np.arange(len(candidates)) / 100.0
        best = int(np.argmin(cost))
        boxes[i] = candidates[best]
        shown[i] = max_overlap is None or overlap[best] <= max_overlap * w * h
    return boxes, shown
