"""A ``DetectionCheckpointer`` whose files are never seen half-written, and whose resume survives a bad
``last_checkpoint``.

* ``save`` writes ``<name>.pth`` into a temporary file of the same folder (``.<name>.pth.<pid>.<hex>.tmp``:
  not a ``.pth`` name, so no checkpoint listing ever picks it), flushes and fsyncs it, then
  ``os.replace``s it onto the final name and fsyncs the folder. A crash or an exception while writing
  leaves the previous file of that name (or none) in place; the ``last_checkpoint`` tag is written the
  same way, after the checkpoint. Paths with a URI scheme (``scheme://``) keep fvcore's direct writes.
* ``resume_or_load(path, resume=True)`` loads the file named by ``last_checkpoint`` as detectron2 does; when
  that file is missing, empty or cannot be read (truncated, corrupt), it falls back to the furthest-trained
  checkpoint of the folder that can be read: every other ``*.pth`` there that holds a training iteration,
  ordered by that iteration (highest first; ties by modification time, newest first). Each skipped file is
  logged with the reason; when none can be read, a one-line ``FileNotFoundError`` names the folder. A file
  that reads but does not fit the model or its optimizer stops the resume as in detectron2 (then the
  configuration, not the file, is at fault); one whose tensors have other shapes than the model's (trained with
  another config) stops it with a one-line ``ConfigError`` naming them.
* What the last load left out is kept: ``incompatible_keys`` (missing / unexpected keys, and the tensors
  skipped for their shapes), for the checks of what a run starts from (:mod:`.start_checks`).
"""
import os
import secrets

import torch
from detectron2.checkpoint import DetectionCheckpointer

from ..config_validation import config_error

__all__ = ["AtomicCheckpointer", "CheckpointReadError", "atomic_write"]


class CheckpointReadError(RuntimeError):
    """A checkpoint file that exists but cannot be read (truncated, corrupt, not a torch file)."""


def _is_local(path):
    return "://" not in str(path)


def _fsync_dir(folder):
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:  # a platform without directory file descriptors
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write, mode="wb"):
    """Create or replace the local file ``path`` all at once: ``write(f)`` fills a temporary file of the
    same folder, which is flushed, fsynced and renamed onto ``path`` (then the folder is fsynced). If
    ``write`` raises, the temporary file is removed and ``path`` is left as it was."""
    folder, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies, as for open()
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(folder)


def _first_line(e):
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _stored_iteration(data):
    """The training iteration a checkpoint dict was saved at (``PeriodicCheckpointer``'s ``iteration``,
    else the trainer's), or None."""
    if not isinstance(data, dict):
        return None
    it = data.get("iteration")
    if it is None and isinstance(data.get("trainer"), dict):
        it = data["trainer"].get("iteration")
    return int(it) if isinstance(it, (int, float)) else None


def _peek(path):
    """``torch.load`` of a checkpoint whose tensors are mapped, not read (cheap even for large files);
    a full load for files in torch's legacy (non-zip) format, which cannot be mapped."""
    try:
        return torch.load(path, map_location="cpu", mmap=True)
    except RuntimeError as e:
        if "mmap" not in str(e):
            raise
        return torch.load(path, map_location="cpu")


class AtomicCheckpointer(DetectionCheckpointer):
    """detectron2's ``DetectionCheckpointer`` with atomic saves and a resume that skips unreadable files
    (see the module's docstring). Constructed the same way; :meth:`from_checkpointer` converts an
    existing checkpointer (for instance ``DefaultTrainer``'s)."""

    incompatible_keys = None  # what the last load left out (fvcore's _IncompatibleKeys), None before one
    _resuming = False  # within resume_or_load of a folder that has a checkpoint

    @classmethod
    def from_checkpointer(cls, other):
        """An ``AtomicCheckpointer`` with ``other``'s model, folder, ``save_to_disk``, path manager and
        checkpointables (``other`` itself when it is one already)."""
        if isinstance(other, cls):
            return other
        new = cls(other.model, other.save_dir, save_to_disk=other.save_to_disk, **other.checkpointables)
        new.path_manager = other.path_manager
        return new

    def save(self, name, **kwargs):
        if not self.save_dir or not self.save_to_disk:
            return
        if not _is_local(self.save_dir):
            return super().save(name, **kwargs)
        # As fvcore's Checkpointer.save, but the file appears at its name only once complete.
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        assert os.path.basename(save_file) == basename, basename
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename):
        if not _is_local(self.save_dir):
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write(os.path.join(self.save_dir, "last_checkpoint"),
                     lambda f: f.write(last_filename_basename), mode="w")

    def _torch_load(self, f):
        try:
            return super()._torch_load(f)
        except Exception as e:
            raise CheckpointReadError(f"Cannot read checkpoint {f} ({_first_line(e)}): the file is truncated "
                                      "or corrupt; load another checkpoint") from e

    def _load_model(self, checkpoint):
        incompatible = super()._load_model(checkpoint)
        self.incompatible_keys = incompatible
        if self._resuming and incompatible is not None and incompatible.incorrect_shapes:
            shapes = incompatible.incorrect_shapes
            shown = ", ".join(f"{k} {tuple(a)} in the checkpoint, {tuple(b)} in the model" for k, a, b in shapes[:3])
            raise config_error("--resume", self.save_dir, f"{len(shapes)} tensor(s) of its checkpoint have other "
                               f"shapes than this model's ({shown}{', ...' if len(shapes) > 3 else ''}): it was "
                               "trained with another config", "resume with the config it was trained with, or "
                               "train this one in another output folder")
        return incompatible

    def resume_or_load(self, path, *, resume=True):
        self.incompatible_keys = None
        self._resuming = bool(resume and self.has_checkpoint())
        try:
            return self._resume_or_load(path, resume)
        finally:
            self._resuming = False

    def _resume_or_load(self, path, resume):
        if not (resume and self.has_checkpoint()) or not _is_local(self.save_dir):
            return super().resume_or_load(path, resume=resume)
        tagged = self.get_checkpoint_file()
        why = self._unusable(tagged)
        if why is None:
            try:
                return self._load_readable(tagged)
            except CheckpointReadError as e:
                why = f"unreadable ({_first_line(e.__cause__ or e)})"
        self._skip(tagged, why, tagged=True)
        for candidate in self._resume_candidates(skip=os.path.abspath(tagged)):
            try:
                loaded = self._load_readable(candidate)
            except CheckpointReadError as e:
                self._skip(candidate, f"unreadable ({_first_line(e.__cause__ or e)})")
                continue
            self.logger.warning(f"Resumed from {candidate}, the furthest-trained readable checkpoint in "
                                f"{self.save_dir} (last_checkpoint names {os.path.basename(tagged) or 'no file'})")
            return loaded
        raise FileNotFoundError(
            f"No readable checkpoint to resume from in {self.save_dir} (every one skipped, see the warnings "
            "above): train without --resume, or put a good checkpoint's file name into its last_checkpoint")

    def _load_readable(self, path):
        """``self.load(path)``; a file that cannot be read raises :class:`CheckpointReadError` before any
        state is loaded, and leaves this checkpointer ready for the next ``load``."""
        try:
            return self.load(path)
        except CheckpointReadError:
            self._parsed_url_during_load = None  # DetectionCheckpointer.load resets it only on success
            raise

    @staticmethod
    def _unusable(path):
        """Why ``path`` cannot be a checkpoint without reading it, or None."""
        if os.path.isdir(path):
            return "last_checkpoint names no file"
        if not os.path.exists(path):
            return "the file does not exist"
        if os.path.getsize(path) == 0:
            return "the file is empty (0 bytes)"
        return None

    def _skip(self, path, reason, tagged=False):
        what = "the checkpoint named by last_checkpoint" if tagged else "checkpoint"
        self.logger.warning(f"Not resuming from {what} {path}: {reason}")

    def _resume_candidates(self, skip):
        """The folder's other readable ``*.pth`` training checkpoints, furthest-trained first; the others
        are logged and left out."""
        found = []
        for name in sorted(os.listdir(self.save_dir)):
            path = os.path.join(self.save_dir, name)
            if not name.endswith(".pth") or name.startswith(".") or os.path.abspath(path) == skip \
                    or not os.path.isfile(path):
                continue
            why = self._unusable(path)
            iteration = None
            if why is None:
                try:
                    iteration = _stored_iteration(_peek(path))
                except Exception as e:
                    why = f"unreadable ({_first_line(e)})"
                else:
                    if iteration is None:
                        why = "it holds no training iteration (weights only, not a training checkpoint)"
            if why is not None:
                self._skip(path, why)
                continue
            found.append((iteration, os.path.getmtime(path), path))
        return [path for _, _, path in sorted(found, reverse=True)]
