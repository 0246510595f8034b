"""Report sections drawn from the records and ``claims.py``: the Meta Reweighter's learned weights, the
sampler's prior against the raw prior, the sensitivity rows, and the reviewers' questions answered with
rows. The new sections show what is recorded and say how many of their runs are still pending."""
import statistics

from . import claims
from .answer import check, pending_line
from .methods import METRICS
from .stats import by_name, nseeds, pair_line, paired, pmd, shared_seeds, verdict

TIE_RULE = "a paired gap within its std over ≥ 2 seeds is a tie"


def group_weights(bench, row):
    """{group: mean learned weight over seeds} of a Meta Reweighter row and its number of seeds, or None."""
    from balms_eval.per_class import FREQUENCY_GROUPS

    ws = [w for s in row["seeds"] if (w := (bench.load(row["method"], s) or {}).get("meta_weights"))]
    if not ws:
        return None
    return {g: statistics.mean(w[g] for w in ws) for g, _ in FREQUENCY_GROUPS if all(g in w for w in ws)}, len(ws)


def weights_text(weights):
    groups, n = weights
    return ", ".join(f"{g} {v:.2f}" for g, v in groups.items()) + f" ({n} seed{'s' * (n > 1)})"


def learned_weights(bench, rows):
    """Lines: the Meta Reweighter rows' mean learned weight per frequency group (mean over seeds)."""
    out = [f"- {r['method'].label}: {weights_text(w)}" for r in rows if (w := group_weights(bench, r))]
    if not out:
        return []
    return ["Learned class weights of the Meta Reweighter rows (mean weight per frequency group and over "
            "seeds; every weight starts at 0.5; the run's `meta_weights.png` shows them class by class):",
            ""] + out + [""]


def _wanted(bench, names):
    """The section's rows among the selected ones (none: no section)."""
    selected = {m.name for m in bench.selected()}
    return [n for n in dict.fromkeys(names) if n in selected]


def _pending(bench, names):
    missing, total = bench.pending(_wanted(bench, names))
    return f"pending: {missing} of {total} runs"


def sprior_section(bench, rows, task="bbox"):
    names = [n for pair in claims.SPRIOR_PAIRS for n in pair]
    target_rows = [n for t in claims.SPRIOR_TARGETS for n in (t.a, t.b)]
    if not _wanted(bench, names):
        return []
    by, labels = by_name(rows), {n: m.label for n, m in bench.methods.items()}
    out = ["**Sampler's prior vs raw prior** (`MODEL.BALMS.PRIOR.SAMPLER train`: the class prior is the expected "
           "label counts of one pass of the training sampler, RFS here, instead of the raw training counts; each "
           "row minus its raw-prior twin, paired by seed over the seeds both have, mean ± std of the differences; "
           f"{_pending(bench, names + target_rows)}):", ""]
    out += [pair_line(by, labels, a, b) for a, b in claims.SPRIOR_PAIRS if _wanted(bench, (a, b))]
    out += ["", f"Targets of \"Balanced Softmax under re-sampling\" ({task}, paired by seed):", ""]
    for t in claims.SPRIOR_TARGETS:
        c = check(t, by, task)
        out.append(c[1] if c else pending_line(t, labels))
    return out + [""]


def sensitivity_section(bench, rows):
    names = [n for s, d, _ in claims.SENSITIVITIES for n in (s, d)]
    if not _wanted(bench, names):
        return []
    by, labels = by_name(rows), {n: m.label for n, m in bench.methods.items()}
    out = ["**Sensitivity, not a method** (left out of the best rows; each sensitivity row minus its default row, "
           f"paired by seed; {_pending(bench, names)}):", ""]
    for s, d, what in claims.SENSITIVITIES:
        out.append(pair_line(by, labels, s, d, what))
        w = {n: group_weights(bench, by[n]) if n in by else None for n in (s, d)}
        if any(w.values()):
            out.append("  Learned weights per frequency group (mean over seeds; every weight starts at 0.5): "
                       + "; ".join(f"{labels[n]}: {weights_text(w[n]) if w[n] else 'pending'}" for n in (s, d)))
    return out + [""]


def judge(q, by, task="bbox"):
    """The question's comparisons as (what, a, b, {metric: (paired difference, verdict)} or None while
    pending), and its answer: "yes", "no" or None (no comparison judged yet) with the deciding ones."""
    metrics = [k for k in ("APr", "APf", "AP") if k in METRICS]
    judged, results = [], []
    for what, a, b in q.pairs:
        if a not in by or b not in by or not shared_seeds(by[a], by[b]):
            results.append((what, a, b, None))
            continue
        per = {k: (p := paired(by[a], by[b], f"{task}/{k}"), verdict(p)) for k in metrics}
        results.append((what, a, b, per))
        if all(v is not None for _, v in per.values()):
            judged.append((what, all(per[k][1] in allowed for k, allowed in q.rule.items())))
    if not judged:
        return results, None, []
    if q.need == "all":
        failing = [w for w, ok in judged if not ok]
        return results, ("no" if failing else "yes"), failing
    passing = [w for w, ok in judged if ok]
    return results, ("yes" if passing else "no"), passing


def questions_section(bench, rows, task="bbox"):
    names = [n for q in claims.QUESTIONS for _, a, b in q.pairs for n in (a, b)]
    if not _wanted(bench, names):
        return []
    by, labels = by_name(rows), {n: m.label for n, m in bench.methods.items()}
    out = [f"**The paper's reviewers' questions, answered with rows** ({task}; each comparison a − b paired by "
           f"seed over the seeds both rows have; {TIE_RULE}; {_pending(bench, names)}):", ""]
    for i, q in enumerate(claims.QUESTIONS, 1):
        results, ans, deciding = judge(q, by, task)
        n_judged = sum(1 for *_, per in results if per and all(v is not None for _, v in per.values()))
        if ans is None:
            head = "**Pending**: no comparison has 2 shared seeds yet"
        else:
            head = f"**{ans.capitalize()}**: " + (q.yes if ans == "yes" else q.no)
            if deciding:  # an "any" answer says how many of the judged comparisons carry it
                some = q.need == "any" and ans == "yes" and len(deciding) < n_judged
                head += (" (" + "; ".join(deciding)
                         + (f": {len(deciding)} of the {n_judged} judged comparisons" if some else "") + ")")
            if n_judged < len(results):
                head += f"; so far {n_judged} of {len(results)} comparisons judged"
        out.append(f"- **Q{i}. {q.text}** {head}.")
        for what, a, b, per in results:
            if per is None:
                out.append(f"  - {what} ({labels[a]} − {labels[b]}): pending")
                continue
            cells = ", ".join(f"{k} {pmd(*p[:2])}" + (f" {v}" if v else "") for k, (p, v) in per.items())
            n = next(iter(per.values()))[0][2]
            out.append(f"  - {what} ({labels[a]} − {labels[b]}): {cells} ({nseeds(n)}"
                       + (", not judged" if n < 2 else "") + ")")
    return out + [""]


def all_sections(bench, rows):
    return sprior_section(bench, rows) + sensitivity_section(bench, rows) + questions_section(bench, rows)
