"""Tests for jaxconv.inspection: explain, receptive fields, feature maps, receptive spans and saliency.

The models are built here (not taken from jaxconv.models) so the core tests do not depend on them.
"""

from __future__ import annotations

import io
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv import Conv1D, Conv2D, shapes
from jaxconv.inspection import Explanation, Saliency, conv_paths
from jaxconv.nn.conv import ConvND

# ---------------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------------

KIM = dict(vocab=1000, dim=300, widths=(3, 4, 5), filters=100, classes=2, length=64, batch=2)
#: A small Kim model for the tests that run it (one set of shapes, so XLA compiles each initialiser once).
SMALL = dict(vocab=40, dim=8, filters=6)


class TinyKimCNN(nnx.Module):
    """Kim (2014): embed -> Conv1D per width (relu) -> max over time -> concat -> dropout -> dense."""

    def __init__(self, vocab, dim, widths, filters, classes, *, rngs):
        self.embed = nnx.Embed(vocab, dim, rngs=rngs)
        self.convs = nnx.List([Conv1D(dim, filters, w, activation="relu", rngs=rngs) for w in widths])
        self.dropout = nnx.Dropout(0.5, rngs=rngs)
        self.out = nnx.Linear(len(widths) * filters, classes, rngs=rngs)

    def __call__(self, tokens):                     # (B, L) int32
        e = self.embed(tokens)                      # (B, L, D)
        pooled = [jnp.max(conv(e), axis=-2) for conv in self.convs]  # each (B, F)
        return self.out(self.dropout(jnp.concatenate(pooled, axis=-1)))  # (B, classes)


def materialize(model, seed=0, positive=False):
    """Fill an abstract model (from ``nnx.eval_shape``) with numpy random values: scaled normals, or uniform in
    [0.1, 1) with ``positive=True`` (no cancellation in the gradient probes). Running the initialisers instead would
    compile each of them for each shape, which dominates these tests' time on a small CPU."""
    rng = np.random.default_rng(seed)

    def fill(v):
        if not isinstance(v, jax.ShapeDtypeStruct):
            return v
        if jnp.issubdtype(v.dtype, jax.dtypes.prng_key):
            return jax.random.wrap_key_data(np.zeros((*v.shape, 2), np.uint32))
        if not jnp.issubdtype(v.dtype, jnp.floating):
            return jnp.zeros(v.shape, v.dtype)
        if positive:
            return jnp.asarray(rng.uniform(0.1, 1.0, v.shape), v.dtype)
        scale = 1 / np.sqrt(np.prod(v.shape[:-1])) if len(v.shape) > 1 else 0.1
        return jnp.asarray(rng.normal(0.0, scale, v.shape), v.dtype)

    graphdef, state = nnx.split(model)
    return nnx.merge(graphdef, jax.tree.map(fill, state))


def build(cls, *args, abstract=False, seed=0, positive=False, **kwargs):
    """``cls(*args, **kwargs, rngs=...)`` built by ``nnx.eval_shape`` (no initialiser runs), then filled with random
    values unless ``abstract`` (explain() and receptive_spans() need shapes only)."""
    model = nnx.eval_shape(lambda: cls(*args, **kwargs, rngs=nnx.Rngs(0)))
    return model if abstract else materialize(model, seed, positive)


def kim(abstract=False, **over):
    cfg = {**KIM, **over}
    model = build(TinyKimCNN, cfg["vocab"], cfg["dim"], cfg["widths"], cfg["filters"], cfg["classes"],
                  abstract=abstract)
    model.eval()
    return model, cfg


class DilatedCausalStack(nnx.Module):
    """Three width-3 causal convs with dilation 1, 2, 4 (receptive field 1 + 2*(1+2+4) = 15)."""

    def __init__(self, channels=4, *, rngs):
        self.convs = nnx.List([
            Conv1D(channels, channels, 3, dilation=d, padding="causal", activation=act, rngs=rngs)
            for d, act in ((1, "relu"), (2, None), (4, "relu"))])

    def __call__(self, x):                          # (B, L, C) float
        for i, conv in enumerate(self.convs):
            x = conv(x)
            if i == 1:
                x = jax.nn.relu(x)                  # an op outside any module: rf found by shape
        return x


class StridedStack(nnx.Module):
    """Token input; convs with stride and 'same' padding, so spans have jumps and clipped ends."""

    def __init__(self, *, rngs):
        self.embed = nnx.Embed(50, 6, rngs=rngs)
        self.c1 = Conv1D(6, 5, 4, stride=2, padding="same", rngs=rngs)
        self.c2 = Conv1D(5, 5, 3, stride=3, padding=(2, 1), dilation=2, rngs=rngs)

    def __call__(self, tokens):
        return self.c2(jax.nn.tanh(self.c1(self.embed(tokens))))


class Conv2DStack(nnx.Module):
    def __init__(self, *, rngs):
        self.c1 = Conv2D(2, 3, 5, rngs=rngs)
        self.c2 = Conv2D(3, 3, 3, stride=2, padding="same", rngs=rngs)
        self.c3 = Conv2D(3, 2, (3, 2), dilation=(2, 1), padding=1, rngs=rngs)

    def __call__(self, x):                          # (B, H, W, 2)
        return self.c3(self.c2(self.c1(x)))


class Twice(nnx.Module):
    def __init__(self, *, rngs):
        self.conv = Conv1D(4, 4, 3, padding="same", rngs=rngs)

    def __call__(self, x):
        return self.conv(self.conv(x))


# ---------------------------------------------------------------------------------------------------------------
# explain
# ---------------------------------------------------------------------------------------------------------------


def test_explain_kim_rows_shapes_params_flops():
    model, c = kim(abstract=True)
    B, L, D, F = c["batch"], c["length"], c["dim"], c["filters"]
    e = jaxconv.explain(model, jnp.zeros((B, L), jnp.int32))
    assert isinstance(e, Explanation)
    assert [r.path for r in e.rows] == ["", "embed", "convs/0", "convs/1", "convs/2", "dropout", "out"]
    assert e.conv_paths == ["convs/0", "convs/1", "convs/2"]
    emb = e.row("embed")
    assert (emb.input_shape, emb.output_shape, emb.params, emb.flops) == ((B, L), (B, L, D), c["vocab"] * D, 0)
    total_flops = 0
    for i, k in enumerate(c["widths"]):
        r = e.row(f"convs/{i}")
        out_len = L - k + 1                         # valid, stride 1
        assert r.type == "Conv1D" and r.is_conv
        assert (r.input_shape, r.output_shape) == ((B, L, D), (B, out_len, F))
        assert r.kernel == f"(width={k}, in={D}, out={F})"
        assert (r.padding, r.stride, r.dilation, r.groups) == (((0, 0),), (1,), (1,), 1)
        assert r.params == k * D * F + F
        # 2 FLOPs per multiply-add over k*D inputs, per output element; +1 per output element for the bias add.
        assert r.flops == B * out_len * F * (2 * k * D) + B * out_len * F
        # Parallel branches: each conv sees the embeddings directly, so its field is its own width.
        assert (r.rf_size, r.rf_jump, r.rf_start) == ((k,), (1,), (0,))
        total_flops += r.flops
    out = e.row("out")
    n_in = len(c["widths"]) * F
    assert (out.input_shape, out.output_shape, out.params) == ((B, n_in), (B, c["classes"]), n_in * 2 + 2)
    assert out.flops == B * (2 * n_in * c["classes"] + c["classes"])
    assert e.row("dropout").flops is None and e.row("dropout").rf_size is None
    total_flops += out.flops
    assert e.total_flops == total_flops
    n_params = c["vocab"] * D + sum(k * D * F + F for k in c["widths"]) + n_in * 2 + 2
    assert e.total_params == n_params == sum(r.params for r in e.rows)


class _HiddenMethod:
    """Hides a public method from nnx.tabulate (which jits every public method it finds, turning the Python
    ints returned by ConvND.padding_for into tracers) while keeping it callable on instances."""

    def __init__(self, f):
        self.f = f

    def __get__(self, obj, cls=None):
        return self if obj is None else self.f.__get__(obj, cls)


def _tabulate_flops(model, x) -> dict[str, int]:
    text = nnx.tabulate(model, x, compute_flops=True, console_kwargs={"force_terminal": False, "width": 400})
    flops = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) > 4 and cells[1] and re.fullmatch(r"\d+", cells[4]):
            flops[cells[0]] = int(cells[4])
    return flops


def test_explain_flops_match_nnx_tabulate(monkeypatch):
    model, c = kim(**SMALL, length=20)
    x = jnp.zeros((c["batch"], c["length"]), jnp.int32)
    for name in ("padding_for", "output_shape", "filter_kernel", "to_torch"):
        monkeypatch.setattr(ConvND, name, _HiddenMethod(getattr(ConvND, name)))
    # nnx.tabulate restores the methods it wraps by setting them on every class of the graph (inherited ones too);
    # put the class dicts back as they were so later tests see the classes unchanged.
    classes = {type(m) for _, m in nnx.iter_modules(model)}
    saved = {cls: dict(vars(cls)) for cls in classes}
    try:
        xla = _tabulate_flops(model, x)
    finally:
        for cls, before in saved.items():
            for name in set(vars(cls)) - set(before):
                delattr(cls, name)
            for name, value in before.items():
                if vars(cls).get(name) is not value and name not in ("__dict__", "__weakref__"):
                    setattr(cls, name, value)
        monkeypatch.undo()
    e = jaxconv.explain(model, x)
    for i in range(len(c["widths"])):
        r = e.row(f"convs/{i}")
        out_elements = int(np.prod(r.output_shape))
        # XLA's cost model counts the same multiply-adds (x2) and bias adds, plus 1 FLOP per element for the ReLU,
        # which explain() does not count.
        assert xla[f"convs/{i}"] == r.flops + out_elements
    assert xla["out"] == e.row("out").flops


def test_explain_input_forms_and_errors():
    model, c = kim(abstract=True, **SMALL, length=12)
    a = jaxconv.explain(model, jnp.zeros((3, 12), jnp.int32))
    b = jaxconv.explain(model, jax.ShapeDtypeStruct((3, 12), jnp.int32))
    d = jaxconv.explain(model, (3, 12), dtype=jnp.int32)
    assert a.rows == b.rows == d.rows
    assert (a.input_shape, a.input_dtype) == ((3, 12), "int32")
    with pytest.raises(TypeError, match="x_or_shape must be"):
        jaxconv.explain(model, "3x12")
    with pytest.raises(ValueError, match=r"path='nope'.*'convs/0'"):
        a.row("nope")
    with pytest.raises(ValueError, match="Embed, which has no output-length formula"):
        a.formula("embed")


def test_explain_spends_no_flops_and_leaves_model_unchanged():
    model, _ = kim(**SMALL)

    def snapshot():
        as_np = lambda v: np.asarray(jax.random.key_data(v) if jnp.issubdtype(v.dtype, jax.dtypes.prng_key) else v)
        return jax.tree.map(as_np, nnx.state(model))

    before = snapshot()
    model.train()                                   # dropout draws from its rng stream while tracing
    e = jaxconv.explain(model, (2, 12), dtype=jnp.int32)
    model.eval()
    assert e.rows
    after = snapshot()
    assert jax.tree.all(jax.tree.map(np.array_equal, before, after))
    assert not any(hasattr(m, "__captures__") for _, m in nnx.iter_modules(model))
    assert Conv1D.__call__.__qualname__ == "ConvND.__call__" and not hasattr(Conv1D.__call__, "__wrapped__")


def test_explain_repeated_module_gets_a_row_per_call():
    e = jaxconv.explain(build(Twice, abstract=True), (1, 10, 4))
    rows = [r for r in e.rows if r.path == "conv"]
    assert [r.call for r in rows] == [0, 1]
    assert [r.label for r in rows] == ["conv", "conv (call 2)"]
    assert rows[0].params == 3 * 4 * 4 + 4 and rows[1].params == 0
    assert e.total_params == 52 and e.total_flops == 2 * rows[0].flops
    assert [r.rf_size for r in rows] == [(3,), (5,)]   # the second call composes on the first
    assert e.formula("conv", call=1) == "10 = floor((10 + 1 + 1 - 1*(3-1) - 1) / 1) + 1"


def test_explain_rendering_str_rich_html_and_formula():
    model, c = kim(abstract=True, length=50)
    e = jaxconv.explain(model, (2, 50), dtype=jnp.int32)
    text = str(e)
    lines = text.splitlines()
    assert lines[0] == "TinyKimCNN: input (2, 50) int32"
    assert lines[1].split()[:2] == ["path", "type"]
    conv2 = next(line for line in lines if line.startswith("convs/2"))
    assert "(2, 50, 300) -> (2, 46, 100)" in conv2
    assert "(width=5, in=300, out=100)" in conv2
    assert "150,100" in conv2 and f"{2 * 46 * 100 * (2 * 5 * 300 + 1):,}" in conv2 and conv2.endswith("5 / 1           xla")
    total = next(line for line in lines if line.startswith("total"))
    assert f"{e.total_params:,}" in total and f"{e.total_flops:,}" in total
    assert e.formula("convs/2") == "46 = floor((50 + 0 + 0 - 1*(5-1) - 1) / 1) + 1"
    assert e.formula("convs/2") == shapes.output_length_formula(50, 5)

    import rich.console

    console = rich.console.Console(file=io.StringIO(), width=400, record=True)
    console.print(e.rich())
    rendered = console.export_text()
    assert "convs/2" in rendered and "(width=5, in=300, out=100)" in rendered and "TinyKimCNN" in rendered
    console.print(e)                                 # __rich__
    html = e._repr_html_()
    assert html.startswith("<table>") and "<td style='text-align:left'>convs/1</td>" in html
    assert "(2, 50) -&gt; (2, 2)" in html
    assert repr(e) == (f"Explanation(TinyKimCNN, input (2, 50) int32, 7 calls, 3 convs, params={e.total_params:,}, "
                       f"flops={e.total_flops:,})")


def test_explain_conv2d_formula_per_axis():
    e = jaxconv.explain(build(Conv2DStack, abstract=True), (1, 16, 15, 2))
    r = e.row("c2")
    assert r.kernel == "(height=3, width=3, in=3, out=3)"
    assert r.padding == ((0, 1), (1, 1)) and r.output_shape == (1, 6, 6, 3)
    assert e.formula("c2") == ("height: 6 = floor((12 + 0 + 1 - 1*(3-1) - 1) / 2) + 1; "
                               "width: 6 = floor((11 + 1 + 1 - 1*(3-1) - 1) / 2) + 1")


# ---------------------------------------------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------------------------------------------


def test_dilated_causal_receptive_field_matches_gradient_probe():
    L, C = 24, 4
    model = build(DilatedCausalStack, C, positive=True)
    e = jaxconv.explain(model, (1, L, C))
    rows = [e.row(f"convs/{i}") for i in range(3)]
    assert [r.rf_size for r in rows] == [(3,), (7,), (15,)]
    assert [r.rf_jump for r in rows] == [(1,), (1,), (1,)]
    assert [r.rf_start for r in rows] == [(-2,), (-6,), (-14,)]
    assert rows[2].padding == ((8, 0),)
    assert shapes.receptive_field([(3, 1, 1, "causal"), (3, 1, 2, "causal"), (3, 1, 4, "causal")]) == (15, 1, -14)

    x = jax.random.uniform(jax.random.key(0), (1, L, C), minval=0.1, maxval=1.0)  # positive: no cancellation
    for depth in range(1, 4):
        def partial(x, depth=depth):
            for conv in list(model.convs)[:depth]:
                x = conv(x)
            return x.sum(-1)[0]                     # (L,)

        spans = jaxconv.receptive_spans(model, f"convs/{depth - 1}", L)
        assert spans.shape == (L, 2)
        jac = np.abs(np.asarray(jax.jacrev(partial)(x))).sum(axis=(1, 3))   # (L out, L in)
        for t in range(L):
            hit = np.nonzero(jac[t])[0]
            start, end = spans[t]
            assert (hit.min(), hit.max() + 1) == (start, end), (depth, t, hit, spans[t])


def test_conv2d_receptive_field_per_axis_matches_gradient_probe():
    H, W = 23, 18
    model = build(Conv2DStack, positive=True)
    x = jax.random.uniform(jax.random.key(1), (1, H, W, 2), minval=0.1, maxval=1.0)
    e = jaxconv.explain(model, x)
    r = e.row("c3")
    # c1: 5 / 1; c2: 5 + 2*1 = 7, jump 2; c3: height 7 + 2*2*2 = 15, width 7 + 1*1*2 = 9, jump 2.
    assert (r.rf_size, r.rf_jump) == ((15, 9), (2, 2))
    hs, ws = jaxconv.receptive_spans(model, "c3", (H, W))
    oh, ow = r.output_spatial
    assert (hs.shape, ws.shape) == ((oh, 2), (ow, 2))
    jac = np.abs(np.asarray(jax.jacrev(lambda x: model(x)[0].sum(-1))(x))).sum(axis=(2, 5))  # (oh, ow, H, W)
    exact = 0
    for i in range(oh):
        for j in range(ow):
            rows_hit, cols_hit = np.nonzero(jac[i, j].sum(axis=1))[0], np.nonzero(jac[i, j].sum(axis=0))[0]
            (h0, h1), (w0, w1) = hs[i], ws[j]
            # Never outside the span ...
            assert h0 <= rows_hit.min() and rows_hit.max() < h1 and w0 <= cols_hit.min() and cols_hit.max() < w1
            # ... and exactly the span where it is not clipped at the borders. At a border the span can be wider
            # than what is reached: a dilated tap that lands in the padding "covers" input rows it never reads.
            h_free = r.rf_start[0] + i * 2 >= 0 and r.rf_start[0] + i * 2 + 15 <= H
            w_free = r.rf_start[1] + j * 2 >= 0 and r.rf_start[1] + j * 2 + 9 <= W
            if h_free and w_free:
                assert (rows_hit.min(), rows_hit.max() + 1, cols_hit.min(), cols_hit.max() + 1) == (h0, h1, w0, w1)
                exact += 1
    assert exact == 4 * 5   # output rows 2..5 x columns 1..5 see no padding


def test_receptive_spans_agree_with_input_span():
    L = 23
    model = build(StridedStack, abstract=True)
    stack = [(4, 2, 1, "same"), (3, 3, 2, (2, 1))]
    for depth, layer in ((1, "c1"), (2, "c2")):
        spans = jaxconv.receptive_spans(model, layer, L)
        expected = [shapes.input_span(stack[:depth], t, L) for t in range(len(spans))]
        assert spans.dtype.kind == "i" and [tuple(s) for s in spans] == expected
    e = jaxconv.explain(model, (1, L), dtype=jnp.int32)
    rf = shapes.receptive_field(stack, L)
    assert (e.row("c2").rf_size, e.row("c2").rf_jump, e.row("c2").rf_start) == ((rf.size,), (rf.jump,), (rf.start,))

    kim_model, _ = kim(abstract=True, **SMALL)
    spans = jaxconv.receptive_spans(kim_model, "convs/2", 20)
    assert [tuple(s) for s in spans] == [shapes.input_span([(5,)], t, 20) for t in range(16)]
    with pytest.raises(ValueError, match="'convs/0', 'convs/1', 'convs/2'"):
        jaxconv.receptive_spans(kim_model, "out", 20)


def test_single_token_perturbation_stays_inside_spans():
    L = 23
    model = build(StridedStack, seed=3)
    tokens = jax.random.randint(jax.random.key(0), (1, L), 1, 50)
    for layer in ("c1", "c2"):
        spans = jaxconv.receptive_spans(model, layer, L)
        fmaps = nnx.jit(lambda m, t, layer=layer: jaxconv.feature_maps(m, t, layers=[layer])[layer])
        base = np.asarray(fmaps(model, tokens))
        for p in range(L):
            moved = np.asarray(fmaps(model, tokens.at[0, p].set((tokens[0, p] + 7) % 50)))
            changed = np.any(moved != base, axis=(0, 2))
            inside = (spans[:, 0] <= p) & (p < spans[:, 1])
            assert not np.any(changed & ~inside), (layer, p)   # a token outside the span never changes the output
            assert np.any(changed[inside]), (layer, p)


# ---------------------------------------------------------------------------------------------------------------
# Feature maps
# ---------------------------------------------------------------------------------------------------------------


def test_feature_map_equals_direct_conv():
    model, _ = kim(**SMALL)
    tokens = jax.random.randint(jax.random.key(0), (3, 15), 0, 40)
    fm = jaxconv.feature_map(model, tokens, "convs/1", 4)
    direct = model.convs[1](model.embed(tokens))[..., 4]
    assert fm.shape == (3, 15 - 4 + 1)
    np.testing.assert_allclose(fm, direct, rtol=1e-6, atol=1e-6)
    with pytest.raises(IndexError, match=r"filter=6 is out of range for layer 'convs/1', which has filters=6"):
        jaxconv.feature_map(model, tokens, "convs/1", 6)
    with pytest.raises(ValueError, match=r"layer 'embed' is not a jaxconv convolution.*'convs/0', 'convs/1'"):
        jaxconv.feature_map(model, tokens, "embed", 0)


def test_feature_maps_jit_selection_and_stages():
    model, _ = kim(**SMALL)
    tokens = jax.random.randint(jax.random.key(1), (2, 12), 0, 40)
    eager = jaxconv.feature_maps(model, tokens)
    assert list(eager) == conv_paths(model) == ["convs/0", "convs/1", "convs/2"]
    assert [v.shape for v in eager.values()] == [(2, 10, 6), (2, 9, 6), (2, 8, 6)]

    only = jaxconv.feature_maps(model, tokens, layers=["convs/2"])
    assert list(only) == ["convs/2"]
    jitted = nnx.jit(lambda m, t: jaxconv.feature_maps(m, t, layers=["convs/0", "convs/2"]))(model, tokens)
    assert list(jitted) == ["convs/0", "convs/2"]
    for k, v in jitted.items():
        np.testing.assert_allclose(v, eager[k], rtol=1e-6, atol=1e-6)

    pre = jaxconv.feature_maps(model, tokens, layers="convs/1", stage="pre")["convs/1"]
    post = jaxconv.feature_maps(model, tokens, layers="convs/1", stage="post")["convs/1"]
    assert np.any(np.asarray(pre) < 0)
    np.testing.assert_allclose(post, jax.nn.relu(pre), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="stage='mid' is not known"):
        jaxconv.feature_maps(model, tokens, stage="mid")
    with pytest.raises(ValueError, match=r"available conv paths: 'convs/0', 'convs/1', 'convs/2'"):
        jaxconv.feature_maps(model, tokens, layers=["convs/3"])
    # The capture switch is restored: nothing is sown outside feature_maps.
    assert not any(hasattr(m, "capture_stages") for m in model.convs)
    model(tokens)
    assert not any("feature_map" in vars(m) for m in model.convs)


def test_feature_maps_conv2d_and_repeated_calls():
    x = jax.random.normal(jax.random.key(0), (2, 12, 11, 2))
    model = build(Conv2DStack)
    maps = jaxconv.feature_maps(model, x)
    assert maps["c1"].shape == (2, 8, 7, 3) and maps["c3"].shape == model(x).shape
    np.testing.assert_allclose(maps["c3"], model(x), rtol=1e-5, atol=1e-6)
    assert jaxconv.feature_map(model, x, "c2", 1).shape == (2, 4, 4)
    twice = jaxconv.feature_maps(build(Twice), jnp.ones((1, 10, 4)))
    assert list(twice) == ["conv", "conv@1"]


class FlaxConvNet(nnx.Module):
    """Two flax.nnx.Conv layers (no jaxconv conv): they do not sow, so there are no feature maps to read."""

    def __init__(self, *, rngs):
        self.convs = nnx.List([nnx.Conv(4, 6, 3, rngs=rngs), nnx.Conv(6, 6, 3, kernel_dilation=2, rngs=rngs)])

    def __call__(self, x):                          # (B, L, 4) float
        for conv in self.convs:
            x = jax.nn.relu(conv(x))
        return x


class NoConvNet(nnx.Module):
    def __init__(self, *, rngs):
        self.dense = nnx.Linear(4, 3, rngs=rngs)

    def __call__(self, x):
        return self.dense(x)


def test_feature_maps_of_a_flax_conv_model_raise_and_say_what_to_use():
    model, x = build(FlaxConvNet), jnp.ones((1, 10, 4))
    advice = ("Feature maps need jaxconv's Conv1D / Conv2D, which sow their activations for nnx.capture. "
              "jaxconv.Conv1D(in_features, out_features, kernel_size, padding='same') is a drop-in for a 1-D "
              "flax.nnx.Conv(in_features, out_features, kernel_size)")
    with pytest.raises(ValueError, match=re.escape(
            "this FlaxConvNet has no jaxconv convolution: found flax.nnx.Conv layers at 'convs/0', 'convs/1', which "
            "do not sow their activations. " + advice)) as err:
        jaxconv.feature_maps(model, x)
    assert "Conv1D.from_keras(conv.kernel[...], conv.bias[...], padding='same')" in str(err.value)
    assert "jaxconv.nn.conv also has from_torch and, for Conv1D, from_keras1" in str(err.value)
    with pytest.raises(ValueError, match=re.escape(
            "layer 'convs/1' is not a jaxconv convolution in this FlaxConvNet; available conv paths: (none). "
            "'convs/1' is a flax.nnx.Conv, which does not sow its activations. " + advice)):
        jaxconv.feature_map(model, x, "convs/1", 0)
    with pytest.raises(ValueError, match=re.escape(
            "this NoConvNet has no jaxconv convolution (Conv1D / Conv2D) and no flax.nnx.Conv; feature maps are the "
            "activations that jaxconv's Conv1D / Conv2D sow for nnx.capture, so there are none to return. Build the "
            "model's convolutions with jaxconv.Conv1D / jaxconv.Conv2D.")):
        jaxconv.feature_maps(build(NoConvNet), x)


def test_the_advice_for_flax_convs_holds():
    """Conv1D.from_keras(flax kernel, bias, padding='same') computes what the flax.nnx.Conv computes."""
    flax_conv = build(FlaxConvNet).convs[0]
    conv = Conv1D.from_keras(flax_conv.kernel[...], flax_conv.bias[...], padding="same")
    x = jax.random.normal(jax.random.key(1), (2, 10, 4))
    np.testing.assert_allclose(conv(x), flax_conv(x), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Saliency
# ---------------------------------------------------------------------------------------------------------------


def _pooled_from_embeddings(model, e, i, j, reduce):
    fmap = model.convs[i](e)[..., j]               # (B, L')
    return {"max": jnp.max, "mean": jnp.mean, "sum": jnp.sum}[reduce](fmap, axis=1)  # (B,)


@pytest.mark.parametrize("reduce", ["max", "mean"])
def test_saliency_matches_finite_differences(reduce):
    model, _ = kim(**SMALL)
    tokens = jax.random.randint(jax.random.key(2), (2, 9), 1, 40)
    s = jaxconv.saliency(model, tokens, "convs/1", 2, reduce=reduce)
    assert isinstance(s, Saliency) and s.grad_norm.shape == s.grad_x_input.shape == (2, 9)
    emb = np.asarray(model.embed(tokens), np.float64)   # (B, L, D)
    with jax.enable_x64(True):
        f = jax.jit(jax.vmap(lambda e: _pooled_from_embeddings(model, e, 1, 2, reduce)))  # (n, B, L, D) -> (n, B)
        np.testing.assert_allclose(s.pooled, f(emb[None])[0], rtol=1e-5, atol=1e-6)
        eps = 1e-5
        B, L, D = emb.shape
        bumps = np.zeros((L * D, B, L, D))
        bumps[np.arange(L * D), :, np.arange(L * D) // D, np.arange(L * D) % D] = eps    # one coordinate each
        diff = (np.asarray(f(emb + bumps)) - np.asarray(f(emb - bumps))) / (2 * eps)   # (L*D, B)
        grad = diff.reshape(L, D, B).transpose(2, 0, 1)                                 # (B, L, D)
    np.testing.assert_allclose(s.grad_norm, np.linalg.norm(grad, axis=-1), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(s.grad_x_input, (grad * emb).sum(-1), rtol=1e-4, atol=1e-6)
    # The width-4 filter at the max position sees 4 tokens; the others get no gradient.
    if reduce == "max":
        assert np.all((np.asarray(s.grad_norm) > 0).sum(axis=1) <= 4)


def test_saliency_arguments():
    model, _ = kim(**SMALL)
    tokens = jnp.ones((1, 6), jnp.int32)
    a = jaxconv.saliency(model, tokens, "convs/0", 1, reduce="sum", embed="embed")
    b = jaxconv.saliency(model, tokens, "convs/0", np.int64(1), reduce="sum")
    np.testing.assert_allclose(a.grad_norm, b.grad_norm)
    with pytest.raises(IndexError, match="filter=-5 is out of range .*negative indices are not accepted"):
        jaxconv.saliency(model, tokens, "convs/0", 1 - 6, reduce="sum")
    with pytest.raises(ValueError, match="reduce='median' is not known"):
        jaxconv.saliency(model, tokens, "convs/0", 0, reduce="median")
    with pytest.raises(IndexError, match="filter=6 is out of range"):
        jaxconv.saliency(model, tokens, "convs/0", 6)
    with pytest.raises(ValueError, match="embed='nowhere' is neither a module path"):
        jaxconv.saliency(model, tokens, "convs/0", 0, embed="nowhere")
    with pytest.raises(ValueError, match="calls no nnx.Embed and has no embed method"):
        jaxconv.saliency(build(DilatedCausalStack, abstract=True), jnp.ones((1, 8, 4)), "convs/0", 0)


# ---------------------------------------------------------------------------------------------------------------
# jaxconv.models.TextCNN, when present
# ---------------------------------------------------------------------------------------------------------------


def test_explain_and_saliency_on_text_cnn():
    text_cnn = pytest.importorskip("jaxconv.models.text_cnn")
    args = dict(vocab_size=200, num_classes=2, embed_dim=16, widths=(3, 4, 5), filters=8)
    e = jaxconv.explain(build(text_cnn.TextCNN, abstract=True, **args), (2, 20), dtype=jnp.int32)
    assert e.conv_paths == ["convs/0", "convs/1", "convs/2"]
    for i, k in enumerate((3, 4, 5)):
        r = e.row(f"convs/{i}")
        assert r.output_shape == (2, 20 - k + 1, 8) and r.kernel == f"(width={k}, in=16, out=8)"
        assert r.params == k * 16 * 8 + 8 and r.rf_size == (k,)    # embedding done in jnp: rf still in tokens
    model = build(text_cnn.TextCNN, **args)
    assert e.total_params == sum(int(np.size(v)) for v in jax.tree.leaves(nnx.state(model, nnx.Param)))
    tokens = jax.random.randint(jax.random.key(0), (2, 20), 1, 200)
    s = jaxconv.saliency(model, tokens, "convs/2", 0)          # the model's embed method
    assert s.grad_norm.shape == (2, 20)
    assert np.all((np.asarray(s.grad_norm) > 0).sum(axis=1) <= 5)


# ---------------------------------------------------------------------------------------------------------------
# jaxtyping annotations
# ---------------------------------------------------------------------------------------------------------------


def test_return_shapes_match_the_jaxtyping_annotations():
    import typing

    from jaxtyping import jaxtyped

    model, _ = kim(**SMALL)
    tokens = jnp.ones((3, 11), jnp.int32)
    with jaxtyped("context"):
        maps_hint = typing.get_type_hints(jaxconv.feature_maps)["return"]
        value_hint = typing.get_args(maps_hint)[1]                   # Float[Array, "batch *out_spatial filters"]
        assert all(isinstance(v, value_hint) for v in jaxconv.feature_maps(model, tokens, layers="convs/0").values())
    with jaxtyped("context"):
        hint = typing.get_type_hints(jaxconv.feature_map)["return"]   # Float[Array, "batch *out_spatial"]
        assert isinstance(jaxconv.feature_map(model, tokens, "convs/0", 0), hint)
    s = jaxconv.saliency(model, tokens, "convs/0", 0)
    hints = typing.get_type_hints(Saliency)
    with jaxtyped("context"):
        assert isinstance(s.grad_norm, hints["grad_norm"]) and isinstance(s.grad_x_input, hints["grad_x_input"])
        assert isinstance(s.pooled, hints["pooled"])
    with jaxtyped("context"):
        spans = jaxconv.receptive_spans(model, "convs/0", 11)
        assert isinstance(spans, typing.get_args(typing.get_type_hints(jaxconv.receptive_spans)["return"])[0])
    with pytest.raises(AssertionError), jaxtyped("context"):           # the check can fail: batch must agree
        assert isinstance(s.grad_norm, hints["grad_norm"]) and isinstance(jnp.ones(4), hints["pooled"])


def test_explain_of_a_token_model_on_a_float_input_says_to_pass_int_ids():
    """A float input to a model that embeds token ids fails in the embedding ("indices must have an integer type"
    from jax); explain names the model, the dtype and the fix instead."""
    model, _ = kim(abstract=True, **SMALL)
    with pytest.raises(TypeError, match=re.escape(
            "explain: this TinyKimCNN embeds token ids, so its input needs an integer dtype; got float32 of shape "
            "(1, 12) (a shape tuple means float32 unless dtype= says otherwise): pass int token ids, or "
            "explain(model, (1, 12), dtype=jnp.int32). The model raised: ")):
        jaxconv.explain(model, (1, 12))
    with pytest.raises(TypeError, match=re.escape("explain: this TinyKimCNN embeds token ids, so its input needs an "
                                                  "integer dtype; got float16 of shape (2, 12)")):
        jaxconv.explain(model, jnp.ones((2, 12), jnp.float16))
    assert jaxconv.explain(model, (1, 12), dtype=jnp.int32).rows[0].output_shape == (1, 2)
    # A float model is untouched by the check.
    assert jaxconv.explain(build(DilatedCausalStack, abstract=True), (1, 20, 4)).rows[-1].output_shape == (1, 20, 4)


def test_a_failed_feature_map_leaves_the_model_usable():
    """nnx.capture leaves its `__captures__` on every module when the call raises; feature_maps removes them, so the
    model can be traced and captured again afterwards (else: "Comparator raised exception while sorting pytree
    dictionary keys")."""
    from jaxconv.models import TextCNN

    model = TextCNN(50, 2, embed_dim=8, widths=(3,), filters=4, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=re.escape("TextCNN: tokens[0, 2] = 60 is out of range; token ids must be in "
                                                   "[0, vocab_size) = [0, 50)")):
        jaxconv.feature_map(model, jnp.asarray([[1, 2, 60, 4, 5]]), "convs/0", 0)
    assert not any("__captures__" in vars(m) for _, m in nnx.iter_modules(model))
    assert jaxconv.explain(model, jnp.ones((1, 5), jnp.int32)).rows[0].output_shape == (1, 2)
    fmap = jaxconv.feature_map(model, jnp.asarray([[1, 2, 3, 4, 5]]), "convs/0", 0)
    assert fmap.shape == (1, 3) and np.isfinite(np.asarray(fmap)).all()
