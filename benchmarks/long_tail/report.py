"""The report ``<report>.md``: the table per block, the diverged runs, the differences against softmax, the
answer and its targets, the learned weights, the sections of ``sections.py`` and ``peers.py``, the
reproduction check, and the command, commits and machines; ``<report>.png`` beside it."""
import os

from . import peers, sections
from .answer import answer
from .configs import ROOT
from .figures import plot
from .methods import BLOCKS, METRICS, TASKS
from .records import git
from .stats import nseeds, paired, pm, pmd, shared_seeds


def write_report(bench, path):
    rows, diverged = bench.table(), bench.diverged()
    if not rows:
        print("no finished runs to report")
        return
    cols = [f"{t}/{k}" for t in TASKS for k in METRICS]
    head = ("| method | seeds | " + " | ".join(f"{t} {k}" for t, k in (c.split("/") for c in cols))
            + " | training (min) |")
    lines = [f"# Long-tail benchmark: `{bench.suite}`", "",
             f"Mean ± std over seeds; base config `{bench.base}`"
             + (f", data {' '.join(bench.data_opts)}" if bench.data_opts else "")
             + f"; stage 1 / end to end: {bench.iters} iterations. Training time is the stage's own "
             "(block 3: stage 2 only; post-hoc rows train nothing): iterations x the median iteration "
             "time, which leaves out the time a run stood still (detectron2's total where a record "
             "predates that field).", ""]
    for block, title in BLOCKS.items():
        block_rows = [r for r in rows if r["method"].block == block]
        if not block_rows:
            continue
        lines += [f"**{block}. {title}**", "", head, "|---|---|" + "---|" * len(cols) + "---|"]
        for r in block_rows:
            cells = " | ".join(pm(*r["cells"][c]) for c in cols)
            n_div = sum(1 for mm, _, _ in diverged if mm is r["method"])
            seeds = f"{len(r['seeds'])}" + (f" (+{n_div} diverged)" if n_div else "")
            lines.append(f"| {r['method'].label} | {seeds} | {cells} | {r['train_min']:.1f} |")
        lines.append("")
    lines += divergence_lines(bench, diverged)
    lines += deltas(rows) + answer(rows) + sections.learned_weights(bench, rows)
    lines += sections.all_sections(bench, rows) + peers.all_sections(bench, rows)
    if bench.args.compare:
        lines += reproduction(bench, rows, bench.args.compare)
    total = sum(r["wall_s"] for r in rows) + sum(rec["wall_s"] or 0 for _, _, rec in diverged)
    cmd = "python benchmarks/long_tail_benchmark.py " + " ".join(bench.args.argv)
    lines += [f"Command: `{cmd.strip()}`", "",
              f"Commits of the runs: {', '.join(sorted({c for r in rows for c in r['commits']}))}; "
              f"report written at {git('rev-parse', '--short', 'HEAD')}.", "",
              f"Machine: {'; '.join(sorted({x for r in rows for x in r['machines']}))}. "
              f"Wall time of the runs recorded here: {total / 3600:.1f} h.", ""] + speeds(rows)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".md", "w") as f:
        f.write("\n".join(lines))
    plot(rows, path + ".png", bench.suite)
    print("\n".join(lines))
    print(f"written: {path}.md, {path}.png")


def divergence_lines(bench, diverged):
    if not diverged:
        return []
    lines = ["**Diverged runs** (detectron2 stopped the training; left out of the means, counted in the "
             "seeds column; a re-run skips them: delete the record to try again):", ""]
    for m, s, rec in diverged:
        after = [mm.label for mm in bench.selected() if mm.stage1 == m.name]
        lines.append(f"- {m.label}, seed {s}: after {rec['diverged']['iteration']} of {bench.iters} iterations, "
                     f"`FloatingPointError: {rec['diverged']['error']}`"
                     + (f"; so not run from it: {', '.join(after)}" if after else ""))
    return lines + [""]


def reproduction(bench, rows, runs_dir):
    """Lines: runs repeated from scratch (records under ``runs_dir``, same suite) against the recorded
    ones of the same method and seed: the difference on each metric, and whether it is within the
    row's std over its seeds (the spread the table reports)."""
    lines = [f"**Reproduction**: runs repeated from scratch (records in `{os.path.relpath(runs_dir, ROOT)}`) minus "
             "the recorded run of the same method and seed; within the row's std over seeds or not.", ""]
    repeats = []
    for r in rows:
        for s in r["seeds"]:
            rec = bench.load(r["method"], s, runs_dir)
            if rec is None or rec.get("diverged"):
                continue
            again, cells = rec["metrics"], []
            for t in TASKS:
                for k in ("AP", "APr", "APf"):
                    key = f"{t}/{k}"
                    d, std = again.get(key, float("nan")) - r["per_seed"][key][s], r["cells"][key][1]
                    verdict = ("" if std is None else " (within std)" if abs(d) <= std
                               else f" (OUTSIDE std {std:.1f})")
                    cells.append(f"{t} {k} {d:+.2f}{verdict}")
            repeats.append(f"- {r['method'].label}, seed {s} ({nseeds(len(r['seeds']))} for the std): "
                           + ", ".join(cells) + replaced_note(bench, r["method"], s, again))
    return lines + (repeats or ["- none yet"]) + [""]


def replaced_note(bench, m, seed, again):
    """Where the record a run repeated is gone: ``m``'s record of ``seed`` replaced by a stage 1 trained again
    (the repeat against the replaced metrics), or made again from its stage 1's replaced weights."""
    rec = bench.load(m, seed) or {}
    old = rec.get("replaced")
    if old:
        nan = float("nan")
        cells = ", ".join(f"{t} {k} {again.get(f'{t}/{k}', nan) - old['metrics'].get(f'{t}/{k}', nan):+.2f}"
                          for t in TASKS for k in ("AP", "APr", "APf"))
        when = f" ({rec['finished'][:10]})" if rec.get("finished") else ""
        return (f"; the record it repeated ({old.get('commit')}, {str(old.get('finished'))[:10]}) was replaced by a "
                f"training of the same row that did not reproduce it{when}; against that record: {cells}")
    s1 = bench.methods.get(m.stage1) if m.stage1 else None
    if s1 is not None and (bench.load(s1, seed) or {}).get("replaced"):
        return f"; made again from the weights of {s1.label}'s replacing training, not the ones it repeated"
    return ""


def deltas(rows, base="softmax"):
    """Lines: each method's bbox / segm APr, APc, APf minus the softmax baseline's, paired by seed."""
    ref = next((r for r in rows if r["method"].name == base), None)
    if ref is None or len(rows) < 2:
        return []
    out = [f"Against {ref['method'].label} (per seed, over the seeds both rows have: mean ± std of the "
           "differences; block 3 rows and their stage 1 share the seed's weights), bbox / segm:", ""]
    for r in rows:
        if r is ref or not shared_seeds(r, ref):
            continue
        d = {t: " ".join(f"{k} {pmd(*paired(r, ref, f'{t}/{k}')[:2])}" for k in ("APr", "APc", "APf"))
             for t in TASKS}
        out.append(f"- {r['method'].label} ({nseeds(len(shared_seeds(r, ref)))}): bbox {d['bbox']}; "
                   f"segm {d['segm']}")
    return out + [""]


def speeds(rows):
    """Lines: the spread of the end-to-end runs' median seconds per iteration, when the records come from
    machines of different speed (then a row's training minutes mix them)."""
    speed = [x for r in rows if not r["method"].stage1 for x in r["s_per_iter"]]
    if not speed or max(speed) < 1.2 * min(speed):
        return []
    return [f"Training speed differs between the runs (median {min(speed):.2f} to {max(speed):.2f} s per "
            f"iteration over the {len(speed)} end-to-end runs: the records come from machines of different "
            "speed): training minutes compare methods only roughly; the cost in iterations is the same for "
            "every end-to-end row.", ""]
