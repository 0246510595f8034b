"""The benchmark's runs: which runs a command asks for, where their records and outputs live, and running
them (``tools/train_net.py`` in a subprocess, one at a time; a finished run's record is written at once)."""
import os
import shutil
import statistics
import subprocess
import sys
import time

from . import records
from .configs import ROOT, build_cfg, config_diff, schedule_opts
from .methods import BLOCKS, METHODS, Method
from .progress import OVERHEAD_S, S_PER_ITER, Progress, plan_lines
from .stats import hms, summarise


class Bench:
    """The suite a command asks for (``args``: the command line's namespace): its methods and seeds, their
    records (``--runs-dir``) and training outputs (``--cache``)."""

    def __init__(self, args):
        self.args = args
        self.base = args.base_config
        self.base_cfg = build_cfg(self.base, args.opts)
        self.iters = args.iters or self.base_cfg.SOLVER.MAX_ITER
        self.suite = f"{args.tag}_it{self.iters}"
        self.runs_dir = os.path.join(args.runs_dir, self.suite)
        self.cache = os.path.join(args.cache, self.suite)
        self.methods = {m.name: m for m in METHODS}
        for spec in args.extra:
            name, _, config = spec.partition("=")
            if not config:
                raise SystemExit(f"--extra wants NAME=CONFIG.yaml, got {spec!r}")
            self.methods[name] = Method(name, 1, name, config)
        self.data_opts = []
        if args.train:
            self.data_opts += ["DATASETS.TRAIN", repr(tuple(args.train))]
        if args.test:
            self.data_opts += ["DATASETS.TEST", repr(tuple(args.test))]
        self._opts_cache = {}
        self.progress = Progress(getattr(args, "progress_every", 60.0))
        self.clock = time.time

    # --- what a run is
    def method_opts(self, m):
        if m.name not in self._opts_cache:
            self._opts_cache[m.name] = config_diff(m.config, opts=m.extra)
        return self._opts_cache[m.name]

    def run_iters(self, m):
        """The training iterations of a run of ``m`` (0 for a post-hoc row: it only evaluates)."""
        return 0 if m.eval_only else int(schedule_opts(self.method_opts(m), self.base_cfg, self.iters)[1])

    @staticmethod
    def block_name(block):
        return BLOCKS.get(block, f"block {block}")

    def record_path(self, m, seed, runs_dir=None):
        """Where ``m``'s record of ``seed`` lies: in this --runs-dir, or in another one (``--compare``)."""
        suite_dir = os.path.join(runs_dir, self.suite) if runs_dir else self.runs_dir
        return os.path.join(suite_dir, m.name, f"seed{seed}.json")

    def out_dir(self, m, seed):
        return os.path.join(self.cache, m.name, f"seed{seed}")

    def weights(self, m, seed):
        return os.path.join(self.out_dir(m, seed), "model_final.pth")

    def available(self, m):
        """(False, why) when this tree cannot build the method's config (e.g. a key it lacks)."""
        try:
            self.method_opts(m)
        except (KeyError, ValueError, AssertionError) as e:
            return False, str(e).rsplit(": ", 1)[-1]
        return True, ""

    def selected(self):
        names = self.args.methods or [m.name for m in self.methods.values() if m.block in self.args.blocks]
        unknown = [n for n in names if n not in self.methods]
        if unknown:
            raise SystemExit(f"unknown methods {unknown}; --list shows them")
        return [self.methods[n] for n in names]

    def plan(self):
        """[(method, seed)] to report, seed-major: a whole table per seed before the next seed."""
        return [(m, s) for s in self.args.seeds for m in self.selected()]

    def command(self, m, seed, weights=None):
        opts = self.method_opts(m)
        cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py"), "--config-file", self.base]
        if m.eval_only:
            cmd.append("--eval-only")
        cmd += opts + ([] if m.eval_only else schedule_opts(opts, self.base_cfg, self.iters))
        cmd += self.data_opts + list(self.args.opts)
        cmd += ["SEED", str(seed), "OUTPUT_DIR", self.out_dir(m, seed)]
        if weights:
            cmd += ["MODEL.WEIGHTS", weights]
        return cmd

    def run_cfg(self, m, seed):
        """The config of ``m``'s run of ``seed`` (as its training builds it, without the schedule)."""
        cfg = build_cfg(self.base, self.method_opts(m) + self.data_opts + list(self.args.opts), validate=True)
        cfg.defrost()
        cfg.SEED = seed
        return cfg

    # --- the records
    def load(self, m, seed, runs_dir=None):
        return records.read_record(self.record_path(m, seed, runs_dir))

    def table(self):
        """The rows of the selected methods with finished runs (see ``stats.summarise``)."""
        rows = [summarise(m, [r for s in self.args.seeds if (r := self.load(m, s)) and not r.get("diverged")])
                for m in self.selected()]
        return [r for r in rows if r]

    def diverged(self):
        """[(method, seed, record)] of the selected runs whose training diverged."""
        return [(m, s, r) for m in self.selected() for s in self.args.seeds
                if (r := self.load(m, s)) and r.get("diverged")]

    def pending(self, names):
        """(runs without a record, runs asked for) of the methods ``names`` over ``--seeds``; a diverged
        run is a result, not pending."""
        runs = [(self.methods[n], s) for n in dict.fromkeys(names) if n in self.methods for s in self.args.seeds]
        return sum(self.load(m, s) is None for m, s in runs), len(runs)

    # --- running
    def dependents(self, s1):
        """The block-3 methods that start from ``s1``'s weights."""
        return [d for d in self.methods.values() if d.stage1 == s1.name]

    def check_stage1(self, s1, seed, made_now=None):
        """Make ``s1``'s record of ``seed`` describe the weights in the cache. A stage 1 trained again for its
        weights need not reproduce its record (another commit or machine); then the cached run becomes the
        record (``replaced``: the earlier one's commit and metrics) and the records of ``seed`` made from the
        earlier weights (its block-3 rows) are removed, with every block-3 output of ``seed`` in the cache, to be
        made again from these: a paired difference is always over the same weights. Returns the removed records'
        methods. ``made_now``: the record of this command's training of the cached weights (its wall time; None:
        an earlier command trained them, their commit is not known here)."""
        rec, out = self.load(s1, seed), self.out_dir(s1, seed)
        cached = records.final_metrics(out)
        if (rec is None or rec.get("diverged") or cached is None or not os.path.exists(self.weights(s1, seed))
                or records.same_metrics(rec["metrics"], cached)):
            return []
        new = self._record(s1, seed, out, cached, made_now["wall_s"] if made_now else None)
        new["replaced"] = {k: rec.get(k) for k in ("commit", "machine", "finished", "metrics")}
        if made_now is None:
            new["weights_from_cache"] = True  # trained by an earlier command (its commit is not known here)
        self._write(s1, seed, new)
        deps = self.dependents(s1)
        stale = [d for d in deps if self.load(d, seed) is not None]
        for d in stale:
            os.remove(self.record_path(d, seed))
        for d in deps:  # their cached outputs came from the earlier weights, or may have
            shutil.rmtree(self.out_dir(d, seed), ignore_errors=True)
        print(f"  {s1.name} seed {seed}: the cached weights are not the recorded run's (bbox AP "
              f"{rec['metrics'].get('bbox/AP', float('nan')):.1f} recorded, {cached.get('bbox/AP', float('nan')):.1f} "
              f"now): recorded the cached run; made again from its weights: "
              + (", ".join(d.name for d in stale) or "nothing"), flush=True)
        return stale

    def train(self, m, seed):
        """Run ``m`` for ``seed`` (its stage 1 first if its weights are missing); returns the record, or
        None when its stage 1 diverged for this seed (no weights to start from: nothing is run)."""
        weights = None
        if m.stage1:
            s1 = self.methods[m.stage1]
            if (self.load(s1, seed) or {}).get("diverged"):
                return None
            weights = self.weights(s1, seed)
            if not os.path.exists(weights):
                print(f"  stage 1 {s1.name} seed {seed}: weights missing, training it", flush=True)
                rec1 = self.run_once(s1, seed, keep_record=os.path.exists(self.record_path(s1, seed)))
                if (rec1 or {}).get("diverged"):
                    return None
                for d in self.check_stage1(s1, seed, made_now=rec1):  # the seed's other rows, from the new weights
                    if d.name != m.name and self.available(d)[0]:
                        self.run_once(d, seed, weights=weights)
        return self.run_once(m, seed, weights=weights)

    def run_once(self, m, seed, weights=None, keep_record=False):
        out = self.out_dir(m, seed)
        if records.final_metrics(out) is None or (not m.eval_only and not os.path.exists(self.weights(m, seed))):
            cmd = self.command(m, seed, weights)
            print("  $", " ".join(cmd), flush=True)
            t0 = time.time()
            os.makedirs(out, exist_ok=True)
            self.progress.begin(m.name, seed, *self.cost(m))
            with open(os.path.join(out, "stdout.txt"), "w") as log:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for line in proc.stdout:  # to the run's stdout.txt, and to the console with --stream
                    log.write(line)
                    if self.args.stream:
                        print(line, end="", flush=True)
                    due = self.progress.line(line)  # every --progress-every seconds: the time left for all runs
                    if due:
                        print(due, flush=True)
                proc.wait()
            self.progress.end()
            wall = time.time() - t0
            if proc.returncode:
                text = open(os.path.join(out, "stdout.txt")).read()
                diverged = records.divergence(text)
                if diverged is None:  # a crash is not a result: stop and show it
                    raise RuntimeError(f"{m.name} seed {seed} failed ({proc.returncode}); {out}/stdout.txt:\n"
                                       + text[-4000:])
                # a diverged training is a result of the method on this seed: recorded, reported, not retried
                return self._write(m, seed, self._record(m, seed, out, {}, wall, diverged), keep_record)
        else:
            wall = None  # finished earlier in the cache (record written now)
        metrics = records.final_metrics(out)
        if metrics is None:
            raise RuntimeError(f"{out}/metrics.json has no final evaluation")
        return self._write(m, seed, self._record(m, seed, out, metrics, wall), keep_record)

    def _record(self, m, seed, out, metrics, wall, diverged=None):
        return records.make_record(m, seed, self.suite, self.base, self.method_opts(m), self.data_opts, out,
                                   metrics, wall, diverged)

    def _write(self, m, seed, rec, keep_record=False):
        return rec if keep_record else records.write_record(self.record_path(m, seed), rec)

    def cost(self, m):
        """(iterations, seconds per iteration, seconds besides: start-up and evaluation, whether from records) of
        a run of ``m``: from its finished seeds in this suite, else its kind's (block, post-hoc, from a stage 1),
        else the defaults of ``progress.S_PER_ITER`` / ``OVERHEAD_S``."""
        def recs(pred):
            return [r for mm in self.methods.values() if pred(mm)
                    for s in range(10) if (r := self.load(mm, s)) and r.get("wall_s") and not r.get("diverged")]
        rs = recs(lambda mm: mm.name == m.name) or recs(
            lambda mm: mm.block == m.block and mm.eval_only == m.eval_only and bool(mm.stage1) == bool(m.stage1))
        spi = [x for r in rs if (x := r.get("s_per_iter_median") or r.get("s_per_iter"))]
        s_per_iter = statistics.mean(spi) if spi else S_PER_ITER["stage2" if m.stage1 else "stage1"]
        overhead = (statistics.mean(max(0.0, r["wall_s"] - (r.get("train_iters") or 0) * s_per_iter) for r in rs)
                    if rs else OVERHEAD_S)
        return self.run_iters(m), s_per_iter, overhead, bool(rs)

    def _planned(self, m):
        """(estimated seconds before scaling, whether from records) of a run of ``m``."""
        iters, s_per_iter, overhead, from_records = self.cost(m)
        return overhead + iters * s_per_iter, from_records

    def estimate(self, m):
        """Seconds a run of ``m`` is expected to take (:meth:`cost`), in this machine's time once a run has
        measured it (``Progress.scaled``)."""
        iters, s_per_iter, overhead, from_records = self.cost(m)
        return self.progress.scaled(overhead + iters * s_per_iter, from_records)

    def expected_s(self, m, seed):
        """Seconds ``m``'s run of ``seed`` is expected to take, with its stage 1 where the weights are missing
        (``train`` trains it first)."""
        need = self.estimate(m)
        if m.stage1 and not os.path.exists(self.weights(self.methods[m.stage1], seed)):
            need += self.estimate(self.methods[m.stage1])
        return need

    def ahead(self, runs):
        """``runs`` ([(method, seed)] in the order they will run) as [(method, seed, for)]: each with ``for``
        None, and before the first run whose stage 1 has no weights, that stage 1 (``train`` trains it
        first) with ``for`` that run's method; a stage 1 so placed is not listed again later."""
        out, seen = [], set()
        for m, s in runs:
            s1 = self.methods[m.stage1] if m.stage1 else None
            if s1 and (s1.name, s) not in seen and not os.path.exists(self.weights(s1, s)):
                out.append((s1, s, m))
                seen.add((s1.name, s))
            if (m.name, s) not in seen:
                out.append((m, s, None))
                seen.add((m.name, s))
        return out

    def run_all(self):
        plan = self.plan()
        for s1, s in dict.fromkeys((m.stage1, s) for m, s in plan if m.stage1):  # records match the weights
            plan += [(d, s) for d in self.check_stage1(self.methods[s1], s) if (d, s) not in plan]
        todo = [(m, s) for m, s in plan if self.load(m, s) is None]
        skipped = []
        print(f"suite {self.suite}: {len(plan)} runs, {len(plan) - len(todo)} finished, {len(todo)} to do "
              f"(records in {self.runs_dir})", flush=True)
        runnable = [(m, s) for m, s in todo if self.available(m)[0]]
        if runnable:
            every = self.progress.every_s
            print("\n".join(["the runs, one at a time:"] + plan_lines(self, runnable)
                             + [f"  (while a run trains: a [progress] line every {every:g} s with the time left for "
                                "all runs)" if every else "  (while a run trains: a [progress] line at every logged "
                                "iteration with the time left for all runs)"]), flush=True)
        t_start = self.clock()
        budget = getattr(self.args, "time_budget", None)
        for i, (m, s) in enumerate(todo):
            ok, why = self.available(m)
            if not ok:
                skipped.append(f"{m.name} seed {s} ({why})")
                continue
            # the runs to come, estimated now (the finished ones' records, the speed measured so far)
            self.progress.plan([(mm.name, ss, *self._planned(mm)) for mm, ss, _ in
                                self.ahead([r for r in todo[i:] if self.available(r[0])[0]])])
            eta = self.progress.planned_left()
            print(f"[{i + 1}/{len(todo)}] {m.name} seed {s} (block {m.block}); elapsed "
                  f"{hms(self.clock() - t_start)}, ETA {hms(eta)} for the {len(todo) - i} left", flush=True)
            if budget is not None:  # start no run that would not finish in the time given (its stage 1 too)
                need, left = self.expected_s(m, s), budget * 60 - (self.clock() - t_start)
                if need > left:
                    print(f"  not started: it needs about {hms(need)}, {hms(max(left, 0))} of --time-budget left; "
                          "the same command goes on from here (finished runs are recorded)", flush=True)
                    break
            rec = self.train(m, s)
            self.progress.end(m.name, s)  # (a run its stage 1's divergence left out leaves the plan too)
            if rec is None:
                print(f"  not run: its stage 1 ({m.stage1}) diverged on seed {s}", flush=True)
                continue
            if rec.get("diverged"):
                print(f"  DIVERGED after {rec['diverged']['iteration']} iterations ({rec['diverged']['error']}); "
                      "recorded: the report counts it and leaves it out of the means", flush=True)
                continue
            print(f"  done in {hms(rec['wall_s'] or 0)}: bbox APr {rec['metrics'].get('bbox/APr', float('nan')):.1f}, "
                  f"AP {rec['metrics'].get('bbox/AP', float('nan')):.1f}", flush=True)
        if skipped:
            print("skipped (not available in this tree): " + "; ".join(skipped))
