"""``dump_activations``: stream a split (or a text file) through a trained run's convolutions into a Zarr store.

One padded length per dump (the longest example, rounded up to a multiple of 8; a fixed-length model's own length),
one batch shape, so the jitted step compiles once. Batches are sharded over every device like training
(:mod:`jaxconv.train.mesh`); on several processes each computes and writes its own rows (:mod:`jaxconv.dump.hosts`).
Rows go to the store in whole chunk blocks through a buffer of one block, with encoding, the device's steps and the
writes overlapped and a bounded number of batches in flight (:mod:`jaxconv.dump.pipeline`), so memory does not grow
with the number of examples. The store's layout: :mod:`jaxconv.dump` (its module docstring).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv._args import check_index, check_texts
from jaxconv.dump import store as dstore
from jaxconv.dump.adapters import get_adapter
from jaxconv.dump import hosts, pipeline
from jaxconv.dump.layout import array_specs, constants, layer_facts, rows_per_chunk
from jaxconv.dump.sources import SPLITS, FileSource, SplitSource, TextSource
from jaxconv.footprint import check_fits, model_footprint
from jaxconv.interrupts import Interrupted
from jaxconv.paths import naming_write_errors

__all__ = ["dump_activations", "DumpResult", "DTYPES", "resolve_layers", "dump_path"]

log = logging.getLogger("jaxconv")

#: What ``dtype=`` may be: the maps' dtype on disk (pooled values and probabilities stay float32).
DTYPES = ("float32", "float16")
SPAN_RULE = ("output position t of a layer sees the padded token positions [rf_start + t*rf_jump, rf_start + "
             "t*rf_jump + rf_size), clipped to [0, padded_length): spans/<layer> holds them as (start, end) rows. "
             "Example i's words are at tokens[i, starts[i]:starts[i] + lengths[i]] (starts[i] = pad_left when the "
             "store has no starts array); argmax/<layer> and pooled/<layer> "
             "take the max over the positions whose span holds at least one of them.")


@dataclasses.dataclass(frozen=True)
class DumpResult:
    """What :func:`dump_activations` wrote: ``path`` (the store), ``name``, ``num_examples``, ``layers``,
    ``resumed_from`` (rows found written by an interrupted run), ``seconds`` and ``examples_per_s`` (of this call:
    restoring the run, reading the input and compiling included), ``stream_seconds`` (the batches alone, compiled
    beforehand, from the first dispatch to the last row written), ``checkpoint_step``."""

    path: str
    name: str
    num_examples: int
    layers: tuple[str, ...]
    resumed_from: int
    seconds: float
    examples_per_s: float
    stream_seconds: float
    checkpoint_step: int


def dump_path(workdir, name: str):
    """``RUN/dumps/<name>/activations.zarr``."""
    return dstore.dump_dir(workdir, name) / dstore.STORE_NAME


def resolve_layers(model: nnx.Module, layers: str | Sequence[str] | None) -> list[str]:
    """``layers`` (a comma-separated string or a list; None: every conv) checked against the model's conv paths."""
    from jaxconv.inspection import conv_paths

    available = conv_paths(model)
    if layers is None or layers == "":
        return available
    names = [s.strip() for s in layers.split(",")] if isinstance(layers, str) else list(layers)
    for name in names:
        if name not in available:
            raise ValueError(f"--layers: {name!r} is not a convolution of this {type(model).__name__}; its layers "
                             f"are {', '.join(available)}.")
    return list(dict.fromkeys(names))


def _lock(final):
    """The store's lock, ``<final>.lock`` (process 0 holds it for every process): a second dump refuses."""
    from jaxconv import locks

    return locks.hold(f"{os.fspath(final)}{locks.LOCK_SUFFIX}", "dump", enabled=jax.process_index() == 0)


def _check_args(split, input, dtype, batch_size, name):
    if split is not None and input is not None:
        raise ValueError(f"--split {split!r} and --input {input}: give one (a split of the run's dataset, or a file).")
    if dtype not in DTYPES:
        raise ValueError(f"--dtype {dtype!r} is not supported; expected one of {', '.join(DTYPES)}.")
    if input is None and split is not None and split not in SPLITS:
        raise ValueError(f"--split {split!r} is not known; expected one of {', '.join(SPLITS)}.")
    if batch_size is not None and (isinstance(batch_size, bool) or int(batch_size) < 1):
        raise ValueError(f"--batch-size {batch_size!r} must be an int >= 1.")
    if name is not None and (not name or "/" in name or name.startswith(".")):
        raise ValueError(f"--name {name!r} is not a usable dump name; expected a plain folder name.")


def _data_option(run, field: str, default):
    """``run.config.data.<field>``, or ``default`` when the run's config has none (an imported model's)."""
    try:
        value = run.config.data[field]
    except (AttributeError, KeyError, TypeError):
        return default
    return default if value is None else value


def _source(run, split: str, input, format: str | None = None) -> TextSource:
    if input is not None:
        origin = "--format" if format is not None else "the run's config.data.format"
        return FileSource(input, format=format or _data_option(run, "format", "auto"),
                          text_field=_data_option(run, "text_field", ""),
                          label_field=_data_option(run, "label_field", "label"),
                          on_error=_data_option(run, "on_error", "raise"), label_names=run.label_names, origin=origin)
    if run.source is not None:
        raise ValueError(f"--split {split!r}: {run.workdir} holds an imported model, which has no dataset; give "
                         f"--input FILE (one sentence per line, optionally after an integer label).")
    from jaxconv.train.tasks import task_of

    if task_of(run.config).name == "next_token":   # a language model: the lines of the split it trained with
        from jaxconv.data.lm import split_corpus

        lines = split_corpus(run.config)[split]
        return SplitSource(split, lines, None, f"split {split} of {run.config.data.name} ({len(lines)} lines)")
    from jaxconv.data.pipeline import load_dataset, split_dataset

    ds, _ = split_dataset(load_dataset(run.config), run.config)
    part = getattr(ds, split)
    if part is None:
        have = ", ".join(s for s in SPLITS if getattr(ds, s) is not None)
        raise ValueError(f"--split {split!r}: dataset {ds.name!r} has no such split here; it has {have}.")
    return SplitSource(split, part.texts, part.labels, f"split {split} of {ds.name} ({part.path})")




def _make_step(model, adapter, layers, spans, dtype, mesh):
    from jaxconv.inspection import feature_maps
    from jaxconv.train import mesh as jmesh

    graphdef, state = nnx.split(model)
    spans = {k: jnp.asarray(v) for k, v in spans.items()}

    def step(state, tokens, starts, lengths):
        m = nnx.merge(graphdef, state)
        maps = feature_maps(m, tokens, layers=layers)                                  # {layer: (B, P, F)}
        out = {}
        lo, hi = starts[:, None], (starts + lengths)[:, None]                          # (B, 1), (B, 1)
        for layer in layers:
            x = maps[layer]                                                            # (B, P, F)
            s, e = spans[layer][:, 0], spans[layer][:, 1]                              # (P,), (P,)
            valid = (e[None] > lo) & (s[None] < hi) & (e > s)[None]                    # (B, P)
            valid = valid | ~valid.any(axis=1, keepdims=True)                          # no word at all: every position
            masked = jnp.where(valid[..., None], x, -jnp.inf)                          # (B, P, F)
            out[f"maps/{layer}"] = x.astype(dtype)
            out[f"pooled/{layer}"] = masked.max(axis=1).astype(jnp.float32)            # (B, F)
            out[f"argmax/{layer}"] = masked.argmax(axis=1).astype(jnp.int32)           # (B, F)
        logits = adapter.logits(m, tokens)                                             # (B, K) or None
        if logits is not None:
            out["probabilities"] = jax.nn.softmax(logits.astype(jnp.float32), axis=-1)  # (B, K)
            out["predictions"] = logits.argmax(axis=-1).astype(jnp.int32)             # (B,)
        return out

    data = jmesh.data_sharding(mesh)
    jitted = jax.jit(step, in_shardings=(jmesh.replicated_sharding(mesh), data, data, data), out_shardings=data)
    return jitted, jmesh.replicate(state, mesh)


def weights_digest(model) -> str:
    """A hash of every parameter's bytes: a partial dump of other weights (a model in memory changed between two
    calls with one ``path``, a checkpoint written again at the same step) is never resumed into."""
    digest = hashlib.sha256()
    for path, value in sorted(nnx.to_flat_state(nnx.state(model, nnx.Param)), key=lambda kv: str(kv[0])):
        array = np.asarray(value[...])
        digest.update(f"{path}{array.dtype}{array.shape}".encode())
        digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def dump_activations(workdir=None, *, split: str | None = None, input=None, format: str | None = None,
                     layers: str | Sequence[str] | None = None,
                     dtype: str = "float32", checkpoint: str | int = "best", batch_size: int | None = None,
                     name: str | None = None, overwrite: bool = False, chunk_rows: int | None = None,
                     model=None, texts: Sequence[str] | None = None, labels: Sequence[int] | None = None,
                     vocab=None, tokenizer: str = "whitespace", path=None) -> DumpResult:
    """Dump every chosen conv's feature maps of a split (or a text file) through a trained run's model; or, with
    ``model=``, of ``texts`` through a model held in memory.

    Args:
      workdir: the training (or imported) run's directory (local or ``gs://``).
      split: ``"test"`` (the default without ``input``), ``"dev"`` or ``"train"``, as training split the data (same
        fold and hold-out).
      input: a file to dump instead of a split, read as training reads its files (:mod:`jaxconv.dump.sources`).
      format: how to read ``input``: ``"auto"``, ``"label_text"``, ``"tsv"``, ``"csv"``, ``"jsonl"`` or ``"text"``
        (one sentence per line, no labels); default the run's ``config.data.format``.
      layers: conv paths (``"convs/0,convs/2"`` or a list); default every conv of the model.
      dtype: ``"float32"`` or ``"float16"``: the maps on disk.
      checkpoint: ``"best"`` (default), ``"latest"`` or a step (:func:`jaxconv.load_run`).
      batch_size: rows per step; default ``config.train.eval_batch_size`` (or ``batch_size``), rounded up to a
        multiple of the device count. A given one must divide over the devices.
      name: the dump's name; default the split, or the input file's stem.
      overwrite: replace a complete dump of that name (the old one stays until the new one is complete).
      chunk_rows: examples per chunk; default so that one filter's chunk of a map is about 256 KiB.
      model, texts, labels, vocab, tokenizer, path: a dump with no workdir (a notebook's model): the model (an
        ``nnx.Module`` from token ids to logits, or a :class:`jaxconv.Run`), the texts and their optional labels,
        its vocabulary (a ``Vocab``, a list of tokens or a token -> id dict; not needed for a Run) and tokenizer
        name, and the store's ``path`` (:func:`jaxconv.dump.memory.memory_run`). One str is one text
        (:mod:`jaxconv._args`); each label is a class index in ``[0, num_classes)``.

    Returns:
      :class:`DumpResult`; the store is at ``RUN/dumps/<name>/activations.zarr``.

    Raises:
      ValueError: a bad argument (the message names it and what was expected), an unknown layer (listing the
        layers), an empty input file, or a complete dump of that name without ``overwrite``.
      FileNotFoundError: no workdir, config, vocabulary or checkpoint.
    """
    from jaxconv import __version__
    from jaxconv.train import mesh as jmesh
    from jaxconv.runs import check_run_folder, load_run

    t0 = time.perf_counter()
    _check_args(split, input, dtype, batch_size, name)
    if format is not None and input is None:
        raise ValueError(f"--format {format!r} reads an --input file; give --input FILE, or leave --format out.")
    jmesh.maybe_initialize_distributed()      # JAXCONV_DISTRIBUTED=1: before anything touches the devices
    meetings = hosts.Meetings()               # several processes: where they wait for each other
    with contextlib.ExitStack() as held:    # the store's lock (jaxconv.locks), from before it is read
        held.push(meetings)                   # an error on the way out tells the other processes
        if model is not None:
            if texts is None or path is None or workdir is not None:
                raise ValueError("dump_activations(model=...): give texts= and path= (where the store goes), and no "
                                 "workdir.")
            from jaxconv.dump.memory import memory_run
            from jaxconv.paths import as_path

            texts = check_texts("dump_activations", "texts", texts)
            name, final = name or "texts", as_path(path)
            if not overwrite:
                dstore.refuse_complete(final)
            held.enter_context(_lock(final))
            run = memory_run(model, vocab, tokenizer)
            if labels is not None:
                if len(labels) != len(texts):
                    raise ValueError(f"dump_activations: {len(labels)} labels for {len(texts)} texts; expected one "
                                     f"class per text (or labels=None).")
                labels = [check_index("dump_activations", f"labels[{i}]", x, run.num_classes)
                          for i, x in enumerate(labels)]
            source = SplitSource(name, texts, labels, f"{len(texts)} texts in memory")
        elif workdir is None:
            raise ValueError("dump_activations: give workdir (a run folder), or model=, texts= and path=.")
        else:
            split = split or "test"
            name = name or (FileSource(input).name if input is not None else split)
            check_run_folder(workdir)           # nothing is made inside a folder that is no run
            final = dump_path(workdir, name)
            if not overwrite:  # before the slow part: nothing is read or written
                dstore.refuse_complete(final)
            held.enter_context(_lock(final))
            run = load_run(workdir, checkpoint)
            source = _source(run, split, input, format)
        layers = resolve_layers(run.model, layers)
        scan = source.scan(run.tokenize, run.num_classes)
        fixed = run.fixed_length                        # a fixed-length model (the character CNN) reads one length
        length = fixed or -(-max(run.pad_left + scan.max_tokens + run.pad_right, run.min_length) // 8) * 8
        mesh = jmesh.make_mesh()
        ndev = mesh.devices.size
        if batch_size is None:
            batch_size = -(-int(run.config.train.eval_batch_size or run.config.train.batch_size) // ndev) * ndev
        jmesh.check_batch_size(int(batch_size), mesh, name="--batch-size")
        check_fits(model_footprint(run.config, model=run.model), batch=int(batch_size), length=length,
                   batch_field="--batch-size", length_field="--input", training=False, devices=ndev,
                   length_fix="split the longest texts into shorter ones")
        facts, spans = layer_facts(run.model, layers, length)
        rows = rows_per_chunk(facts, dtype, scan.num_examples, chunk_rows)
        adapter = get_adapter(run.config)
        n, K = scan.num_examples, run.num_classes

        specs = array_specs(n, length, rows, layers, facts, dtype, scan.has_labels)
        here, local_batch = hosts.local_mesh(int(batch_size))     # several processes: this one's devices and rows
        step, state = _make_step(run.model, adapter, layers, spans, dtype, here)
        sharded = jmesh.data_sharding(here)
        rows_of = jax.ShapeDtypeStruct((local_batch,), jnp.int32, sharding=sharded)
        step = step.lower(state, jax.ShapeDtypeStruct((local_batch, length), jnp.int32, sharding=sharded), rows_of,
                          rows_of).compile()                                                # the one compile
        probe = step.out_info                                                                # {name: (shape, dtype)}
        if "predictions" in probe:
            specs["predictions"] = dstore.ArraySpec((n,), "int32", (rows,), ("example",))
            specs["probabilities"] = dstore.ArraySpec((n, K), "float32", (rows, K), ("example", "class"))

        consts, embedded = constants(run, adapter, layers, spans)

        attrs = dict(name=name, source=source.description, layers=layers, layer_info=facts, span_rule=SPAN_RULE,
                     embedded_layers=embedded,
                     vocabulary=str(run.workdir / "vocab.json") if run.workdir is not None else None,
                     workdir=str(run.workdir) if run.workdir is not None else None, config=json.loads(run.config.to_json_best_effort()),
                     checkpoint=str(run.checkpoint), checkpoint_step=run.step, dtype=dtype, jaxconv_version=__version__,
                     num_examples=n, padded_length=length, pad_left=run.pad_left, pad_right=run.pad_right,
                     tokenizer=run.tokenizer, num_classes=K, label_names=run.label_names, has_labels=scan.has_labels,
                     chunk_rows=rows, batch_size=int(batch_size), devices=int(ndev), model=type(run.model).__name__,
                     unk_id=getattr(run.vocab, "unk_id", 1), padding=run.padding, truncating=run.truncating,
                     imported_from=run.source)
        fp = dstore.fingerprint(input=scan.fingerprint, step=run.step, checkpoint=str(run.checkpoint), layers=layers,
                                weights=weights_digest(run.model), vocabulary=len(run.vocab),
                                dtype=dtype, length=length, rows=rows, n=n, specs=sorted(specs), version=dstore.FORMAT)
        held.enter_context(naming_write_errors(final.parent / (final.name + dstore.PARTIAL), "the dump"))
        process, ranges = jax.process_index(), hosts.row_ranges(n, rows, jax.process_count())
        if process == 0:   # makes (or resumes) the partial store; on several processes, before the others open it
            writer = dstore.StoreWriter(final, specs, consts, attrs, fp, overwrite=overwrite, ranges=ranges)
        meetings.meet("the store was made")
        if process != 0:
            writer = dstore.StoreWriter.join(final, specs, process)
        (lo, end), start = ranges[process], writer.next_row
        found = sum(r - a for r, (a, _) in zip(writer.next_rows, ranges))    # rows written by an earlier run
        mine = f", process {process} of {len(ranges)}: rows [{lo}, {end})" if len(ranges) > 1 else ""
        log.info("dump %s: %d examples (%s), padded length %d, layers %s, %s, batch %d on %d device(s), chunk %d "
                 "rows%s%s", name, n, source.description, length, ", ".join(layers), dtype, batch_size, ndev, rows,
                 mine, f", resuming at row {start}" if start > lo else "")
        t1 = time.perf_counter()
        try:
            pipeline.stream(source, start, end, rows, local_batch, run, step, state, here, specs, writer)
        except KeyboardInterrupt:
            done = writer.next_row
            raise Interrupted(f"the dump stopped with {done - lo} of {end - lo} rows{mine} written to {writer.partial}"
                              f"; the same command resumes it from row {done}.") from None
        stream = time.perf_counter() - t1
        meetings.meet("every process wrote its rows")
        path = writer.finish({"seconds": round(time.perf_counter() - t0, 3)}) if process == 0 else final
        meetings.meet("process 0 marked the store complete")
        meetings.close()
        seconds = time.perf_counter() - t0
        return DumpResult(path=str(path), name=name, num_examples=n, layers=tuple(layers), resumed_from=found,
                          seconds=seconds, examples_per_s=(n - found) / max(seconds, 1e-9), stream_seconds=stream,
                          checkpoint_step=run.step)
