"""What a command will do and how long is left: the plan printed before the first run, and, while a run
trains, a line every ``--progress-every`` seconds with this run's and the whole command's time left.

A run's cost is its training iterations times seconds per iteration, plus what it spends besides (start-up,
evaluation): from the suite's finished records where it has some (``Bench.cost``: this machine's), else
:data:`S_PER_ITER` and :data:`OVERHEAD_S` (a reference machine's). While a run trains, its seconds per iteration
are measured from detectron2's log lines (``iter: N``, every 20 iterations); a run estimated from the defaults
also measures this machine's speed against the reference (:attr:`Progress.factor`), which then scales every
estimate made from the defaults: the total converges as the first run goes on.
"""
import re
import time

from .stats import hms

# Defaults where no record says more: lt_shapes on 2 CPU cores (benchmarks/results/runs/lt_shapes_it1200): an
# iteration of a stage 1 (or an end-to-end run) ~1.35 s, of a stage 2 (the classifier alone trains) ~0.6 s;
# start-up and the evaluation ~35 s a run.
S_PER_ITER = {"stage1": 1.35, "stage2": 0.6}
OVERHEAD_S = 35.0
ITER_LINE = re.compile(r"\biter: (\d+)\b")  # detectron2's CommonMetricPrinter: "eta: ...  iter: 19  total_loss: ..."
TIME_FIELD = re.compile(r"\btime: ([\d.]+)\b")  # its mean seconds per iteration so far


def plan_lines(bench, todo):
    """The lines that say what ``todo`` ([(method, seed)]) will run, each run's estimated time, and the total;
    with the stage 1s whose weights are missing (``Bench.ahead``), each before the first run that needs it."""
    lines, total = [], 0.0
    for k, (m, s, needed_by) in enumerate(bench.ahead(todo), 1):
        iters = bench.cost(m)[0]
        est = bench.estimate(m)
        total += est
        start = f" from {m.stage1}'s weights" if m.stage1 else ""
        what = (f"evaluates {m.stage1}'s weights with its own inference (no training)" if m.eval_only
                else f"trains {iters} iterations{start}, then evaluates")
        where = (f"stage 1 of {needed_by.name}: its weights are missing" if needed_by else
                 f"block {m.block}: {bench.block_name(m.block)}")
        lines.append(f"  {k}. {m.name} seed {s}: {m.label} [{where}]; {what}; ~{hms(est)}")
    lines.append(f"  in all ~{hms(total)} (estimates: this suite's finished runs where it has some, else lt_shapes "
                 "on 2 CPU cores; corrected by the measured speed while a run trains)")
    return lines


class Progress:
    """The whole command's time left while its runs go: ``plan`` the runs to come, ``begin`` each run as it
    starts, ``line`` each line of its log (returns a progress line to print, or None), ``end`` it."""

    def __init__(self, every_s=60.0, clock=time.time):
        self.every_s = every_s
        self.clock = clock
        self.pending = []  # [(name, seed, estimated seconds, from records)] of the runs still to start
        self.factor = 1.0  # this machine's time over the defaults' (measured in a run estimated from them)
        self.run = None

    def scaled(self, seconds, from_records):
        """An estimate in this machine's time: one made from the defaults times :attr:`factor`."""
        return seconds if from_records else seconds * self.factor

    def plan(self, runs):
        """``runs``: [(name, seed, estimated seconds, whether from records)] in the order they will run."""
        self.pending = list(runs)

    def planned_left(self):
        """Seconds the runs still to start are expected to take."""
        return sum(self.scaled(p[2], p[3]) for p in self.pending)

    def begin(self, name, seed, iters, s_per_iter, overhead_s, from_records=False):
        """A run starts (one of the plan's, or one outside it, e.g. a stage 1 trained again for its weights):
        ``iters`` iterations expected at ``s_per_iter`` seconds, and ``overhead_s`` seconds besides."""
        self.pending = [p for p in self.pending if p[:2] != (name, seed)]
        now = self.clock()
        self.run = dict(name=name, seed=seed, iters=iters, s_per_iter=s_per_iter, overhead_s=overhead_s,
                        from_records=from_records, last=now, first=None, done=0, d2_s=None)

    def end(self, name=None, seed=None):
        """A run is over (or, given its name and seed, will not run: it leaves the plan)."""
        if name is not None:
            self.pending = [p for p in self.pending if p[:2] != (name, seed)]
        self.run = None

    def line(self, text):
        """Read one log line of the run; a progress line when one is due (every ``every_s`` seconds, at an
        iteration line), else None."""
        r = self.run
        found = ITER_LINE.search(text) if r and r["iters"] else None
        if not found:
            return None
        now = self.clock()
        r["done"] = min(int(found.group(1)) + 1, r["iters"])
        t = TIME_FIELD.search(text)
        r["d2_s"] = float(t.group(1)) if t else r["d2_s"]
        if r["first"] is None:
            r["first"] = (now, r["done"])
        if not r["from_records"] and r["s_per_iter"]:
            self.factor = self.rate(now) / r["s_per_iter"]
        if now - r["last"] < self.every_s:
            return None
        r["last"] = now
        return self.describe(now)

    def rate(self, now):
        """Measured seconds per iteration: wall time over the iterations between the first iteration line and
        now; at the first line, detectron2's own time per iteration; else the expected."""
        r = self.run
        t1, done1 = r["first"]
        if r["done"] > done1 and now > t1:
            return (now - t1) / (r["done"] - done1)
        return r["d2_s"] or r["s_per_iter"]

    def left(self, now):
        """(this run's seconds left, all runs' seconds left, measured seconds per iteration)."""
        r = self.run
        rate = self.rate(now)
        this = (r["iters"] - r["done"]) * rate + self.scaled(r["overhead_s"], r["from_records"])
        return this, this + self.planned_left(), rate

    def describe(self, now):
        r = self.run
        this, total, rate = self.left(now)
        more = len(self.pending)
        after = f", then {more} more run{'s' * (more != 1)}" if more else ""
        return (f"  [progress] {r['name']} seed {r['seed']}: iteration {r['done']} of {r['iters']} "
                f"({rate:.2f} s/it); this run ~{hms(this)} left{after}; all ~{hms(total)} left")
