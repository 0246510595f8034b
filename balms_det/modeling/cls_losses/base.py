"""The registry of classification losses and what every loss module shares.

A classification loss is a small ``nn.Module`` registered in :data:`CLS_LOSS_REGISTRY` and chosen by
``MODEL.BALMS.CLS_LOSS`` (its class name, or its short :attr:`ClsLoss.name`). It owns everything
about its method: how many logits it needs and the classifier's bias init, its buffers (saved in
checkpoints, the same on every DDP rank when it says so), the per-ROI loss (no side effects: the
Meta Reweighter calls it again), the inference rule, what it does once per training step, and
``from_config`` for its own keys. Its maths are plain functions in the same file (``seesaw.py`` holds
``seesaw_loss`` & co. and ``SeesawLoss``). A user's loss is a subclass in the user's own file::

    @CLS_LOSS_REGISTRY.register()
    class MyLoss(ClsLoss):
        extra_logits = 1                       # K + 1 logits, background last
        def per_roi_loss(self, logits, gt_classes):
            return F.cross_entropy(logits, gt_classes, reduction="none")
        def probs(self, logits):
            return F.softmax(logits, dim=-1)
"""
import torch
from detectron2.utils import comm
from detectron2.utils.registry import Registry
from torch import distributed as dist

from ..named_registry import RegisteredMethod, lookup

__all__ = ["CLS_LOSS_REGISTRY", "ClsLoss", "cls_loss_class", "all_reduce_sum"]

CLS_LOSS_REGISTRY = Registry("CLS_LOSS")
CLS_LOSS_REGISTRY.__doc__ = """Classification losses of :class:`LongTailOutputLayers` (``MODEL.BALMS.CLS_LOSS``):
subclasses of :class:`ClsLoss`, looked up by class name or by their ``name`` attribute."""


def cls_loss_class(name):
    """The registered :class:`ClsLoss` subclass called ``name`` (class name or short name)."""
    return lookup(CLS_LOSS_REGISTRY, name, "MODEL.BALMS.CLS_LOSS")


def all_reduce_sum(tensor):
    """``tensor`` summed over the DDP workers, in place (unchanged in a single process)."""
    if comm.get_world_size() > 1:
        dist.all_reduce(tensor)
    return tensor


class ClsLoss(RegisteredMethod):
    """
    Base of the classification losses: ``K`` foreground classes, labels in ``[0, K]`` (``K`` is
    background). Subclasses set the class attributes and implement :meth:`per_roi_loss` and
    :meth:`probs`; the rest has defaults.

    ``class_counts`` (the (K,) class prior) is kept as the persistent float64 buffer ``class_counts``
    when given; a loss with ``uses_prior`` needs it. ``prior`` gives both the counts and the number of
    training images: a :class:`~balms_det.modeling.priors.ClassPrior`, or a deferred one (a
    :class:`~balms_det.modeling.deferred_prior.DeferredPrior`, e.g. ``L(deferred_class_prior)(datasets=...)`` in
    a Python config, what ``MODEL.BALMS.PRIOR`` builds): then nothing is read at build, the buffer holds
    NaN until the prior is loaded with the model's weights (a checkpoint carries the prior it was trained
    with) or set (:meth:`set_prior`, what the trainer does before a fresh run), and :meth:`ensure_prior`
    computes it on first use if neither happened. So a model is built for inference without its
    training set. Give a prior only when the loss (or a post-hoc calibration reading it) needs it.
    """

    name = ""  # short name accepted by MODEL.BALMS.CLS_LOSS besides the class name
    extra_logits = 1  # cls_score gives K + extra_logits outputs
    uses_prior = False  # needs class_counts
    needs_num_images = False  # the prior must also give the number of training images
    softmax_logits = False  # probs = softmax of K + 1 logits: the post-hoc calibrations apply
    plain_loss = None  # the Meta Reweighter's meta loss (a method), None = the reweighter is refused

    def __init__(self, num_classes, *, class_counts=None, num_images=None, prior=None):
        super().__init__()
        self.num_classes = int(num_classes)
        self.prior_provider = None  # a deferred prior: computes it when needed and neither loaded nor set
        self.prior_ready = True  # False while class_counts is a placeholder
        if prior is not None and callable(prior) and class_counts is None:
            self.prior_provider = prior
            self.prior_ready = False
            self.prior_num_images = num_images or None
            self.register_buffer("class_counts", torch.full((self.num_classes,), float("nan"), dtype=torch.float64))
            return
        if prior is not None and not callable(prior):
            class_counts = prior.counts if class_counts is None else class_counts
            num_images = prior.num_images if not num_images else num_images
        self.prior_num_images = num_images  # the number of training images, where the prior says
        if class_counts is None:
            if self.uses_prior:
                raise ValueError(f"cls_loss={self.name or type(self).__name__!r} needs class_counts (the class prior)")
            return
        self.register_buffer("class_counts", self._checked_counts(class_counts))

    def _checked_counts(self, class_counts):
        counts = torch.as_tensor(class_counts, dtype=torch.float64).flatten()
        if counts.numel() != self.num_classes:
            raise ValueError(f"class_counts has {counts.numel()} entries, num_classes is {self.num_classes}")
        if not (torch.isfinite(counts).all() and (counts > 0).all()):
            raise ValueError("class_counts must be finite and > 0 (see priors.sanitize_counts)")
        return counts

    # ---------------------------------------------------------------- the prior
    def set_prior(self, prior):
        """Take ``prior`` (a :class:`~balms_det.modeling.priors.ClassPrior`) as this loss's class prior."""
        counts = self._checked_counts(prior.counts)
        if hasattr(self, "class_counts"):
            self.class_counts.copy_(counts)
        else:
            self.register_buffer("class_counts", counts.to(self._device()))
        self.prior_num_images = prior.num_images
        self.on_prior()
        self.prior_ready = True

    def on_prior(self):
        """Called when a prior is set: derived state (e.g. the number of training images) follows it."""

    def ensure_prior(self):
        """Before the prior is used: when it was neither loaded with weights nor set, compute it (a
        deferred prior) or say why it is missing. Cheap when ready (one attribute)."""
        if self.prior_ready:
            return
        if self.prior_provider is None:
            raise RuntimeError(f"cls_loss={self.name or type(self).__name__!r} has no class prior: load weights "
                               "trained with it or call set_prior")
        self.set_prior(self.prior_provider(self.num_classes, self.needs_num_images))

    def _device(self):
        return next(iter(self.buffers()), torch.empty(0)).device

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """A loaded ``class_counts`` (finite: a trained model's) is the prior: nothing to compute."""
        counts = state_dict.get(prefix + "class_counts")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        if counts is not None and hasattr(self, "class_counts") and bool(torch.isfinite(counts).all()):
            self.prior_ready = True

    # ---------------------------------------------------------------- configuration (also RegisteredMethod's
    # add_config / from_config: this loss's own keys and keyword arguments)
    @classmethod
    def needs_prior(cls, **settings):
        """Whether the loss built with these keyword arguments needs ``class_counts``."""
        return cls.uses_prior

    def num_logits(self):
        return self.num_classes + self.extra_logits

    def bias_init(self):
        """The classifier's initial bias (every logit)."""
        return 0.0

    # ---------------------------------------------------------------- training
    def per_roi_loss(self, logits, gt_classes):
        """
        The loss of each ROI; the training loss is their sum / N. No side effects.

        Args:
            logits (Tensor): (N, :meth:`num_logits`), float, the classifier's outputs.
            gt_classes (Tensor): (N,), int64, labels in [0, K].
        Returns:
            Tensor: (N,), float32 or float64.
        """
        raise NotImplementedError

    def before_loss(self, gt_classes):
        """Once per training step, before the loss (under no_grad)."""

    def after_loss(self, logits, gt_classes):
        """Once per training step, after the loss (under no_grad)."""

    def register_state(self, name, size):
        """A float64 buffer of zeros that accumulates over training, saved in checkpoints."""
        self.register_buffer(name, torch.zeros(size, dtype=torch.float64))

    # ---------------------------------------------------------------- inference
    def probs(self, logits):
        """
        The class probabilities by this method's inference rule.

        Args:
            logits (Tensor): (N, :meth:`num_logits`), float.
        Returns:
            Tensor: (N, K + 1), float, background last.
        """
        raise NotImplementedError

    def extra_repr(self):
        return f"num_classes={self.num_classes}"
