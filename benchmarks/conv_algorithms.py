"""Convolution algorithms side by side: ``impl=`` "xla" / "im2col" / "fft" / "auto", Kim's fused widths, PyTorch.

    python benchmarks/conv_algorithms.py                  # ~8 minutes on 2 busy CPU cores (long's im2col is slow)
    python benchmarks/conv_algorithms.py --quick          # smaller batches, 3 rounds: ~55 CPU-s, a rough table
    python benchmarks/conv_algorithms.py --rounds 50 --cases kim,long --json /tmp/conv_algorithms.json

Cases (float32, channels-last, no bias):

- ``kim``: Kim's text CNN: B=50, L=64, C=300, F=100 per width, widths 3, 4, 5, 'valid'. ``separate <alg>``: the
  three convolutions one by one with :func:`jaxconv.nn.algorithms.conv_general`; ``fused``:
  :func:`jaxconv.nn.multi_width.fused_conv1d` (one window extraction, one GEMM); ``auto``: what
  :func:`~jaxconv.nn.multi_width.measure_parallel` chose (shown), read back under ``jit`` by ``choose_parallel``.
- ``long``: B=8, L=4096, C=64, F=64, k=31, 'same' (pads 15, 15).
- ``depthwise``: B=32, L=256, C=F=256, groups=256, k=7, 'same'.
- ``conv2d``: B=16, 56x56, C=F=64, 3x3, 'same' (not in ``--quick``'s default cases).

Rows: each algorithm of ``ALGORITHMS``; ``auto`` (``algorithms.measure`` runs first, outside ``jit``; the row is
``conv_general(impl="auto")`` under ``jit``, which reads the measured choice); ``torch``:
``torch.nn.functional.conv1d`` / ``conv2d`` on the same data, channels-first, all cores, when torch imports.
"fwd" is the output; "fwd+bwd" one call giving the gradients of ``sum(output)`` w.r.t. input and kernel(s).
GFLOP/s: dense FLOPs of :func:`jaxconv.shapes.conv_flops` (multiply-add = 2, padded taps counted), forward = F,
fwd+bwd = 3F. "ceil": the fraction of the ceiling, a jitted float32 2048x2048 matmul timed as a row of every case
(above 1 where an algorithm does fewer FLOPs than the dense count, fft, or where XLA's conv outruns that matmul).
``auto`` chooses by fwd+bwd time, leaving xla only for a 10% gain; its forward column may still pay for that.

Measurement (``benchmarks/harness.py``, ``interleaved_calls``): every program is compiled, warmed up and checked
against ``xla`` first; then the JAX rows (fwd and fwd+bwd) and the matmul take turns call by call in a fresh random
order each round, so load from other processes falls on all alike; a timing is the mean of a few back-to-back calls
(about 20 ms), ending with ``block_until_ready``. Torch runs in a phase of its own after them (its OpenMP workers
spin on after a call and would slow the next JAX call). Tables show medians; the targets compare rows of one run.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
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

from jaxconv import shapes
from jaxconv.nn import algorithms, multi_width
from jaxconv.nn.algorithms import ALGORITHMS

try:
    import torch
except ImportError:  # optional
    torch = None

harness = types.SimpleNamespace(**runpy.run_path(str(pathlib.Path(__file__).resolve().parent / "harness.py"),
                                                 run_name="_benchmarks_harness"))

CASES = ("kim", "long", "depthwise", "conv2d")
CEILING_N = 2048


def case_spec(name: str, quick: bool) -> dict:
    """x shape, kernel shapes, pads, groups, dense forward FLOPs and a title for case ``name``."""
    if name == "kim":
        b, length, c, f = 50, 64, 300, 100
        ks = [(w, c, f) for w in (3, 4, 5)]
        flops = sum(shapes.conv_flops((length,), c, f, w, use_bias=False, batch=b) for w in (3, 4, 5))
        return dict(x=(b, length, c), kernels=ks, pads=((0, 0),), groups=1, flops=flops,
                    title=f"kim: B={b}, L={length}, C={c}, F={f} x widths 3,4,5, valid")
    if name == "long":
        b, length, c, f, k = (2 if quick else 8), 4096, 64, 64, 31
        spec = dict(x=(b, length, c), kernels=[(k, c, f)], pads=((15, 15),), groups=1,
                    title=f"long: B={b}, L={length}, C={c}, F={f}, k={k}, same")
    elif name == "depthwise":
        b, length, c, f, k = (8 if quick else 32), 256, 256, 256, 7
        spec = dict(x=(b, length, c), kernels=[(k, 1, f)], pads=((3, 3),), groups=c,
                    title=f"depthwise: B={b}, L={length}, C=F={c}, groups={c}, k={k}, same")
    elif name == "conv2d":
        b, hw, c, f = (4 if quick else 16), 56, 64, 64
        spec = dict(x=(b, hw, hw, c), kernels=[(3, 3, c, f)], pads=((1, 1), (1, 1)), groups=1,
                    title=f"conv2d: B={b}, {hw}x{hw}, C={c}, F={f}, 3x3, same")
    else:
        raise SystemExit(f"unknown case {name!r}; expected some of {', '.join(CASES)}")
    xs, ks = spec["x"], spec["kernels"][0]
    spec["flops"] = shapes.conv_flops(xs[1:-1], xs[-1], ks[-1], ks[:-2], padding=spec["pads"],
                                      groups=spec["groups"], use_bias=False, batch=xs[0])
    return spec


def jax_rows(name: str, spec: dict) -> tuple[dict, str]:
    """{row: fn(x, kernels) -> [outputs]} of every jaxconv algorithm for the case, and auto's measured choice."""
    n = len(spec["x"]) - 2
    conv = dict(stride=(1,) * n, pads=spec["pads"], dilation=(1,) * n, groups=spec["groups"])

    def separate(impl):
        return lambda x, ks: [algorithms.conv_general(x, k, **conv, impl=impl) for k in ks]

    if name == "kim":
        rows = {f"separate {a}": separate(a) for a in ALGORITHMS}
        rows["fused"] = lambda x, ks: multi_width.fused_conv1d(x, ks)
        choice = multi_width.measure_parallel(spec["x"], spec["kernels"], jnp.float32).choice

        def auto(x, ks):  # the table's choice, read at trace time as apply_parallel(impl="auto") does
            impl = multi_width.choose_parallel(x, ks)
            return multi_width.fused_conv1d(x, ks) if impl == "fused" else separate(impl)(x, ks)

        rows["auto"] = auto
        return rows, choice
    rows = {a: separate(a) for a in ALGORITHMS}
    choice = algorithms.measure(spec["x"], spec["kernels"][0], jnp.float32, **conv).choice
    rows["auto"] = separate("auto")
    return rows, choice


def torch_rows(spec: dict, x_np, ks_np) -> dict:
    """{"torch": (fwd(), fwd+bwd(), forward outputs channels-last)} with torch's functional conv, channels-first."""
    n = len(spec["x"]) - 2
    conv = torch.nn.functional.conv1d if n == 1 else torch.nn.functional.conv2d
    order = (0, n + 1, *range(1, n + 1))                                      # (N, *S, C) -> (N, C, *S)
    tx = torch.from_numpy(np.ascontiguousarray(x_np.transpose(order)))
    tws = [torch.from_numpy(np.ascontiguousarray(k.transpose(n + 1, n, *range(n)))) for k in ks_np]
    lo = [p[0] for p in spec["pads"]]
    if any(p[0] != p[1] for p in spec["pads"]):
        raise ValueError("torch rows need symmetric padding")

    def fwd(x=tx, ws=tws):
        with torch.no_grad():
            return [conv(x, w, padding=lo, groups=spec["groups"]) for w in ws]

    x_g = tx.clone().requires_grad_(True)
    w_g = [w.clone().requires_grad_(True) for w in tws]

    def fb():
        out = sum(conv(x_g, w, padding=lo, groups=spec["groups"]).sum() for w in w_g)
        return torch.autograd.grad(out, [x_g, *w_g])

    back = (0, *range(2, n + 2), 1)
    return {"torch": (fwd, fb, [y.numpy().transpose(back) for y in fwd()])}


def compile_all(progs: dict, args: tuple) -> tuple[dict, dict]:
    """Every ``progs[key](*args)`` lowered and compiled, in threads (XLA compiles one program per core); keys
    whose programs lower to the same text (``auto`` and the row it chose) share one executable. Returns
    ({key: compiled}, {key: the key whose executable it shares})."""
    lowered = {k: jax.jit(f).lower(*args) for k, f in progs.items()}
    text = {k: re.sub(r"module @\S+", "module", low.as_text()) for k, low in lowered.items()}
    first: dict[str, str] = {}
    for k in progs:
        first.setdefault(text[k], k)
    with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        done = dict(zip(first.values(), pool.map(lambda k: lowered[k].compile(), first.values())))
    return ({k: done[first[text[k]]] for k in progs},
            {k: first[text[k]].split("|")[0] for k in progs if first[text[k]] != k})


def _timer(fn, block, target_s=0.02):
    """A timer of ``fn()`` (``block`` waits for its outputs): the mean of ``reps`` back-to-back calls, ``reps``
    sized on a first (warm-up) call so a timing lasts about ``target_s``."""
    t0 = time.perf_counter()
    block(fn())
    reps = max(1, min(50, int(target_s / max(time.perf_counter() - t0, 1e-6))))

    def call():
        t0 = time.perf_counter()
        for _ in range(reps):
            out = fn()
        block(out)
        return (time.perf_counter() - t0) / reps

    return call


def run_case(name: str, rounds: int, quick: bool) -> dict:
    spec = case_spec(name, quick)
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal(spec["x"]).astype(np.float32)
    ks_np = [(rng.standard_normal(s) / np.sqrt(np.prod(s[:-1]))).astype(np.float32) for s in spec["kernels"]]
    x, ks = jnp.asarray(x_np), [jnp.asarray(k) for k in ks_np]
    rows, choice = jax_rows(name, spec)
    progs = {}
    for row, fn in rows.items():
        progs[f"{row}|fwd"] = fn
        progs[f"{row}|fwd+bwd"] = jax.grad(lambda x, ks, fn=fn: sum(y.sum() for y in fn(x, ks)), argnums=(0, 1))
    compiled, shared = compile_all(progs, (x, ks))
    timers = {k: _timer(lambda c=c: c(x, ks), jax.block_until_ready) for k, c in compiled.items()}
    outs = {row: [np.asarray(y) for y in compiled[f"{row}|fwd"](x, ks)] for row in rows}
    a, b = (jnp.asarray(rng.standard_normal((CEILING_N, CEILING_N)).astype(np.float32)) for _ in range(2))
    mm = jax.jit(lambda a, b: a @ b).lower(a, b).compile()
    timers["ceiling|fwd"] = _timer(lambda: mm(a, b), jax.block_until_ready)
    t_timers = {}
    if torch is not None:
        for row, (fwd, fb, out) in torch_rows(spec, x_np, ks_np).items():
            outs[row] = out
            t_timers[f"{row}|fwd"], t_timers[f"{row}|fwd+bwd"] = _timer(fwd, lambda o: o), _timer(fb, lambda o: o)
    ref = outs[next(iter(rows))]
    for row, ys in outs.items():
        for y, r in zip(ys, ref):
            np.testing.assert_allclose(y, r, rtol=1e-3, atol=1e-3 * float(np.abs(r).max()),
                                       err_msg=f"{name}: {row} disagrees with xla")
    samples = harness.interleaved_calls(timers, rounds, warmup=0)
    if t_timers:
        samples.update(harness.interleaved_calls(t_timers, rounds, warmup=0))
    med = {k: statistics.median(v) for k, v in samples.items()}
    ceiling = 2 * CEILING_N ** 3 / med.pop("ceiling|fwd") / 1e9
    result = dict(title=spec["title"], flops=spec["flops"], auto_choice=choice, ceiling_gflops=ceiling, rows={},
                  auto_same_program_as=shared.get("auto|fwd+bwd"))
    for row in [*rows, *(r for r in outs if r not in rows)]:
        cell = {}
        for mode, mult in (("fwd", 1), ("fwd+bwd", 3)):
            s = med[f"{row}|{mode}"]
            cell[mode] = dict(ms=s * 1e3, gflops=mult * spec["flops"] / s / 1e9)
            cell[mode]["of_ceiling"] = cell[mode]["gflops"] / ceiling
        result["rows"][row] = cell
    return result


def print_case(res: dict) -> None:
    print(f"\n## {res['title']}: forward {res['flops'] / 1e9:.3f} GFLOP; ceiling (2048^2 matmul) "
          f"{res['ceiling_gflops']:.1f} GFLOP/s")
    header = f"{'row':<26}{'fwd ms':>9}{'GFLOP/s':>9}{'ceil':>6}{'fwd+bwd ms':>12}{'GFLOP/s':>9}{'ceil':>6}"
    print(header)
    print("-" * len(header))
    for row, cell in res["rows"].items():
        label = row
        if row == "auto":
            label = f"auto -> {res['auto_choice']}" + (" (=)" if res["auto_same_program_as"] else "")
        f, fb = cell["fwd"], cell["fwd+bwd"]
        print(f"{label:<26}{f['ms']:>9.2f}{f['gflops']:>9.1f}{f['of_ceiling']:>6.2f}"
              f"{fb['ms']:>12.2f}{fb['gflops']:>9.1f}{fb['of_ceiling']:>6.2f}")


def _verdict(value: float, target: float, higher: bool) -> str:
    ok = value >= target if higher else value <= target
    return "met" if ok else f"missed by {abs(value - target):.2f}"


def targets(results: dict) -> dict:
    """(a) Kim fwd+bwd: the best jaxconv algorithm row (auto aside: it runs one of them) vs xla (>= 2x) and vs the ceiling (>= 0.40); (b) auto / xla time on the long
    and depthwise cases (<= 0.8). Printed, and returned for the JSON."""
    print("\n## targets (fwd+bwd, medians of this run)")
    out = {}
    if "kim" in results:
        rows = {r: c["fwd+bwd"] for r, c in results["kim"]["rows"].items() if r not in ("torch", "auto")}
        best = max(rows, key=lambda r: rows[r]["gflops"])
        speedup = rows[best]["gflops"] / rows["separate xla"]["gflops"]
        frac = rows[best]["of_ceiling"]
        fused = rows["fused"]["gflops"] / rows["separate xla"]["gflops"]
        out["kim"] = dict(best=best, vs_xla=speedup, of_ceiling=frac, fused_vs_xla=fused)
        print(f"(a) kim: best jaxconv algorithm '{best}' {rows[best]['gflops']:.1f} GFLOP/s = {speedup:.2f}x 'separate "
              f"xla' (target >= 2): {_verdict(speedup, 2.0, True)}; {frac:.2f} of the ceiling (target >= 0.40): "
              f"{_verdict(frac, 0.40, True)}  [fused: {fused:.2f}x xla]")
    else:
        print("(a) kim: not run")
    for case in ("long", "depthwise"):
        if case not in results:
            print(f"(b) {case}: not run")
            continue
        rows = results[case]["rows"]
        ratio = rows["auto"]["fwd+bwd"]["ms"] / rows["xla"]["fwd+bwd"]["ms"]
        ratio_f = rows["auto"]["fwd"]["ms"] / rows["xla"]["fwd"]["ms"]
        out[case] = dict(auto_over_xla=ratio, auto_over_xla_fwd=ratio_f, choice=results[case]["auto_choice"])
        print(f"(b) {case}: auto (-> {results[case]['auto_choice']}) / xla time {ratio:.2f} (target <= 0.80): "
              f"{_verdict(ratio, 0.80, False)}  [forward only: {ratio_f:.2f}]")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds, smaller batches (printed), no conv2d")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 20; --quick: 3)")
    parser.add_argument("--cases", default=None, help=f"comma-separated, of {','.join(CASES)} (default: all; "
                                                      f"--quick: kim,long,depthwise)")
    parser.add_argument("--json", default=None, help="write the numbers to this file")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (3 if args.quick else 20)
    cases = args.cases.split(",") if args.cases else list(CASES[:3] if args.quick else CASES)
    start = time.perf_counter()
    if torch is not None:
        torch.set_num_threads(os.cpu_count() or 1)
    print(f"Convolution algorithms, float32, {rounds} interleaved rounds per case (median); jax {jax.__version__} on "
          f"{jax.devices()[0].platform} ({os.cpu_count()} CPU cores), torch "
          f"{torch.__version__ + f' ({torch.get_num_threads()} threads)' if torch is not None else 'not installed'};"
          f" load average at start {os.getloadavg()[0]:.2f}")
    if args.quick:
        print("--quick: SMALLER BATCHES (long B=2, depthwise B=8, conv2d B=4; kim as full), 3 rounds: a rough table")
    print("GFLOP/s: dense conv_flops (no bias); fwd+bwd = 3 x forward FLOPs. ceil = fraction of the matmul ceiling.\n"
          "'auto -> alg (=)': auto compiled to the very program of row alg (the same executable runs both rows).")
    results = {}
    for name in cases:
        results[name] = run_case(name, rounds, args.quick)
        print_case(results[name])
    verdicts = targets(results)
    elapsed = time.perf_counter() - start
    print(f"\n(all outputs agree with xla to 1e-3 relative; {elapsed:.0f} s in all)")
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(dict(rounds=rounds, quick=args.quick, cases=results,
                                                           targets=verdicts, seconds=elapsed), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
