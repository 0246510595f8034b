"""The registered methods' common base (:class:`RegisteredMethod`: a short name, own config keys) and
looking one up by its class name or by its short ``name`` attribute (the lower-case names the YAML keys
have always used, e.g. ``CLS_LOSS: balanced_softmax`` for ``BalancedSoftmaxLoss``)."""
from torch import nn

__all__ = ["RegisteredMethod", "lookup", "registered_names"]


class RegisteredMethod(nn.Module):
    """Base of the classes of a method registry (the losses, the calibrations): a short ``name`` the config
    may give, the method's own config keys (:meth:`add_config`) and its keyword arguments from them
    (:meth:`from_config`)."""

    name = ""  # short name accepted by the config key besides the class name

    @classmethod
    def add_config(cls, cfg):
        """Add this method's own config keys, with their defaults (e.g. ``cfg.MODEL.BALMS.MY_LOSS = CfgNode()``
        and its keys), so that a YAML file can set them; ``build_config`` calls it for every registered class,
        after ``MODEL.BALMS.CUSTOM_IMPORTS`` and before the file is merged. The built-in methods' keys are
        ``add_balms_config``'s."""

    @classmethod
    def from_config(cls, cfg):
        """This method's own keyword arguments from ``cfg`` (its keys under ``MODEL.BALMS``)."""
        return {}


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
