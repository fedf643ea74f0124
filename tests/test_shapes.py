"""jaxconv.shapes against XLA (lax), PyTorch and brute force.

Expected values never come from jaxconv itself: output lengths come from ``jax.eval_shape`` of a real
``lax.conv_general_dilated`` (shape inference only, nothing compiles), XLA's own 'SAME' split from
``lax.padtype_to_pads``, receptive fields from probing a stack of real convolutions with one-hot inputs, FLOPs
from XLA's cost analysis and counting taps by hand.
"""

from __future__ import annotations

import functools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jax import lax

from conftest import require_torch
from jaxconv import shapes

DN1 = ("NWC", "WIO", "NWC")

# ---------------------------------------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=None)
def lax_out_length(length: int, kernel_size: int, stride: int, dilation: int, padding) -> int:
    """Output length of a real lax.conv_general_dilated (shape inference only). ``padding``: (lo, hi) or a lax string."""
    pad = padding if isinstance(padding, str) else [tuple(padding)]
    out = jax.eval_shape(
        lambda x, w: lax.conv_general_dilated(x, w, (stride,), pad, rhs_dilation=(dilation,), dimension_numbers=DN1),
        jax.ShapeDtypeStruct((1, length, 1), jnp.float32),
        jax.ShapeDtypeStruct((kernel_size, 1, 1), jnp.float32),
    )
    return out.shape[1]


def hand_formula(length, k, s, d, lo, hi) -> tuple[int, str]:
    """The output length and the formula string, written out here independently of jaxconv."""
    out = math.floor((length + lo + hi - d * (k - 1) - 1) / s) + 1
    return out, f"{out} = floor(({length} + {lo} + {hi} - {d}*({k}-1) - 1) / {s}) + 1"


paddings = st.one_of(
    st.sampled_from(shapes.PADDING_KINDS),
    st.integers(0, 6),
    st.tuples(st.integers(0, 6), st.integers(0, 6)),
)

# ---------------------------------------------------------------------------------------------------- the sweep


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(length=st.integers(1, 64), k=st.integers(1, 9), s=st.integers(1, 4), d=st.integers(1, 3), padding=paddings)
def test_output_length_matches_lax(length, k, s, d, padding):
    if padding == "same_torch" and s > 1:
        with pytest.raises(ValueError, match=re.escape(
                f"padding='same_torch' supports stride=1 only (as PyTorch's padding='same'); got stride={s}.")):
            shapes.conv_output_length(length, k, stride=s, dilation=d, padding=padding)
        return
    lo, hi = shapes.resolve_padding(length, k, stride=s, dilation=d, padding=padding)
    assert lo >= 0 and hi >= 0
    # The named conventions, written out by hand.
    span = d * (k - 1)
    if padding == "valid":
        assert (lo, hi) == (0, 0)
    elif padding == "causal":
        assert (lo, hi) == (span, 0)
    elif padding == "full":
        assert (lo, hi) == (span, span)
    elif padding == "same_torch":
        assert (lo, hi) == (span // 2, span - span // 2)  # torch: total d*(k-1), the extra on the right
    elif isinstance(padding, int):
        assert (lo, hi) == (padding, padding)
    elif isinstance(padding, tuple):
        assert (lo, hi) == padding
    elif padding in ("same", "same_lower"):
        xla = lax.padtype_to_pads((length,), (span + 1,), (s,), "SAME" if padding == "same" else "SAME_LOWER")
        assert (lo, hi) == tuple(xla[0])

    expected = lax_out_length(length, k, s, d, (lo, hi))
    out, formula = hand_formula(length, k, s, d, lo, hi)
    if out < 1:
        assert expected == 0  # XLA clamps an empty output to length 0
        with pytest.raises(ValueError, match=re.escape(formula + "; expected out >= 1.")):
            shapes.conv_output_length(length, k, stride=s, dilation=d, padding=padding)
        return
    got = shapes.conv_output_length(length, k, stride=s, dilation=d, padding=padding)
    assert got == expected == out
    assert shapes.output_length_formula(length, k, stride=s, dilation=d, padding=padding) == formula
    if padding in ("same", "valid"):
        assert got == lax_out_length(length, k, s, d, padding.upper())
    if padding in ("same", "same_lower", "same_torch"):
        assert got == -(-length // s)  # ceil(L / s)


@settings(max_examples=150, deadline=None)
@given(length=st.integers(1, 64), k=st.integers(1, 9), s=st.integers(1, 4), d=st.integers(1, 3))
def test_same_split_matches_xla(length, k, s, d):
    """Our 'same' / 'same_lower' (lo, hi) are XLA's SAME / SAME_LOWER pads, for every stride (lax.padtype_to_pads)."""
    k_eff = d * (k - 1) + 1
    for ours, theirs in (("same", "SAME"), ("same_lower", "SAME_LOWER")):
        xla = lax.padtype_to_pads((length,), (k_eff,), (s,), theirs)[0]
        assert shapes.resolve_padding(length, k, stride=s, dilation=d, padding=ours) == tuple(xla)


axis_padding = st.sampled_from(["valid", "same", "causal", 0, 1, (0, 2)])


@settings(max_examples=60, deadline=None)
@given(h=st.integers(3, 20), w=st.integers(3, 20), kh=st.integers(1, 3), kw=st.integers(1, 3), s=st.integers(1, 3),
       ph=axis_padding, pw=axis_padding)
def test_output_shape_2d_matches_lax(h, w, kh, kw, s, ph, pw):
    padding = (ph, pw)  # one entry per spatial axis
    ours = shapes.conv_output_shape((h, w), (kh, kw), stride=s, padding=padding)
    pads = [shapes.resolve_padding(L, k, stride=s, padding=p) for L, k, p in ((h, kh, ph), (w, kw, pw))]
    y = jax.eval_shape(
        lambda x, k: lax.conv_general_dilated(x, k, (s, s), pads, dimension_numbers=("NHWC", "HWIO", "NHWC")),
        jax.ShapeDtypeStruct((1, h, w, 1), jnp.float32), jax.ShapeDtypeStruct((kh, kw, 1, 1), jnp.float32))
    assert ours == y.shape[1:3]


def test_per_axis_padding_2d():
    # (1, 2) for 2-D is per axis (as PyTorch), ((lo, hi), (lo, hi)) explicit.
    assert shapes.conv_output_shape((10, 10), 3, padding=(1, 2)) == (10, 12)
    assert shapes.conv_output_shape((10, 10), 3, padding=((1, 1), (2, 2))) == (10, 12)
    assert shapes.conv_output_shape((10, 10), 3, padding=((0, 1), "same")) == (9, 10)
    with pytest.raises(ValueError, match=re.escape(
            "padding=(1, 2, 3) is not understood for 2 spatial axes; expected a string, an int, or a sequence of 2 "
            "entries (each a string, an int or a (lo, hi) pair).")):
        shapes.conv_output_shape((10, 10), 3, padding=(1, 2, 3))


# ---------------------------------------------------------------------------------------------------- errors


def test_too_short_message_verbatim():
    with pytest.raises(ValueError, match=re.escape(
            "input length 3 is shorter than the dilated kernel d*(k-1)+1 = 1*(5-1)+1 = 5 under padding='valid' "
            "(lo=0, hi=0): out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1 gives "
            "-1 = floor((3 + 0 + 0 - 1*(5-1) - 1) / 1) + 1; expected out >= 1.")):
        shapes.conv_output_length(3, 5)
    with pytest.raises(ValueError, match=re.escape("-2 = floor((4 + 0 + 0 - 2*(5-1) - 1) / 2) + 1")):
        shapes.conv_output_length(4, 5, stride=2, dilation=2)


@pytest.mark.parametrize("padding, message", [
    ("samee", "padding='samee' is not a known padding convention; expected one of 'valid', 'same', 'same_lower', "
              "'same_torch', 'causal', 'full', an int >= 0, or a (lo, hi) pair of ints >= 0."),
    (-1, "padding must be >= 0; got padding=-1."),
    ((-1, 2), "padding (lo, hi) must both be >= 0; got padding=(-1, 2)."),
    ((1, 2, 3), "padding=(1, 2, 3) is not understood; expected one of 'valid', 'same', 'same_lower', 'same_torch', "
                "'causal', 'full', an int >= 0, or a (lo, hi) pair of ints >= 0."),
])
def test_bad_padding_messages(padding, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        shapes.resolve_padding(10, 3, padding=padding)
    with pytest.raises(ValueError, match=re.escape(message)):
        shapes.conv_output_length(10, 3, padding=padding)


def test_same_torch_stride_message():
    with pytest.raises(ValueError, match=re.escape(
            "padding='same_torch' supports stride=1 only (as PyTorch's padding='same'); got stride=2. Use "
            "padding='same' for the XLA/Keras split, which depends on the input length when stride > 1.")):
        shapes.resolve_padding(10, 3, stride=2, padding="same_torch")


@pytest.mark.parametrize("kwargs, message", [
    (dict(length=0, kernel_size=3), "length must be an int >= 1; got length=0."),
    (dict(length=5, kernel_size=0), "kernel_size must be an int >= 1; got kernel_size=0."),
    (dict(length=5, kernel_size=3, stride=0), "stride must be an int >= 1; got stride=0."),
    (dict(length=5, kernel_size=3, dilation=-2), "dilation must be an int >= 1; got dilation=-2."),
])
def test_bad_ints(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        shapes.conv_output_length(**kwargs)


def test_non_int_is_type_error():
    with pytest.raises(TypeError, match=re.escape("kernel_size must be an int >= 1; got 2.5 of type float.")):
        shapes.conv_output_length(10, 2.5)
    assert shapes.conv_output_length(np.int64(10), np.int32(3)) == 8  # numpy ints are ints


def test_is_integral_and_per_axis_ints():
    assert shapes.is_integral(np.int32(3)) and not shapes.is_integral(True) and not shapes.is_integral(3.0)
    assert shapes.per_axis_ints(np.int64(3), 2) == (3, 3)
    assert shapes.per_axis_ints(np.array([5, 3])) == (5, 3)
    assert all(type(v) is int for v in shapes.per_axis_ints((np.int64(5), 3)))
    with pytest.raises(TypeError, match=re.escape("stride must be an int or a sequence of 2 ints; got True.")):
        shapes.per_axis_ints(True, 2, name="stride")
    with pytest.raises(TypeError, match=re.escape("kernel_size must be an int or a sequence of ints; got (3.5, 3).")):
        shapes.per_axis_ints((3.5, 3), name="kernel_size")
    with pytest.raises(ValueError, match=re.escape("dilation must be >= 1 on every axis; got dilation=(1, 0).")):
        shapes.per_axis_ints((1, 0), 2, name="dilation", minimum=1)


# ---------------------------------------------------------------------------------------------------- receptive field


def _probe_dependencies(stack, length: int) -> np.ndarray:
    """dep[t, i] = True when input position i reaches output t, through a stack of real all-ones convolutions.

    The stack is linear with positive weights (no cancellation), so feeding the L one-hot inputs as a batch gives
    the Jacobian d out[t] / d x[i] exactly: nonzero iff i is in t's receptive field.
    """
    x = jnp.eye(length, dtype=jnp.float32)[:, :, None]  # (L, L, 1): batch of one-hot inputs
    cur = length
    for k, s, d, p in stack:
        lo, hi = shapes.resolve_padding(cur, k, stride=s, dilation=d, padding=p)
        x = lax.conv_general_dilated(x, jnp.ones((k, 1, 1), jnp.float32), (s,), [(lo, hi)], rhs_dilation=(d,),
                                     dimension_numbers=DN1)
        cur = x.shape[1]
    return np.asarray(x[:, :, 0]).T > 0  # (out_len, L)


layer = st.tuples(st.integers(1, 5), st.integers(1, 2), st.integers(1, 3),
                  st.sampled_from(["valid", "same", "causal", "full", 0, 1, 2]))


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(stack=st.lists(layer, min_size=1, max_size=3), length=st.integers(4, 24))
def test_input_span_matches_probe(stack, length):
    cur = length
    try:
        for k, s, d, p in stack:
            cur = shapes.conv_output_length(cur, k, stride=s, dilation=d, padding=p)
    except ValueError:
        assume(False)
    dep = _probe_dependencies(stack, length)
    assert dep.shape == (cur, length)
    rf = shapes.receptive_field(stack, length)
    no_holes = all(s == 1 and d == 1 for _, s, d, _ in stack)
    # Input length of each layer and its left padding, to follow the extreme paths back by hand.
    lens, los = [length], []
    for k, s, d, p in stack:
        los.append(shapes.resolve_padding(lens[-1], k, stride=s, dilation=d, padding=p)[0])
        lens.append(shapes.conv_output_length(lens[-1], k, stride=s, dilation=d, padding=p))

    def extreme_path(t, last: bool):
        """Follow the first (or last) tap of every layer from output t back to the input; None if it crosses padding."""
        p = t
        for (k, s, d, _), lo, n_in in zip(stack[::-1], los[::-1], lens[-2::-1]):
            p = p * s - lo + (d * (k - 1) if last else 0)
            if not 0 <= p < n_in:
                return None
        return p

    for t in range(cur):
        a, b = shapes.input_span(stack, t, length)
        assert 0 <= a <= b <= length
        hit = np.flatnonzero(dep[t])
        assert np.all((a <= hit) & (hit < b)), (t, (a, b), hit)  # every position that matters is in the span
        first, last = extreme_path(t, False), extreme_path(t, True)
        if first is not None:  # tight on the left when the leftmost path runs over real positions
            assert hit.min() == a == first == rf.start + t * rf.jump, (t, (a, b), hit)
        if last is not None:
            assert hit.max() == b - 1 == last == rf.start + t * rf.jump + rf.size - 1, (t, (a, b), hit)
        if no_holes and hit.size:
            assert hit.tolist() == list(range(hit.min(), hit.max() + 1))
        if no_holes and all(lo == 0 for lo in los[1:]) and all(
                shapes.resolve_padding(n, k, stride=s, dilation=d, padding=p)[1] == 0
                for (k, s, d, p), n in zip(stack[1:], lens[1:-1])):
            assert hit.tolist() == list(range(a, b))  # padding only on the input: the span is exact


def test_receptive_field_by_hand():
    # Kim-style width 5: 5 tokens; WaveNet-style causal 3-tap stack with dilations 1, 2, 4: 1 + 2*(1+2+4) = 15.
    assert shapes.receptive_field([(5,)]) == (5, 1, 0)
    assert shapes.receptive_field([(3, 1, 1, "causal"), (3, 1, 2, "causal"), (3, 1, 4, "causal")]) == (15, 1, -14)
    # Two stride-2 width-3 valid layers: size 3 + 2*2 = 7, jump 4.
    assert shapes.receptive_field([(3, 2), (3, 2)]) == (7, 4, 0)
    assert shapes.input_span([(3, 2), (3, 2)], 2, 20) == (8, 15)
    with pytest.raises(ValueError, match=re.escape(
            "layers[0] uses padding='same' with stride=2, whose padding depends on the input length; pass "
            "length=<input length>.")):
        shapes.receptive_field([(3, 2, 1, "same")])
    # Outputs that see only padding get an empty span.
    assert shapes.input_span([(1, 1, 1, 2)], 0, 4) == (0, 0)
    assert shapes.input_span([(1, 1, 1, 2)], 7, 4) == (4, 4)
    with pytest.raises(ValueError, match=re.escape(
            "out_index must be in [0, 46) for an input of length 50 (the stack's output length); got out_index=46.")):
        shapes.input_span([(5,)], 46, 50)


# ---------------------------------------------------------------------------------------------------- params, FLOPs


def test_conv_params_by_hand():
    assert shapes.conv_params(300, 111, 5) == 5 * 300 * 111 + 111
    assert shapes.conv_params(300, 100, 3, use_bias=False) == 90000
    assert shapes.conv_params(8, 6, (3, 2), groups=2) == 3 * 2 * 4 * 6 + 6
    with pytest.raises(ValueError, match=re.escape(
            "in_channels and filters must both be divisible by groups; got in_channels=6, filters=4, groups=4.")):
        shapes.conv_params(6, 4, 3, groups=4)


def test_conv_params_counts_real_parameters():
    from flax import nnx

    from jaxconv import Conv1D, Conv2D

    for cls, c, f, k, g, bias in ((Conv1D, 300, 111, 5, 1, True), (Conv1D, 6, 9, 4, 3, False),
                                  (Conv2D, 4, 8, (3, 2), 2, True)):
        m = cls(c, f, k, groups=g, use_bias=bias, rngs=nnx.Rngs(0),
                kernel_init=lambda key, shape, dtype: np.zeros(shape, dtype))  # no random init to compile
        n = sum(x.size for x in jax.tree.leaves(nnx.state(m, nnx.Param)))
        assert shapes.conv_params(c, f, k, groups=g, use_bias=bias) == n


def _taps_inside(length, k, s, d, lo, hi) -> tuple[int, int]:
    """(all taps, taps landing on a real input position) of a 1-D conv, counted by brute force."""
    out = (length + lo + hi - d * (k - 1) - 1) // s + 1
    taps = [t * s + i * d - lo for t in range(out) for i in range(k)]
    return len(taps), sum(0 <= p < length for p in taps)


@pytest.mark.parametrize("L, C, F, k, s, d, g, padding, batch", [
    (50, 30, 12, 5, 1, 1, 1, "valid", 3),
    (50, 30, 12, 5, 1, 1, 1, "same", 2),
    (50, 30, 12, 5, 2, 1, 1, "same", 1),
    (40, 12, 6, 3, 1, 2, 1, "causal", 2),
    (17, 4, 6, 4, 3, 2, 2, "full", 1),
    (33, 8, 8, 3, 1, 1, 4, 1, 2),
])
def test_conv_flops_vs_xla_cost_analysis(L, C, F, k, s, d, g, padding, batch):
    """conv_flops counts every tap as a multiply-add (2 FLOPs), padding positions included: the work of a dense
    implementation. XLA's cost analysis counts only taps that land on real input positions, so it is smaller
    whenever there is padding. Both are checked against a brute-force tap count."""
    lo, hi = shapes.resolve_padding(L, k, stride=s, dilation=d, padding=padding)

    def conv(x, w):
        return lax.conv_general_dilated(x, w, (s,), [(lo, hi)], rhs_dilation=(d,), dimension_numbers=DN1,
                                        feature_group_count=g)

    x, w = jnp.ones((batch, L, C)), jnp.ones((k, C // g, F))
    cost = jax.jit(conv).lower(x, w).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    all_taps, real_taps = _taps_inside(L, k, s, d, lo, hi)
    per_tap = 2 * (C // g) * F * batch
    ours = shapes.conv_flops((L,), C, F, k, stride=s, dilation=d, padding=padding, groups=g, use_bias=False, batch=batch)
    assert ours == per_tap * all_taps
    assert cost["flops"] == per_tap * real_taps
    if (lo, hi) == (0, 0):
        assert ours == cost["flops"]

    # The bias adds one FLOP per output element, in both counts.
    def conv_bias(x, w, b):
        return conv(x, w) + b

    cost_b = jax.jit(conv_bias).lower(x, w, jnp.ones(F)).compile().cost_analysis()
    cost_b = cost_b[0] if isinstance(cost_b, list) else cost_b
    out = shapes.conv_output_length(L, k, stride=s, dilation=d, padding=padding)
    ours_b = shapes.conv_flops((L,), C, F, k, stride=s, dilation=d, padding=padding, groups=g, batch=batch)
    assert ours_b - ours == batch * out * F == cost_b["flops"] - cost["flops"]


def test_conv_flops_2d_vs_xla():
    cost = jax.jit(lambda x, w: lax.conv_general_dilated(x, w, (1, 1), "VALID",
                                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))).lower(
        jnp.ones((2, 9, 8, 3)), jnp.ones((3, 2, 3, 5))).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    assert shapes.conv_flops((9, 8), 3, 5, (3, 2), use_bias=False, batch=2) == cost["flops"] == 2 * 7 * 7 * 5 * 18 * 2


# ---------------------------------------------------------------------------------------------------- transposed


@pytest.mark.parametrize("length", [1, 4, 7])
@pytest.mark.parametrize("k", [1, 2, 3, 5])
@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("d", [1, 2])
def test_transposed_output_length_vs_lax(length, k, s, d):
    def lax_len(padding):
        y = jax.eval_shape(
            lambda x, w: lax.conv_transpose(x, w, (s,), padding, rhs_dilation=(d,), dimension_numbers=DN1),
            jax.ShapeDtypeStruct((1, length, 1), jnp.float32), jax.ShapeDtypeStruct((k, 1, 1), jnp.float32))
        return y.shape[1]

    assert shapes.transposed_output_length(length, k, stride=s, dilation=d, padding="same") == lax_len("SAME")
    # 'valid': jaxconv follows PyTorch, (L-1)*s + k_eff. lax.conv_transpose('VALID') gives L*s + max(k_eff - s, 0):
    # the same when k_eff >= s, and s - k_eff more (trailing zeros) when the stride exceeds the dilated kernel.
    k_eff = d * (k - 1) + 1
    ours = shapes.transposed_output_length(length, k, stride=s, dilation=d, padding="valid")
    assert lax_len("VALID") == ours + max(s - k_eff, 0)


def test_transposed_output_length_vs_torch():
    torch = require_torch()
    for length, k, s, d, p, op in [(3, 3, 2, 1, 1, 0), (3, 3, 2, 1, 1, 1), (5, 4, 3, 2, 2, 1), (7, 1, 1, 1, 0, 0),
                                   (6, 5, 2, 3, 4, 0), (2, 2, 4, 1, 0, 3)]:
        m = torch.nn.ConvTranspose1d(1, 1, k, stride=s, padding=p, output_padding=op, dilation=d)
        expected = m(torch.zeros(1, 1, length)).shape[-1]
        assert shapes.transposed_output_length(length, k, stride=s, dilation=d, padding=p, output_padding=op) == expected
        # and transposing inverts the forward length arithmetic
        assert shapes.conv_output_length(expected, k, stride=s, dilation=d, padding=p) == length


def test_transposed_errors():
    with pytest.raises(ValueError, match=re.escape(
            "output_padding must be smaller than stride or dilation; got output_padding=2 with stride=2, dilation=1.")):
        shapes.transposed_output_length(3, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match=re.escape(
            "transposed output length would be -1: out = (L - 1)*s - (lo + hi) + d*(k-1) + output_padding + 1 = "
            "(1 - 1)*1 - (1 + 1) + 1*(1-1) + 0 + 1 = -1; expected out >= 1.")):
        shapes.transposed_output_length(1, 1, padding=1)
    with pytest.raises(ValueError, match=re.escape(
            "padding='causal' is not supported for transposed convolutions; expected 'valid', 'same', an int >= 0 or "
            "a (lo, hi) pair.")):
        shapes.transposed_output_length(3, 3, padding="causal")


def test_conv_output_shape_takes_an_int_length_for_1d():
    """A 1-D length may be given as an int (it used to fail with "'int' object is not iterable")."""
    expected = jax.eval_shape(lambda x, w: lax.conv_general_dilated(x, w, (1,), "VALID", dimension_numbers=(
        "NWC", "WIO", "NWC")), jax.ShapeDtypeStruct((1, 10, 1), jnp.float32),
        jax.ShapeDtypeStruct((3, 1, 1), jnp.float32)).shape[1:2]
    assert shapes.conv_output_shape(10, 3) == shapes.conv_output_shape((10,), 3) == expected == (8,)
    assert shapes.conv_output_shape(np.int64(10), 3, stride=2, padding="same") == (5,)
    for bad, text in (("10", "'10'"), (10.0, "10.0"), (None, "None"), ((10, "x"), "(10, 'x')")):
        with pytest.raises(TypeError, match=re.escape(
                f"spatial_shape must be an int or a sequence of ints; got {text}.")):
            shapes.conv_output_shape(bad, 3)
    with pytest.raises(ValueError, match=re.escape("spatial_shape must have at least one axis; got spatial_shape=().")):
        shapes.conv_output_shape((), 3)
