"""``ROIFeatureBank``: recent box features of the training stream, to draw class-balanced meta batches.

In decoupled training (stage 2) the trunk and box head are frozen, so a ROI's box feature never goes
stale: features kept from earlier iterations are exactly what the detector would compute for those
ROIs now. The bank keeps, as ring buffers, the last ``per_class`` foreground features of every class
and the last ``background`` background features. :meth:`sample` draws a meta batch without a second
forward pass: foreground ROIs class-balanced (a class uniformly among the classes the bank holds, then
one of its stored features uniformly), background ROIs uniformly. The buffers are saved in
checkpoints, so ``--resume`` continues with the same bank.
"""
import torch
from torch import nn

__all__ = ["ROIFeatureBank"]


def _ring_write(store, ptr, rows, values):
    """Write ``values`` (one per entry of ``rows``, in stream order) into the ring buffers
    ``store[rows]`` at each row's write pointer; of more than ``capacity`` values for one row only the
    last ``capacity`` are written. Updates ``ptr`` (per row) in place; returns the counts per row."""
    capacity = store.shape[1]
    rows, order = torch.sort(rows, stable=True)
    counts = torch.bincount(rows, minlength=store.shape[0])
    starts = counts.cumsum(0) - counts
    rank = torch.arange(rows.numel(), device=rows.device) - starts[rows]
    keep = rank >= counts[rows] - capacity
    slot = (ptr[rows] + rank) % capacity
    store[rows[keep], slot[keep]] = values[order[keep]].to(store.dtype)
    ptr.copy_((ptr + counts) % capacity)
    return counts


def _uniform_below(n):
    """One integer uniformly in [0, n_i) for each entry of the long tensor ``n`` (all n_i >= 1)."""
    return torch.minimum((torch.rand(n.shape, device=n.device) * n).long(), n - 1)


class ROIFeatureBank(nn.Module):
    def __init__(self, num_classes, feature_dim, per_class=16, background=1024):
        """
        Args:
            num_classes: K foreground classes (labels in [0, K], K = background).
            feature_dim: length of a box feature.
            per_class: foreground features kept per class.
            background: background features kept.
        """
        super().__init__()
        if per_class < 1 or background < 1:
            raise ValueError("ROIFeatureBank needs per_class >= 1 and background >= 1")
        self.num_classes = num_classes
        self.register_buffer("fg_features", torch.zeros(num_classes, per_class, feature_dim))
        self.register_buffer("fg_count", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("fg_ptr", torch.zeros(num_classes, dtype=torch.long))
        self.register_buffer("bg_features", torch.zeros(1, background, feature_dim))
        self.register_buffer("bg_count", torch.zeros(1, dtype=torch.long))
        self.register_buffer("bg_ptr", torch.zeros(1, dtype=torch.long))

    @torch.no_grad()
    def add(self, features, gt_classes):
        """Store (N, D) ``features`` with labels (N,) ``gt_classes`` (the training batch's ROIs)."""
        fg = gt_classes < self.num_classes
        counts = _ring_write(self.fg_features, self.fg_ptr, gt_classes[fg], features[fg])
        self.fg_count.copy_((self.fg_count + counts).clamp(max=self.fg_features.shape[1]))
        bg_rows = torch.zeros(int((~fg).sum()), dtype=torch.long, device=gt_classes.device)
        counts = _ring_write(self.bg_features, self.bg_ptr, bg_rows, features[~fg])
        self.bg_count.copy_((self.bg_count + counts).clamp(max=self.bg_features.shape[1]))

    @torch.no_grad()
    def sample(self, num_fg, num_bg):
        """A meta batch: ``(features (M, D), labels (M,))`` with up to ``num_fg`` foreground ROIs drawn
        class-balanced and ``num_bg`` background ROIs (fewer only if the bank holds none of a kind)."""
        device = self.fg_features.device
        classes = self.fg_count.nonzero().flatten()
        num_fg = num_fg if classes.numel() else 0
        num_bg = num_bg if int(self.bg_count) else 0
        cls = classes[torch.randint(classes.numel() or 1, (num_fg,), device=device)]
        slot = _uniform_below(self.fg_count[cls])
        bg_slot = _uniform_below(self.bg_count.expand(num_bg))
        features = torch.cat([self.fg_features[cls, slot], self.bg_features[0, bg_slot]])
        labels = torch.cat([cls, torch.full((num_bg,), self.num_classes, dtype=torch.long, device=device)])
        return features, labels

    def num_stored(self):
        """(foreground features, background features) currently held."""
        return int(self.fg_count.sum()), int(self.bg_count.sum())
