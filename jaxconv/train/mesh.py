"""Data parallelism on a 1-D device mesh: batches split along the batch axis, parameters replicated.

One mesh axis, ``"data"``, over every device of every process (``jax.devices()``). A global batch of ``B`` rows
is cut into ``B / num_devices`` rows per device; each process supplies only the rows of its own devices
(:func:`shard_batch` slices them out of the global batch, which every process builds identically from
``(seed, epoch)``), and ``jax.make_array_from_process_local_data`` assembles the global array.

Multi-host: call :func:`maybe_initialize_distributed` first; it runs ``jax.distributed.initialize()`` only when
``config.distributed`` is true or ``JAXCONV_DISTRIBUTED=1`` (on Cloud TPU VMs and SLURM the arguments are found
automatically; elsewhere set ``JAX_COORDINATOR_ADDRESS=host:port``, ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID``). Only process 0 writes files and logs (:func:`is_primary`).
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
    wanted = bool(config.distributed) if config is not None else False
    wanted = wanted or os.environ.get("JAXCONV_DISTRIBUTED", "") in ("1", "true", "True")
    if not wanted:
        return False
    if jax.distributed.is_initialized():
        return False
    # Clusters JAX detects (Cloud TPU, SLURM, Open MPI, ...) need no arguments. Elsewhere set
    # JAX_COORDINATOR_ADDRESS (read by JAX itself), JAX_NUM_PROCESSES and JAX_PROCESS_ID.
    kwargs = {}
    for key, env in (("num_processes", "JAX_NUM_PROCESSES"), ("process_id", "JAX_PROCESS_ID")):
        if os.environ.get(env, "") != "":
            try:
                kwargs[key] = int(os.environ[env])
            except ValueError:
                raise ValueError(f"{env}={os.environ[env]!r} is not an int; expected the {key.replace('_', ' ')}.") from None
    jax.distributed.initialize(**kwargs)
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
    """Put every leaf of ``tree`` on every device of the mesh (parameters, optimizer state, keys).

    Every process must pass the same values (they come from the same seed). With several processes the mesh holds
    devices this process cannot address, so each leaf is assembled from this process's copy with
    ``jax.make_array_from_callback`` instead of ``jax.device_put``.
    """
    sharding = replicated_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)

    def put(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):  # typed keys: replicate their raw data
            return jax.random.wrap_key_data(put(jax.random.key_data(x)), impl=jax.random.key_impl(x))
        host = np.asarray(x)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)
