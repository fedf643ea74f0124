"""Kim CNN training speed on MR, in one run: jaxconv's training path vs plain flax.nnx vs plain PyTorch eager.

All three train Kim (2014)'s CNN-rand on the training part of MR fold 0 (Kim tokenization, vocabulary built on that
part): 300-d uniform[-0.25, 0.25] word vectors (pad row zero and kept zero), widths 3, 4, 5 x 100 filters + ReLU,
max over time, dropout 0.5, a dense layer, softmax cross-entropy, Adadelta (rho 0.95, eps 1e-6, learning rate 1.0)
on every parameter, then max-norm 3 on each class's weight vector. Batch 50. The plain rows update the embedding
table densely; jaxconv uses the trainer's default ``config.train.sparse_embedding``: the same Adadelta, applied lazily
to the table rows of the batch's tokens only (exact up to float rounding).

    python benchmarks/text_cnn_train.py              # < 3 minutes on 2 CPU cores
    python benchmarks/text_cnn_train.py --quick      # a rough table in ~30 s (used by the tests)
    python benchmarks/text_cnn_train.py --breakdown  # + jaxconv step time per bucket, embedding trained vs frozen
    python benchmarks/text_cnn_train.py --steps 60 --rounds 5 --torch-steps 20 --data /path/to/sentences

Rows:

- ``jaxconv``: the project's real training path: ``jaxconv.train.build_data`` (config ``configs/text_cnn.py:mr``:
  length buckets, Kim's 4 zero pads each side), TextCNN and its optimizer (``trainer.make_spec``: the row-sparse
  embedding Adadelta + ``nnx.Optimizer(make_optimizer(...))`` for the rest) from the trainer's jitted constructor, the trainer's own jitted, donated train step from ``jaxconv.train.trainer.make_steps``
  (max-norm inside), batches put on the device with ``mesh.shard_batch``, as ``train_and_evaluate`` does.
- ``plain flax.nnx, fixed max length``: a textbook nnx Kim CNN (``nnx.Embed``, one ``nnx.Conv(padding="VALID")`` per
  width, ``nnx.Dropout``, ``nnx.Linear``), an ``nnx.jit`` step with the same optax Adadelta and max-norm, batches of
  a shuffled training set padded to the longest sentence of the whole dataset + 4 + 4 (one shape: one compile).
- ``plain flax.nnx, per-batch length``: the same, each batch padded to its own longest sentence + 4 + 4 (one
  compile per distinct length; secondary row). Its first pass, compiles included, is reported below the table.
- ``PyTorch eager``: ``nn.Embedding(padding_idx=0)`` (dense gradient), ``nn.Conv1d`` per width, ``torch.optim.Adadelta``, max-norm by
  ``torch.renorm`` of the Linear weight rows; the same padded batches as the fixed-length flax row;
  ``torch.set_num_threads(os.cpu_count())``. ``PyTorch eager, 1 thread``: the same with one thread (secondary row:
  when other processes load the cores, torch's spinning OpenMP workers can make the all-cores setting the slower one).
  ``PyTorch eager, per-batch length``: the same model and threads on the per-batch-length batches of the flax row
  (secondary row: eager PyTorch pays nothing for a new shape, so padding each batch to its own longest sentence is
  what a PyTorch user would also do).

Measurement. Each JAX row trains on ``--steps`` batches drawn from a real epoch (jaxconv: ``--steps`` evenly spaced
batches of epoch 1 of the trainer's bucketed batcher, in their epoch order, so the mix of bucket lengths is the
epoch's; plain rows: consecutive batches of one shuffled pass),
materialised as host NumPy arrays beforehand, so the time covers host->device transfer + dispatch + the step itself.
A round runs every JAX row's batches in chunks of 5 steps, chunk k of every row (in a fresh random order) before
chunk k+1, so load from other processes falls on all rows alike; a chunk ends when its last step's outputs are
ready; a row's round time is the sum of its chunks. examples/s = real examples (weight-1 rows) / round time; the
table shows the median over ``--rounds`` rounds. PyTorch runs afterwards in a phase of its own (its OpenMP worker
threads spin on after each call and would slow whichever JAX call came next), ``--torch-steps`` fixed-length batches
per round. Every model is compiled and warmed up before it is timed.

Compilations are counted with a ``jax.monitoring`` listener on ``/jax/core/compile/backend_compile_duration``, the
event JAX records once per XLA backend compilation (with the compiled function's name and the seconds it took); the
trainer's own trace counter (``TRACES``, +1 each time its step is traced) is shown beside it as a cross-check. The
jaxconv compile count covers one full training epoch (epoch 0: every bucket) plus the dev evaluation, as
``train_and_evaluate`` runs them; every timed round is checked to compile nothing.

``--breakdown`` times jaxconv's step alone per bucket length with the embedding table trained and frozen. On MR
(vocabulary ~17,000-19,000 x 300) a dense update of the table and its two ``(V, D)`` accumulators took 37-72% of a
step whatever the padded length; the row-sparse update (``config.train.sparse_embedding``, the default) touches only
the rows of the batch's tokens, so the trained step's cost follows the bucket length. What training the table still
costs (about a third of a step) is mostly the gradient w.r.t. the word vectors, a third convolution pass; the sparse
update itself is ~1 ms.

Where the speed comes from, measured on 2 CPU cores: the convolutions are ~3/4 of a step and scale with the padded
length, so padding is the lever. The plain rows pad to 64 (or to each batch's longest sentence + 8, mean ~52);
jaxconv's buckets are the 5 lengths that pad MR least (``jaxconv.data.default_bucket_lengths``: 24, 32, 40, 48, 64,
mean ~33), and the sparse embedding update removes the dense ``(V, D)`` work.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import os
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxconv.configs import load_config
from jaxconv.train import mesh as mesh_lib
from jaxconv.train import trainer
from jaxconv.train.input_pipeline import build_data

try:
    import torch
except ImportError:  # optional
    torch = None

TARGETS = {"torch": 3.0, "flax": 2.0}    # jaxconv examples/s over PyTorch eager, over plain flax.nnx (fixed length)
ROWS = ("jaxconv", "plain flax.nnx, fixed max length", "plain flax.nnx, per-batch length", "PyTorch eager",
        "PyTorch eager, 1 thread", "PyTorch eager, per-batch length")
PRIMARY = {ROWS[1]: "flax", ROWS[3]: "torch"}  # the rows the targets are set against
CHUNK = 5                                # steps per interleaved chunk of a round
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


# ======================================================================================================================
# Compile counting
# ======================================================================================================================

class CompileLog:
    """Every XLA backend compilation of the process: ``(function name, seconds)``, from a ``jax.monitoring``
    listener. ``with log.window() as w`` collects the ones inside the block into the list ``w``."""

    def __init__(self):
        self.events: list[tuple[str, float]] = []
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, event: str, duration: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            self.events.append((str(kwargs.get("fun_name", "?")), float(duration)))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            jax.monitoring.unregister_event_duration_listener(self._listen)

    @contextlib.contextmanager
    def window(self):
        out: list[tuple[str, float]] = []
        start = len(self.events)
        try:
            yield out
        finally:
            out.extend(self.events[start:])


# ======================================================================================================================
# Data
# ======================================================================================================================

def load_data(data_path: str | None, seed: int = 0):
    """MR fold 0 through the trainer's pipeline; returns ``(config, pipeline, ids, labels, max_len)``.

    ``ids[i]`` are the token ids of training example ``i`` (read back from one epoch of the bucketed batches, so
    every row sees the very same ids); ``max_len``: the longest sentence over train, dev and test.
    """
    config = load_config("text_cnn:mr", {"seed": seed, **({"data.path": data_path} if data_path else {})})
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


def systematic_sample(batches: list, steps: int) -> list:
    """``steps`` batches evenly spaced through ``batches`` (its order kept; all of them, cycling, if it has fewer): a
    sample whose mix of padded lengths follows the whole epoch's, unlike its first ``steps`` batches, whose mix is
    whatever the shuffle put first."""
    if steps >= len(batches):
        return [batches[i % len(batches)] for i in range(steps)]
    return [batches[(i * len(batches)) // steps] for i in range(steps)]


def plain_batches(ids, labels, steps: int, batch_size: int, pad: int, length: int | None, seed: int = 1):
    """``steps`` batches of consecutive examples of one shuffled pass (cycling if needed): ``(tokens int32 (B, L),
    labels int32 (B,), weights float32 (B,))``; ``L = length`` or, if None, the batch's longest sentence + 2 pad."""
    order = np.random.default_rng(seed).permutation(len(ids))
    out = []
    for s in range(steps):
        idx = order[np.arange(s * batch_size, (s + 1) * batch_size) % len(order)]
        seqs = [ids[i] for i in idx]
        L = length if length is not None else max(len(x) for x in seqs) + 2 * pad
        tokens = np.zeros((batch_size, L), np.int32)
        for r, x in enumerate(seqs):
            tokens[r, pad: pad + len(x)] = x
        out.append((tokens, labels[idx], np.ones(batch_size, np.float32)))
    return out


# ======================================================================================================================
# The three implementations. Each runner: run(batches) -> (real examples, last loss), blocking at the end.
# ======================================================================================================================

class JaxconvRunner:
    """TextCNN + the trainer's donated, jitted train step with max-norm, on the data mesh, set up as
    ``train_and_evaluate`` does it (model and optimizer from the trainer's jitted constructor, replicated)."""

    def __init__(self, config, data):
        self.config, self.data = config, data
        self.mesh = mesh_lib.make_mesh()
        root = jax.random.key(int(config.seed))
        spec = trainer.make_spec(config, len(data.vocab), data.num_classes)
        model, optimizer = trainer._create_jit(jax.random.fold_in(root, 0), spec=spec)
        nnx.update(model, mesh_lib.replicate(nnx.state(model), self.mesh))
        nnx.update(optimizer, mesh_lib.replicate(nnx.state(optimizer), self.mesh))
        self.model, self.optimizer = model, optimizer
        self.dropout_root = mesh_lib.replicate(jax.random.fold_in(root, 1), self.mesh)
        self.train_step, self.eval_step = trainer.make_steps(config)
        self.traces = trainer.TRACES  # +1 each time the trainer's train / eval step is traced
        self.step = 0

    def run(self, batches):
        out, count = None, 0.0
        for b in batches:
            arrays = {"tokens": b.tokens, "labels": b.labels, "weights": b.weights}
            out = self.train_step(self.model, self.optimizer, mesh_lib.shard_batch(arrays, self.mesh),
                                  self.dropout_root, jnp.asarray(self.step, jnp.uint32))
            self.step += 1
            count += float(b.weights.sum())
        out = jax.block_until_ready(out)
        return count, float(out["loss"])

    def evaluate(self, batches):
        return trainer.evaluate(self.eval_step, self.model, batches, self.mesh)


class PlainKimCNN(nnx.Module):
    """Kim's CNN written the textbook flax.nnx way (no jaxconv): tokens (B, L) -> logits (B, K)."""

    def __init__(self, vocab_size, num_classes, *, embed_dim=300, widths=(3, 4, 5), filters=100, dropout=0.5,
                 rngs: nnx.Rngs):
        uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -0.25, 0.25)  # noqa: E731
        self.embed = nnx.Embed(vocab_size, embed_dim, embedding_init=uniform, rngs=rngs)
        self.embed.embedding[...] = self.embed.embedding[...].at[0].set(0.0)           # pad row zero
        init = nnx.initializers.glorot_uniform()
        self.convs = nnx.List([nnx.Conv(embed_dim, filters, kernel_size=(w,), padding="VALID", kernel_init=init,
                                        rngs=rngs) for w in widths])
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.linear = nnx.Linear(len(widths) * filters, num_classes, kernel_init=init, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens) * (tokens != 0)[..., None]                             # (B, L, D), pads zero
        h = jnp.concatenate([jax.nn.relu(conv(x)).max(axis=1) for conv in self.convs], axis=-1)  # (B, W*F)
        return self.linear(self.dropout(h))                                           # (B, K)


def _plain_step(model, optimizer, tokens, labels, weights):
    def loss_fn(model):
        ce = optax.softmax_cross_entropy_with_integer_labels(model(tokens), labels)
        return jnp.sum(ce * weights) / jnp.sum(weights)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    w = model.linear.kernel[...]                                                      # (W*F, K): max-norm 3 per class
    norms = jnp.sqrt(jnp.sum(w * w, axis=0, keepdims=True))
    model.linear.kernel[...] = jnp.where(norms > 3.0, w * (3.0 / jnp.maximum(norms, 1e-12)), w)
    return loss


PLAIN_TX = optax.adadelta(learning_rate=1.0, rho=0.95, eps=1e-6)


@functools.partial(nnx.jit, static_argnums=(0, 1, 2))
def _create_plain(vocab_size, num_classes, seed):
    """Model and optimizer in one compiled program (eagerly, every initialiser op would compile on its own)."""
    model = PlainKimCNN(vocab_size, num_classes, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    return model, nnx.Optimizer(model, PLAIN_TX, wrt=nnx.Param)


class PlainFlaxRunner:
    """PlainKimCNN + optax Adadelta + max-norm in an ``nnx.jit`` step of its own (own compile cache)."""

    def __init__(self, vocab_size, num_classes, seed=0):
        self.model, self.optimizer = _create_plain(vocab_size, num_classes, seed)
        self.model.train()                                                            # dropout on
        self.step_fn = nnx.jit(_plain_step)

    def run(self, batches):
        loss, count = None, 0.0
        for tokens, labels, weights in batches:
            loss = self.step_fn(self.model, self.optimizer, tokens, labels, weights)
            count += float(weights.sum())
        return count, float(jax.block_until_ready(loss))


class TorchRunner:
    """Kim's CNN in plain PyTorch eager, Adadelta, max-norm 3 on the Linear weight rows after each step."""

    def __init__(self, vocab_size, num_classes, seed=0):
        torch.manual_seed(seed)
        nn = torch.nn

        class KimCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(vocab_size, 300, padding_idx=0)
                nn.init.uniform_(self.embed.weight, -0.25, 0.25)
                with torch.no_grad():
                    self.embed.weight[0].zero_()
                self.convs = nn.ModuleList([nn.Conv1d(300, 100, w) for w in (3, 4, 5)])
                self.dropout = nn.Dropout(0.5)
                self.linear = nn.Linear(300, num_classes)

            def forward(self, tokens):                                                # (B, L) -> (B, K)
                x = self.embed(tokens).transpose(1, 2)                                # (B, D, L)
                h = torch.cat([torch.relu(c(x)).amax(dim=2) for c in self.convs], dim=1)  # (B, W*F)
                return self.linear(self.dropout(h))

        self.model = KimCNN().train()
        self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=1.0, rho=0.95, eps=1e-6)

    def run(self, batches):
        loss, count = None, 0.0
        for tokens, labels, weights in batches:
            tokens_t, labels_t = torch.from_numpy(tokens).long(), torch.from_numpy(labels).long()
            weights_t = torch.from_numpy(weights)
            ce = torch.nn.functional.cross_entropy(self.model(tokens_t), labels_t, reduction="none")
            loss = (ce * weights_t).sum() / weights_t.sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():                                                     # each class's row, norm <= 3
                w = self.model.linear.weight
                w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=3.0))
            count += float(weights.sum())
        return count, float(loss.detach())


# ======================================================================================================================
# Benchmark
# ======================================================================================================================

def benchmark(args) -> dict:
    """Run everything; returns the numbers the report prints."""
    t_start = time.perf_counter()
    log = CompileLog()
    config, data, ids, labels, max_len = load_data(args.data)
    pad = int(config.data.pad_left)
    B = int(config.train.batch_size)
    V, K = len(data.vocab), data.num_classes
    res: dict = {"vocab": V, "train_examples": data.train.num_examples, "buckets": data.train.bucket_lengths,
                 "bucket_sizes": data.train.bucket_sizes, "dev_buckets": data.dev.bucket_lengths,
                 "steps_per_epoch": data.train.steps_per_epoch, "max_len": max_len, "fixed_len": max_len + 2 * pad,
                 "steps": args.steps, "rounds": args.rounds, "torch_steps": args.torch_steps,
                 "epoch_mean_len": float(np.mean([b.tokens.shape[1] for b in data.train.epoch(0)])),
                 "data_s": time.perf_counter() - t_start}

    # ---------------------------------------------------------------- jaxconv: one full epoch + dev eval, counted
    jx = JaxconvRunner(config, data)
    epoch0 = list(data.train.epoch(0))
    if args.quick:  # two batches per bucket: every shape of the full epoch, and a repeat of each
        per_bucket = collections.defaultdict(list)
        for b in epoch0:
            if len(per_bucket[b.tokens.shape[1]]) < 2:
                per_bucket[b.tokens.shape[1]].append(b)
        epoch0 = [b for bs in per_bucket.values() for b in bs]
    trace0 = dict(jx.traces)
    t0 = time.perf_counter()
    with log.window() as train_c:
        examples, _ = jx.run(epoch0)
    t1 = time.perf_counter()
    with log.window() as eval_c:
        jx.evaluate(data.dev)
    res["jaxconv_epoch"] = {
        "steps": len(epoch0), "full": not args.quick, "examples": examples, "train_s": t1 - t0,
        "eval_s": time.perf_counter() - t1, "train_compiles": len(train_c), "eval_compiles": len(eval_c),
        "compile_s": sum(d for _, d in train_c + eval_c), "train_compile_s": sum(d for _, d in train_c),
        "train_traces": jx.traces["train"] - trace0["train"], "eval_traces": jx.traces["eval"] - trace0["eval"],
        "compiled": collections.Counter(name for name, _ in train_c + eval_c)}
    timed = {"jaxconv": systematic_sample(list(data.train.epoch(1)), args.steps)}

    # ---------------------------------------------------------------- plain flax.nnx: compile, first passes
    fixed = PlainFlaxRunner(V, K)
    per_batch = PlainFlaxRunner(V, K)
    timed[ROWS[1]] = plain_batches(ids, labels, args.steps, B, pad, max_len + 2 * pad)
    timed[ROWS[2]] = plain_batches(ids, labels, args.steps, B, pad, None)
    with log.window() as fixed_c:
        fixed.run(timed[ROWS[1]][:1])
    t0 = time.perf_counter()
    with log.window() as pb_c:
        n, _ = per_batch.run(timed[ROWS[2]])
    pb_first = time.perf_counter() - t0
    res["plain_compiles"] = {"fixed": len(fixed_c), "fixed_s": sum(d for _, d in fixed_c),
                             "per_batch": len(pb_c), "per_batch_s": sum(d for _, d in pb_c),
                             "per_batch_lengths": len({t.shape[1] for t, _, _ in timed[ROWS[2]]}),
                             "per_batch_first_pass": n / pb_first}
    runners = {"jaxconv": jx, ROWS[1]: fixed, ROWS[2]: per_batch}
    for name in runners:  # warm-up: allocations, caches
        runners[name].run(timed[name][:1 if args.quick else 2])

    # ---------------------------------------------------------------- JAX rows, interleaved in rounds
    # A round runs every row's `steps` batches, in chunks of CHUNK steps: chunk k of each row (rows in a fresh random
    # order), then chunk k+1, ..., so a burst of load from other processes falls on all rows alike. A row's round time
    # is the sum of its chunks (each ends when its last step's outputs are ready).
    rng = np.random.default_rng(0)
    rates = {name: [] for name in ROWS}
    losses, round_compiles = {}, collections.Counter()
    names = list(runners)
    for _ in range(args.rounds):
        spent, seen = collections.Counter(), collections.Counter()
        for k in range(0, args.steps, CHUNK):
            for i in rng.permutation(len(names)):
                name = names[i]
                with log.window() as c:
                    t0 = time.perf_counter()
                    n, losses[name] = runners[name].run(timed[name][k: k + CHUNK])
                    spent[name] += time.perf_counter() - t0
                seen[name] += n
                round_compiles[name] += len(c)
        for name in names:
            rates[name].append(seen[name] / spent[name])

    if args.breakdown:
        res["breakdown"] = breakdown(config, data, jx, args.breakdown)

    # ---------------------------------------------------------------- PyTorch eager, a phase of its own
    if torch is not None:
        torch_batches = timed[ROWS[1]][:args.torch_steps]  # fixed length: examples/s does not depend on which
        per_batch_torch = timed[ROWS[2]][:args.torch_steps]
        cores = os.cpu_count() or 1
        configs = ([(ROWS[3], cores, torch_batches)] + ([(ROWS[4], 1, torch_batches)] if cores > 1 else [])
                   + [(ROWS[5], cores, per_batch_torch)])
        tr = TorchRunner(V, K)  # one model for every setting (it just trains on)
        for name, threads, batches in configs:
            torch.set_num_threads(threads)
            time.sleep(0.2 if args.quick else 0.5)  # let the previous phase's worker threads go idle
            timed[name] = batches
            tr.run(batches[:1 if args.quick else 2])
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                n, losses[name] = tr.run(batches)
                rates[name].append(n / (time.perf_counter() - t0))
        torch.set_num_threads(cores)
    log.close()
    res.update(rates={k: v for k, v in rates.items() if v}, losses=losses, round_compiles=dict(round_compiles),
               examples={k: float(sum(_weights(b).sum() for b in v)) for k, v in timed.items()},
               lengths={k: float(np.mean([_tokens(b).shape[1] for b in v])) for k, v in timed.items()},
               total_s=time.perf_counter() - t_start)
    return res


def breakdown(config, data, jx: JaxconvRunner, reps: int) -> dict:
    """Where jaxconv's step time goes, per bucket length: the trainer's step with the embedding table trained (as
    timed above) and frozen (``embedding="static"``: the same forward pass, but no ``(V, D)`` gradient scatter and no
    dense Adadelta update of the table and its two accumulators). Steps timed one at a time, interleaved."""
    frozen_config = config.copy_and_resolve_references()
    frozen_config.model.embedding = "static"
    frozen = JaxconvRunner(frozen_config, data)
    first = {}
    for b in data.train.epoch(0):
        first.setdefault(b.tokens.shape[1], b)
    fns = {}
    for length, b in sorted(first.items()):
        fns[("trained", length)] = functools.partial(jx.run, [b])
        fns[("frozen", length)] = functools.partial(frozen.run, [b])
    for fn in fns.values():
        fn()
        fn()
    times = {k: [] for k in fns}
    rng = np.random.default_rng(1)
    keys = list(fns)
    for _ in range(reps):
        for i in rng.permutation(len(keys)):
            t0 = time.perf_counter()
            fns[keys[i]]()
            times[keys[i]].append(time.perf_counter() - t0)
    steps = collections.Counter(b.tokens.shape[1] for b in data.train.epoch(0))
    return {"ms": {k: 1e3 * statistics.median(v) for k, v in times.items()}, "steps": dict(steps), "reps": reps}


def _tokens(batch):
    return batch.tokens if hasattr(batch, "tokens") else batch[0]


def _weights(batch):
    return batch.weights if hasattr(batch, "weights") else batch[2]


def report(res: dict) -> None:
    med = {k: statistics.median(v) for k, v in res["rates"].items()}
    print()
    header = f"{'implementation':<36}{'examples/s':>11}{'min':>7}{'max':>7}{'mean L':>8}{'steps':>7}{'ex/round':>9}" \
             f"{'loss':>7}"
    print(header)
    print("-" * len(header))
    for name in ROWS:
        if name not in med:
            print(f"{name:<36}{'(not run: torch missing or 1 CPU core)':>40}")
            continue
        r = res["rates"][name]
        steps = res["torch_steps"] if name in ROWS[3:] else res["steps"]
        print(f"{name:<36}{med[name]:>11.0f}{min(r):>7.0f}{max(r):>7.0f}{res['lengths'][name]:>8.1f}{steps:>7}"
              f"{res['examples'][name]:>9.0f}{res['losses'][name]:>7.3f}")
    print(f"(examples/s: median over {res['rounds']} rounds, min and max beside it; mean L: mean padded length of the "
          f"timed batches (a whole jaxconv epoch: {res['epoch_mean_len']:.1f}); loss: the last step's)")
    pc = res["plain_compiles"]
    print(f"plain flax.nnx per-batch length, its first pass over the {res['steps']} timed steps: {pc['per_batch']} "
          f"compiles for {pc['per_batch_lengths']} distinct lengths, {pc['per_batch_s']:.1f} s compiling, "
          f"{pc['per_batch_first_pass']:.0f} examples/s")
    print()
    j = med["jaxconv"]
    for name in ROWS[1:]:
        if name not in med:
            continue
        ratio = j / med[name]
        if name in PRIMARY:
            target = TARGETS[PRIMARY[name]]
            print(f"jaxconv / {name}: {ratio:.2f}x  (target >= {target:g}x: {'met' if ratio >= target else 'NOT met'})")
        else:
            print(f"jaxconv / {name}: {ratio:.2f}x  (secondary row, no target"
                  + ("; compiled, steady state)" if name == ROWS[2] else ")"))
    e = res["jaxconv_epoch"]
    nb, ne = len(res["buckets"]), len(res["dev_buckets"])
    total, limit = e["train_compiles"] + e["eval_compiles"], nb + ne
    span = (f"one full epoch ({e['steps']} steps)" if e["full"] else f"two batches per bucket ({e['steps']} steps, "
                                                                        f"--quick)")
    print()
    print(f"jaxconv compiles per epoch, {span} + dev eval: train {e['train_compiles']} + eval {e['eval_compiles']} "
          f"= {total} <= buckets {nb} + eval buckets {ne} = {limit}: {'ok' if total <= limit else 'EXCEEDED'}")
    print(f"  trainer trace counter: train {e['train_traces']}, eval {e['eval_traces']}; compiled: "
          + ", ".join(f"{k} x{v}" for k, v in sorted(e["compiled"].items()))
          + f"; XLA compile time {e['compile_s']:.1f} s (train {e['train_compile_s']:.1f} s)")
    print(f"  that epoch: {e['train_s']:.1f} s of training, {e['train_s'] - e['train_compile_s']:.1f} s without the "
          f"XLA compile time (tracing and lowering still in) = "
          f"{e['examples'] / max(e['train_s'] - e['train_compile_s'], 1e-9):.0f} examples/s; dev eval {e['eval_s']:.1f} s")
    print(f"plain flax.nnx fixed length: {pc['fixed']} compile ({pc['fixed_s']:.1f} s)")
    rc = res["round_compiles"]
    print(f"compiles during the timed rounds: {sum(rc.values())}"
          + (" (" + ", ".join(f"{k}: {v}" for k, v in rc.items() if v) + ")" if sum(rc.values()) else ""))
    if "breakdown" in res:
        bd = res["breakdown"]
        ms, steps = bd["ms"], bd["steps"]
        print()
        print(f"jaxconv step time by bucket (median of {bd['reps']} single steps, interleaved); 'frozen': the same step "
              f"with the embedding table not trained (no gradient w.r.t. the word vectors, no table update)")
        print(f"{'L':>4}{'steps/epoch':>13}{'trained ms':>12}{'frozen ms':>11}{'embedding training share':>26}")
        for length in sorted(steps):
            t, f = ms[("trained", length)], ms[("frozen", length)]
            print(f"{length:>4}{steps[length]:>13}{t:>12.1f}{f:>11.1f}{(t - f) / t:>26.0%}")
        n = sum(steps.values())
        top = max(steps)
        t_epoch = sum(c * ms[("trained", L)] for L, c in steps.items()) / n
        f_epoch = sum(c * ms[("frozen", L)] for L, c in steps.items()) / n
        print(f"epoch mix: {t_epoch:.1f} ms/step trained, {f_epoch:.1f} frozen. Over this same step padded to L={top} "
              f"(what fixed-length padding does), buckets alone give {ms[('trained', top)] / t_epoch:.2f}x; with the "
              f"embedding training as cheap as a frozen table's, {ms[('trained', top)] / f_epoch:.2f}x")
    print(f"({res['total_s']:.0f} s in all, {res['data_s']:.1f} s of it loading and tokenizing MR)")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=None, help="train steps per round and row (default 25; "
                                                                  "--quick: 1)")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds per row (default 3; --quick: 1)")
    parser.add_argument("--torch-steps", type=int, default=None, help="PyTorch steps per round (default 6; "
                                                                        "--quick: 1); it is slow and its batches "
                                                                        "all have the same shape")
    parser.add_argument("--breakdown", type=int, nargs="?", const=10, default=0, metavar="REPS",
                        help="also time jaxconv's step per bucket with the embedding table trained vs frozen "
                             "(REPS single steps each, default 10; about a minute more)")
    parser.add_argument("--quick", action="store_true", help="tiny run (tests): few steps, one round, the compile "
                                                             "count over two batches per bucket instead of a full epoch")
    parser.add_argument("--data", default=None, help="directory holding rt-polarity.all (default: $JAXCONV_DATA or "
                                                     "../shared/datasets/sentences)")
    args = parser.parse_args(argv)
    args.steps = args.steps if args.steps is not None else (1 if args.quick else 25)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 3)
    args.torch_steps = args.torch_steps if args.torch_steps is not None else (1 if args.quick else 6)
    args.torch_steps = min(args.torch_steps, args.steps)
    if args.steps < 1 or args.rounds < 1 or args.torch_steps < 1:
        parser.error(f"--steps, --rounds and --torch-steps must be >= 1; got {args.steps}, {args.rounds}, "
                     f"{args.torch_steps}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print(f"Kim CNN training on MR (fold 0 train part), batch 50, Adadelta + max-norm 3: {args.rounds} rounds (median) "
          f"of {args.steps} steps per JAX row, interleaved {CHUNK} steps at a time in random order; PyTorch "
          f"({args.torch_steps} steps per round) in a phase of its own")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} CPU cores), "
          f"torch {torch.__version__ if torch is not None else 'not installed'}; "
          f"load average at start {os.getloadavg()[0]:.2f}")
    res = benchmark(args)
    print(f"data: {res['train_examples']} training sentences, vocabulary {res['vocab']}; jaxconv buckets "
          f"{res['buckets']} holding {res['bucket_sizes']} sentences ({res['steps_per_epoch']} steps/epoch); plain "
          f"rows: longest sentence {res['max_len']} + 4 + 4 = {res['fixed_len']}")
    report(res)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
