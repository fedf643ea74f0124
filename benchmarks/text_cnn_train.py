"""Kim CNN training speed on MR, in one run: jaxconv's training path vs plain flax.nnx vs plain PyTorch eager.

All rows train Kim (2014)'s CNN-rand on the training part of MR fold 0 (Kim tokenization): 300-d word vectors,
widths 3, 4, 5 x 100 filters, dropout 0.5, Adadelta (rho 0.95, eps 1e-6, learning rate 1.0), max-norm 3, batch 50
(``benchmarks/baselines.py`` has the plain models). jaxconv uses the trainer's own path.

    python benchmarks/text_cnn_train.py              # a few minutes on 2 CPU cores
    python benchmarks/text_cnn_train.py --quick      # a rough table in about two minutes
    python benchmarks/text_cnn_train.py --breakdown  # + jaxconv step time per bucket, embedding trained vs frozen
    python benchmarks/text_cnn_train.py --conv-impl fused,auto   # + rows with the convolutions computed otherwise
    python benchmarks/text_cnn_train.py --k 1,32 --runs 4,30 --steps 400 --data /path/to/sentences   # on a GPU

Rows:

- ``jaxconv``: ``jaxconv.train.engine.Engine``, the trainer's device side: ``build_data`` (config
  ``text_cnn:mr``: length buckets, Kim's 4 zero pads each side), the training examples resident on the device, the
  compiled program of each bucket running ``K`` steps per dispatch (``config.train.steps_per_call``, here its
  automatic value for the backend: 1 on CPU, 8 on accelerators), the row-sparse embedding Adadelta, max-norm.
  Timed over calls sampled evenly from epoch 1 (so the mix of bucket lengths is the epoch's, and a bucket's last,
  shorter call is in it: its masked steps cost time and train nothing).
- ``jaxconv, K=<k> steps per call``: the same with another ``K`` (``--k``).
- ``jaxconv, R=<r> runs per program``: ``r`` seeds stacked and trained by one ``vmap`` ped program
  (``jaxconv.train.train_many``'s path), each run on its own batch order; a dispatch steps the runs waiting for its
  bucket (``jaxconv.train.stacked_engine.Dispatches``). examples/s: real examples of all runs per second.
- ``jaxconv, conv_impl=<impl>`` (``--conv-impl fused,auto``): the jaxconv row with the convolutions computed another
  way (``jaxconv.nn.multi_width``: ``fused`` runs the three widths as one GEMM; ``auto`` measures and picks per
  bucket shape before compiling).
- ``plain flax.nnx, fixed max length`` / ``per-batch length``: the textbook nnx Kim CNN with an ``nnx.jit`` step,
  padded to the longest sentence of the dataset + 8 (one compile), or to each batch's longest + 8.
- ``PyTorch eager``: the textbook loop, on CUDA when PyTorch sees a GPU, else on all CPU cores; ``PyTorch eager, 1
  thread`` (CPU only) and ``PyTorch eager, per-batch length``: secondary rows.

Measurement (``benchmarks/harness.py``): every JAX row is compiled and warmed up, then rounds run each row's work in
chunks of about 5 steps (or one call of ``K >= 5`` steps), chunk ``k`` of every row (in a fresh random order) before
chunk ``k + 1``, so load from other processes falls on all rows alike; a chunk ends when its last step's outputs are
ready. examples/s = real examples (weight-1 rows) / round time, median over rounds. PyTorch runs in a phase of its
own (on CPU its OpenMP worker threads spin on after each call and would slow whichever JAX call came next).
Compilations are counted with ``jax.monitoring`` (``jaxconv.train.compiles``): jaxconv compiles each bucket's train
program and each evaluation shape once, before its first epoch; no timed round may compile anything.

Where the speed comes from, on 2 CPU cores: the convolutions are ~3/4 of a step and scale with the padded length, so
padding is the lever: the plain rows pad to 64 (or each batch's longest + 8, mean ~52), jaxconv's buckets to the 5
lengths that pad MR least (mean ~33), and the row-sparse embedding update removes the dense ``(V, D)`` work. The
step itself has no Python around it: the model and optimizer are split once into arrays, batches are gathered on
the device, metrics are read every ``log_every_steps`` (``benchmarks/step_profile.py`` times the parts). On a GPU a
step is far shorter than a dispatch, and ``K`` steps per call and ``R`` runs per program are what pay.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import pathlib
import runpy
import statistics
import time
import types

import jax
import numpy as np

from jaxconv.configs import load_config
from jaxconv.train import build_data
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.engine import Engine
from jaxconv.train.stacked_engine import Dispatches, StackedEngine
from jaxconv.train.steps import EVAL_PROGRAM, TRAIN_PROGRAM
from jaxconv.train.tasks import SUMS


def _load(name: str) -> types.SimpleNamespace:
    path = pathlib.Path(__file__).resolve().parent / f"{name}.py"
    return types.SimpleNamespace(**runpy.run_path(str(path), run_name=f"_benchmarks_{name}"))


harness, baselines = _load("harness"), _load("baselines")
torch = baselines.torch

JAXCONV, FIXED, PER_BATCH = "jaxconv", "plain flax.nnx, fixed max length", "plain flax.nnx, per-batch length"
TORCH, TORCH_1, TORCH_PB = "PyTorch eager", "PyTorch eager, 1 thread", "PyTorch eager, per-batch length"
#: jaxconv examples/s over the primary rows, per backend: plain flax.nnx (fixed length) and PyTorch eager.
TARGETS = {"cpu": {FIXED: 2.0, TORCH: 3.0}, "gpu": {TORCH: 3.0}}
CHUNK = 5                                # steps per interleaved chunk of a round


@dataclasses.dataclass
class Row:
    """One row: examples/s per round (``rates``), the mean padded length and steps of its timed work, the real
    examples per round, the last loss, and the XLA compilations during the timed rounds."""

    rates: list[float]
    mean_length: float
    steps: int
    examples: float
    loss: float
    compiles: int = 0
    active: float = 1.0        # stacked runs: the share of run-steps computed that trained a run (the rest masked)

    @property
    def median(self) -> float:
        return statistics.median(self.rates)


@dataclasses.dataclass
class Result:
    """What :func:`benchmark` measured (``report`` prints it; the tests read it).

    Attributes:
      rows: name -> :class:`Row`.
      ratios: ``"jaxconv / <row>"`` -> median ratio, for every other row.
      vs_torch: row -> its median over PyTorch eager's (on the same device).
      targets: row -> ``(ratio, target, met)`` for the rows that carry a target on this backend.
      compiles: the jaxconv epoch's compilations: ``train``, ``eval``, ``buckets``, ``eval_shapes``, ``seconds``.
      info: data and setting facts (device, buckets, vocabulary, ...).
    """

    rows: dict[str, Row]
    ratios: dict[str, float]
    vs_torch: dict[str, float]
    targets: dict[str, tuple[float, float, bool]]
    compiles: dict
    info: dict


# ======================================================================================================================
# Data
# ======================================================================================================================

def load_data(data_path: str | None, seed: int = 0, max_buckets: int | None = None, **overrides):
    """MR fold 0 through the trainer's pipeline; returns ``(config, pipeline, ids, labels, max_len)``.

    ``ids[i]`` are the token ids of training example ``i`` (read back from one epoch of the bucketed batches, so the
    plain rows see the very same ids); ``max_len``: the longest sentence over train, dev and test.
    """
    overrides = {**({"data.path": data_path} if data_path else {}),
                 **({"data.max_buckets": max_buckets} if max_buckets else {}), **overrides}
    config = load_config("text_cnn:mr", {"seed": seed, **overrides})
    data = build_data(config, min_length=max(config.model.widths))
    n, pad_left = data.train.num_examples, int(config.data.pad_left)
    ids: list[np.ndarray | None] = [None] * n
    labels = np.zeros(n, np.int32)
    for b in data.train.epoch(0):
        for row in np.flatnonzero(b.weights > 0):
            i = int(b.indices[row])
            ids[i] = b.tokens[row, pad_left: pad_left + int(b.lengths[row])].copy()
            labels[i] = b.labels[row]
    max_len = max(int(bb.lengths.max()) for bb in (data.train, data.dev, data.test) if bb is not None)
    return config, data, ids, labels, max_len


def evenly_spaced(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(n)`` (in order; cycling when ``count > n``).

    >>> evenly_spaced(10, 3), evenly_spaced(2, 3)
    ([0, 3, 6], [0, 1, 0])
    """
    if count >= n:
        return [i % n for i in range(count)]
    return [(i * n) // count for i in range(count)]


# ======================================================================================================================
# jaxconv rows: the trainer's engine
# ======================================================================================================================

class EngineRow:
    """``steps`` (about) of training through an :class:`Engine`, cut into chunks of about :data:`CHUNK` steps.

    One run: calls sampled evenly from the run's epoch 1. A stack of runs: the first dispatches of epoch 1 that make
    up ``steps`` steps per run on average (:class:`Dispatches`).
    """

    def __init__(self, engine: Engine, steps: int, chunks: int):
        self.engine, self.chunks = engine, chunks
        calls = engine.epoch_calls(1)
        self.plans = engine.plans(calls)
        self.runs = engine.runs if engine.vmapped else 1
        if engine.vmapped:
            dispatches = list(Dispatches(calls, [0] * engine.runs, [0] * engine.runs, [0] * engine.runs))
            work, total = [], 0
            for bucket, call, moved in dispatches:
                work.append((bucket, call, sum(n for _, _, n, _ in moved)))
                total += sum(n for _, _, n, _ in moved)
                if total >= steps * engine.runs:
                    break
        else:
            c, calls = calls, [calls]
            work = [(int(c.bucket[i]), engine.call(c, i), int(c.length[i]))
                    for i in evenly_spaced(len(c.bucket), max(1, -(-steps // engine.k)))]
        self.work = work
        self.examples = self._examples(calls, work)
        self.steps = sum(n for _, _, n in work)
        self.active = self.steps / max(len(work) * engine.k * self.runs, 1)
        lengths = engine.train_data.bucket_lengths
        self.mean_length = float(np.average([lengths[b] for b, _, _ in work], weights=[n for _, _, n in work]))
        per_chunk = max(1, len(work) // chunks)
        self.pieces = [work[k * per_chunk: (k + 1) * per_chunk if k < chunks - 1 else len(work)] for k in range(chunks)]
        self.loss = float("nan")

    def _examples(self, calls, work) -> list[float]:
        """Real examples each unit of ``work`` trains (weights of its applied steps)."""
        out = []
        for bucket, call, _ in work:
            rows = [call] if call.ndim == 1 else list(call)
            total = 0.0
            for r, (slot, _, lo, hi) in enumerate(rows):
                if hi > lo:
                    total += float(calls[r].weights[bucket][slot, lo:hi].sum())
            out.append(total)
        return out

    def warm(self) -> None:
        self.engine.compile(self.plans)
        for bucket in sorted({b for b, _, _ in self.work}):
            unit = next(w for w in self.work if w[0] == bucket)
            jax.block_until_ready(self.engine.dispatch(bucket, self.plans[bucket], unit[1]))

    def run(self, k: int) -> float:
        sums = None
        start = sum(len(p) for p in self.pieces[:k])
        for bucket, call, _ in self.pieces[k]:
            sums = self.engine.dispatch(bucket, self.plans[bucket], call)
        if sums is not None:
            sums = jax.device_get(sums)
            s = np.stack([np.asarray(sums[k]) for k in SUMS], axis=-1).reshape(-1, len(SUMS))
            s = s[s[:, 2] > 0]
            if len(s):
                self.loss = float(s[-1, 0] / s[-1, 2])
        return float(sum(self.examples[start: start + len(self.pieces[k])]))


# ======================================================================================================================
# Benchmark
# ======================================================================================================================

def _engine(args, k: int | None = None, runs: int = 1, **overrides) -> Engine:
    over = {**overrides, **({} if k is None else {"train.steps_per_call": k})}
    if runs == 1:
        config, data = load_data(args.data, max_buckets=args.max_buckets, **over)[:2]
        return Engine.fresh(config, data, mesh_lib.make_mesh())
    loaded = [load_data(args.data, seed=s, max_buckets=args.max_buckets, **over)[:2] for s in range(runs)]
    return StackedEngine.fresh([c for c, _ in loaded], [d for _, d in loaded], mesh_lib.make_mesh())


def _epoch_compiles(engine: Engine, quick: bool) -> dict:
    """Compile and run jaxconv's first epoch (``--quick``: two calls per bucket) and a dev evaluation, counting
    the compilations by program."""
    mark = harness.COMPILES.mark()
    calls = engine.epoch_calls(0)
    plans = engine.plans(calls)
    t0 = time.perf_counter()
    engine.compile(plans)
    seen = collections.Counter()
    sums = None
    for i in range(len(calls.bucket)):
        b = int(calls.bucket[i])
        if quick and seen[b] >= 2:
            continue
        seen[b] += 1
        sums = engine.dispatch(b, plans[b], engine.call(calls, i, int(calls.start[i])))
    jax.block_until_ready(sums)
    engine.evaluate("dev")
    train, train_s = harness.COMPILES.since(mark, TRAIN_PROGRAM)
    evals, eval_s = harness.COMPILES.since(mark, EVAL_PROGRAM)
    shapes = {b["tokens"].shape for split in engine.eval_data.values() for b in split.batches}
    return {"train": train, "eval": evals, "buckets": len(engine.train_data.bucket_lengths), "eval_shapes": len(shapes),
            "seconds": train_s + eval_s, "epoch_s": time.perf_counter() - t0, "full": not quick,
            "steps": sum(seen.values()) if quick else calls.steps}


def benchmark(args) -> Result:
    """Run every row side by side; returns the :class:`Result`."""
    t_start = time.perf_counter()
    backend = jax.default_backend()
    config, data, ids, labels, max_len = load_data(args.data, max_buckets=args.max_buckets)
    pad, batch, V, K = int(config.data.pad_left), int(config.train.batch_size), len(data.vocab), data.num_classes
    info = {"backend": backend, "devices": jax.device_count(), "torch_device": baselines.torch_device(), "vocab": V,
            "train_examples": data.train.num_examples, "buckets": data.train.bucket_lengths,
            "bucket_sizes": data.train.bucket_sizes, "steps_per_epoch": data.train.steps_per_epoch, "max_len": max_len,
            "fixed_len": max_len + 2 * pad, "steps": args.steps, "rounds": args.rounds,
            "torch_steps": args.torch_steps, "data_s": time.perf_counter() - t_start}
    chunks = max(1, args.steps // CHUNK)

    # ---------------------------------------------------------------- jaxconv rows
    main = _engine(args)
    info["k"] = main.k
    compiles = _epoch_compiles(main, args.quick)
    engines = {JAXCONV: main}
    for k in args.k:
        if k != main.k:
            engines[f"jaxconv, K={k} steps per call"] = _engine(args, k=k)
    for r in args.runs:
        engines[f"jaxconv, R={r} runs per program"] = _engine(args, runs=r)
    for impl in args.conv_impl:
        engines[f"jaxconv, conv_impl={impl}"] = _engine(args, **{"model.conv_impl": impl})
    rows = {name: EngineRow(e, args.steps, chunks) for name, e in engines.items()}
    for row in rows.values():
        row.warm()

    # ---------------------------------------------------------------- plain flax.nnx
    fixed, per_batch = baselines.PlainFlaxRunner(V, K), baselines.PlainFlaxRunner(V, K)
    plain = {FIXED: baselines.plain_batches(ids, labels, args.steps, batch, pad, max_len + 2 * pad),
             PER_BATCH: baselines.plain_batches(ids, labels, args.steps, batch, pad, None)}
    fixed.run(plain[FIXED][:1])
    mark = harness.COMPILES.mark()
    t0 = time.perf_counter()
    n, _ = per_batch.run(plain[PER_BATCH])
    info["per_batch_first_pass"] = {"examples_per_sec": n / (time.perf_counter() - t0),
                                    "compiles": harness.COMPILES.since(mark)[0],
                                    "lengths": len({t.shape[1] for t, _, _ in plain[PER_BATCH]})}
    plain_loss = {}

    def plain_row(name, runner):
        def run(k):
            n, plain_loss[name] = runner.run(plain[name][k * CHUNK: (k + 1) * CHUNK if k < chunks - 1 else None])
            return n
        return run

    timed = {name: row.run for name, row in rows.items()}
    timed.update({FIXED: plain_row(FIXED, fixed), PER_BATCH: plain_row(PER_BATCH, per_batch)})
    measured = harness.interleaved_rounds(timed, chunks, args.rounds)

    out: dict[str, Row] = {}
    for name, row in rows.items():
        out[name] = Row(measured[name].rates, row.mean_length, row.steps, sum(row.examples), row.loss,
                        measured[name].compiles, row.active)
    for name in (FIXED, PER_BATCH):
        out[name] = Row(measured[name].rates, float(np.mean([t.shape[1] for t, _, _ in plain[name]])), args.steps,
                        float(sum(w.sum() for _, _, w in plain[name])), plain_loss[name], measured[name].compiles)

    # ---------------------------------------------------------------- PyTorch, a phase of its own
    if torch is not None:
        out.update(_torch_rows(args, plain, V, K, info["torch_device"]))
    if args.breakdown:
        info["breakdown"] = breakdown(args, main)
    info["total_s"] = time.perf_counter() - t_start
    return _result(out, compiles, info, backend)


def _torch_rows(args, plain: dict, V: int, K: int, device: str) -> dict[str, Row]:
    cores = os.cpu_count() or 1
    settings = [(TORCH, cores, plain[FIXED][:args.torch_steps])]
    if device == "cpu" and cores > 1:
        settings.append((TORCH_1, 1, plain[FIXED][:args.torch_steps]))
    settings.append((TORCH_PB, cores, plain[PER_BATCH][:args.torch_steps]))
    runner = baselines.TorchRunner(V, K, device=device)  # one model for every setting (it just trains on)
    out = {}
    for name, threads, batches in settings:
        torch.set_num_threads(threads)
        time.sleep(0.2 if args.quick else 0.5)  # let the previous phase's worker threads go idle
        runner.run(batches[:1 if args.quick else 2])
        rates, loss = [], float("nan")
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            n, loss = runner.run(batches)
            rates.append(n / (time.perf_counter() - t0))
        out[name] = Row(rates, float(np.mean([t.shape[1] for t, _, _ in batches])), len(batches),
                        float(sum(w.sum() for _, _, w in batches)), loss)
    torch.set_num_threads(cores)
    return out


def _result(rows: dict[str, Row], compiles: dict, info: dict, backend: str) -> Result:
    j = rows[JAXCONV].median
    ratios = {f"jaxconv / {name}": j / row.median for name, row in rows.items() if name != JAXCONV}
    vs_torch = {name: row.median / rows[TORCH].median for name, row in rows.items()} if TORCH in rows else {}
    goals = TARGETS["cpu" if backend == "cpu" else "gpu"]
    targets = {name: (j / rows[name].median, goal, j / rows[name].median >= goal) for name, goal in goals.items()
               if name in rows}
    return Result(rows, ratios, vs_torch, targets, compiles, info)


def breakdown(args, main: Engine) -> dict:
    """jaxconv's step per bucket length with the embedding table trained (the main row's engine) and frozen
    (``embedding="static"``: the same forward pass, no gradient w.r.t. the word vectors, no table update): single
    one-call steps timed one at a time, interleaved."""
    frozen = _engine(args, k=main.k, **{"model.embedding": "static"})
    timers, steps = {}, {}
    for name, engine in (("trained", main), ("frozen", frozen)):
        calls = engine.epoch_calls(0)
        plans = engine.plans(calls)
        engine.compile(plans)
        for i in range(len(calls.bucket)):
            b = int(calls.bucket[i])
            length = engine.train_data.bucket_lengths[b]
            steps[length] = steps.get(length, 0) + (int(calls.length[i]) if name == "trained" else 0)
            if (name, length) not in timers:
                call = engine.call(calls, i)

                def timer(engine=engine, b=b, plan=plans[b], call=call):
                    t0 = time.perf_counter()
                    jax.block_until_ready(engine.dispatch(b, plan, call))
                    return (time.perf_counter() - t0) / max(int(call[3]), 1)

                timers[(name, length)] = timer
    times = harness.interleaved_calls(timers, args.breakdown, seed=1)
    return {"ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}, "steps": steps, "reps": args.breakdown}


# ======================================================================================================================
# Report
# ======================================================================================================================

def report(res: Result) -> None:
    info, rows = res.info, res.rows
    print()
    header = (f"{'implementation':<36}{'examples/s':>11}{'min':>8}{'max':>8}{'mean L':>8}{'steps':>7}{'ex/round':>9}"
              f"{'loss':>7}{'/ torch':>9}")
    print(header)
    print("-" * len(header))
    for name, row in rows.items():
        vs = f"{res.vs_torch[name]:>8.2f}x" if name in res.vs_torch else f"{'-':>9}"
        print(f"{name:<36}{row.median:>11.0f}{min(row.rates):>8.0f}{max(row.rates):>8.0f}{row.mean_length:>8.1f}"
              f"{row.steps:>7}{row.examples:>9.0f}{row.loss:>7.3f}{vs}")
    if torch is None:
        print(f"{TORCH:<36}(not run: torch is not installed)")
    print(f"(examples/s: median over {info['rounds']} rounds, min and max beside it; mean L: mean padded length of the "
          f"timed batches; loss: the last step's; / torch: examples/s over PyTorch eager's on "
          f"{info['torch_device']}; jaxconv's automatic K on {info['backend']}: {info['k']})")
    for name, row in rows.items():
        if row.active < 1.0:
            print(f"{name}: {row.active:.0%} of the run-steps it computed trained a run (each run keeps its own bucket "
                  f"order; a dispatch masks the runs waiting for another bucket, and a bucket's last call is short)")
    pb = info["per_batch_first_pass"]
    print(f"plain flax.nnx per-batch length, its first pass: {pb['compiles']} compiles for {pb['lengths']} distinct "
          f"lengths, {pb['examples_per_sec']:.0f} examples/s")
    print()
    for key, ratio in res.ratios.items():
        name = key.removeprefix("jaxconv / ")
        if name in res.targets:
            _, goal, met = res.targets[name]
            print(f"{key}: {ratio:.2f}x  (target >= {goal:g}x: {'met' if met else 'NOT met'})")
        else:
            print(f"{key}: {ratio:.2f}x  (no target)")
    c = res.compiles
    span = f"one full epoch ({c['steps']} steps)" if c["full"] else f"two calls per bucket ({c['steps']} steps, --quick)"
    limit = c["buckets"] + c["eval_shapes"]
    print()
    print(f"jaxconv compiles, {span} + dev eval: train {c['train']} + eval {c['eval']} = {c['train'] + c['eval']} <= "
          f"buckets {c['buckets']} + eval shapes {c['eval_shapes']} = {limit}: "
          f"{'ok' if c['train'] + c['eval'] <= limit else 'EXCEEDED'}; {c['seconds']:.1f} s of XLA compile time, "
          f"that epoch {c['epoch_s']:.1f} s in all")
    during = {name: row.compiles for name, row in rows.items() if row.compiles}
    print(f"compiles during the timed rounds: {sum(during.values())}"
          + (f" ({', '.join(f'{k}: {v}' for k, v in during.items())})" if during else ""))
    if "breakdown" in info:
        _report_breakdown(info["breakdown"])
    print(f"({info['total_s']:.0f} s in all, {info['data_s']:.1f} s of it loading and tokenizing MR)")


def _report_breakdown(bd: dict) -> None:
    ms, steps = bd["ms"], bd["steps"]
    print()
    print(f"jaxconv step time by bucket (median of {bd['reps']} single calls, interleaved); 'frozen': the same step "
          f"with the embedding table not trained")
    print(f"{'L':>4}{'steps/epoch':>13}{'trained ms':>12}{'frozen ms':>11}{'embedding training share':>26}")
    for length in sorted(steps):
        t, f = ms[("trained", length)], ms[("frozen", length)]
        print(f"{length:>4}{steps[length]:>13}{t:>12.1f}{f:>11.1f}{(t - f) / t:>26.0%}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="train steps per round and row (default 40; --quick: 10)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per row (default 3; --quick: 1)")
    parser.add_argument("--torch-steps", type=int, default=None, help="PyTorch steps per round (default 6 on CPU, "
                                                                        "--steps on a GPU; --quick: 2)")
    parser.add_argument("--k", default=None, help="comma-separated K (steps per call) for extra jaxconv rows (default: "
                                                  "2 on CPU, where the K steps are unrolled and compile K times "
                                                  "longer; 1,32 on GPU/TPU; the automatic K is the jaxconv row)")
    parser.add_argument("--runs", default="4", help="comma-separated R (runs per program) for stacked jaxconv rows "
                                                    "(default 4; '' for none)")
    parser.add_argument("--breakdown", type=int, nargs="?", const=10, default=0, metavar="REPS",
                        help="also time jaxconv's step per bucket with the embedding table trained vs frozen")
    parser.add_argument("--max-buckets", type=int, default=None, help="at most this many bucket lengths (default: "
                                                                         "the mr preset's 5; fewer compile faster)")
    parser.add_argument("--conv-impl", default="", help="comma-separated config.model.conv_impl values (xla, im2col, "
                        "fft, fused, auto) for extra jaxconv rows (default: none; the jaxconv row uses the config's)")
    parser.add_argument("--quick", action="store_true", help="tiny run (tests): few steps, one round, two calls per "
                                                             "bucket for the compile count")
    parser.add_argument("--data", default=None, help="directory holding rt-polarity.all (default: $JAXCONV_DATA or "
                                                     "../shared/datasets/sentences)")
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (10 if args.quick else 40)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    gpu = jax.default_backend() != "cpu"
    default_torch = 2 if args.quick else (args.steps if gpu else 6)
    args.k = args.k if args.k is not None else ("1,32" if gpu else "2")
    args.torch_steps = min(args.torch_steps if args.torch_steps is not None else default_torch, args.steps)
    try:
        args.k = [int(x) for x in args.k.split(",") if x.strip()]
        args.runs = [int(x) for x in args.runs.split(",") if x.strip()]
        args.conv_impl = [x.strip() for x in args.conv_impl.split(",") if x.strip()]
    except ValueError:
        parser.error(f"--k and --runs take comma-separated integers; got --k={args.k!r} --runs={args.runs!r}")
    if args.steps < CHUNK or args.rounds < 1 or args.torch_steps < 1 or min(args.k + args.runs + [1]) < 1:
        parser.error(f"--steps must be >= {CHUNK}, --rounds, --torch-steps, --k and --runs >= 1; got {args.steps}, "
                     f"{args.rounds}, {args.torch_steps}, {args.k}, {args.runs}")
    return args


def main(argv=None) -> Result:
    args = parse_args(argv)
    print(f"Kim CNN training on MR (fold 0 train part), batch 50, Adadelta + max-norm 3: {args.rounds} rounds (median) "
          f"of about {args.steps} steps per JAX row, interleaved in chunks of ~{CHUNK} steps in random order; PyTorch "
          f"({args.torch_steps} steps per round) in a phase of its own")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({jax.device_count()} device(s), {os.cpu_count()} CPU "
          f"cores), torch {torch.__version__ if torch is not None else 'not installed'} on "
          f"{baselines.torch_device()}; load average at start {os.getloadavg()[0]:.2f}")
    res = benchmark(args)
    info = res.info
    print(f"data: {info['train_examples']} training sentences, vocabulary {info['vocab']}; jaxconv buckets "
          f"{info['buckets']} holding {info['bucket_sizes']} sentences ({info['steps_per_epoch']} steps/epoch); plain "
          f"rows: longest sentence {info['max_len']} + 4 + 4 = {info['fixed_len']}")
    report(res)
    return res


if __name__ == "__main__":
    main()
    raise SystemExit(0)
