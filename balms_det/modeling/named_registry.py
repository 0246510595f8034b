"""Looking up a registered class by its class name or by its short ``name`` attribute (the lower-case
names the YAML keys have always used, e.g. ``CLS_LOSS: balanced_softmax`` for ``BalancedSoftmaxLoss``)."""

__all__ = ["lookup"]


def lookup(registry, name, key):
    """The class registered in ``registry`` as ``name`` or whose ``name`` attribute is ``name``;
    ``key`` (the config key, e.g. ``"MODEL.BALMS.CLS_LOSS"``) goes into the error."""
    if name in registry:
        return registry.get(name)
    for _, cls in registry:
        if getattr(cls, "name", None) == name:
            return cls
    known = sorted(getattr(c, "name", "") or k for k, c in registry)
    raise ValueError(f"Unknown {key.rsplit('.', 1)[-1].lower()} {name!r} ({key}); registered: {known}")
