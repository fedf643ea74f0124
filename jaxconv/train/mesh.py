"""Data parallelism on a 1-D device mesh: batches split along the batch axis, parameters replicated.

One mesh axis, ``"data"``, over every device of every process (``jax.devices()``). A global batch of ``B`` rows
is cut into ``B / num_devices`` rows per device; each process supplies only the rows of its own devices
(:func:`shard_batch` slices them out of the global batch, which every process builds identically from
``(seed, epoch)``), and ``jax.make_array_from_process_local_data`` assembles the global array.

Multi-host: call :func:`maybe_initialize_distributed` first; it runs ``jax.distributed.initialize()`` only when
``config.distributed`` is true or ``JAXCONV_DISTRIBUTED=1`` (on Cloud TPU VMs and SLURM the arguments are found
automatically). Only process 0 writes files and logs (:func:`is_primary`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["DATA_AXIS", "make_mesh", "check_batch_size", "data_sharding", "replicated_sharding", "shard_batch",
           "replicate", "is_primary", "maybe_initialize_distributed"]

DATA_AXIS = "data"


def maybe_initialize_distributed(config: Any = None) -> bool:
    """``jax.distributed.initialize()`` when ``config.distributed`` or env ``JAXCONV_DISTRIBUTED=1``; else nothing.

    Returns whether it initialised. Safe to call twice (the second call does nothing).
    """
    wanted = bool(config.get("distributed", False)) if config is not None and hasattr(config, "get") else False
    wanted = wanted or os.environ.get("JAXCONV_DISTRIBUTED", "") in ("1", "true", "True")
    if not wanted:
        return False
    if jax.distributed.is_initialized():
        return False
    jax.distributed.initialize()
    return True


def is_primary() -> bool:
    """True on process 0 only: the one that writes files and logs."""
    return jax.process_index() == 0


def make_mesh(devices=None) -> Mesh:
    """A 1-D mesh with axis ``"data"`` over ``devices`` (default: all devices of all processes)."""
    devices = jax.devices() if devices is None else list(devices)
    return Mesh(np.asarray(devices), (DATA_AXIS,))


def check_batch_size(batch_size: int, mesh: Mesh, name: str = "config.train.batch_size") -> None:
    """Raise ValueError unless ``batch_size`` splits evenly over the mesh's devices."""
    n = mesh.devices.size
    if batch_size % n:
        lo, hi = batch_size // n * n, -(-batch_size // n) * n
        raise ValueError(f"{name}={batch_size} is not divisible by the number of devices ({n}): each device takes "
                         f"{name} / {n} rows. Use a multiple of {n}, e.g. {lo or n} or {hi}.")


def data_sharding(mesh: Mesh) -> NamedSharding:
    """Rows split over ``"data"``, other axes whole: ``PartitionSpec("data")``."""
    return NamedSharding(mesh, P(DATA_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    """A full copy on every device: ``PartitionSpec()``."""
    return NamedSharding(mesh, P())


def _process_rows(sharding: NamedSharding, global_shape: tuple[int, ...]) -> slice:
    """The contiguous row range of the global batch that this process's devices hold."""
    spans = [idx[0] for idx in sharding.addressable_devices_indices_map(global_shape).values()]
    lo = min(s.start or 0 for s in spans)
    hi = max(global_shape[0] if s.stop is None else s.stop for s in spans)
    covered = sum((global_shape[0] if s.stop is None else s.stop) - (s.start or 0) for s in spans)
    if covered != hi - lo:
        raise ValueError("This process's devices do not hold a contiguous block of batch rows; order jax.devices() "
                         "by process when building the mesh.")
    return slice(lo, hi)


def shard_batch(arrays: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
    """Global host arrays ``{name: (B, ...)}`` (identical on every process) -> global ``jax.Array`` s split on rows.

    Each process passes only its own rows to ``jax.make_array_from_process_local_data``.
    """
    sharding = data_sharding(mesh)
    out = {}
    for name, x in arrays.items():
        x = np.asarray(x)
        rows = _process_rows(sharding, x.shape)
        out[name] = jax.make_array_from_process_local_data(sharding, x[rows], x.shape)
    return out


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Put every leaf of ``tree`` on every device of the mesh (parameters, optimizer state, keys)."""
    return jax.device_put(tree, replicated_sharding(mesh))
