"""Nothing lost to a second run or a crash: one run per output folder (tools/train_net.py and
tools/lazyconfig_train_net.py refuse a folder in use, take over a stale lock), checkpoints that are never seen
half-written, and --resume past a last_checkpoint that names a truncated, empty or deleted file.

tools/train_net.py's Trainer is trained once in this process (TINY: 4 iterations, checkpoints after
iterations 1 and 3, then model_final); one --resume run of the tool continues from a damaged copy of its folder."""
import concurrent.futures
import copy
import errno
import fcntl
import hashlib
import importlib.util
import io
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch
from detectron2.engine import hooks

from conftest import REPO, run_tool
from test_train_net import CONFIG, TINY

LOCK = "run.lock"  # the output folder's lock file (balms_det.engine.run_lock)
NO_TEST = ["DATASETS.TEST", "()"]
LAZY_CONFIG = os.path.join(REPO, "configs/LTShapes/mask_rcnn_R18_FPN_softmax.py")
LAZY_TINY = ["train.device=cpu", "train.init_checkpoint=", "train.eval_period=0", "train.max_iter=2",
             "dataloader.train.dataset.names=lt_shapes_mini_train", "dataloader.test.dataset.names=[]",
             "dataloader.train.total_batch_size=2", "dataloader.train.num_workers=0", "dataloader.evaluator=null"]


def _train_net_tool():
    spec = importlib.util.spec_from_file_location("balms_train_net_tool", os.path.join(REPO, "tools", "train_net.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _digests(folder, names):
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest() for n in names}


@pytest.fixture(scope="module")
def trained(datasets_dir, tmp_path_factory):
    """tools/train_net.py's Trainer after TINY's 4 iterations, and its output folder."""
    from balms_det.engine import build_config

    out = tmp_path_factory.mktemp("trained")
    cfg = build_config(CONFIG, TINY + NO_TEST + ["OUTPUT_DIR", str(out)])
    cfg.freeze()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # (as the tools' subprocesses: OMP_NUM_THREADS=1)
    try:
        trainer = _train_net_tool().Trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
    finally:
        torch.set_num_threads(threads)
    assert {"model_0000001.pth", "model_0000003.pth", "model_final.pth"} <= set(os.listdir(out))
    return trainer, out


@pytest.mark.parametrize("how", ["raises", "killed"])
def test_interrupted_save_keeps_the_previous_checkpoint(trained, tmp_path, how):
    """A save of model_final that fails halfway (disk full) or whose process is killed halfway, through the
    checkpointer of the trainer's PeriodicCheckpointer hook (pointed at a copy of the folder): the previous
    model_final.pth and last_checkpoint stay as they were; no file with a checkpoint's name appears (a killed
    save may leave only a hidden temporary file, which no checkpoint listing takes)."""
    trainer, out = trained
    hook = next(h for h in trainer._hooks if isinstance(h, hooks.PeriodicCheckpointer))
    assert hook.checkpointer is trainer.checkpointer
    kept = ["model_final.pth", "last_checkpoint"]
    for name in kept:
        shutil.copy2(out / name, tmp_path / name)
    checkpointer = copy.copy(hook.checkpointer)
    checkpointer.save_dir = str(tmp_path)
    before, listing = _digests(tmp_path, kept), set(os.listdir(tmp_path))
    real_save = torch.save

    def save_half(obj, f, *args, **kwargs):
        buf = io.BytesIO()
        real_save(obj, buf, *args, **kwargs)
        f.write(buf.getvalue()[: buf.tell() // 2])
        f.flush()
        if how == "killed":
            os.kill(os.getpid(), signal.SIGKILL)
        raise OSError(errno.ENOSPC, "No space left on device")

    if how == "raises":
        torch.save = save_half
        try:
            with pytest.raises(OSError, match="No space left"):
                checkpointer.save("model_final", iteration=3)  # as the hook after the last iteration
        finally:
            torch.save = real_save
    else:
        pid = os.fork()
        if pid == 0:  # the child saves and is killed halfway
            try:
                torch.save = save_half
                checkpointer.save("model_final", iteration=3)
            finally:
                os._exit(3)
        _, status = os.waitpid(pid, 0)
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert _digests(tmp_path, kept) == before
    assert torch.load(tmp_path / "model_final.pth", map_location="cpu")["iteration"] == 3
    new = set(os.listdir(tmp_path)) - listing
    assert not new if how == "raises" else all(n.startswith(".") and not n.endswith(".pth") for n in new), new


class _Warnings(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def checkpointer_warnings(trained):
    """The warnings the trainer's checkpointer logs during the test (its logger may not propagate)."""
    logger, handler = trained[0].checkpointer.logger, _Warnings()
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _damaged_copy(out, folder, damage):
    """``out``'s checkpoints (hard links) in ``folder``, with last_checkpoint naming model_final.pth, damaged
    as ``damage`` says; model_0000001.pth is made the most recently modified file."""
    folder.mkdir()
    for name in ("model_0000001.pth", "model_0000003.pth", "model_final.pth"):
        os.link(out / name, folder / name)
    (folder / "last_checkpoint").write_text("model_final.pth")
    final = folder / "model_final.pth"
    data = final.read_bytes()
    final.unlink()  # (a new file: the hard-linked original stays intact)
    if damage == "truncated":
        final.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        final.write_bytes(b"")
    elif damage == "none readable":
        for name in ("model_0000001.pth", "model_0000003.pth"):
            (folder / name).unlink()
            (folder / name).write_bytes(b"PK\x03\x04 not a whole checkpoint")
        final.write_bytes(data[:1000])
    os.utime(folder / "model_0000001.pth")  # the newest file by time, the oldest by iteration


@pytest.mark.parametrize("damage", ["truncated", "empty", "deleted"])
def test_resume_skips_a_damaged_last_checkpoint(trained, tmp_path, checkpointer_warnings, damage):
    """Resuming (DefaultTrainer.resume_or_load's call) when last_checkpoint names a bad file: the furthest-trained
    readable checkpoint is loaded (model_0000003.pth, iteration 3, although model_0000001.pth was modified
    later), and the skipped file is logged with the reason."""
    trainer, out = trained
    folder = tmp_path / "run"
    _damaged_copy(out, folder, damage)
    checkpointer = copy.copy(trainer.checkpointer)
    checkpointer.save_dir = str(folder)
    trainer.iter = -1
    loaded = checkpointer.resume_or_load("", resume=True)
    assert trainer.iter == 3 and loaded["iteration"] == 3
    reason = {"truncated": "PytorchStreamReader failed reading zip archive", "empty": "empty (0 bytes)",
              "deleted": "does not exist"}[damage]
    warnings = checkpointer_warnings
    skipped = [w for w in warnings if "Not resuming from" in w]
    assert len(skipped) == 1 and str(folder / "model_final.pth") in skipped[0] and reason in skipped[0], warnings
    assert any("Resumed from " + str(folder / "model_0000003.pth") in w for w in warnings), warnings


def test_resume_with_no_readable_checkpoint_names_the_folder(trained, tmp_path, checkpointer_warnings):
    trainer, out = trained
    folder = tmp_path / "run"
    _damaged_copy(out, folder, "none readable")
    checkpointer = copy.copy(trainer.checkpointer)
    checkpointer.save_dir = str(folder)
    with pytest.raises(FileNotFoundError, match=f"No readable checkpoint to resume from in {folder} ") as e:
        checkpointer.resume_or_load("", resume=True)
    assert "\n" not in str(e.value)
    skipped = [w for w in checkpointer_warnings if "Not resuming from" in w]
    assert len(skipped) == 3, skipped  # one warning per file, each naming it
    assert all(any(n in w for w in skipped) for n in ("model_0000001.pth", "model_0000003.pth", "model_final.pth"))


KILLED_HOLDER = """import fcntl, json, os, signal, socket, sys
f = open(sys.argv[1], "a+")
fcntl.flock(f, fcntl.LOCK_EX)
json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": "a killed run"}, f)
f.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.fixture(scope="module")
def resumed(trained, datasets_dir, tmp_path_factory):
    """tools/train_net.py --resume after a crash while model_final.pth was written: a copy of the trained
    folder where last_checkpoint names a truncated model_final.pth, model_0000003.pth is empty, and run.lock
    was left by a killed run. Returns the folder, the log and the killed run's pid."""
    _, out = trained
    run = tmp_path_factory.mktemp("resumed") / "run"
    shutil.copytree(out, run)
    data = (run / "model_final.pth").read_bytes()
    (run / "model_final.pth").write_bytes(data[: len(data) * 2 // 3])
    (run / "model_0000003.pth").write_bytes(b"")
    assert (run / "last_checkpoint").read_text() == "model_final.pth"
    (run / "metrics.json").unlink()  # (the resumed run's lines only)
    holder = subprocess.Popen([sys.executable, "-c", KILLED_HOLDER, str(run / LOCK)])
    assert holder.wait(timeout=30) == -signal.SIGKILL
    proc = run_tool(["tools/train_net.py", "--config-file", CONFIG, "--resume", *TINY, *NO_TEST,
                     "OUTPUT_DIR", str(run)], datasets_dir)
    return run, proc.stdout, holder.pid


def test_resume_after_a_crash_continues_from_the_newest_readable_checkpoint(resumed):
    run, log, _ = resumed
    skipped = [line for line in log.splitlines() if "Not resuming from" in line]
    assert len(skipped) == 2, skipped
    assert str(run / "model_final.pth") in skipped[0] and "PytorchStreamReader" in skipped[0]
    assert str(run / "model_0000003.pth") in skipped[1] and "empty" in skipped[1]
    assert "Resumed from " + str(run / "model_0000001.pth") in log
    assert "Starting training from iteration 2" in log
    with open(run / "metrics.json") as f:
        assert [json.loads(line)["iteration"] for line in f] == [3]
    final = torch.load(run / "model_final.pth", map_location="cpu")
    assert final["iteration"] == 3 and (run / "last_checkpoint").read_text() == "model_final.pth"


def test_stale_lock_is_taken_over_with_a_warning(resumed):
    run, log, dead_pid = resumed
    taken = [line for line in log.splitlines() if "stale lock" in line]
    assert len(taken) == 1 and f"pid {dead_pid} " in taken[0] and str(run) in taken[0], taken
    assert not (run / LOCK).exists()  # released when the run ended


def test_runs_into_a_folder_in_use_are_refused(datasets_dir, tmp_path):
    """While this process holds the folder's lock, a training run, an --eval-only run and a LazyConfig run into
    it all stop before doing anything, with one line naming the folder and this process's pid."""
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": "pytest"}, lock)
        lock.flush()
        yaml_run = ["tools/train_net.py", "--config-file", CONFIG, *TINY, "OUTPUT_DIR", str(out)]
        commands = [
            yaml_run,
            yaml_run[:3] + ["--eval-only"] + yaml_run[3:],
            ["tools/lazyconfig_train_net.py", "--config-file", LAZY_CONFIG, *LAZY_TINY, f"train.output_dir={out}"],
        ]
        with concurrent.futures.ThreadPoolExecutor(len(commands)) as pool:
            procs = list(pool.map(lambda c: run_tool(c, datasets_dir, timeout=300, check=False), commands))
    for cmd, proc in zip(commands, procs):
        refusal = [line for line in proc.stdout.splitlines() if "in use" in line]
        assert proc.returncode != 0 and len(refusal) == 1, (cmd, proc.stdout[-3000:])
        assert str(out) in refusal[0] and f"pid {os.getpid()} on {socket.gethostname()}" in refusal[0], refusal
        assert "Traceback" not in proc.stdout and "Starting training" not in proc.stdout
    assert sorted(os.listdir(out)) == [LOCK]  # no config.yaml, log, metrics or checkpoint written
