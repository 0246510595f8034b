"""Report sections on the peers: which row follows which recipe (``recipes.py``), and this benchmark's
ranking beside the published LVIS numbers (``published.py``), with where the orderings agree."""
from itertools import combinations

from .published import PUBLISHED, SOURCES
from .recipes import NOT_REPRODUCED, RECIPES, SHARED, TWINS
from .stats import by_name, pair_line, paired, pm, pmd, verdict


def _selected(bench, names):
    selected = {m.name for m in bench.selected()}
    return [n for n in names if n in selected]


def _cite(sources):
    return f" [{', '.join(sources)}]" if sources else ""


def recipes_section(bench, rows):
    names = _selected(bench, RECIPES)
    if not names:
        return []
    missing, total = bench.pending(names)
    out = ["**The peers as their authors train them** (block 1; the rows labelled \"authors' recipe\" add what "
           "the authors' official recipe has and the shared one lacks, scaled to this schedule; the other rows "
           f"follow {SHARED}; pending: {missing} of {total} runs):", ""]
    out += [f"- {bench.methods[n].label}: {RECIPES[n][0]}{_cite(RECIPES[n][1])}" for n in names]
    out += twins_lines(bench, rows)
    out += ["", "Settings of the official recipes that differ from this benchmark and no row reproduces:", ""]
    out += [f"- {what}: theirs {theirs}; here {here}{_cite(src)}" for what, theirs, here, src in NOT_REPRODUCED]
    cited = sorted({s for n in names for s in RECIPES[n][1]} | {s for *_, src in NOT_REPRODUCED for s in src},
                   key=lambda s: int(s[1:]))
    return out + ["", "Sources: " + "; ".join(f"{s} {SOURCES[s]}" for s in cited) + ".", ""]


def twins_lines(bench, rows):
    """Each authors'-recipe row minus its shared-recipe twin, paired by seed, with the seeds each diverged on
    (a diverged seed pairs with nothing)."""
    twins = [(a, b) for a, b in TWINS.items() if _selected(bench, (a, b)) == [a, b]]
    if not twins:
        return []
    by, labels = by_name(rows), {n: m.label for n, m in bench.methods.items()}
    diverged = {}
    for m, s, _ in bench.diverged():
        diverged.setdefault(m.name, []).append(s)
    out = ["", "The authors' recipe minus the shared one, the same loss, classifier and sampler (paired by seed "
           "over the seeds both finished, mean ± std of the differences):", ""]
    for a, b in twins:
        div = "; ".join(f"{labels[n]} diverged on seed {', '.join(map(str, diverged[n]))}"
                        for n in (a, b) if n in diverged)
        out.append(pair_line(by, labels, a, b, div))
    return out


def _num(x):
    return "" if x is None else f"{x:.1f}"


def ranking(rows, key="segm/AP"):
    """{row name: rank} by the mean of ``key`` among the method rows (sensitivity rows left out)."""
    ranked = sorted((r for r in rows if not r["method"].sensitivity), key=lambda r: -r["cells"][key][0])
    return {r["method"].name: i for i, r in enumerate(ranked, 1)}


def orderings(by, task="segm"):
    """[(group, "A > B", metric, paired difference or None, verdict)] for every two published entries of one
    group with numbers and rows: the published order on mask AP (and APr where published) against this
    benchmark's paired difference of the two rows. verdict: "agrees", "reversed", "tie", or None (pending,
    or one seed: not judged)."""
    out = []
    for g in dict.fromkeys(p.group for p in PUBLISHED):
        entries = [p for p in PUBLISHED if p.group == g and p.row and p.ap is not None]
        for x, y in combinations(entries, 2):
            for metric in ("AP", "APr"):
                px, py = getattr(x, metric.lower()), getattr(y, metric.lower())
                if px is None or py is None or px == py:
                    continue
                hi, lo = (x, y) if px > py else (y, x)
                p = paired(by[hi.row], by[lo.row], f"{task}/{metric}") if hi.row in by and lo.row in by else None
                v = {"higher": "agrees", "lower": "reversed", "tie": "tie", None: None}[verdict(p)]
                out.append((g, f"{hi.short} > {lo.short}", metric, p, v))
    return out


def _merged(found, g, v, with_numbers=True):
    """"A > B (AP +1.0 ± 0.5, APr ...)" for the orderings of group ``g`` with verdict ``v``, one per pair."""
    pairs = {}
    for grp, order, metric, p, x in found:
        if grp == g and x == v:
            pairs.setdefault(order, []).append(metric + (f" {pmd(*p[:2])}" if p and with_numbers else ""))
    return [f"{order} ({', '.join(ms)})" for order, ms in pairs.items()]


def ordering_lines(found):
    """One line per group: the published orderings this benchmark agrees with, ties, reverses, or lacks."""
    out = []
    for g in dict.fromkeys(x[0] for x in found):
        parts = [f"{title}: " + ", ".join(items) for v, title in (
            ("agrees", "agrees"), ("tie", "tie here"), ("reversed", "reversed here"), (None, "pending or one seed"))
            if (items := _merged(found, g, v))]
        out.append(f"- {g}: " + "; ".join(parts))
    return out


def published_section(bench, rows, task="segm"):
    names = _selected(bench, dict.fromkeys(p.row for p in PUBLISHED if p.row))
    if not names:
        return []
    by, rank = by_name(rows), ranking(rows)
    missing, total = bench.pending(names)
    out = ["**Against published LVIS numbers** (Mask R-CNN R-50-FPN unless said; copied from the sources, none "
           "derived; blank: not published there. A published gain is meaningful only against its own source's "
           "baseline, so numbers compare only within one group. Here: this benchmark's row of the same method, "
           f"{task} mean ± std over seeds, and its rank by {task} AP among the {len(rank)} method rows "
           f"recorded; pending: {missing} of {total} runs)", "",
           f"| method (published) | LVIS | setup | mask AP | APr | APc | APf | box AP | source | row here | "
           f"{task} AP here | {task} APr here | rank here |", "|" + "---|" * 13]
    for p in PUBLISHED:
        if p.row not in names:
            continue
        here = by.get(p.row)
        cells = ([pm(*here["cells"][f"{task}/AP"]), pm(*here["cells"][f"{task}/APr"]), str(rank.get(p.row, ""))]
                 if here else ["pending", "", ""])
        out.append(f"| {p.method}{f' ({p.note})' if p.note else ''} | {p.lvis} | {p.setup} | {_num(p.ap)} | "
                   f"{_num(p.apr)} | {_num(p.apc)} | {_num(p.apf)} | {_num(p.box_ap)} | {p.source} | {p.row} | "
                   + " | ".join(cells) + " |")
    found = orderings(by, task)
    out += ["", f"Published orderings within each group (A > B on mask AP or APr) against this benchmark's paired "
                f"{task} difference A − B of the same rows; a gap within its std over ≥ 2 seeds is a tie:", ""]
    out += ordering_lines(found)
    counts = {v: sum(1 for *_, x in found if x == v) for v in ("agrees", "tie", "reversed")}
    if sum(counts.values()):
        wrong = [f"in {g}: " + "; ".join(items) for g in dict.fromkeys(x[0] for x in found)
                 if (items := _merged(found, g, "reversed", with_numbers=False))]
        out += ["", f"Of the {sum(counts.values())} published orderings judged here, the CPU-scale ranking agrees "
                    f"with {counts['agrees']}, ties {counts['tie']} and reverses {counts['reversed']}"
                    + (f" ({'. '.join(wrong)})" if wrong else "") + "."]
    cited = sorted({p.source.split()[0] for p in PUBLISHED if p.row in names and p.source},
                   key=lambda s: int(s[1:]))
    return out + ["", "Sources: " + "; ".join(f"{s} {SOURCES[s]}" for s in cited) + ".", ""]


def all_sections(bench, rows):
    return recipes_section(bench, rows) + published_section(bench, rows)
