"""``ROIFeatureBank``: recent box features of the training stream, to draw class-balanced meta batches.

In decoupled training (stage 2) the trunk and box head are frozen, so a ROI's box feature never goes
stale: features kept from earlier iterations are exactly what the detector would compute for those
ROIs now. The bank keeps, as ring buffers, the last ``per_class`` foreground features of every class
and the last ``background`` background features (one flat buffer, one ring per label, so that adding
a batch is a handful of tensor operations whatever the number of classes). :meth:`sample` draws a
meta batch without a second forward pass: foreground ROIs class-balanced (a class uniformly among
the classes the bank holds, then one of its stored features uniformly), background ROIs uniformly.
Its buffers are training state, not part of the model's ``state_dict``: the
:class:`~balms_det.engine.MetaReweighterHook` checkpoints them (:meth:`state` / :meth:`load_state`) with
the trainer, so ``--resume`` continues with the same bank and a deployed model carries none of it.
"""
import torch
from torch import nn

__all__ = ["ROIFeatureBank", "copy_state"]


def copy_state(buf, value, name):
    """``buf.copy_(value)`` after a shape check whose error names the state entry ``name``."""
    if tuple(value.shape) != tuple(buf.shape):
        raise ValueError(f"Meta reweighter training state {name!r} has shape {tuple(value.shape)}, this model's "
                         f"{tuple(buf.shape)} (another number of classes, feature size or bank size)")
    buf.copy_(value)


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
        capacity = torch.tensor([per_class] * num_classes + [background])
        self.register_buffer("capacity", capacity, persistent=False)  # ring size per label
        self.register_buffer("offset", capacity.cumsum(0) - capacity, persistent=False)  # ring start
        self.register_buffer("features", torch.zeros(int(capacity.sum()), feature_dim), persistent=False)
        self.register_buffer("count", torch.zeros(num_classes + 1, dtype=torch.long), persistent=False)  # filled slots
        self.register_buffer("ptr", torch.zeros(num_classes + 1, dtype=torch.long), persistent=False)  # next write

    STATE = ("features", "count", "ptr")

    def state(self):
        """The bank's contents (CPU copies), for a training checkpoint."""
        return {k: getattr(self, k).detach().cpu().clone() for k in self.STATE}

    def load_state(self, state):
        """Restore :meth:`state`'s contents (shapes must match: the same K, D and ring sizes)."""
        for k in self.STATE:
            copy_state(getattr(self, k), state[k], f"bank.{k}")

    @torch.no_grad()
    def add(self, features, labels):
        """Store (N, D) ``features`` with labels (N,) (the training batch's ROIs, in stream order);
        of more than a ring's size of one label only the last ones are written."""
        labels, order = torch.sort(labels, stable=True)
        counts = torch.bincount(labels, minlength=self.num_classes + 1)
        rank = torch.arange(labels.numel(), device=labels.device) - (counts.cumsum(0) - counts)[labels]
        capacity = self.capacity[labels]
        keep = rank >= counts[labels] - capacity
        slot = self.offset[labels] + (self.ptr[labels] + rank) % capacity
        self.features[slot[keep]] = features[order[keep]].to(self.features.dtype)
        self.ptr.copy_((self.ptr + counts) % self.capacity)
        self.count.copy_(torch.minimum(self.count + counts, self.capacity))

    @torch.no_grad()
    def sample(self, num_fg, num_bg):
        """A meta batch: ``(features (M, D), labels (M,))`` with up to ``num_fg`` foreground ROIs drawn
        class-balanced and ``num_bg`` background ROIs (fewer only if the bank holds none of a kind)."""
        classes = self.count[: self.num_classes].nonzero().flatten()
        num_fg = num_fg if classes.numel() else 0
        num_bg = num_bg if int(self.count[-1]) else 0
        picked = classes[torch.randint(classes.numel() or 1, (num_fg,), device=classes.device)]
        labels = torch.cat([picked, picked.new_full((num_bg,), self.num_classes)])
        slot = self.offset[labels] + _uniform_below(self.count[labels])
        return self.features[slot], labels

    def num_stored(self):
        """(foreground features, background features) currently held."""
        return int(self.count[: self.num_classes].sum()), int(self.count[-1])
