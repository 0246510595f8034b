#!/usr/bin/env python
"""Which long-tail method should I use? Every method and peer on one model, data and schedule, over
several seeds, in one command; the table and the chart are written from per-run files.

    python benchmarks/long_tail_benchmark.py                      # lt_shapes, seeds 0 1 2, 1,200 iterations
    python benchmarks/long_tail_benchmark.py --dry-run            # the runs, which are done, what is left
    python benchmarks/long_tail_benchmark.py --report-only        # table + chart from the finished runs
    python benchmarks/long_tail_benchmark.py --seeds 0 --methods softmax --runs-dir again --cache again
    python benchmarks/long_tail_benchmark.py --report-only --compare again   # did a repeat reproduce the table?
    python benchmarks/long_tail_benchmark.py --base-config my_base.yaml --train my_train --test my_val \\
        --tag mydata --extra my_loss=configs/my_loss.yaml          # your data, your base model, your loss

Rows (``--list`` prints them):

1. end to end, each method as its authors train it (the configs in ``configs/LTShapes/``), on the shared
   schedule; rows labelled "authors' recipe" add what a peer's official recipe has beyond it (ECM:
   whole-model gradient clipping and its long warm-up; the federated loss as CenterNet2 trains it);
2. controlled rows that change one thing (sampler, classifier) so that the loss's part can be seen;
3. from the same stage-1 weights per seed: post-hoc calibrations (no training), decoupled stage 2
   (cRT, Balanced Softmax, BALMS), and the official sigmoid chain from the sigmoid + RFS stage 1.

A method is the difference of its lt_shapes YAML from ``configs/LTShapes/Base-MaskRCNN-R18-FPN.yaml``
(plus a few keys for the controlled rows), applied on top of ``--base-config``; so the lt_shapes
rows run exactly today's configs, and the same command runs every method on a user's base config and
datasets. One schedule for all: ``--iters`` (default: the base config's MAX_ITER) for stage 1 and end
to end; stage 2 keeps its configs' share of that (300 / 1,200), LR steps at the same fractions.

Before the first run the command prints what it will run: each run, what it does and its estimated time, and
the total; while a run trains, a ``[progress]`` line every ``--progress-every`` seconds (60) gives this run's
and all runs' time left, from the iterations done and the measured seconds per iteration.

Each finished run writes ``--runs-dir/<suite>/<method>/seed<k>.json`` (metrics, training wall time,
commit, machine); a re-run skips finished runs, so the table fills over several sittings
(``--time-budget MINUTES`` starts no run that is not expected to finish in that time). Training
outputs (and the stage-1 weights reused by block 3) go under ``--cache`` (not committed); a stage-1
run whose record exists but whose weights are gone is trained again for its weights; where that run (or any
cached stage 1) does not reproduce its record, it becomes the record and the seed's block-3 rows are made again
from its weights, so that rows paired by seed always share their weights. A training
that diverges (detectron2's ``FloatingPointError``) is a result, not a crash: its record says where it
stopped, the report counts it beside the row's seeds and leaves it out of the means, and the block-3
rows that needed its weights are not run for that seed; any other failure stops the benchmark.
``--report`` writes ``<report>.md`` (table, command, commit, machine; the answer and its targets; the
sampler's prior against the raw prior; the sensitivity rows; the reviewers' questions answered with rows;
the recipe each end-to-end row follows; the ranking beside published LVIS numbers) and ``<report>.png``
(APr / APc / APf per method, mean and std over seeds, under each block's heading).

The code is the package ``benchmarks/long_tail/``: the rows (``methods.py``), what the report claims
(``claims.py``), the recipes and the published numbers (``recipes.py``, ``published.py``) are data.
"""
from long_tail.cli import main

if __name__ == "__main__":
    main(description=__doc__)
