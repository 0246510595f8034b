"""Report sections drawn from the records: the Meta Reweighter's learned weights."""
import statistics



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
