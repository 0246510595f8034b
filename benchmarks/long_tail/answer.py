"""The report's answer: the best rows for rare classes and overall (ties by the paired tie rule), what the
sampler, the classifier and the loss each add (``claims.CONTRIBUTIONS``), and the targets
(``claims.TARGETS``), met or not. Sensitivity rows are never a "best" row."""
from . import claims
from .methods import OURS_ROWS, PEER_ROWS
from .published import PUBLISHED
from .stats import by_name, nseeds, paired, pm, pmd, shared_seeds


def _diff(by, a, b, k, task="bbox", digits=1):
    """a - b, paired by seed: "+1.2 ± 0.3"."""
    return pmd(*paired(by[a], by[b], f"{task}/{k}")[:2], digits=digits)


def _shared(by, a, b):
    return nseeds(len(shared_seeds(by[a], by[b])))


def _mean(by, name, k, task="bbox"):
    return by[name]["cells"][f"{task}/{k}"][0]


def check(target, by, task="bbox"):
    """(met: bool, line) of a target of ``claims`` on the rows ``by`` (name -> row), or None while the rows
    it needs have no shared seeds (pending)."""
    label = {n: r["method"].label for n, r in by.items()}
    if isinstance(target, claims.Order):
        if not all(n in by for n in target.rows):
            return None
        v = [_mean(by, n, target.metric, task) for n in target.rows]
        published = " < ".join(f"{p.short} {getattr(p, target.metric.lower())}" for p in PUBLISHED
                               if p.group == target.group)
        met = all(x < y for x, y in zip(v, v[1:]))
        return met, (f"- {target.claim.format(published=published)}: here " + " → ".join(f"{x:.1f}" for x in v)
                     + (", the same" if met else ", NOT the same"))
    if isinstance(target, claims.BestOf):
        ours = [n for n in by if n in OURS_ROWS and not by[n]["method"].sensitivity]
        peers = [n for n in by if n in PEER_ROWS and not by[n]["method"].sensitivity]
        if not (ours and peers):
            return None
        o = max(ours, key=lambda n: _mean(by, n, "APr", task))
        p_r = max(peers, key=lambda n: _mean(by, n, "APr", task))
        p_f = max(peers, key=lambda n: _mean(by, n, "APf", task))
        if not (shared_seeds(by[o], by[p_r]) and shared_seeds(by[o], by[p_f])):
            return None
        met = (paired(by[o], by[p_r], f"{task}/APr")[0] > 0 and paired(by[o], by[p_f], f"{task}/APf")[0] >= -1)
        return met, (f"- {target.claim.format(a=label[o])}: {'met' if met else 'NOT met'} (APr "
                     f"{_diff(by, o, p_r, 'APr', task)} against {label[p_r]}, {_shared(by, o, p_r)}; APf "
                     f"{_diff(by, o, p_f, 'APf', task)} against {label[p_f]}, {_shared(by, o, p_f)})")
    a, b = target.a, target.b
    if a not in by or b not in by or not shared_seeds(by[a], by[b]):
        return None
    claim = target.claim.format(a=label[a], b=label[b])
    if isinstance(target, claims.Spread):
        std = by[a]["cells"][f"{task}/{target.metric}"][1]
        if std is None:  # one seed of a: no spread yet
            return None
        gap = paired(by[a], by[b], f"{task}/{target.metric}")[0]
        met = gap <= std
        return met, (f"- {claim}: {'met' if met else 'NOT met'} (gap {_diff(by, a, b, target.metric, task)}, "
                     f"{label[a]}'s std {std:.1f}; {_shared(by, a, b)})")
    met = all(paired(by[a], by[b], f"{task}/{k}")[0] >= at_least for k, at_least, _ in target.gaps)
    details = [_diff(by, a, b, k, task, digits) for k, _, digits in target.gaps]
    if len(details) > 1:
        details = [f"{k} {d}" for (k, _, _), d in zip(target.gaps, details)]
    return met, f"- {claim}: {'met' if met else 'NOT met'} ({', '.join(details)}; {_shared(by, a, b)})"


def pending_line(target, labels):
    """The line of a target whose rows are not there yet (``labels``: method name -> label)."""
    if isinstance(target, (claims.Gap, claims.Spread)):
        return f"- {target.claim.format(a=labels[target.a], b=labels[target.b])}: pending"
    return f"- {target.claim}: pending"


def answer(rows, task="bbox"):
    """Lines: the best rows for rare classes and overall, what the sampler, the classifier and the loss
    each add (the controlled rows' differences, paired by seed), and the project's targets, met or not."""
    by = by_name(rows)
    if "softmax" not in by or len(rows) < 2:
        return []
    methods = [n for n in by if not by[n]["method"].sensitivity]

    def cell(name, k):
        return pm(*by[name]["cells"][f"{task}/{k}"])

    def cost(name):
        meth, t = by[name]["method"], by[name]["train_min"]
        if meth.stage1:  # block 3: on top of its stage 1's training
            s1 = by[meth.stage1]["train_min"] if meth.stage1 in by else None
            return (("no training" if meth.eval_only else f"{t:.0f} min of stage 2") + " on "
                    + (f"{meth.stage1}'s {s1:.0f} min" if s1 is not None else f"{meth.stage1}'s weights"))
        return f"{t:.0f} min training"

    best_r = max(methods, key=lambda n: _mean(by, n, "APr", task))
    best_ap = max(methods, key=lambda n: _mean(by, n, "AP", task))

    def ties(best, k):  # rows whose paired gap to the best is no larger than its std over >= 2 seeds
        near = []
        for n in methods:
            p = None if n == best else paired(by[n], by[best], f"{task}/{k}")
            if p and p[2] >= 2 and abs(p[0]) <= p[1]:
                near.append(f"{by[n]['method'].label} {pmd(p[0], p[1])} ({nseeds(p[2])})")
        return (f" Tied with it within the noise (paired {k} gap no larger than its std over seeds): "
                + "; ".join(near) + ".") if near else ""

    out = [f"**Answer ({task}; seeds as in the table; a synthetic CPU-scale benchmark, not LVIS)**", "",
           f"- Best for rare classes: {by[best_r]['method'].label}, APr {cell(best_r, 'APr')}, "
           f"APf {cell(best_r, 'APf')} ({cost(best_r)}).{ties(best_r, 'APr')}",
           f"- Best overall: {by[best_ap]['method'].label}, AP {cell(best_ap, 'AP')}, APr {cell(best_ap, 'APr')} "
           f"({cost(best_ap)}).{ties(best_ap, 'AP')}"]
    for what, a, b in claims.CONTRIBUTIONS:
        if a in by and b in by and shared_seeds(by[a], by[b]):
            out.append(f"- {what} ({by[a]['method'].label} − {by[b]['method'].label}): APr "
                       f"{_diff(by, a, b, 'APr', task)}, APf {_diff(by, a, b, 'APf', task)}, AP "
                       f"{_diff(by, a, b, 'AP', task)} ({_shared(by, a, b)})")
    out += ["", "Targets (differences paired by seed, over the seeds both rows have):", ""]
    out += [c[1] for t in claims.TARGETS if (c := check(t, by, task))]
    return out + [""]
