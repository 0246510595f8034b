"""The statistics of the report: a row (mean ± std over seeds, per-seed values, cost) from a method's
records, differences paired by seed, the tie rule, and how numbers are written."""
import statistics

from .methods import METRICS, TASKS


def summarise(m, recs):
    """The table row of method ``m`` from its finished (not diverged) records, or None without any."""
    if not recs:
        return None
    cells, per_seed = {}, {}
    for t in TASKS:
        for k in METRICS:
            v = [r["metrics"].get(f"{t}/{k}", float("nan")) for r in recs]
            cells[f"{t}/{k}"] = (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else None)
            per_seed[f"{t}/{k}"] = {r["seed"]: x for r, x in zip(recs, v)}
    # cost: iterations x median iteration time where recorded (pauses left out), else detectron2's time
    train = [r["train_iters"] * r["s_per_iter_median"] if r.get("s_per_iter_median") else r["train_s"] or 0.0
             for r in recs]
    return {"method": m, "seeds": [r["seed"] for r in recs], "cells": cells, "per_seed": per_seed,
            "train_min": statistics.mean(train) / 60,
            "s_per_iter": [r["s_per_iter_median"] for r in recs if r.get("s_per_iter_median")],
            "wall_s": sum(r["wall_s"] or 0 for r in recs),
            "commits": sorted({r["commit"] for r in recs}),
            "machines": sorted({r["machine"] for r in recs})}


def shared_seeds(a, b):
    """The seeds two table rows both have."""
    return sorted(set(a["seeds"]) & set(b["seeds"]))


def paired(a, b, key):
    """Row ``a`` minus row ``b`` on ``key``, per seed over the seeds both have: (mean, std or None, n), or
    None where they share no seed. Seeds pair what they share (the data order, and in block 3 the stage-1
    weights), so a paired difference is the fair one, also while the table is still filling."""
    d = [a["per_seed"][key][s] - b["per_seed"][key][s] for s in shared_seeds(a, b)]
    if not d:
        return None
    return statistics.mean(d), (statistics.stdev(d) if len(d) > 1 else None), len(d)


def pair_line(by, labels, a, b, what=""):
    """"- A − B (what; n seeds): bbox APr .. APc .. APf .. AP ..; segm ..", or "...: pending"."""
    head = f"- {labels[a]} − {labels[b]}"
    if a not in by or b not in by or not shared_seeds(by[a], by[b]):
        return f"{head}{f' ({what})' if what else ''}: pending"
    n = len(shared_seeds(by[a], by[b]))
    d = {t: " ".join(f"{k} {pmd(*paired(by[a], by[b], f'{t}/{k}')[:2])}" for k in ("APr", "APc", "APf", "AP"))
         for t in TASKS}
    return f"{head} ({what + '; ' if what else ''}{nseeds(n)}): bbox {d['bbox']}; segm {d['segm']}"


def verdict(p):
    """The tie rule on a paired difference ``p`` (mean, std, n): "tie" when its mean is within its std over
    >= 2 seeds, else "higher" / "lower"; None when it cannot be judged (no difference, or one seed)."""
    if p is None or p[2] < 2:
        return None
    mean, std, _ = p
    return "tie" if abs(mean) <= std else ("higher" if mean > 0 else "lower")


def by_name(rows):
    return {r["method"].name: r for r in rows}


def pm(mean, std):
    return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def pmd(mean, std, digits=1):
    """A signed difference: "+1.2" or "+1.2 ± 0.3"."""
    return f"{mean:+.{digits}f}" + (f" ± {std:.1f}" if std is not None else "")


def nseeds(n):
    return f"{n} seed{'s' * (n != 1)}"


def hms(seconds):
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"
