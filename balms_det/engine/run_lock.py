"""One run per output folder.

A run holds an exclusive ``fcntl.flock`` on ``<output_dir>/run.lock`` while it lasts. The file holds one
JSON object naming the holder: ``{"pid": ..., "host": ..., "command": ..., "started": ...}``. A second run
into that folder is refused (:class:`OutputDirInUseError`, naming the folder and the holder). The kernel
releases a flock when its process dies, so a lock file whose flock is free belongs to a run that ended
without removing it (killed): it is taken over, with a warning naming that run's pid. A run that ends
normally removes the file (while still holding the lock, so that no other run can be locking it then).

Only local folders are locked: an output folder with a URI scheme (``scheme://``) is not.
"""
import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time

__all__ = ["LOCK_FILE", "OutputDirInUseError", "RunLock", "hold_output_dir"]

LOCK_FILE = "run.lock"

logger = logging.getLogger(__name__)


class OutputDirInUseError(RuntimeError):
    """Another live run holds the output folder's lock."""


def _describe(holder):
    """``pid N on HOST (command ...)`` from a lock file's content (a dict, or None when unreadable)."""
    if not holder:
        return "pid unknown (its lock file names no process)"
    text = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}"
    if holder.get("command"):
        text += f" ({holder['command']})"
    return text


def _read_holder(f):
    f.seek(0)
    try:
        holder = json.loads(f.read() or "null")
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


class RunLock:
    """The lock of one output folder: :meth:`acquire` (raises :class:`OutputDirInUseError` when a live
    run holds it), :meth:`release`; also a context manager."""

    def __init__(self, output_dir, command=None):
        self.output_dir = os.path.abspath(output_dir)
        self.path = os.path.join(self.output_dir, LOCK_FILE)
        self.command = " ".join(sys.argv) if command is None else command
        self._file = None

    def acquire(self):
        os.makedirs(self.output_dir, exist_ok=True)
        while True:
            f = open(self.path, "a+")
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    f.close()
                    raise
                holder = _read_holder(f)
                f.close()
                raise OutputDirInUseError(
                    f"OUTPUT_DIR {self.output_dir} is in use by another run, {_describe(holder)}: wait for it to "
                    f"end or choose another output folder (its lock: {self.path})") from None
            try:
                same = os.fstat(f.fileno()).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            f.close()  # the file was removed by the run that held it, between our open and our flock
        previous = _read_holder(f)
        if previous is not None or os.path.getsize(self.path):
            logger.warning(f"Taking over the stale lock {self.path} of a run that ended without releasing it: "
                           f"{_describe(previous)}")
        f.seek(0)
        f.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                   "started": time.strftime("%Y-%m-%d %H:%M:%S")}, f)
        f.flush()
        self._file = f
        return self

    def release(self):
        if self._file is None:
            return
        try:
            os.unlink(self.path)  # under the lock: a run waiting to lock this inode retries on a new file
        except FileNotFoundError:
            pass
        self._file.close()  # closing releases the flock
        self._file = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


@contextlib.contextmanager
def hold_output_dir(output_dir, enabled=True):
    """For command-line entry points: hold ``output_dir``'s :class:`RunLock` for the ``with`` block. A folder
    in use ends the process with the one-line message (exit status 1). Does nothing when ``enabled`` is
    false (e.g. on a machine of rank > 0) or for a folder with a URI scheme."""
    if not enabled or not output_dir or "://" in str(output_dir):
        yield None
        return
    lock = RunLock(output_dir)
    try:
        lock.acquire()
    except OutputDirInUseError as e:
        raise SystemExit(str(e)) from None
    try:
        yield lock
    finally:
        lock.release()
