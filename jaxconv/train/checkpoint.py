"""Orbax checkpoints of a training run: ``latest`` for resuming, ``best`` for the test score.

Layout under ``workdir/checkpoints``::

    latest/<step>/state   {"model": nnx.State, "optimizer": nnx.State}   keep the newest config.train.keep
    latest/<step>/meta    JSON: step, epoch, step_in_epoch, best_dev_accuracy, best_step, ..., config
    best/<step>/state     {"model": nnx.State}                            the best by dev accuracy (one kept)
    best/<step>/meta      JSON: the same fields at that step

Two managers because the two questions differ: resuming needs the newest state (model, optimizer, data position),
early stopping needs the best one, which may be older than the ``keep`` newest. ``best`` is written only when dev
accuracy improves, so its single kept step is the best so far.

Saves are synchronous (a killed run leaves either a complete step directory or an orbax temporary one, which
orbax ignores); orbax coordinates multi-host saves itself (every process calls :meth:`Checkpoints.save`).

Faults:

- A step that cannot be read back (a truncated data file, an emptied ``_METADATA``) is skipped with a warning
  naming its directory, and :meth:`Checkpoints.restore` returns the newest step that reads; saving that step again
  later replaces the unreadable copy. When no step reads, :class:`CheckpointError` names each directory and why.
- A save that fails on the file system (no space left, read-only, no permission) removes its partial temporary
  directory and raises :class:`CheckpointError` naming the step directory and the error (``ENOSPC``); the
  complete steps written before are untouched, so running the command again resumes from the newest of them.
  Orbax's own copies of a failed call's error (logs, tracebacks from its threads) are not shown: see
  :mod:`jaxconv._orbax_calls`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxconv._orbax_calls import error_reason, orbax_call, os_errno
from jaxconv.paths import WorkdirError, as_path

__all__ = ["Checkpoints", "CheckpointError", "load_params", "abstract_like"]

logger = logging.getLogger("jaxconv.train")


class CheckpointError(WorkdirError):
    """A checkpoint that cannot be written, or no checkpoint that can be read back; the message (one line) names
    the step directories and the cause. ``errno`` is the file system's error number when there is one (ENOSPC)."""


def _read_step(read: Callable[[int], Any], step: int) -> tuple[Any, str | None]:
    """``(read(step), None)``, or ``(None, why it failed)`` for any failure."""
    try:
        with orbax_call():
            return read(step), None
    except Exception as e:
        return None, error_reason(e)


def abstract_like(tree: Any) -> Any:
    """``jax.ShapeDtypeStruct`` s (shape, dtype, sharding) of ``tree``'s arrays: a restore target."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


class Checkpoints:
    """The ``latest`` and ``best`` orbax managers of one run.

    Args:
      directory: ``workdir/checkpoints``.
      keep: how many ``latest`` steps to keep.
    """

    KINDS = ("latest", "best")

    def __init__(self, directory: str | os.PathLike, keep: int = 2):
        self.directory = as_path(directory)
        if keep < 1:
            raise ValueError(f"config.train.keep must be >= 1 (checkpoints to keep); got keep={keep}.")
        self.managers = {
            "latest": ocp.CheckpointManager(self.directory / "latest", options=ocp.CheckpointManagerOptions(
                max_to_keep=int(keep), create=True, enable_async_checkpointing=False)),
            "best": ocp.CheckpointManager(self.directory / "best", options=ocp.CheckpointManagerOptions(
                max_to_keep=1, create=True, enable_async_checkpointing=False)),
        }
        #: Steps found unreadable by a restore in this process, per kind: skipped, and replaced when saved again.
        self.unreadable: dict[str, set[int]] = {kind: set() for kind in self.KINDS}

    def path(self, kind: str = "latest"):
        return self.directory / kind

    def latest_step(self, kind: str = "latest") -> int | None:
        """The newest saved step of ``kind`` not known to be unreadable (None when there is none)."""
        steps = self.all_steps(kind)
        return max(steps) if steps else None

    def all_steps(self, kind: str = "latest") -> list[int]:
        """The saved steps of ``kind``, without those a restore found unreadable."""
        return [s for s in self.managers[kind].all_steps() if s not in self.unreadable[kind]]

    def save(self, kind: str, step: int, state: Any, meta: dict) -> bool:
        """Save ``state`` (a pytree of arrays / ``nnx.State`` s) and ``meta`` (JSON-able) as ``step``.

        Returns False (and writes nothing) when ``step`` is already saved: a resumed run replays the steps after its
        last ``latest`` checkpoint, and a deterministic replay would write the same thing again. A saved copy that
        a restore found unreadable is replaced instead.

        Raises:
          CheckpointError: the file system refused the write (e.g. ENOSPC); the message names the step directory
            and the newest complete step left, and the partial write is removed.
        """
        mngr = self.managers[kind]
        if step in mngr.all_steps():
            if step not in self.unreadable[kind]:
                return False
            mngr.delete(int(step))
            self.unreadable[kind].discard(step)
        try:
            with orbax_call():
                mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                             meta=ocp.args.JsonSave(meta)))
                mngr.wait_until_finished()
        except Exception as e:
            self._remove_partial(kind, step)
            code = os_errno(e)
            if code is None:
                raise
            error = CheckpointError(f"cannot write checkpoint {self.path(kind) / str(step)}: {error_reason(e)}; "
                                    f"{self._what_is_left()}")
            error.errno = code
            raise error from e
        return True

    def _what_is_left(self) -> str:
        """The end of a write error: which complete steps remain, and how to go on."""
        done = {kind: self.latest_step(kind) for kind in self.KINDS}
        if done["latest"] is None:
            return (f"no complete checkpoint had been written yet in {self.directory}. Free space there (or fix the "
                    f"file system) and run the same command again.")
        best = f", best step {done['best']}" if done["best"] is not None else ""
        return (f"the complete checkpoints written before are intact (latest step {done['latest']}{best}) in "
                f"{self.directory}. Free space there (or fix the file system) and run the same command again to "
                f"resume from step {done['latest']}.")

    def _remove_partial(self, kind: str, step: int) -> None:
        """Delete the temporary directories a failed save of ``step`` left (orbax ignores them, but they hold space),
        in every kind: when space runs out, the save of one kind just before (``best``) can also be left unfinished
        without an error (seen once in the full-disk test: ``best/40.orbax-checkpoint-tmp`` beside a failed
        ``latest/40``)."""
        if jax.process_index() != 0:
            return
        for tmp in (t for k in self.KINDS for t in self.path(k).glob(f"{int(step)}.orbax-checkpoint-tmp*")):
            try:
                tmp.rmtree() if tmp.is_dir() else tmp.unlink()
            except OSError as e:
                logger.warning(f"could not remove the partial checkpoint {tmp}: {error_reason(e)}")

    def _newest_readable(self, kind: str, step: int | None, read: Callable[[int], Any]) -> Any:
        """``read(step)`` of ``step``, or of the newest step that reads (warning about each newer one that does not).

        Raises:
          FileNotFoundError: no step of ``kind`` is saved. CheckpointError: none reads (the message names each
            step directory and why), or the ``step`` asked for does not.
        """
        steps = [int(step)] if step is not None else sorted(self.all_steps(kind), reverse=True)
        if not steps:
            raise FileNotFoundError(f"No {kind} checkpoint in {self.path(kind)}.")
        failures: list[tuple[str, str]] = []
        for s in steps:
            out, why = _read_step(read, s)
            if why is not None:   # try the next older step
                self.unreadable[kind].add(s)
                failures.append((str(self.path(kind) / str(s)), why))
                continue
            for where, why in failures:
                logger.warning(f"checkpoint {where} cannot be read ({why}); using {self.path(kind) / str(s)}, the "
                               f"newest {kind} checkpoint that can (the unreadable one is replaced when its step is "
                               f"saved again)")
            return out
        raise CheckpointError(f"no {kind} checkpoint can be read: {'; '.join(f'{w} ({y})' for w, y in failures)}. "
                              f"Restore the directory from a copy, or delete {self.directory} to start the run over.")

    def restore(self, kind: str, target: Any, step: int | None = None, *, partial: bool = False) -> tuple[Any, dict]:
        """Restore ``(state, meta)`` of ``step`` (default: the newest that reads back) into ``target``'s structure
        and shardings.

        ``target`` is a pytree like the saved state (concrete arrays or ``ShapeDtypeStruct`` s); with ``partial``,
        it may hold only some of the saved entries (e.g. ``{"model": ...}`` of a ``latest`` step that also holds the
        optimizer), and only those are read. Without ``step``, a newest step that cannot be read (corrupt or
        truncated files) is skipped with a warning naming its directory.

        Raises:
          FileNotFoundError: no checkpoint of ``kind``. CheckpointError: none can be read (see the module docstring).
        """
        mngr = self.managers[kind]
        abstract = abstract_like(target)
        state_args = (ocp.args.PyTreeRestore(item=abstract, partial_restore=True,
                                             restore_args=ocp.checkpoint_utils.construct_restore_args(abstract))
                      if partial else ocp.args.StandardRestore(abstract))
        out = self._newest_readable(kind, step, lambda s: mngr.restore(
            s, args=ocp.args.Composite(state=state_args, meta=ocp.args.JsonRestore())))
        return out["state"], out["meta"]

    def resume_point(self, kind: str = "latest") -> tuple[int, dict] | None:
        """``(step, meta)`` of the newest step whose state and meta both read back (each newer one that does not is
        skipped with a warning naming its directory), or None when nothing is saved. A resume takes its bookkeeping
        and its arrays from this one step: restore it with ``restore(kind, target, step=step)``.

        The state is read once here without a target (a check of every data file), then again into the target.
        """
        mngr = self.managers[kind]
        if not self.all_steps(kind):
            return None

        def read(s):
            out = mngr.restore(s, args=ocp.args.Composite(state=ocp.args.StandardRestore(),
                                                         meta=ocp.args.JsonRestore()))
            return s, out["meta"]

        return self._newest_readable(kind, None, read)

    def restore_meta(self, kind: str = "latest", step: int | None = None) -> dict | None:
        """The ``meta`` of ``step`` (default: the newest whose meta reads back), or None when nothing is saved."""
        mngr = self.managers[kind]
        if step is None and not self.all_steps(kind):
            return None
        return self._newest_readable(kind, step, lambda s: mngr.restore(
            s, args=ocp.args.Composite(meta=ocp.args.JsonRestore())))["meta"]

    def close(self) -> None:
        for m in self.managers.values():
            m.close()


def _flatten(tree: Any, prefix: str = "") -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if isinstance(tree, dict):
        if set(tree) == {"value"} and not isinstance(tree["value"], dict):
            return {prefix: np.asarray(tree["value"])}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}/{k}" if prefix else str(k)))
        return out
    return {prefix: np.asarray(tree)}


def load_params(workdir: str | os.PathLike, kind: str = "latest", step: int | None = None,
                what: str = "model") -> dict[str, np.ndarray]:
    """The saved arrays of a run as ``{"classifier/kernel": array, ...}``, without building the model.

    Args:
      workdir: the run's workdir (holding ``checkpoints/``).
      kind: ``"latest"`` or ``"best"``.
      step: default the newest of that kind.
      what: ``"model"`` (all model variables) or ``"optimizer"`` (only in ``latest``).
    """
    mngr = ocp.CheckpointManager(as_path(workdir) / "checkpoints" / kind)
    try:
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No {kind} checkpoint under {workdir}/checkpoints/{kind}.")
        raw = mngr.restore(int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore()))["state"]
    finally:
        mngr.close()
    return _flatten(raw[what])
