"""The two rows that ``benchmarks/dump.py`` sets beside a dump: its ceiling and what a PyTorch user would write.

Both read the sentences as the dump encoded them (its store's ``tokens``, ``(N, L)``), in the dump's batch size, so
the three rows see the same rows in the same batches:

- **ceiling**: the dump's own compiled step (:func:`jaxconv.dump.runner._make_step`: every conv's maps in the dump's
  dtype, their pooled values and argmax, the probabilities), each batch's outputs brought to the host with
  ``np.asarray``; no encoding and no disk. The dump's stream can reach it only when encoding, the transfer and the
  writes are all hidden behind the device's work.
- **PyTorch peer**: the same model in torch (weights copied from the run: the embedding, each conv's kernel turned
  from (width, in, out) to torch's (out, in, width), the classifier), a forward hook on each conv's
  ``Sequential(Conv1d, ReLU)`` that appends its maps (torch's (batch, filters, positions)) in the dtype to one
  ``np.memmap`` per layer, flushed at the end. The first batch's maps are checked against the jaxconv ones.

Run as ``python benchmarks/dump_peers.py RUN STORE`` it prints ``{"ceiling": examples/s, "torch": examples/s or
null, "torch_skipped": reason or null}`` as one JSON line.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def ceiling(run, tokens: np.ndarray, batch_size: int, dtype: str, layers: list[str], spans: dict) -> float:
    """Examples/s of the dump's compiled step over ``tokens`` ``(N, L)``, outputs to the host, no disk."""
    import jax
    import jax.numpy as jnp

    from jaxconv.dump.adapters import get_adapter
    from jaxconv.dump.runner import _make_step
    from jaxconv.train import mesh as jmesh

    mesh = jmesh.make_mesh()
    step, state = _make_step(run.model, get_adapter(run.config), layers, spans, dtype, mesh)
    n, length = tokens.shape
    starts = np.full(n, run.pad_left, np.int32)
    lengths = np.maximum((tokens != 0).sum(1), 1).astype(np.int32)     # (N,): the pooling masks, as in a dump
    batches = []
    for i in range(0, n, batch_size):
        feed = {"tokens": tokens[i:i + batch_size], "starts": starts[i:i + batch_size],
                "lengths": lengths[i:i + batch_size]}
        real = len(feed["tokens"])
        if real < batch_size:
            fill = np.zeros(batch_size - real, np.int64)
            feed = {k: np.concatenate([v, v[fill]]) for k, v in feed.items()}
        batches.append(feed)
    sharded = jmesh.data_sharding(mesh)
    rows = jax.ShapeDtypeStruct((batch_size,), jnp.int32, sharding=sharded)
    step = step.lower(state, jax.ShapeDtypeStruct((batch_size, length), jnp.int32, sharding=sharded), rows,
                      rows).compile()
    t = time.perf_counter()
    pending = None
    for feed in batches:                                   # one batch dispatched ahead, as the dump does
        arrays = jmesh.shard_batch(feed, mesh)
        out = step(state, arrays["tokens"], arrays["starts"], arrays["lengths"])
        if pending is not None:
            jax.tree.map(np.asarray, pending)
        pending = out
    jax.tree.map(np.asarray, pending)
    return n / (time.perf_counter() - t)


def torch_peer(run, tokens: np.ndarray, batch_size: int, dtype: str, layers: list[str], check: dict) -> float:
    """Examples/s of the PyTorch user's loop (module docstring); ``check``: ``{layer: (B0, P, F)}`` jaxconv maps of
    the first batch, which the torch maps must equal (to float32 rounding)."""
    import torch
    from torch import nn

    model = run.model
    widths = [model.convs[int(la.split("/")[1])].kernel[...].shape[0] for la in layers]
    emb = nn.Embedding(*np.asarray(model.embedding[...]).shape, padding_idx=0)
    emb.weight.data = torch.from_numpy(np.array(model.embedding[...]))
    blocks = nn.ModuleList()
    for la, w in zip(layers, widths):
        conv = model.convs[int(la.split("/")[1])]
        k = np.asarray(conv.kernel[...])                                            # (w, C, F)
        c = nn.Conv1d(k.shape[1], k.shape[2], w)
        c.weight.data = torch.from_numpy(np.ascontiguousarray(k.transpose(2, 1, 0)))  # (F, C, w)
        c.bias.data = torch.from_numpy(np.array(conv.bias[...]))
        blocks.append(nn.Sequential(c, nn.ReLU()))
    head = nn.Linear(*np.asarray(model.classifier.kernel[...]).shape)
    head.weight.data = torch.from_numpy(np.ascontiguousarray(np.asarray(model.classifier.kernel[...]).T))
    head.bias.data = torch.from_numpy(np.array(model.classifier.bias[...]))

    n, length = tokens.shape
    folder = Path(tempfile.mkdtemp(prefix="jaxconv-bench-torch-"))
    outs = [np.lib.format.open_memmap(folder / f"{i}.npy", mode="w+", dtype=dtype,
                                      shape=(n, check[la].shape[2], length - w + 1))
            for i, (la, w) in enumerate(zip(layers, widths))]                        # (N, F, P) per layer
    at = [0]

    def hook(i):
        def save(module, inputs, output):                                           # output (B, F, P)
            outs[i][at[0]:at[0] + len(output)] = output.detach().numpy()
        return save

    for i, b in enumerate(blocks):
        b.register_forward_hook(hook(i))

    def forward(x):
        e = emb(x).transpose(1, 2)                                                  # (B, C, L)
        pooled = [b(e).max(dim=2).values for b in blocks]
        return torch.softmax(head(torch.cat(pooled, dim=1)), dim=1)

    ids = torch.from_numpy(tokens.astype(np.int64))
    with torch.inference_mode():
        forward(ids[:batch_size])
        for i, la in enumerate(layers):
            ref = check[la]
            got = outs[i][:len(ref)].astype(np.float32).transpose(0, 2, 1)
            np.testing.assert_allclose(got, ref.astype(np.float32), atol=2e-3 if dtype == "float16" else 1e-4,
                                       err_msg=f"torch peer: {la} differs from jaxconv's maps")
        t = time.perf_counter()
        for s in range(0, n, batch_size):
            at[0] = s
            forward(ids[s:s + batch_size])
        for m in outs:
            m.flush()
        seconds = time.perf_counter() - t
    for p in folder.iterdir():
        p.unlink()
    folder.rmdir()
    return n / seconds


def main(run_dir: str, store: str) -> dict:
    import jaxconv
    from jaxconv.dump import load_dump

    d = load_dump(store)
    attrs = dict(d.group.attrs)
    run = jaxconv.load_run(run_dir)
    tokens = d.group["tokens"][:]                                                   # (N, L)
    layers = list(attrs["layers"])
    spans = {la: d.group[f"spans/{la}"][:] for la in layers}
    result = {"ceiling": ceiling(run, tokens, attrs["batch_size"], attrs["dtype"], layers, spans),
              "torch": None, "torch_skipped": None}
    try:
        import torch  # noqa: F401
    except ImportError:
        result["torch_skipped"] = "torch is not installed (pip install torch)"
        return result
    if type(run.model).__name__ != "TextCNN" or getattr(run.model, "embedding_kind", "") != "rand":
        result["torch_skipped"] = f"the torch peer is written for TextCNN-rand, not {type(run.model).__name__}"
        return result
    check = {la: d.group[f"maps/{la}"][:attrs["batch_size"]] for la in layers}
    result["torch"] = torch_peer(run, tokens, attrs["batch_size"], attrs["dtype"], layers, check)
    return result


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
