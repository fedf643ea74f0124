"""Ablating every filter: one vmapped program over the filter masks, next to a loop of one forward pass per filter.

    python benchmarks/ablation.py             # Kim's CNN-rand shape: 300-d vectors, 100 filters each of widths 3, 4, 5
    python benchmarks/ablation.py --quick     # a small CNN (smoke test)

Both compute, for one batch of 50 examples of 64 tokens, the correct count and the true-class logit sum with each
filter zeroed (300 ablations plus the unablated model): ``vmapped`` runs them as the masks axis of one compiled
program (``jaxconv.dump.ablation``, ``masks_per_call`` masks per call); ``loop`` calls one compiled forward pass per
mask, as a hand-written ablation does. Timed call by call, taking turns (``harness.interleaved_calls``); the ratio
is loop time / vmapped time (above 1: the vmapped program is faster). Weights are random: the work does not depend
on them.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.dump.ablation import _program, masked_logits
from jaxconv.models import TextCNN

harness = __import__("runpy").run_path(str(pathlib.Path(__file__).resolve().parent / "harness.py"))


def run(*, quick: bool = False, reps: int = 5, masks_per_call: int = 128) -> dict:
    dim, filters, vocab = (32, 8, 500) if quick else (300, 100, 20000)
    model = TextCNN(vocab, 2, embed_dim=dim, widths=(3, 4, 5), filters=filters, rngs=nnx.Rngs(0))
    model.eval()
    layers = ("convs/0", "convs/1", "convs/2")
    total = 3 * filters
    masks = np.ones((total + 1, total), np.float32)
    masks[np.arange(1, total + 1), np.arange(total)] = 0.0
    rng = np.random.default_rng(0)
    tokens = jnp.asarray(rng.integers(1, vocab, (50, 64)), jnp.int32)
    labels = jnp.asarray(rng.integers(0, 2, 50), jnp.int32)
    valid = jnp.ones(50, bool)
    graphdef, state = nnx.split(model)
    vmapped = _program(graphdef, layers)

    @jax.jit
    def one(mask, state, tokens, labels):
        logits = masked_logits(nnx.merge(graphdef, state), tokens, layers, mask)
        correct = (logits.argmax(-1) == labels).sum()
        return correct, jnp.take_along_axis(logits, labels[:, None], axis=1).sum()

    chunks = [jnp.asarray(masks[m:m + masks_per_call]) for m in range(0, total + 1, masks_per_call)]
    rows = [jnp.asarray(masks[i]) for i in range(total + 1)]

    def time_vmapped():
        t = time.perf_counter()
        out = [vmapped(c, state, tokens, labels, valid) for c in chunks]
        jax.block_until_ready(out)
        return time.perf_counter() - t

    def time_loop():
        t = time.perf_counter()
        out = [one(r, state, tokens, labels) for r in rows]
        jax.block_until_ready(out)
        return time.perf_counter() - t

    # The two agree before they are timed.
    a = np.concatenate([np.asarray(vmapped(c, state, tokens, labels, valid)[1]) for c in chunks])
    b = np.array([float(one(r, state, tokens, labels)[1]) for r in rows])
    assert np.allclose(a, b, rtol=1e-4, atol=1e-3), float(np.abs(a - b).max())
    times = harness["interleaved_calls"]({"vmapped": time_vmapped, "loop": time_loop}, reps, warmup=1)
    med = {k: harness["summarize"](v)["median"] for k, v in times.items()}
    return {"filters": total, "batch": 50, "length": 64, "device": jax.devices()[0].platform,
            "vmapped_s": med["vmapped"], "loop_s": med["loop"], "loop_over_vmapped": med["loop"] / med["vmapped"]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--reps", type=int, default=5)
    args = p.parse_args()
    r = run(quick=args.quick, reps=args.reps)
    print(f"ablation of {r['filters']} filters, one batch ({r['batch']} x {r['length']} tokens) on {r['device']}:")
    print(f"  vmapped (one program over the masks): {r['vmapped_s'] * 1e3:8.1f} ms")
    print(f"  loop (one forward pass per filter):   {r['loop_s'] * 1e3:8.1f} ms")
    print(f"  loop / vmapped: {r['loop_over_vmapped']:.2f}x")
    print(json.dumps(r))


if __name__ == "__main__":
    main()
