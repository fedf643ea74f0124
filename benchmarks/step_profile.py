"""Where a training step's time goes, part by part: the earlier trainer's path against the trainer's path now.

    python benchmarks/step_profile.py                 # MR fold 0, Kim's CNN-rand, batch 50 (about a minute)
    python benchmarks/step_profile.py --small          # the same data, a 16-d / 8-filter model: overheads exposed
    python benchmarks/step_profile.py --small --max-buckets 1 --steps 8   # the smallest run (tests): one bucket
    python benchmarks/step_profile.py --steps 100 --data /path/to/sentences

Both paths run the same step (``jaxconv.train.steps.train_step``) on the same batches of epoch 1; each part is timed
on its own, synchronously (the dispatch returns before the device is done, so the device's time shows as "device
wait"), median per step over ``--steps`` steps:

earlier path (version 4cfc3e5's loop): ``BucketedBatches.epoch`` assembles each batch on the host (batch assembly),
``mesh.shard_batch`` puts it on the device (transfer), ``jnp.asarray(step)`` makes the step number (RNG input), an
``nnx.jit`` step on the modules walks the NNX graph of the model and optimizer before and after every call
(dispatch), the loop updates its dict of counters and the progress bar (bookkeeping), and the metrics are fetched
(metric fetch, every ``log_every_steps`` = 50 steps: per step, 1/50 of one fetch of 50 steps' metrics).

now (``jaxconv.train.engine.Engine``): the epoch's row indices go to the device once per epoch (plan upload, per
step: 1/steps-per-epoch of it), a dispatch sends four int32 numbers to a compiled executable over flat arrays (no
graph walk), the batch is gathered and the dropout key derived on the device, and the per-step sums are fetched every
50 steps. The two "graph walk" rows time what the dispatch costs without any work: an ``nnx.jit`` of a no-op over the
model and optimizer, and a ``jax.jit`` of a no-op over their flat arrays.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.configs import load_config
from jaxconv.train import build_data
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.engine import Engine
from jaxconv.train.metrics import ProgressBar
from jaxconv.train.state import TrainState
from jaxconv.train.steps import make_steps

LOG_EVERY = 50


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def profile(args) -> dict:
    """``{"earlier": {part: ms per step}, "now": {...}, "graph walk": {...}, "setting": {...}}``."""
    overrides = {"data.path": args.data} if args.data else {}
    if args.small:
        overrides.update({"model.embed_dim": 16, "model.filters": 8})
    if args.max_buckets:
        overrides["data.max_buckets"] = args.max_buckets
    config = load_config("text_cnn:mr", {**overrides, "train.steps_per_call": 1})
    data = build_data(config, min_length=max(config.model.widths))
    mesh = mesh_lib.make_mesh()
    engine = Engine.fresh(config, data, mesh)
    calls = engine.epoch_calls(1)
    n = min(args.steps, len(calls.bucket))

    # ------------------------------------------------------------------ the earlier path: nnx.jit on modules
    state = engine.state                                                         # a copy: this path donates its own
    model, optimizer = TrainState([jnp.copy(x) for x in state.model], [jnp.copy(x) for x in state.opt],
                                  state.defs).modules()
    train_step, _ = make_steps(config)
    key = mesh_lib.replicate(jax.random.fold_in(jax.random.key(0), 1), mesh)
    for b in {b.tokens.shape[1]: b for b in data.train.epoch(0)}.values():      # compile every bucket
        arrays = {"tokens": b.tokens, "labels": b.labels, "weights": b.weights}
        jax.block_until_ready(train_step(model, optimizer, mesh_lib.shard_batch(arrays, mesh), key,
                                         jnp.asarray(0, jnp.uint32)))
    parts = {p: [] for p in ("batch assembly", "transfer to device", "step number (RNG input)", "dispatch",
                             "device wait", "bookkeeping", "metric fetch")}
    batches = data.train.epoch(1)
    progress = ProgressBar(n, enabled=False)
    meta, pending = {"step": 0}, []
    for step in range(n):
        b, t = _timed(lambda: next(batches))
        parts["batch assembly"].append(t)
        arrays = {"tokens": b.tokens, "labels": b.labels, "weights": b.weights}
        sharded, t = _timed(lambda: mesh_lib.shard_batch(arrays, mesh))
        parts["transfer to device"].append(t)
        s, t = _timed(lambda: jnp.asarray(step, jnp.uint32))
        parts["step number (RNG input)"].append(t)
        out, t = _timed(lambda: train_step(model, optimizer, sharded, key, s))
        parts["dispatch"].append(t)
        _, t = _timed(lambda: jax.block_until_ready(out))
        parts["device wait"].append(t)
        _, t = _timed(lambda: (pending.append((step, out)), meta.update(step=step + 1, step_in_epoch=step + 1),
                               progress.update(step + 1)))
        parts["bookkeeping"].append(t)
        if len(pending) == LOG_EVERY or step == n - 1:
            got, t = _timed(lambda: jax.device_get([m for _, m in pending]))
            parts["metric fetch"] += [t / len(pending)] * len(pending)
            pending = []
    earlier = {p: 1e3 * statistics.median(v) for p, v in parts.items()}

    # ------------------------------------------------------------------ now: the engine
    plans, t_plan = _timed(lambda: engine.plans(calls))
    engine.compile(plans)
    for b in sorted(set(int(x) for x in calls.bucket)):
        i = int(np.flatnonzero(calls.bucket == b)[0])
        jax.block_until_ready(engine.dispatch(b, plans[b], engine.call(calls, i)))
    parts = {p: [] for p in ("plan upload", "call array", "dispatch", "device wait", "metric fetch")}
    pending = []
    for i in range(n):
        b = int(calls.bucket[i])
        call, t = _timed(lambda: engine.call(calls, i, i))
        parts["call array"].append(t)
        out, t = _timed(lambda: engine.dispatch(b, plans[b], call))
        parts["dispatch"].append(t)
        _, t = _timed(lambda: jax.block_until_ready(out))
        parts["device wait"].append(t)
        pending.append(out)
        if len(pending) == LOG_EVERY or i == n - 1:
            _, t = _timed(lambda: jax.device_get(pending))
            parts["metric fetch"] += [t / len(pending)] * len(pending)
            pending = []
        parts["plan upload"].append(t_plan / len(calls.bucket))
    now = {p: 1e3 * statistics.median(v) for p, v in parts.items()}

    # ------------------------------------------------------------------ the graph walk alone
    noop_nnx = nnx.jit(lambda m, o: None)
    noop_jax = jax.jit(lambda m, o: None)
    flat = (engine.state.model, engine.state.opt)
    model, optimizer = engine.state.modules()
    walk = {}
    for name, fn in (("nnx.jit no-op over the model and optimizer", lambda: noop_nnx(model, optimizer)),
                     ("jax.jit no-op over their flat arrays", lambda: noop_jax(*flat))):
        fn()
        walk[name] = 1e3 * statistics.median([_timed(fn)[1] for _ in range(50)])
    return {"earlier": earlier, "now": now, "graph walk": walk,
            "setting": {"steps": n, "small": args.small, "buckets": len(data.train.bucket_lengths),
                        "backend": jax.default_backend(),
                        "load": os.getloadavg()[0], "arrays": len(flat[0]) + len(flat[1])}}


def report(res: dict) -> None:
    s = res["setting"]
    model = "16-d / 8-filter model" if s["small"] else "Kim's CNN-rand"
    print(f"median ms per step over {s['steps']} steps of MR epoch 1 ({model}), {s['backend']}, load average "
          f"{s['load']:.2f}")
    for path, label in (("earlier", "earlier path (nnx.jit on modules, host batches)"),
                        ("now", "now (compiled call on resident data)")):
        parts = res[path]
        host = sum(v for k, v in parts.items() if k != "device wait")
        print(f"\n{label}")
        for k, v in parts.items():
            print(f"  {k:<28}{v:>9.3f}")
        print(f"  {'host total (all but wait)':<28}{host:>9.3f}")
    print()
    for k, v in res["graph walk"].items():
        print(f"{k} ({s['arrays']} arrays): {v:.3f} ms")


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=60, help="steps timed per path (default 60)")
    p.add_argument("--small", action="store_true", help="a 16-d / 8-filter model: the overheads without the convolutions")
    p.add_argument("--max-buckets", type=int, default=None, help="at most this many bucket lengths (default: the mr "
                                                                  "preset's 5; fewer compile faster)")
    p.add_argument("--data", default=None, help="directory holding rt-polarity.all")
    args = p.parse_args(argv)
    res = profile(args)
    report(res)
    return res


if __name__ == "__main__":
    main()
