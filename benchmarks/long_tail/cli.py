"""The command line of ``benchmarks/long_tail_benchmark.py``."""
import argparse
import os
import sys

from .bench import Bench
from .configs import ROOT
from .detections import detections_figure
from .figures import per_class
from .methods import LT_BASE
from .report import write_report


def parser(description=None):
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--blocks", nargs="+", type=int, default=[1, 2, 3])
    ap.add_argument("--methods", nargs="+", default=None, help="run / report only these (default: all of --blocks)")
    ap.add_argument("--iters", type=int, default=0, help="stage-1 iterations (0 = the base config's MAX_ITER)")
    ap.add_argument("--base-config", default=LT_BASE, help="model + data every method is applied to")
    ap.add_argument("--train", nargs="+", default=None, help="registered training dataset(s) (default: the base's)")
    ap.add_argument("--test", nargs="+", default=None, help="registered test dataset(s) (default: the base's)")
    ap.add_argument("--tag", default="lt_shapes", help="names the suite: runs are keyed by TAG_itITERS/method/seed")
    ap.add_argument("--extra", nargs="+", default=[], metavar="NAME=CONFIG",
                    help="more end-to-end rows: a YAML whose difference from the lt_shapes base is the method "
                         "(e.g. one that sets MODEL.BALMS.CLS_LOSS to your registered loss)")
    ap.add_argument("--runs-dir", default=os.path.join(ROOT, "benchmarks", "results", "runs"))
    ap.add_argument("--cache", default=os.path.join(ROOT, "output", "long_tail"), help="training outputs, weights")
    ap.add_argument("--report", default=os.path.join(ROOT, "benchmarks", "results", "long_tail"),
                    help="write REPORT.md and REPORT.png")
    ap.add_argument("--report-only", action="store_true", help="no training: the table from finished runs")
    ap.add_argument("--dry-run", action="store_true", help="print the runs and their state, train nothing")
    ap.add_argument("--list", action="store_true", help="print the methods and their overrides")
    ap.add_argument("--time-budget", type=float, default=None, metavar="MINUTES",
                    help="start no run (with its stage 1 where its weights are missing) that is not expected to "
                         "finish within MINUTES of the command's start; run the command again to go on")
    ap.add_argument("--stream", action="store_true", help="show each run's training log as it goes")
    ap.add_argument("--progress-every", type=float, default=60.0, metavar="SECONDS",
                    help="while a run trains, a line every SECONDS with the time left for all runs (0: at every "
                         "iteration detectron2 logs)")
    ap.add_argument("--figure", nargs="+", default=None, metavar="METHOD",
                    help="after the runs (none with --report-only), draw detections of these methods (seed "
                         "--seeds[0], cached weights) on test images with rare classes, side by side with the "
                         "ground truth, to REPORT_detections.png")
    ap.add_argument("--per-class", nargs="+", default=None, metavar="A B",
                    help="after the runs, per-class AP of two methods (cached evaluations, mean over --seeds) "
                         "by training images, and B - A, to REPORT_per_class_A_vs_B.png; more pairs: A B C D ...")
    ap.add_argument("--compare", default=None, metavar="RUNS_DIR",
                    help="in the report, runs repeated from scratch (another --runs-dir) against the recorded ones")
    ap.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides for every run, after --")
    return ap


def main(argv=None, description=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = parser(description)
    args = ap.parse_args(argv)
    if args.per_class and len(args.per_class) % 2:
        ap.error(f"--per-class takes pairs of methods, got {len(args.per_class)} names")
    args.opts = [o for o in args.opts if o != "--"]
    args.argv = argv
    bench = Bench(args)
    if args.list:
        for m in bench.selected():
            print(f"{m.name:28s} block {m.block}  {m.label}" + (f"  (from {m.stage1})" if m.stage1 else ""))
            ok, why = bench.available(m)
            print("    " + (" ".join(bench.method_opts(m)) if ok else f"n/a here: {why}"))
        return
    if args.dry_run:
        for m, s in bench.plan():
            rec, (ok, why) = bench.load(m, s), bench.available(m)
            if rec:
                state = f"diverged (after {rec['diverged']['iteration']} iterations)" if rec.get("diverged") else "done"
            else:
                state = "to do" if ok else f"n/a: {why}"
            print(f"{m.name:28s} seed {s}: {state}")
        return
    if not args.report_only:
        bench.run_all()
    write_report(bench, args.report)
    if args.figure:  # after the runs: their weights are in the cache
        detections_figure(bench, args.figure, args.report + "_detections.png")
    for a, b in zip(args.per_class[::2], args.per_class[1::2]) if args.per_class else ():
        per_class(bench, (a, b), f"{args.report}_per_class_{a}_vs_{b}.png")
