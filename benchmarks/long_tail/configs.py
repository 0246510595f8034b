"""What a row runs: its overrides (the difference of its config from the lt_shapes base) and the schedule
scaled to ``--iters``."""
import os

from .methods import LT_BASE

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Keys that say where a run lives or starts from, never what the method is.
NOT_METHOD = ("OUTPUT_DIR", "MODEL.WEIGHTS", "SEED", "DATASETS.TRAIN", "DATASETS.TEST")


def build_cfg(config, opts=(), validate=False):
    """balms_det's config of ``config`` (relative to the repository, or absolute) with ``KEY VALUE`` opts;
    checked only with ``validate`` (a run's whole config): the base and a method's YAML alone are pieces
    (e.g. a base whose NUM_CLASSES is for the --train data that the run adds)."""
    from balms_det.engine import build_config

    return build_config(os.path.join(ROOT, config) if not os.path.isabs(config) else config, list(opts),
                        validate=validate)


def flat(node, prefix=""):
    """A config as {"A.B.C": value}."""
    out = {}
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def _literal(v):
    return v if isinstance(v, str) else repr(v)


def config_diff(config, base=LT_BASE, opts=()):
    """KEY VALUE overrides that turn ``base`` into ``config`` (+ ``opts``), without the keys of NOT_METHOD."""
    a, b = flat(build_cfg(base)), flat(build_cfg(config, opts))
    out = []
    for k in sorted(b):
        if k.startswith(NOT_METHOD) or (k in a and a[k] == b[k]):
            continue
        out += [k, _literal(b[k])]
    return out


def schedule_opts(method_opts, base_cfg, iters):
    """Scale a method's schedule to ``iters`` stage-1 iterations: a method that sets its own MAX_ITER
    (stage 2) keeps its share of the lt_shapes base's; LR steps and warm-up keep their fractions."""
    lt_iters = build_cfg(LT_BASE).SOLVER.MAX_ITER
    cfg = base_cfg.clone()
    cfg.defrost()
    cfg.merge_from_list(method_opts)
    own = dict(zip(method_opts[::2], method_opts[1::2]))
    share = cfg.SOLVER.MAX_ITER / lt_iters if "SOLVER.MAX_ITER" in own else 1.0
    n = max(1, round(iters * share))
    f = n / cfg.SOLVER.MAX_ITER
    steps = tuple(sorted({min(n - 1, max(1, round(s * f))) for s in cfg.SOLVER.STEPS})) if n > 1 else ()
    return ["SOLVER.MAX_ITER", str(n), "SOLVER.STEPS", repr(steps),
            "SOLVER.WARMUP_ITERS", str(min(round(cfg.SOLVER.WARMUP_ITERS * f), max(n - 1, 0))),
            "SOLVER.CHECKPOINT_PERIOD", str(n)]
