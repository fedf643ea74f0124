"""The conv algorithms switch: every algorithm equals "xla" in value and gradient (a hypothesis sweep of shapes and
options), under jit and vmap; "auto" measures outside jit only and keeps its table; the fused multi-width conv equals
the separate layers; FLOP and byte accounting; errors name the argument."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jaxconv import Conv1D, Conv2D, explain, shapes
from jaxconv.conv_costs import fft_size
from jaxconv.inspection import feature_maps
from jaxconv.nn import algorithms, multi_width
from jaxconv.nn.algorithms import ALGORITHMS


def _close(got, want, what):
    """float32 agreement to 1e-5, relative to the reference's scale."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    scale = max(1.0, float(np.abs(want).max(initial=0.0)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale, err_msg=what)


@st.composite
def conv_cases(draw):
    n = draw(st.sampled_from([1, 1, 2]))
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ks = tuple(draw(st.integers(1, 4)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(n))
    pads = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(n))
    spatial = tuple(max(d * (k - 1) + 1 - lo - hi, 1) + draw(st.integers(0, 9 if n == 1 else 5))
                    for k, d, (lo, hi) in zip(ks, dilation, pads))
    batch = draw(st.integers(1, 2))
    seed = draw(st.integers(0, 2**16))
    return dict(x=(batch, *spatial, cg * groups), kernel=(*ks, cg, fg * groups), stride=stride,
                dilation=dilation, pads=pads, groups=groups, seed=seed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=conv_cases())
def test_every_algorithm_equals_xla_in_value_and_gradient(case):
    rng = np.random.default_rng(case["seed"])
    x = jnp.asarray(rng.normal(size=case["x"]), jnp.float32)
    k = jnp.asarray(rng.normal(size=case["kernel"]), jnp.float32)
    opts = {key: case[key] for key in ("stride", "dilation", "pads", "groups")}
    cot = None

    def run(impl):
        nonlocal cot
        f = jax.jit(lambda x, k: algorithms.conv_general(x, k, impl=impl, **opts))
        y, vjp = jax.vjp(f, x, k)
        if cot is None:                                       # one random cotangent for every algorithm
            cot = jnp.asarray(rng.normal(size=y.shape), jnp.float32)
        return y, vjp(cot)

    want, (gx, gk) = run("xla")
    expected = shapes.conv_output_shape(case["x"][1:-1], case["kernel"][:-2], stride=case["stride"],
                                        dilation=case["dilation"], padding=case["pads"])
    assert want.shape == (case["x"][0], *expected, case["kernel"][-1])
    for impl in ("im2col", "fft"):
        y, (hx, hk) = run(impl)
        _close(y, want, f"{impl} value {case}")
        _close(hx, gx, f"{impl} input gradient {case}")
        _close(hk, gk, f"{impl} kernel gradient {case}")


@pytest.mark.parametrize("impl", ["im2col", "fft"])
def test_layers_by_every_algorithm_agree_under_jit_and_vmap(impl):
    rngs = nnx.Rngs(0)
    conv1 = Conv1D(6, 8, 3, stride=2, padding="same", dilation=2, groups=2, padding_mode="reflect", rngs=rngs)
    conv2 = Conv2D(4, 6, (3, 2), padding=1, data_format="channels_first", rngs=rngs)
    x1 = jax.random.normal(jax.random.key(1), (3, 2, 17, 6))          # two batch axes
    x2 = jax.random.normal(jax.random.key(2), (2, 4, 9, 7))           # channels-first
    for conv, x in ((conv1, x1), (conv2, x2)):
        want = conv(x)
        conv.impl = impl
        try:
            _close(jax.jit(lambda x: conv(x))(x), want, f"{impl} jit")
            _close(jax.vmap(lambda x: conv(x))(x), want, f"{impl} vmap")
            g_want = jax.grad(lambda x: (conv(x) ** 2).sum())(x)
            conv.impl = "xla"
            _close(g_want, jax.grad(lambda x: (conv(x) ** 2).sum())(x), f"{impl} grad")
        finally:
            conv.impl = "xla"


def test_a_fused_conv_equals_the_separate_layers_in_value_gradient_and_feature_maps():
    convs = nnx.List([Conv1D(10, f, w, activation="relu", rngs=nnx.Rngs(w)) for w, f in ((2, 3), (5, 4), (3, 6))])
    x = jax.random.normal(jax.random.key(0), (4, 11, 10))
    want = [c(x) for c in convs]
    got = multi_width.apply_parallel(list(convs), x, "fused")
    assert [g.shape for g in got] == [(4, 10, 3), (4, 7, 4), (4, 9, 6)]
    for g, w in zip(got, want):
        _close(g, w, "fused value")

    def loss(convs, impl):
        return sum((y ** 2).sum() for y in multi_width.apply_parallel(list(convs), x, impl))

    g_fused = nnx.grad(lambda c: loss(c, "fused"))(convs)
    g_sep = nnx.grad(lambda c: loss(c, "xla"))(convs)
    for a, b in zip(jax.tree.leaves(g_fused), jax.tree.leaves(g_sep)):
        _close(a, b, "fused gradient")

    class Parallel(nnx.Module):
        def __init__(self, convs, impl):
            self.convs, self.impl = convs, impl

        def __call__(self, x):
            return multi_width.apply_parallel(list(self.convs), x, self.impl)

    maps = {impl: feature_maps(Parallel(convs, impl), x, stage="pre") for impl in ("xla", "fused")}
    assert sorted(maps["fused"]) == ["convs/0", "convs/1", "convs/2"]
    for path in maps["xla"]:
        _close(maps["fused"][path], maps["xla"][path], f"fused feature map {path}")


def test_fused_refuses_layers_it_cannot_fuse_and_auto_runs_them_apart():
    convs = [Conv1D(4, 2, 3, rngs=nnx.Rngs(0)), Conv1D(4, 2, 2, stride=2, rngs=nnx.Rngs(1))]
    x = jnp.ones((1, 9, 4))
    with pytest.raises(ValueError, match=r"impl='fused' needs .* layer 1 has stride=\(2,\)"):
        multi_width.apply_parallel(convs, x, "fused")
    for got, c in zip(multi_width.apply_parallel(convs, x, "auto"), convs):
        _close(got, c(x), "auto on unfusable layers")
    with pytest.raises(ValueError, match=r"apply_parallel: impl='gemm' is not known; expected one of 'xla'"):
        multi_width.apply_parallel(convs, x, "gemm")


def test_auto_measures_outside_jit_only_and_jit_then_uses_the_table():
    conv = Conv1D(3, 5, 4, padding="causal", impl="auto", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 23, 3))
    key = dict(stride=(1,), pads=((3, 0),), dilation=(1,), groups=1)
    assert algorithms.measured(x.shape, conv.kernel.shape, jnp.float32, **key) is None
    traced = jax.make_jaxpr(lambda x: conv(x))(x)                      # under tracing: no measurement, "xla"
    assert algorithms.measured(x.shape, conv.kernel.shape, jnp.float32, **key) is None
    assert "conv_general_dilated" in str(traced)
    assert explain(conv, x).row("").algorithm == "auto: not measured (xla under jit)"
    _close(conv(x), Conv1D(3, 5, 4, padding="causal", rngs=nnx.Rngs(0))(x), "auto value")   # concrete: measured
    hit = algorithms.measured(x.shape, conv.kernel.shape, jnp.float32, **key)
    assert hit is not None and hit.choice in ALGORITHMS and set(hit.seconds) == set(ALGORITHMS)
    best = min(hit.seconds, key=hit.seconds.get)                      # the fastest, or xla when within 10%
    assert hit.choice == (best if hit.seconds[best] <= algorithms.MARGIN * hit.seconds["xla"] else "xla")
    assert explain(conv, x).row("").algorithm == f"auto: {hit.choice}"
    ops = str(jax.make_jaxpr(lambda x: conv(x))(x))                   # now jit runs the table's choice
    assert ("conv_general_dilated" in ops) == (hit.choice == "xla")
    assert ("fft" in ops) == (hit.choice == "fft")


def test_an_unknown_impl_names_the_argument():
    with pytest.raises(ValueError, match=r"Conv1D: impl='cudnn' is not known; expected one of 'xla', 'im2col', "
                                         r"'fft', 'auto'"):
        Conv1D(3, 4, 2, impl="cudnn", rngs=nnx.Rngs(0))
    assert "impl='fft'" in repr(Conv2D(3, 4, 2, impl="fft", rngs=nnx.Rngs(0)))


def test_flop_and_byte_accounting_per_algorithm():
    kim = dict(batch=50, impl="xla")
    direct = shapes.conv_cost((64,), 300, 100, 5, **kim)
    assert direct["flops"] == shapes.conv_flops((64,), 300, 100, 5, batch=50, use_bias=False) == 2 * 50 * 60 * 5 * 300 * 100
    im2col = shapes.conv_cost((64,), 300, 100, 5, batch=50, impl="im2col")
    assert im2col["flops"] == direct["flops"]
    assert im2col["bytes"] - direct["bytes"] == 2 * 4 * 50 * 60 * 5 * 300          # the windows, written and read
    # a long input and a wide kernel: the FFT does far fewer FLOPs than the direct convolution
    long = dict(batch=8, padding="same")
    assert shapes.conv_cost((4096,), 64, 64, 31, impl="fft", **long)["flops"] < \
        shapes.conv_cost((4096,), 64, 64, 31, impl="xla", **long)["flops"] / 3
    fused = shapes.fused_cost(64, 300, 100, (3, 4, 5), batch=50)
    separate = sum(shapes.conv_flops((64,), 300, 100, w, batch=50, use_bias=False) for w in (3, 4, 5))
    assert fused["flops"] == 2 * 50 * 62 * 5 * 300 * 300 and 1.2 < fused["flops"] / separate < 1.3
    assert shapes.conv_cost.__module__ == "jaxconv.conv_costs" and algorithms.FFT_BLOCK == 256
    size, blocks = fft_size((4126,), (31,))                            # 1-D overlap-save blocks
    assert size == (algorithms.next_fast_len(256),) and blocks == math.ceil(4096 / (size[0] - 30))
    with pytest.raises(ValueError, match="conv_cost: impl='fused' is not known"):
        shapes.conv_cost((10,), 3, 4, 2, impl="fused")


def test_a_trained_text_cnn_gives_the_same_logits_feature_maps_and_dump_fused(demo_run, tmp_path):
    import zarr

    from jaxconv import load_run
    from jaxconv.dump import dump_activations

    run = load_run(demo_run)
    words = [w for w in run.vocab.decode(list(range(2, 60)))]
    texts = [" ".join(words[i:i + 4 + i % 9]) for i in range(0, 40, 3)]
    tokens = jnp.asarray(run.encode(texts[:4]))
    out = {}
    for impl in ("xla", "fused", "im2col"):
        run.model.conv_impl = impl
        dump_activations(model=run, texts=texts, path=tmp_path / f"{impl}.zarr")
        out[impl] = (run.model(tokens), feature_maps(run.model, tokens, stage="pre"),
                     zarr.open_group(str(tmp_path / f"{impl}.zarr"), mode="r"))
    run.model.conv_impl = "xla"
    logits, maps, store = out["xla"]
    assert sorted(maps) == ["convs/0", "convs/1", "convs/2"]
    arrays = sorted(name for name, _ in store.arrays())
    assert arrays, "the dump holds arrays"
    for impl in ("fused", "im2col"):
        _close(out[impl][0], logits, f"{impl} logits")
        for path in maps:
            _close(out[impl][1][path], maps[path], f"{impl} map {path}")
        other = out[impl][2]
        assert sorted(name for name, _ in other.arrays()) == arrays
        for name in arrays:
            a, b = np.asarray(other[name][...]), np.asarray(store[name][...])
            if np.issubdtype(a.dtype, np.floating):
                _close(a, b, f"{impl} dump array {name}")
            else:                                            # positions, ids, counts: exactly the same
                np.testing.assert_array_equal(a, b, err_msg=f"{impl} dump array {name}")


def test_training_with_auto_measures_every_compiled_shape_first(tmp_path):
    from jaxconv.configs import load_config
    from jaxconv.train import build_data
    from jaxconv.train import mesh as mesh_lib
    from jaxconv.train.engine import Engine

    config = load_config("text_cnn:synthetic", {"model.conv_impl": "auto", "model.embed_dim": 8, "model.filters": 4})
    data = build_data(config, min_length=max(config.model.widths))
    engine = Engine.fresh(config, data, mesh_lib.make_mesh())
    lengths = sorted({b["tokens"].shape[1] for b in engine.train_data.buckets})
    engine.compile(engine.plans(engine.epoch_calls(0)))
    kernels = tuple((w, 8, 4) for w in config.model.widths)
    for length in lengths:
        key = multi_width._key((data.train.batch_size, length, 8), kernels, jnp.float32, None)
        hit = algorithms.lookup(key)
        assert hit is not None and hit.choice in ("xla", "im2col", "fused"), length


def test_a_stack_of_runs_measures_each_runs_shapes():
    """A stacked engine's arrays and token batches have a leading run axis; auto measures one run's (B, L)."""
    from jaxconv.configs import load_config
    from jaxconv.train import build_data
    from jaxconv.train import mesh as mesh_lib
    from jaxconv.train.stacked_engine import StackedEngine

    configs = [load_config("text_cnn:synthetic", {"model.conv_impl": "auto", "seed": seed, "model.embed_dim": 8,
                                                  "model.filters": 3, "data.synthetic.num_examples": 200})
               for seed in (0, 1)]
    engine = StackedEngine.fresh(configs, [build_data(c, min_length=5) for c in configs], mesh_lib.make_mesh())
    engine.measure_algorithms([(2, 50, 41), (2, 13, 29)])                 # (R, B, L)
    kernels = tuple((w, 8, 3) for w in (3, 4, 5))
    for shape in ((50, 41, 8), (13, 29, 8)):
        assert algorithms.lookup(multi_width._key(shape, kernels, jnp.float32, None)) is not None, shape
