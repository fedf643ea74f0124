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
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxconv.train.workdir import as_path

__all__ = ["Checkpoints", "load_params", "abstract_like"]


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

    def path(self, kind: str = "latest"):
        return self.directory / kind

    def latest_step(self, kind: str = "latest") -> int | None:
        return self.managers[kind].latest_step()

    def all_steps(self, kind: str = "latest") -> list[int]:
        return list(self.managers[kind].all_steps())

    def save(self, kind: str, step: int, state: Any, meta: dict) -> bool:
        """Save ``state`` (a pytree of arrays / ``nnx.State`` s) and ``meta`` (JSON-able) as ``step``.

        Returns False (and writes nothing) when ``step`` is already saved: a resumed run replays the steps after its
        last ``latest`` checkpoint, and a deterministic replay would write the same thing again.
        """
        mngr = self.managers[kind]
        if step in mngr.all_steps():
            return False
        mngr.save(int(step), args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                                     meta=ocp.args.JsonSave(meta)))
        mngr.wait_until_finished()
        return True

    def restore(self, kind: str, target: Any, step: int | None = None, *, partial: bool = False) -> tuple[Any, dict]:
        """Restore ``(state, meta)`` of ``step`` (default: the newest) into ``target``'s structure and shardings.

        ``target`` is a pytree like the saved state (concrete arrays or ``ShapeDtypeStruct`` s); with ``partial``,
        it may hold only some of the saved entries (e.g. ``{"model": ...}`` of a ``latest`` step that also holds the
        optimizer), and only those are read.
        """
        mngr = self.managers[kind]
        step = mngr.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"No {kind} checkpoint in {self.path(kind)}.")
        abstract = abstract_like(target)
        state_args = (ocp.args.PyTreeRestore(item=abstract, partial_restore=True,
                                             restore_args=ocp.checkpoint_utils.construct_restore_args(abstract))
                      if partial else ocp.args.StandardRestore(abstract))
        out = mngr.restore(int(step), args=ocp.args.Composite(state=state_args, meta=ocp.args.JsonRestore()))
        return out["state"], out["meta"]

    def restore_meta(self, kind: str = "latest", step: int | None = None) -> dict | None:
        mngr = self.managers[kind]
        step = mngr.latest_step() if step is None else step
        if step is None:
            return None
        return mngr.restore(int(step), args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

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
