"""Looking up a registered class by its class name or by its short ``name`` attribute (the lower-case
names the YAML keys have always used, e.g. ``CLS_LOSS: balanced_softmax`` for ``BalancedSoftmaxLoss``)."""

__all__ = ["lookup", "registered_names"]


def lookup(registry, name, key):
    """The class registered in ``registry`` as ``name`` or whose ``name`` attribute is ``name``;
    ``key`` (the config key, e.g. ``"MODEL.BALMS.CLS_LOSS"``) goes into the error."""
    if name in registry:
        return registry.get(name)
    for _, cls in registry:
        if getattr(cls, "name", None) == name:
            return cls
    raise ValueError(f"Unknown {key.rsplit('.', 1)[-1].lower()} {name!r} ({key}); "
                     f"registered: {registered_names(registry)}")


def registered_names(registry):
    """The names a config can give for ``registry``'s classes: each one's short ``name``, else its class name."""
    return sorted(getattr(c, "name", "") or k for k, c in registry)
