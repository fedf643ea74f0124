"""Conv1D layer speed, side by side: jaxconv vs raw lax vs flax.nnx.Conv vs PyTorch, with an XLA matmul ceiling.

Kim's text-CNN shapes: batch 50, 64 tokens, 300-d word vectors, 100 filters, widths 3, 4, 5 ('valid' padding).

    python benchmarks/conv_layer.py            # < 2 minutes on 2 CPU cores
    python benchmarks/conv_layer.py --quick    # a few seconds per width, noisier
    python benchmarks/conv_layer.py --reps 200

Every implementation gets the same weights (checked: outputs agree) and is compiled and warmed up before timing.
Timing (``benchmarks/harness.py``): each call is timed alone, ending with ``block_until_ready`` (JAX) or on return
(PyTorch, synchronous on CPU). The JAX implementations take turns call by call, in a random order each repetition, so
drift of the machine (thermal, other processes) hits all of them alike; PyTorch is timed in a phase of its own (see
:func:`measure`).
The table shows the median.

"fwd+bwd" is one call computing the output and the gradients of ``sum(output)`` w.r.t. the input, kernel and bias.
GFLOP/s use :func:`jaxconv.shapes.conv_flops` (a multiply-add = 2 FLOPs, bias included) for the forward pass, and
3 x that for fwd+bwd (forward + gradient w.r.t. the input + gradient w.r.t. the kernel, each as costly as the
forward). The matmul row is a jitted ``(B*L_out, k*C) @ (k*C, F)`` product: the same FLOPs (without the bias) as
one dense GEMM, the practical ceiling of this machine for this work.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import runpy
import statistics
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax

from jaxconv import Conv1D, shapes

try:
    import torch
except ImportError:  # optional
    torch = None

harness = types.SimpleNamespace(**runpy.run_path(str(pathlib.Path(__file__).resolve().parent / "harness.py"),
                                                 run_name="_benchmarks_harness"))

B, L, C, F = 50, 64, 300, 100
WIDTHS = (3, 4, 5)


def _jax_timer(fn, *args):
    def call():
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        return time.perf_counter() - t0

    return call


def _torch_timer(fn):
    def call():
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0

    return call


def program_ops(jitted, *args) -> list[tuple[str, str]]:
    """The (shape, opcode) of each instruction of the compiled XLA entry computation, sorted (names dropped)."""
    text = jitted.lower(*args).compile().as_text()
    entry = text[text.index("ENTRY"):]
    entry = entry[:entry.index("\n}")]
    return sorted(re.findall(r"= (\S+?)(?:\{[^}]*\})? (\w[\w-]*)\(", entry))


def build(k: int):
    """{name: (forward timer, fwd+bwd timer, forward output as numpy)} for width k, all with the same weights."""
    rng = np.random.default_rng(k)
    x_np = rng.standard_normal((B, L, C)).astype(np.float32)
    w_np = (rng.standard_normal((k, C, F)) / np.sqrt(k * C)).astype(np.float32)
    b_np = (0.1 * rng.standard_normal(F)).astype(np.float32)
    x = jnp.asarray(x_np)
    impls = {}

    programs = {}

    def jax_pair(name, fwd, args, diff_argnums):
        loss = lambda *a: jnp.sum(fwd(*a))
        fwd_j = jax.jit(fwd)
        fb_j = jax.jit(jax.value_and_grad(loss, argnums=diff_argnums))
        impls[name] = (_jax_timer(fwd_j, *args), _jax_timer(fb_j, *args), np.asarray(fwd_j(*args)))
        programs[name] = (program_ops(fwd_j, *args), program_ops(fb_j, *args))

    # jaxconv: a pure function of (params, x) through nnx.split / nnx.merge, under jax.jit.
    conv = Conv1D.from_keras(w_np, b_np)
    graphdef, params = nnx.split(conv)
    jax_pair("jaxconv Conv1D", lambda p, x: nnx.merge(graphdef, p)(x), (params, x), (0, 1))

    # jaxconv under nnx.jit (module passed in; NNX's graph bookkeeping runs on every call).
    nnx_fwd = nnx.jit(lambda m, x: m(x))

    def nnx_loss(m, x):
        return jnp.sum(m(x))

    nnx_fb = nnx.jit(nnx.value_and_grad(nnx_loss, argnums=(0, 1)))
    impls["jaxconv (nnx.jit)"] = (_jax_timer(nnx_fwd, conv, x), _jax_timer(nnx_fb, conv, x), np.asarray(nnx_fwd(conv, x)))

    # Raw lax.conv_general_dilated + bias.
    def raw(w, b, x):
        return lax.conv_general_dilated(x, w, (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC")) + b

    jax_pair("lax.conv_general_dilated", raw, (jnp.asarray(w_np), jnp.asarray(b_np), x), (0, 1, 2))

    # flax.nnx.Conv, VALID padding, same weights.
    fc = nnx.Conv(C, F, kernel_size=(k,), padding="VALID", rngs=nnx.Rngs(0))
    fc.kernel[...] = jnp.asarray(w_np)
    fc.bias[...] = jnp.asarray(b_np)
    fgraph, fparams = nnx.split(fc)
    jax_pair("flax.nnx.Conv", lambda p, x: nnx.merge(fgraph, p)(x), (fparams, x), (0, 1))

    # XLA matmul with the same FLOPs (bias aside): the ceiling.
    out_len = L - k + 1
    a = jnp.asarray(rng.standard_normal((B * out_len, k * C)).astype(np.float32))
    m = jnp.asarray(w_np.reshape(k * C, F))
    mm = jax.jit(lambda a, m: a @ m)
    mm_fb = jax.jit(jax.value_and_grad(lambda a, m: jnp.sum(a @ m), argnums=(0, 1)))
    impls["XLA matmul (ceiling)"] = (_jax_timer(mm, a, m), _jax_timer(mm_fb, a, m), None)

    if torch is not None:
        tconv = torch.nn.Conv1d(C, F, k)
        with torch.no_grad():
            tconv.weight.copy_(torch.from_numpy(np.ascontiguousarray(w_np.transpose(2, 1, 0))))
            tconv.bias.copy_(torch.from_numpy(b_np))
        tx = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 2, 1)))  # channels-first
        tx_grad = tx.clone().requires_grad_(True)

        def t_fwd():
            with torch.no_grad():
                return tconv(tx)

        def t_fb():
            out = tconv(tx_grad)
            return torch.autograd.grad(out.sum(), [tx_grad, tconv.weight, tconv.bias])

        impls["torch.nn.Conv1d"] = (_torch_timer(t_fwd), _torch_timer(t_fb), t_fwd().numpy().transpose(0, 2, 1))
    return impls, programs


def measure(impls: dict, reps: int, seed: int = 0) -> dict:
    """``{name: (median fwd s, median fwd+bwd s)}`` over ``reps`` timed calls each.

    The JAX implementations take turns call by call, in a fresh random order each repetition
    (``harness.interleaved_calls``), so drift and bursts of load from other processes spread over all of them.
    PyTorch is timed in its own phase afterwards: its OpenMP worker threads keep spinning for a while after each
    call, and on a machine with few cores they would slow down whichever JAX call came next.
    """
    names = list(impls)
    phases = [[n for n in names if not n.startswith("torch")], [n for n in names if n.startswith("torch")]]
    out = {}
    for phase in phases:
        if not phase:
            continue
        time.sleep(0.2)  # let the previous phase's worker threads go idle
        fwd = harness.interleaved_calls({n: impls[n][0] for n in phase}, reps, seed=seed)
        fb = harness.interleaved_calls({n: impls[n][1] for n in phase}, reps, seed=seed)
        out.update({n: (statistics.median(fwd[n]), statistics.median(fb[n])) for n in phase})
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=None, help="timed calls per implementation and mode (default 30; "
                                                                "--quick: 5)")
    parser.add_argument("--quick", action="store_true", help="few repetitions: a rough table")
    args = parser.parse_args(argv)
    reps = args.reps if args.reps is not None else (5 if args.quick else 30)
    start = time.perf_counter()

    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    print(f"Conv1D layer benchmark: B={B}, L={L}, C={C}, F={F}, 'valid' padding, float32; {reps} timed calls per cell "
          f"(median); JAX implementations interleaved call by call, torch in its own phase")
    print(f"jax {jax.__version__} on {jax.devices()[0].platform} ({os.cpu_count()} CPU cores), "
          f"torch {torch.__version__ if torch is not None else 'not installed'} "
          f"({torch.get_num_threads() if torch is not None else 0} threads); "
          f"load average at start {os.getloadavg()[0]:.2f}")
    print("GFLOP/s: forward = jaxconv.shapes.conv_flops (bias included); fwd+bwd = 3 x forward FLOPs "
          "(output + input grad + kernel grad).")
    header = f"{'k':>2}  {'implementation':<26}{'fwd ms':>9}{'GFLOP/s':>9}{'fwd+bwd ms':>12}{'GFLOP/s':>9}"
    print()
    print(header)
    print("-" * len(header))
    ratios, same_program = [], []
    for k in WIDTHS:
        impls, programs = build(k)
        same_program.append(programs["jaxconv Conv1D"] == programs["lax.conv_general_dilated"])
        ref = impls["lax.conv_general_dilated"][2]
        for name, (_, _, out) in impls.items():
            if out is not None:
                np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4, err_msg=f"{name} disagrees with lax (k={k})")
        res = measure(impls, reps)
        flops = shapes.conv_flops((L,), C, F, k, batch=B)
        for name, (f, fb) in res.items():
            print(f"{k:>2}  {name:<26}{f * 1e3:>9.2f}{flops / f / 1e9:>9.1f}{fb * 1e3:>12.2f}{3 * flops / fb / 1e9:>9.1f}")
        jf, jfb = res["jaxconv Conv1D"]
        lf, lfb = res["lax.conv_general_dilated"]
        ratios.append((k, jf / lf, jfb / lfb))
        print()
    print("jaxconv / lax median time ratio (target <= 1.03):")
    for k, rf, rfb in ratios:
        verdict = "ok" if max(rf, rfb) <= 1.03 else "over 3%"
        print(f"  k={k}: forward {rf:.3f}, fwd+bwd {rfb:.3f}  {verdict}")
    same = "yes" if all(same_program) else "NO"
    print(f"jaxconv and raw lax compile to the same XLA program (fwd and fwd+bwd, every k): {same}; a ratio away from "
          f"1 is then dispatch overhead or timing noise.")
    print(f"(all outputs agree with lax to 1e-4; {time.perf_counter() - start:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
