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

1. end to end, each method as its authors train it (the configs in ``configs/LTShapes/``);
2. controlled rows that change one thing (sampler, classifier) so that the loss's part can be seen;
3. from the same stage-1 weights per seed: post-hoc calibrations (no training), decoupled stage 2
   (cRT, Balanced Softmax, BALMS), and the official sigmoid chain from the sigmoid + RFS stage 1.

A method is the difference of its lt_shapes YAML from ``configs/LTShapes/Base-MaskRCNN-R18-FPN.yaml``
(plus a few keys for the controlled rows), applied on top of ``--base-config``; so the lt_shapes
rows run exactly today's configs, and the same command runs every method on a user's base config and
datasets. One schedule for all: ``--iters`` (default: the base config's MAX_ITER) for stage 1 and end
to end; stage 2 keeps its configs' share of that (300 / 1,200), LR steps at the same fractions.

Each finished run writes ``--runs-dir/<suite>/<method>/seed<k>.json`` (metrics, training wall time,
commit, machine); a re-run skips finished runs, so the table fills over several sittings. Training
outputs (and the stage-1 weights reused by block 3) go under ``--cache`` (not committed); a stage-1
run whose record exists but whose weights are gone is trained again for its weights only. A training
that diverges (detectron2's ``FloatingPointError``) is a result, not a crash: its record says where it
stopped, the report counts it beside the row's seeds and leaves it out of the means, and the block-3
rows that needed its weights are not run for that seed; any other failure stops the benchmark.
``--report`` writes ``<report>.md`` (table, command, commit, machine) and ``<report>.png``
(APr / APc / APf per method, mean and std over seeds).
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Optional, Tuple

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare_heads import final_results  # noqa: E402
LT = "configs/LTShapes"
LT_BASE = f"{LT}/Base-MaskRCNN-R18-FPN.yaml"
RFS = ("DATALOADER.SAMPLER_TRAIN", "RepeatFactorTrainingSampler", "DATALOADER.REPEAT_THRESHOLD", "0.1")
NORMED = ("MODEL.BALMS.CLASSIFIER", "normed")
OURS = ("MODEL.ROI_HEADS.NAME", "LongTailROIHeads")
SPRIOR = ("MODEL.BALMS.PRIOR.SAMPLER", "train")  # the prior of the training sampler's labels
TASKS = ("bbox", "segm")
METRICS = ("AP", "APr", "APc", "APf")
# Keys that say where a run lives or starts from, never what the method is.
_NOT_METHOD = ("OUTPUT_DIR", "MODEL.WEIGHTS", "SEED", "DATASETS.TRAIN", "DATASETS.TEST")


@dataclass
class Method:
    name: str
    block: int
    label: str
    config: str  # an lt_shapes YAML: the method is its difference from LT_BASE
    extra: Tuple[str, ...] = ()  # KEY VALUE pairs on top (controlled rows)
    stage1: Optional[str] = None  # block 3: the method whose final weights it starts from
    eval_only: bool = False  # post-hoc: no training, one evaluation of the stage-1 weights


def _m(name, block, label, config, *extra, stage1=None, eval_only=False):
    return Method(name, block, label, f"{LT}/mask_rcnn_R18_FPN_{config}.yaml", tuple(extra), stage1, eval_only)


POSTHOC_LA = OURS + ("MODEL.BALMS.CLS_LOSS", "softmax", "MODEL.BALMS.CALIBRATION", "logit_adjustment")
NORCAL = OURS + ("MODEL.BALMS.CLS_LOSS", "softmax", "MODEL.BALMS.CALIBRATION", "norcal")

METHODS = [
    # 1. end to end, as each method's authors train it
    _m("softmax", 1, "softmax (stock head)", "softmax"),
    _m("balanced_softmax", 1, "Balanced Softmax", "balanced_softmax"),
    _m("sigmoid_rfs", 1, "sigmoid + RFS (official BALMS stage 1)", "sigmoid"),
    _m("seesaw", 1, "Seesaw (normed, RFS)", "seesaw"),
    _m("eqlv2", 1, "EQLv2 (uniform)", "eqlv2"),
    _m("ecm", 1, "ECM (normed, RFS)", "ecm"),
    _m("federated", 1, "federated (RFS)", "federated"),
    # 2. controlled: the sampler and the classifier apart from the loss
    _m("softmax_rfs", 2, "softmax + RFS", "softmax", *RFS),
    _m("balanced_softmax_rfs", 2, "Balanced Softmax + RFS", "balanced_softmax", *RFS),
    _m("balanced_softmax_normed_rfs", 2, "Balanced Softmax + normed + RFS", "balanced_softmax", *RFS, *NORMED),
    _m("seesaw_linear_rfs", 2, "Seesaw (linear, RFS)", "seesaw", "MODEL.BALMS.CLASSIFIER", "linear"),
    _m("softmax_normed_rfs", 2, "softmax (normed, RFS)", "softmax", *OURS, "MODEL.BALMS.CLS_LOSS", "softmax",
       *RFS, *NORMED),
    _m("balanced_softmax_rfs_sprior", 2, "Balanced Softmax + RFS, sampler's prior", "balanced_softmax", *RFS,
       *SPRIOR),
    # 3. from the same stage-1 weights per seed
    _m("softmax+la", 3, "softmax + post-hoc LA (tau 1)", "softmax", *POSTHOC_LA, stage1="softmax", eval_only=True),
    _m("softmax+norcal", 3, "softmax + NorCal", "softmax", *NORCAL, stage1="softmax", eval_only=True),
    _m("softmax_rfs+la", 3, "softmax + RFS + post-hoc LA", "softmax", *POSTHOC_LA, stage1="softmax_rfs",
       eval_only=True),
    _m("softmax_rfs+norcal", 3, "softmax + RFS + NorCal", "softmax", *NORCAL, stage1="softmax_rfs",
       eval_only=True),
    _m("softmax_normed_rfs+la", 3, "softmax (normed, RFS) + post-hoc LA", "softmax", *POSTHOC_LA, *NORMED,
       stage1="softmax_normed_rfs", eval_only=True),
    _m("softmax_normed_rfs+norcal", 3, "softmax (normed, RFS) + NorCal", "softmax", *NORCAL, *NORMED,
       stage1="softmax_normed_rfs", eval_only=True),
    _m("softmax_rfs+la_sprior", 3, "softmax + RFS + post-hoc LA, sampler's prior", "softmax", *POSTHOC_LA, *RFS,
       *SPRIOR, stage1="softmax_rfs", eval_only=True),
    _m("softmax_rfs+norcal_sprior", 3, "softmax + RFS + NorCal, sampler's prior", "softmax", *NORCAL, *RFS, *SPRIOR,
       stage1="softmax_rfs", eval_only=True),
    _m("softmax_normed_rfs+la_sprior", 3, "softmax (normed, RFS) + post-hoc LA, sampler's prior", "softmax",
       *POSTHOC_LA, *NORMED, *RFS, *SPRIOR, stage1="softmax_normed_rfs", eval_only=True),
    _m("softmax_normed_rfs+norcal_sprior", 3, "softmax (normed, RFS) + NorCal, sampler's prior", "softmax", *NORCAL,
       *NORMED, *RFS, *SPRIOR, stage1="softmax_normed_rfs", eval_only=True),
    _m("crt", 3, "cRT (class-balanced)", "crt_class_balanced", stage1="softmax"),
    _m("bs_decoupled", 3, "Balanced Softmax decoupled (tau 1)", "decoupled_balanced_softmax", stage1="softmax"),
    _m("bs_decoupled_tau0.25", 3, "Balanced Softmax decoupled (tau 1/4)", "decoupled_balanced_softmax",
       "MODEL.BALMS.TAU", "0.25", stage1="softmax"),
    _m("balms_decoupled", 3, "BALMS decoupled (bank)", "decoupled_balms", stage1="softmax"),
    _m("balms_decoupled_images", 3, "BALMS decoupled (images, official)", "decoupled_balms",
       "MODEL.BALMS.META_REWEIGHTER.META_SOURCE", "images", stage1="softmax"),
    _m("bsig_decoupled", 3, "balanced sigmoid decoupled (official chain)", "decoupled_balanced_sigmoid",
       stage1="sigmoid_rfs"),
    _m("balms_sigmoid_decoupled", 3, "BALMS sigmoid decoupled (official chain)", "decoupled_balms_sigmoid",
       stage1="sigmoid_rfs"),
    # the official stage 2 samples with RFS (its balanced_softmax_decouple_resampling config): raw and sampler's prior
    _m("bsig_decoupled_rfs", 3, "balanced sigmoid decoupled + RFS (official stage 2)", "decoupled_balanced_sigmoid",
       *RFS, stage1="sigmoid_rfs"),
    _m("bsig_decoupled_rfs_sprior", 3, "balanced sigmoid decoupled + RFS, sampler's prior",
       "decoupled_balanced_sigmoid", *RFS, *SPRIOR, stage1="sigmoid_rfs"),
    _m("balms_sigmoid_decoupled_rfs", 3, "BALMS sigmoid decoupled + RFS (official stage 2)",
       "decoupled_balms_sigmoid", *RFS, stage1="sigmoid_rfs"),
    _m("balms_sigmoid_decoupled_rfs_sprior", 3, "BALMS sigmoid decoupled + RFS, sampler's prior",
       "decoupled_balms_sigmoid", *RFS, *SPRIOR, stage1="sigmoid_rfs"),
    # sensitivity, not a method: the learned weights stay near their 0.5 start at the default meta LR 0.01
    _m("balms_decoupled_lr10", 3, "BALMS decoupled (bank), meta LR x10 [sensitivity]", "decoupled_balms",
       "MODEL.BALMS.META_REWEIGHTER.LR", "0.1", stage1="softmax"),
]
# For the answer: the project's methods (Balanced Softmax family, BALMS, logit adjustment) and the peers
OURS_ROWS = {"balanced_softmax", "balanced_softmax_rfs", "balanced_softmax_normed_rfs", "softmax+la", "softmax_rfs+la",
             "softmax_normed_rfs+la",
             "bs_decoupled", "bs_decoupled_tau0.25", "balms_decoupled", "balms_decoupled_images", "bsig_decoupled",
             "balms_sigmoid_decoupled"}
PEER_ROWS = {"seesaw", "eqlv2", "ecm", "federated", "seesaw_linear_rfs", "softmax+norcal", "softmax_rfs+norcal",
             "softmax_normed_rfs+norcal", "crt"}
# (what, row a, row b): what a - b measures
CONTRIBUTIONS = [
    ("Sampler: RFS", "softmax_rfs", "softmax"),
    ("Loss without RFS: Balanced Softmax", "balanced_softmax", "softmax"),
    ("Loss with RFS: Balanced Softmax", "balanced_softmax_rfs", "softmax_rfs"),
    ("Classifier: normed", "balanced_softmax_normed_rfs", "balanced_softmax_rfs"),
    ("Classifier: normed, for softmax", "softmax_normed_rfs", "softmax_rfs"),
    ("Classifier: normed, for Seesaw", "seesaw", "seesaw_linear_rfs"),
    ("Loss at equal sampler and classifier: Seesaw vs Balanced Softmax", "seesaw_linear_rfs", "balanced_softmax_rfs"),
    ("Post-hoc instead of training: logit adjustment", "softmax+la", "balanced_softmax"),
    ("Decoupled stage 2", "bs_decoupled", "balanced_softmax"),
    ("Meta Reweighter", "balms_decoupled", "bs_decoupled"),
]
BLOCKS = {1: "end to end (authors' recipes)", 2: "controlled (sampler / classifier)",
          3: "from the same stage-1 weights"}


# ------------------------------------------------------------------------------------------ configs
def _cfg(config, opts=(), validate=False):
    """``config`` + ``opts``; checked only with ``validate`` (a run's whole config): the base and a method's
    YAML alone are pieces (e.g. a base whose NUM_CLASSES is for the --train data that the run adds)."""
    sys.path.insert(0, ROOT)
    from balms_det.engine import build_config

    return build_config(os.path.join(ROOT, config) if not os.path.isabs(config) else config, list(opts),
                        validate=validate)


def _flat(node, prefix=""):
    out = {}
    for k, v in node.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _literal(v):
    return v if isinstance(v, str) else repr(v)


def config_diff(config, base=LT_BASE, opts=()):
    """KEY VALUE overrides that turn ``base`` into ``config`` (+ ``opts``), without the keys of _NOT_METHOD."""
    a, b = _flat(_cfg(base)), _flat(_cfg(config, opts))
    out = []
    for k in sorted(b):
        if k.startswith(_NOT_METHOD) or (k in a and a[k] == b[k]):
            continue
        out += [k, _literal(b[k])]
    return out


def schedule_opts(method_opts, base_cfg, iters):
    """Scale a method's schedule to ``iters`` stage-1 iterations: a method that sets its own MAX_ITER
    (stage 2) keeps its share of the lt_shapes base's; LR steps and warm-up keep their fractions."""
    lt_iters = _cfg(LT_BASE).SOLVER.MAX_ITER
    cfg = base_cfg.clone()
    cfg.defrost()
    cfg.merge_from_list(method_opts)
    own = dict(zip(method_opts[::2], method_opts[1::2]))
    share = cfg.SOLVER.MAX_ITER / lt_iters if "SOLVER.MAX_ITER" in own else 1.0
    n = max(1, round(iters * share))
    f = n / cfg.SOLVER.MAX_ITER
    steps = tuple(sorted({min(n - 1, max(1, round(s * f))) for s in cfg.SOLVER.STEPS})) if n > 1 else ()
    return ["SOLVER.MAX_ITER", str(n), "SOLVER.STEPS", repr(steps),
            "SOLVER.WARMUP_ITERS", str(min(round(cfg.SOLVER.WARMUP_ITERS * f), max(n - 1, 0))),
            "SOLVER.CHECKPOINT_PERIOD", str(n)]


# ------------------------------------------------------------------------------------------ runs
def _git(*args):
    try:
        return subprocess.run(["git", *args], cwd=ROOT, text=True, capture_output=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def cpu_model():
    """The CPU's name (Linux: /proc/cpuinfo's "model name"), so that training times of two machines are told
    apart; "unknown CPU" elsewhere."""
    try:
        with open("/proc/cpuinfo") as f:
            names = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
    except OSError:
        names = []
    return names[0] if names else (platform.processor() or "unknown CPU")


def machine():
    import torch

    threads = os.environ.get("OMP_NUM_THREADS", str(torch.get_num_threads()))
    return (f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} CPU cores, {threads} threads, "
            f"torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'CPU only'}")


def final_metrics(out_dir):
    """The last evaluation of ``OUTPUT_DIR/metrics.json`` (bbox/..., segm/...), or None."""
    res = final_results(out_dir)
    return res and {k: v for k, v in res.items() if k.startswith(TASKS)}


def training_speed(out_dir):
    """(iterations trained, seconds per iteration or None): the last iteration in ``metrics.json``, and
    detectron2's last "Overall training speed" line in ``log.txt`` (absent for very short runs)."""
    iters = 0
    if os.path.exists(os.path.join(out_dir, "metrics.json")):
        with open(os.path.join(out_dir, "metrics.json")) as f:
            iters = max([json.loads(line).get("iteration", -1) + 1 for line in f if "total_loss" in line] or [0])
    path = os.path.join(out_dir, "log.txt")
    text = open(path).read() if os.path.exists(path) else ""
    found = re.findall(r"Overall training speed: \d+ iterations in [\d:]+ \(([\d.]+) s / it\)", text)
    return iters, (float(found[-1]) if found else None)


def divergence(log_text):
    """(iteration, message) when a run's output shows detectron2 stopping a diverged training
    (``FloatingPointError``: a NaN / Inf loss, or non-finite boxes), else None. The iteration is
    detectron2's count of iterations run ("Overall training speed: N iterations"), else the loss's
    "iteration=N", else the last logged "iter: N"."""
    errors = re.findall(r"^FloatingPointError: (.*)$", log_text, re.M)
    if not errors:
        return None
    found = (re.findall(r"Overall training speed: (\d+) iterations", log_text)
             or re.findall(r"iteration=(\d+)", log_text) or re.findall(r"iter: (\d+)", log_text))
    return (int(found[-1]) if found else None), errors[-1].strip()


def median_iteration_time(out_dir):
    """The median of the iteration times in ``metrics.json`` (each line: the median over its window), or
    None: the training cost without the time a run stood still (paused, or waiting for a busy machine)."""
    path = os.path.join(out_dir, "metrics.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        times = [d["time"] for d in map(json.loads, f) if "total_loss" in d and "time" in d]
    return statistics.median(times) if times else None


def meta_weight_groups(out_dir):
    """The Meta Reweighter's learned class weights in ``out_dir/meta_weights.json``, as the mean weight per
    frequency group ({"r": .., "c": .., "f": ..}), or None where the run has no Meta Reweighter."""
    import torch
    from balms_det.engine.meta_weights import weight_summary  # the hook's own group means

    path = os.path.join(out_dir, "meta_weights.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        classes = json.load(f)["classes"]
    summary = weight_summary(torch.tensor([c["weight"] for c in classes]), [c["frequency"] for c in classes])
    return {k[len("w_mean_"):]: round(v, 4) for k, v in summary.items() if k.startswith("w_mean_")}


class Bench:
    def __init__(self, args):
        self.args = args
        self.base = args.base_config
        self.base_cfg = _cfg(self.base, args.opts)
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

    # --- what a run is
    def method_opts(self, m):
        if m.name not in self._opts_cache:
            self._opts_cache[m.name] = config_diff(m.config, opts=m.extra)
        return self._opts_cache[m.name]

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

    # --- running
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
        return self.run_once(m, seed, weights=weights)

    def run_once(self, m, seed, weights=None, keep_record=False):
        out = self.out_dir(m, seed)
        if final_metrics(out) is None or (not m.eval_only and not os.path.exists(self.weights(m, seed))):
            cmd = self.command(m, seed, weights)
            print("  $", " ".join(cmd), flush=True)
            t0 = time.time()
            with open(os.path.join(self._mkdir(out), "stdout.txt"), "w") as log:
                proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for line in proc.stdout:  # to the run's stdout.txt, and to the console with --stream
                    log.write(line)
                    if self.args.stream:
                        print(line, end="", flush=True)
                proc.wait()
            wall = time.time() - t0
            if proc.returncode:
                text = open(os.path.join(out, "stdout.txt")).read()
                diverged = divergence(text)
                if diverged is None:  # a crash is not a result: stop and show it
                    raise RuntimeError(f"{m.name} seed {seed} failed ({proc.returncode}); {out}/stdout.txt:\n"
                                       + text[-4000:])
                # a diverged training is a result of the method on this seed: recorded, reported, not retried
                return self._write(m, seed, self._record(m, seed, out, {}, wall, diverged), keep_record)
        else:
            wall = None  # finished earlier in the cache (record written now)
        metrics = final_metrics(out)
        if metrics is None:
            raise RuntimeError(f"{out}/metrics.json has no final evaluation")
        return self._write(m, seed, self._record(m, seed, out, metrics, wall), keep_record)

    def _record(self, m, seed, out, metrics, wall, diverged=None):
        iters, s_per_iter = training_speed(out)
        if diverged:
            iters, s_per_iter = diverged[0] or iters, None
        rec = {
            "method": m.name, "label": m.label, "block": m.block, "seed": seed, "suite": self.suite,
            "stage1": m.stage1, "eval_only": m.eval_only,
            "base_config": self.base, "overrides": self.method_opts(m), "data": self.data_opts,
            "metrics": metrics,
            "train_iters": iters, "s_per_iter": s_per_iter,
            "train_s": round(iters * s_per_iter, 1) if s_per_iter else None,
            "s_per_iter_median": median_iteration_time(out) if iters else None,
            "meta_weights": meta_weight_groups(out),
            "wall_s": round(wall, 1) if wall is not None else None,
            "commit": _git("rev-parse", "--short", "HEAD"), "machine": machine(),
            "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        }
        if diverged:
            rec["diverged"] = {"iteration": diverged[0], "error": diverged[1]}
        return rec

    def _write(self, m, seed, rec, keep_record=False):
        if not keep_record:
            path = self.record_path(m, seed)
            self._mkdir(os.path.dirname(path))
            with open(path, "w") as f:
                json.dump(rec, f, indent=1)
        return rec

    @staticmethod
    def _mkdir(path):
        os.makedirs(path, exist_ok=True)
        return path

    def load(self, m, seed, runs_dir=None):
        path = self.record_path(m, seed, runs_dir)
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        return None

    def estimate(self, m):
        """Seconds a run of ``m`` is expected to take: its finished seeds, else its block's mean."""
        def walls(pred):
            return [r["wall_s"] for mm in self.methods.values() if pred(mm)
                    for s in range(10) if (r := self.load(mm, s)) and r.get("wall_s") and not r.get("diverged")]
        w = walls(lambda mm: mm.name == m.name) or walls(
            lambda mm: mm.block == m.block and mm.eval_only == m.eval_only and bool(mm.stage1) == bool(m.stage1))
        return statistics.mean(w) if w else (60.0 if m.eval_only else 900.0 * (0.3 if m.stage1 else 1.0))

    def run_all(self):
        plan = self.plan()
        todo = [(m, s) for m, s in plan if self.load(m, s) is None]
        skipped = []
        print(f"suite {self.suite}: {len(plan)} runs, {len(plan) - len(todo)} finished, {len(todo)} to do "
              f"(records in {self.runs_dir})", flush=True)
        t_start = time.time()
        for i, (m, s) in enumerate(todo):
            ok, why = self.available(m)
            if not ok:
                skipped.append(f"{m.name} seed {s} ({why})")
                continue
            eta = sum(self.estimate(mm) for mm, _ in todo[i:])
            print(f"[{i + 1}/{len(todo)}] {m.name} seed {s} (block {m.block}); elapsed "
                  f"{_hms(time.time() - t_start)}, ETA {_hms(eta)} for the {len(todo) - i} left", flush=True)
            rec = self.train(m, s)
            if rec is None:
                print(f"  not run: its stage 1 ({m.stage1}) diverged on seed {s}", flush=True)
                continue
            if rec.get("diverged"):
                print(f"  DIVERGED after {rec['diverged']['iteration']} iterations ({rec['diverged']['error']}); "
                      "recorded: the report counts it and leaves it out of the means", flush=True)
                continue
            print(f"  done in {_hms(rec['wall_s'] or 0)}: bbox APr {rec['metrics'].get('bbox/APr', float('nan')):.1f}, "
                  f"AP {rec['metrics'].get('bbox/AP', float('nan')):.1f}", flush=True)
        if skipped:
            print("skipped (not available in this tree): " + "; ".join(skipped))

    # --- reporting
    def table(self):
        rows = []
        for m in self.selected():
            recs = [r for s in self.args.seeds if (r := self.load(m, s)) and not r.get("diverged")]
            if not recs:
                continue
            cells, per_seed = {}, {}
            for t in TASKS:
                for k in METRICS:
                    v = [r["metrics"].get(f"{t}/{k}", float("nan")) for r in recs]
                    cells[f"{t}/{k}"] = (statistics.mean(v), statistics.stdev(v) if len(v) > 1 else None)
                    per_seed[f"{t}/{k}"] = {r["seed"]: x for r, x in zip(recs, v)}
            # cost: iterations x median iteration time where recorded (pauses left out), else detectron2's time
            train = [r["train_iters"] * r["s_per_iter_median"] if r.get("s_per_iter_median") else r["train_s"] or 0.0
                     for r in recs]
            rows.append({"method": m, "seeds": [r["seed"] for r in recs], "cells": cells, "per_seed": per_seed,
                         "train_min": statistics.mean(train) / 60,
                         "s_per_iter": [r["s_per_iter_median"] for r in recs if r.get("s_per_iter_median")],
                         "wall_s": sum(r["wall_s"] or 0 for r in recs),
                         "commits": sorted({r["commit"] for r in recs}),
                         "machines": sorted({r["machine"] for r in recs})})
        return rows

    def report(self, path):
        rows, diverged = self.table(), self.diverged()
        if not rows:
            print("no finished runs to report")
            return
        cols = [f"{t}/{k}" for t in TASKS for k in METRICS]
        head = ("| method | seeds | " + " | ".join(f"{t} {k}" for t, k in (c.split("/") for c in cols))
                + " | training (min) |")
        lines = [f"# Long-tail benchmark: `{self.suite}`", "",
                 f"Mean ± std over seeds; base config `{self.base}`"
                 + (f", data {' '.join(self.data_opts)}" if self.data_opts else "")
                 + f"; stage 1 / end to end: {self.iters} iterations. Training time is the stage's own "
                 "(block 3: stage 2 only; post-hoc rows train nothing): iterations x the median iteration "
                 "time, which leaves out the time a run stood still (detectron2's total where a record "
                 "predates that field).", ""]
        for block, title in BLOCKS.items():
            block_rows = [r for r in rows if r["method"].block == block]
            if not block_rows:
                continue
            lines += [f"**{block}. {title}**", "", head, "|---|---|" + "---|" * len(cols) + "---|"]
            for r in block_rows:
                cells = " | ".join(_pm(*r["cells"][c]) for c in cols)
                n_div = sum(1 for mm, _, _ in diverged if mm is r["method"])
                seeds = f"{len(r['seeds'])}" + (f" (+{n_div} diverged)" if n_div else "")
                lines.append(f"| {r['method'].label} | {seeds} | {cells} | {r['train_min']:.1f} |")
            lines.append("")
        lines += self.divergence_lines(diverged)
        lines += self.deltas(rows) + self.answer(rows) + self.learned_weights(rows)
        if self.args.compare:
            lines += self.reproduction(rows, self.args.compare)
        total = sum(r["wall_s"] for r in rows) + sum(rec["wall_s"] or 0 for _, _, rec in diverged)
        cmd = "python benchmarks/long_tail_benchmark.py " + " ".join(self.args.argv)
        lines += [f"Command: `{cmd.strip()}`", "",
                  f"Commits of the runs: {', '.join(sorted({c for r in rows for c in r['commits']}))}; "
                  f"report written at {_git('rev-parse', '--short', 'HEAD')}.", "",
                  f"Machine: {'; '.join(sorted({x for r in rows for x in r['machines']}))}. "
                  f"Wall time of the runs recorded here: {total / 3600:.1f} h.", ""] + self.speeds(rows)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".md", "w") as f:
            f.write("\n".join(lines))
        self.plot(rows, path + ".png")
        print("\n".join(lines))
        print(f"written: {path}.md, {path}.png")

    def diverged(self):
        """[(method, seed, record)] of the selected runs whose training diverged."""
        return [(m, s, r) for m in self.selected() for s in self.args.seeds
                if (r := self.load(m, s)) and r.get("diverged")]

    def divergence_lines(self, diverged):
        if not diverged:
            return []
        lines = ["**Diverged runs** (detectron2 stopped the training; left out of the means, counted in the "
                 "seeds column; a re-run skips them: delete the record to try again):", ""]
        for m, s, rec in diverged:
            after = [mm.label for mm in self.selected() if mm.stage1 == m.name]
            lines.append(f"- {m.label}, seed {s}: after {rec['diverged']['iteration']} of {self.iters} iterations, "
                         f"`FloatingPointError: {rec['diverged']['error']}`"
                         + (f"; so not run from it: {', '.join(after)}" if after else ""))
        return lines + [""]

    def reproduction(self, rows, runs_dir):
        """Lines: runs repeated from scratch (records under ``runs_dir``, same suite) against the recorded
        ones of the same method and seed: the difference on each metric, and whether it is within the
        row's std over its seeds (the spread the table reports)."""
        lines = [f"**Reproduction**: runs repeated from scratch (records in `{os.path.relpath(runs_dir, ROOT)}`) minus "
                 "the recorded run of the same method and seed; within the row's std over seeds or not.", ""]
        repeats = []
        for r in rows:
            for s in r["seeds"]:
                rec = self.load(r["method"], s, runs_dir)
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
                repeats.append(f"- {r['method'].label}, seed {s} ({_nseeds(len(r['seeds']))} for the std): "
                               + ", ".join(cells))
        return lines + (repeats or ["- none yet"]) + [""]

    @staticmethod
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
            d = {t: " ".join(f"{k} {_pmd(*paired(r, ref, f'{t}/{k}')[:2])}" for k in ("APr", "APc", "APf"))
                 for t in TASKS}
            out.append(f"- {r['method'].label} ({_nseeds(len(shared_seeds(r, ref)))}): bbox {d['bbox']}; "
                       f"segm {d['segm']}")
        return out + [""]

    @staticmethod
    def answer(rows, task="bbox"):
        """Lines: the best rows for rare classes and overall, what the sampler, the classifier and the loss
        each add (the controlled rows' differences, paired by seed), and the issue's targets, met or not."""
        by = {r["method"].name: r for r in rows}
        if "softmax" not in by or len(rows) < 2:
            return []

        def m(name, k):
            return by[name]["cells"][f"{task}/{k}"][0]

        def cell(name, k):
            mean, std = by[name]["cells"][f"{task}/{k}"]
            return _pm(mean, std)

        def cost(name):
            meth, t = by[name]["method"], by[name]["train_min"]
            if meth.stage1:  # block 3: on top of its stage 1's training
                s1 = by[meth.stage1]["train_min"] if meth.stage1 in by else None
                return (("no training" if meth.eval_only else f"{t:.0f} min of stage 2") + " on "
                        + (f"{meth.stage1}'s {s1:.0f} min" if s1 is not None else f"{meth.stage1}'s weights"))
            return f"{t:.0f} min training"

        ours = [n for n in by if n in OURS_ROWS]
        peers = [n for n in by if n in PEER_ROWS]
        best_r = max(by, key=lambda n: m(n, "APr"))
        best_ap = max(by, key=lambda n: m(n, "AP"))

        def ties(best, k):  # rows whose paired gap to the best is no larger than its std over >= 2 seeds
            near = []
            for n in by:
                p = None if n == best else paired(by[n], by[best], f"{task}/{k}")
                if p and p[2] >= 2 and abs(p[0]) <= p[1]:
                    near.append(f"{by[n]['method'].label} {_pmd(p[0], p[1])} ({_nseeds(p[2])})")
            return (f" Tied with it within the noise (paired {k} gap no larger than its std over seeds): "
                    + "; ".join(near) + ".") if near else ""

        out = [f"**Answer ({task}; seeds as in the table; a synthetic CPU-scale benchmark, not LVIS)**", "",
               f"- Best for rare classes: {by[best_r]['method'].label}, APr {cell(best_r, 'APr')}, "
               f"APf {cell(best_r, 'APf')} ({cost(best_r)}).{ties(best_r, 'APr')}",
               f"- Best overall: {by[best_ap]['method'].label}, AP {cell(best_ap, 'AP')}, APr {cell(best_ap, 'APr')} "
               f"({cost(best_ap)}).{ties(best_ap, 'AP')}"]

        def diff(a, b, k, digits=1):  # a - b, paired by seed: "+1.2 ± 0.3"
            return _pmd(*paired(by[a], by[b], f"{task}/{k}")[:2], digits=digits)

        def shared(a, b):
            return _nseeds(len(shared_seeds(by[a], by[b])))

        for what, a, b in CONTRIBUTIONS:
            if a in by and b in by and shared_seeds(by[a], by[b]):
                out.append(f"- {what} ({by[a]['method'].label} − {by[b]['method'].label}): "
                           f"APr {diff(a, b, 'APr')}, APf {diff(a, b, 'APf')}, AP {diff(a, b, 'AP')} ({shared(a, b)})")
        out += ["", "Targets (differences paired by seed, over the seeds both rows have):", ""]
        bs = [n for n in ("balanced_softmax", "bs_decoupled") if n in by]
        for b in bs:
            if not shared_seeds(by[b], by["softmax"]):
                continue
            d_r, d_f = (paired(by[b], by["softmax"], f"{task}/{k}")[0] for k in ("APr", "APf"))
            out.append(f"- {by[b]['method'].label}: APr ≥ softmax + 5 and APf at most 1 lower: "
                       f"{'met' if d_r >= 5 and d_f >= -1 else 'NOT met'} (APr {diff(b, 'softmax', 'APr', 2)}, "
                       f"APf {diff(b, 'softmax', 'APf')}; {shared(b, 'softmax')})")
        chain = ("sigmoid_rfs", "bsig_decoupled", "balms_sigmoid_decoupled")
        if all(n in by for n in chain):
            v = [m(n, "APr") for n in chain]
            out.append("- The paper's ordering (LVIS v0.5 APr: sigmoid + RFS 13.4 < Balanced Softmax 15.9 < BALMS "
                       f"17.3; the official chain): here {v[0]:.1f} → {v[1]:.1f} → {v[2]:.1f}, "
                       + ("the same" if v[0] < v[1] < v[2] else "NOT the same"))
        for balms, bsd in (("balms_decoupled", "bs_decoupled"), ("balms_decoupled_images", "bs_decoupled"),
                           ("balms_sigmoid_decoupled", "bsig_decoupled")):
            if balms in by and bsd in by and shared_seeds(by[balms], by[bsd]):
                d = paired(by[balms], by[bsd], f"{task}/APr")[0]
                out.append(f"- {by[balms]['method'].label} ≥ {by[bsd]['method'].label} on APr: "
                           f"{'met' if d >= 0 else 'NOT met'} ({diff(balms, bsd, 'APr')}; {shared(balms, bsd)})")
        if ours and peers:
            o = max(ours, key=lambda n: m(n, "APr"))
            p_r = max(peers, key=lambda n: m(n, "APr"))
            p_f = max(peers, key=lambda n: m(n, "APf"))
            if shared_seeds(by[o], by[p_r]) and shared_seeds(by[o], by[p_f]):
                d_r = paired(by[o], by[p_r], f"{task}/APr")[0]
                d_f = paired(by[o], by[p_f], f"{task}/APf")[0]
                out.append(f"- Best of ours ({by[o]['method'].label}) ahead of every peer on APr, APf within 1 of "
                           f"the best peer's: {'met' if d_r > 0 and d_f >= -1 else 'NOT met'} (APr "
                           f"{diff(o, p_r, 'APr')} against {by[p_r]['method'].label}, {shared(o, p_r)}; APf "
                           f"{diff(o, p_f, 'APf')} against {by[p_f]['method'].label}, {shared(o, p_f)})")
        return out + [""]

    @staticmethod
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

    def learned_weights(self, rows):
        """Lines: the Meta Reweighter rows' mean learned weight per frequency group (mean over seeds)."""
        from balms_eval.per_class import FREQUENCY_GROUPS

        out = []
        for r in rows:
            ws = [w for s in r["seeds"] if (w := (self.load(r["method"], s) or {}).get("meta_weights"))]
            if ws:
                groups = [g for g, _ in FREQUENCY_GROUPS if all(g in w for w in ws)]
                out.append(f"- {r['method'].label}: " + ", ".join(
                    f"{g} {statistics.mean(w[g] for w in ws):.2f}" for g in groups)
                           + f" ({len(ws)} seed{'s' * (len(ws) > 1)})")
        if not out:
            return []
        return ["Learned class weights of the Meta Reweighter rows (mean weight per frequency group and over "
                "seeds; every weight starts at 0.5; the run's `meta_weights.png` shows them class by class):",
                ""] + out + [""]

    def per_class(self, names, path, task="bbox"):
        """Per-class AP of two methods (mean over the seeds whose evaluation is in the cache), classes
        sorted by training images, with their difference: where a method's APr gain comes from."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        test = (self.args.test or self.base_cfg.DATASETS.TEST)[0]
        per, n_seeds = {}, {}
        for name in names:
            files = [os.path.join(self.out_dir(self.methods[name], s), "inference", test, "per_class_ap.json")
                     for s in self.args.seeds]
            seeds = [{c["name"]: c for c in json.load(open(f))["categories"]} for f in files if os.path.isfile(f)]
            if not seeds:
                raise SystemExit(f"--per-class: no per_class_ap.json of {name} in {self.cache}")
            n_seeds[name] = len(seeds)
            per[name] = {}
            for c, info in seeds[0].items():
                vals = [v for sd in seeds if (v := sd[c][f"AP_{task}"]) is not None]
                per[name][c] = dict(info, ap=statistics.mean(vals) if vals else None)
        a, b = names[:2]
        classes = sorted((c for c in per[a] if per[a][c]["ap"] is not None and per[b].get(c, {}).get("ap") is not None),
                         key=lambda c: (per[a][c]["train_image_count"], c))
        xs = range(len(classes))
        fig = Figure(figsize=(max(8, 0.28 * len(classes) + 2), 6))
        FigureCanvasAgg(fig)
        ax, dx = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2, 1]})
        for j, name in enumerate((a, b)):
            ax.bar([x + (j - 0.5) * 0.4 for x in xs], [per[name][c]["ap"] for c in classes], 0.4,
                   label=f"{self.methods[name].label} (seeds: {n_seeds[name]})")
        diff = [per[b][c]["ap"] - per[a][c]["ap"] for c in classes]
        dx.bar(xs, diff, 0.6, color=["#2ca02c" if d >= 0 else "#d62728" for d in diff])
        dx.axhline(0, color="0.3", lw=0.6)
        for axis in (ax, dx):
            for x, c in zip(xs, classes):
                if x and per[a][c]["frequency"] != per[a][classes[x - 1]]["frequency"]:
                    axis.axvline(x - 0.5, color="0.5", ls="--", lw=0.8)
        ax.set_ylabel(f"{task} AP (%)")
        ax.legend(fontsize=8)
        dx.set_ylabel("difference")
        dx.set_xticks(list(xs), [f"{c} ({per[a][c]['train_image_count']}, {per[a][c]['frequency']})" for c in classes],
                      rotation=90, fontsize=7)
        ax.set_title(f"{test}: per-class {task} AP, classes by training images (rare | common | frequent)", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        print(f"written: {path}")

    def figure(self, names, path, per_row=4, score_thresh=0.5):
        """Ground truth and each method's detections (score >= ``score_thresh``) on the test images with
        the most rare-class instances (rare: training images <= the evaluator's first threshold)."""
        import cv2
        import numpy as np
        import torch
        from detectron2.data import DatasetCatalog, MetadataCatalog
        from detectron2.data.catalog import Metadata
        from detectron2.engine import DefaultPredictor
        from detectron2.utils.visualizer import Visualizer
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        from balms_det.modeling.priors import class_prior_from_config

        seed, test = self.args.seeds[0], (self.args.test or self.base_cfg.DATASETS.TEST)[0]
        meta = MetadataCatalog.get(test)
        cfg = self._run_cfg(self.methods[names[0]], seed)
        cfg.MODEL.BALMS.PRIOR.COUNT = "image_count"
        rare_max = cfg.TEST.LVIS_EVAL.FREQUENCY_THRESHOLDS[0]
        rare = {c for c, n in enumerate(class_prior_from_config(cfg).counts.tolist()) if n <= rare_max}
        dicts = sorted(DatasetCatalog.get(test), key=lambda d: -sum(a["category_id"] in rare for a in d["annotations"]))
        dicts = dicts[:per_row]
        # boxes and labels only (mask overlays would change the objects' colours, which are half of a
        # class in lt_shapes); a rare class's label ends with "(r)"
        names_r = [n + " (r)" if c in rare else n for c, n in enumerate(meta.thing_classes)]
        meta = Metadata(**{k: v for k, v in meta.as_dict().items() if k not in ("name", "thing_classes")},
                        thing_classes=names_r)
        rng_state = np.random.get_state()  # the Visualizer colours boxes at random: the same picture each time
        np.random.seed(0)
        columns = [("ground truth", [
            Visualizer(cv2.imread(d["file_name"])[:, :, ::-1], meta, scale=2.0).draw_dataset_dict(
                dict(d, annotations=[{k: v for k, v in a.items() if k != "segmentation"}
                                     for a in d["annotations"]])).get_image() for d in dicts])]
        for name in names:
            m = self.methods[name]
            cfg = self._run_cfg(m, seed)
            cfg.MODEL.WEIGHTS = self.weights(self.methods[m.stage1] if m.eval_only else m, seed)
            predictor = DefaultPredictor(cfg)
            images = []
            for d in dicts:
                img = cv2.imread(d["file_name"])
                inst = predictor(img)["instances"].to("cpu")
                inst = inst[inst.scores >= score_thresh]
                if inst.has("pred_masks"):
                    inst.remove("pred_masks")
                images.append(Visualizer(img[:, :, ::-1], meta, scale=2.0).draw_instance_predictions(inst).get_image())
            columns.append((m.label, images))
            del predictor
            torch.set_grad_enabled(True)
        fig = Figure(figsize=(3.2 * len(columns), 3.3 * len(dicts)))
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(dicts), len(columns), squeeze=False)
        for j, (title, images) in enumerate(columns):
            for i, img in enumerate(images):
                axes[i][j].imshow(img)
                axes[i][j].axis("off")
            axes[0][j].set_title(title, fontsize=9)
        fig.suptitle(f"{test}: images with the most rare-class objects (r); detections with score >= {score_thresh} "
                     f"(seed {seed})", fontsize=9)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        np.random.set_state(rng_state)
        print(f"written: {path}")

    def _run_cfg(self, m, seed):
        cfg = _cfg(self.base, self.method_opts(m) + self.data_opts + list(self.args.opts), validate=True)
        cfg.defrost()
        cfg.SEED = seed
        return cfg

    def plot(self, rows, path):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        fig = Figure(figsize=(11, 0.34 * len(rows) + 1.6))
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, 2, sharey=True)
        colors = {"APr": "#d62728", "APc": "#ff7f0e", "APf": "#1f77b4"}
        ys = list(range(len(rows)))[::-1]
        h = 0.26
        for ax, task in zip(axes, TASKS):
            for j, k in enumerate(("APr", "APc", "APf")):
                mean = [r["cells"][f"{task}/{k}"][0] for r in rows]
                std = [r["cells"][f"{task}/{k}"][1] or 0 for r in rows]
                ax.barh([y + (1 - j) * h for y in ys], mean, h, xerr=std, color=colors[k], label=k,
                        error_kw={"elinewidth": 0.8})
            for y, r in zip(ys, rows):
                if r["method"].block != rows[max(0, rows.index(r) - 1)]["method"].block:
                    ax.axhline(y + 0.5, color="0.6", lw=0.6)
            ax.set_title(f"{task}: mean ± std over seeds")
            ax.set_xlabel("AP (%)")
            ax.grid(axis="x", alpha=0.3)
        axes[0].set_yticks(ys, [f"{r['method'].label} (n={len(r['seeds'])})" for r in rows], fontsize=8)
        axes[1].legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: no bar hidden
        fig.suptitle(f"{self.suite}: rare / common / frequent AP per method", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=110)


def _pm(mean, std):
    return f"{mean:.1f}" + (f" ± {std:.1f}" if std is not None else "")


def _pmd(mean, std, digits=1):
    """A signed difference: "+1.2" or "+1.2 ± 0.3"."""
    return f"{mean:+.{digits}f}" + (f" ± {std:.1f}" if std is not None else "")


def _nseeds(n):
    return f"{n} seed{'s' * (n != 1)}"


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


def _hms(seconds):
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    ap.add_argument("--stream", action="store_true", help="show each run's training log as it goes")
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
    bench.report(args.report)
    if args.figure:  # after the runs: their weights are in the cache
        bench.figure(args.figure, args.report + "_detections.png")
    for a, b in zip(args.per_class[::2], args.per_class[1::2]) if args.per_class else ():
        bench.per_class((a, b), f"{args.report}_per_class_{a}_vs_{b}.png")


if __name__ == "__main__":
    main()
