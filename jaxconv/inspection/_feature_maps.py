"""Feature maps (:func:`feature_maps`, :func:`feature_map`), conv paths (:func:`conv_paths`) and receptive spans
(:func:`receptive_spans`)."""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from jaxconv import shapes
from jaxconv._args import check_index
from jaxconv._format import fmt_tuple
from jaxconv.inspection._explain import explain
from jaxconv.inspection._trace import _as_struct, _input_rf, _modules_by_path, _path_str, _takes_token_ids
from jaxconv.nn.conv import ConvND, PostActivation, PreActivation


def conv_paths(model: nnx.Module) -> list[str]:
    """Paths (``'/'``-joined nnx paths, e.g. ``"convs/0"``) of the jaxconv convolutions in ``model``, in graph order."""
    return [p for p, m in _modules_by_path(model).items() if isinstance(m, ConvND)]


# ----------------------------------------------------------------------------------------------------------------
# Feature maps
# ----------------------------------------------------------------------------------------------------------------

_STAGES = {"pre": PreActivation, "post": PostActivation}


#: How to get feature maps out of a flax.nnx.Conv model (the end of the errors below).
_FLAX_ADVICE = ("Feature maps need jaxconv's Conv1D / Conv2D, which sow their activations for nnx.capture. "
                "jaxconv.Conv1D(in_features, out_features, kernel_size, padding='same') is a drop-in for a 1-D "
                "flax.nnx.Conv(in_features, out_features, kernel_size) (flax pads 'SAME' by default; strides -> stride, "
                "kernel_dilation -> dilation, feature_group_count -> groups; jaxconv.Conv2D for 2-D), and "
                "Conv1D.from_keras(conv.kernel[...], conv.bias[...], padding='same') builds one from a trained flax "
                "kernel, whose (..., in, out) layout is Keras 3's (jaxconv.nn.conv also has from_torch and, for "
                "Conv1D, from_keras1).")


def _flax_paths(model) -> list[str]:
    return [p for p, m in _modules_by_path(model).items() if isinstance(m, nnx.Conv)]


def _no_convs_error(model) -> ValueError:
    """The error for ``layers=None`` on a model without jaxconv convs (rather than returning ``{}``)."""
    name, flax = type(model).__name__, _flax_paths(model)
    if flax:
        return ValueError(f"this {name} has no jaxconv convolution: found flax.nnx.Conv layers at "
                          f"{', '.join(repr(p) for p in flax)}, which do not sow their activations. {_FLAX_ADVICE}")
    return ValueError(f"this {name} has no jaxconv convolution (Conv1D / Conv2D) and no flax.nnx.Conv; feature maps "
                      f"are the activations that jaxconv's Conv1D / Conv2D sow for nnx.capture, so there are none to "
                      f"return. Build the model's convolutions with jaxconv.Conv1D / jaxconv.Conv2D.")


def _resolve_layers(model, layers) -> dict[str, ConvND]:
    convs = {p: m for p, m in _modules_by_path(model).items() if isinstance(m, ConvND)}
    if layers is None:
        if not convs:
            raise _no_convs_error(model)
        return convs
    if isinstance(layers, str):
        layers = [layers]
    out = {}
    for name in layers:
        if name not in convs:
            flax = (f" {name!r} is a flax.nnx.Conv, which does not sow its activations. {_FLAX_ADVICE}"
                    if name in _flax_paths(model) else "")
            raise ValueError(f"layer {name!r} is not a jaxconv convolution in this {type(model).__name__}; available "
                             f"conv paths: {', '.join(repr(p) for p in convs) or '(none)'}.{flax}")
        out[name] = convs[name]
    return out


def _stage(stage: str):
    if stage not in _STAGES:
        raise ValueError(f"stage={stage!r} is not known; expected 'pre' (before the activation) or 'post' (after).")
    return _STAGES[stage]


def feature_maps(model: nnx.Module, x, *, layers: str | Sequence[str] | None = None,
                 stage: str = "post") -> dict[str, Float[Array, " batch *out_spatial filters"]]:
    """Run ``model(x)`` and return the activation maps of its jaxconv convolutions.

    Args:
      model: an ``nnx.Module`` holding jaxconv ``Conv1D`` / ``Conv2D`` layers.
      x: the model input, e.g. token ids ``(batch, length)``.
      layers: conv paths to keep (``'/'``-joined nnx paths such as ``"convs/0"``); default all. Only these convs
        store their output; the others run as usual.
      stage: ``"post"`` (after the activation, default) or ``"pre"`` (before it, bias included).

    Returns:
      ``{path: map}``; a Conv1D map has shape ``(batch, out_length, filters)``, a Conv2D map
      ``(batch, out_height, out_width, filters)``, channels-last whatever the conv's ``data_format`` (leading batch
      axes are flattened into one). A conv called more than once gives ``path`` for its first call and
      ``path@1``, ``path@2``, ... for the later ones.

    Raises:
      ValueError: a path in ``layers`` that is not a jaxconv conv (the message lists the available paths), an
        unknown ``stage``, or, with ``layers=None``, a model without any jaxconv conv (the message lists its
        ``flax.nnx.Conv`` paths, which do not sow feature maps, and how to swap in ``jaxconv.Conv1D``).

    Works under ``nnx.jit``: ``nnx.jit(lambda m, x: feature_maps(m, x, layers=["convs/0"]))(model, x)``.
    It reads the maps with ``nnx.capture``: each wanted conv gets ``capture_stages = (PostActivation,)`` (or
    ``PreActivation``) for the duration of the call, and sows under the name ``"feature_map"``.
    """
    kind = _stage(stage)
    wanted = _resolve_layers(model, layers)
    missing = object()
    saved = {}
    for p, m in wanted.items():
        saved[p] = vars(m).get("capture_stages", missing)
        m.capture_stages = (kind,)
    try:
        _, state = nnx.capture(model, kind)(x)
    finally:
        # nnx.capture leaves its `__captures__` on every module when the call raises (a bad input): drop them, or the
        # model could not be traced again (its attributes would mix key types).
        for _, m in nnx.iter_modules(model):
            if "__captures__" in vars(m):
                delattr(m, "__captures__")
        for p, m in wanted.items():
            if saved[p] is missing:
                del m.capture_stages
            else:
                m.capture_stages = saved[p]
    out = {}
    for path, var in nnx.to_flat_state(state):
        if not path or path[-1] != "feature_map":
            continue
        p = _path_str(path[:-1])
        if p not in wanted:
            continue
        values = var.get_value()
        values = values if isinstance(values, tuple) else (values,)
        for i, v in enumerate(values):
            out[p if i == 0 else f"{p}@{i}"] = v
    return {p: out[p] for p in wanted if p in out} | {k: v for k, v in out.items() if k not in wanted}


def _check_filter(conv: ConvND, layer: str, filter, owner: str) -> int:
    """``filter`` as an index of the conv's filters (:func:`jaxconv._args.check_index`: no negative index)."""
    return check_index(owner, "filter", filter, conv.filters, what=f"layer {layer!r}, which has filters={conv.filters}")


def feature_map(model: nnx.Module, x, layer: str, filter: int, *,
                stage: str = "post") -> Float[Array, " batch *out_spatial"]:
    """One filter's activation map: ``feature_maps(model, x, layers=[layer])[layer][..., filter]``.

    Returns:
      Conv1D: ``(batch, out_length)``; Conv2D: ``(batch, out_height, out_width)``.

    Raises:
      TypeError: ``filter`` is not an int (``1.0`` neither). IndexError (also a ValueError): ``filter`` outside
        ``[0, filters)``; a negative one too (``-1`` is not the last filter). ValueError: unknown ``layer`` (lists
        the conv paths; a ``flax.nnx.Conv`` layer gets the advice of :func:`feature_maps`).
    """
    conv = _resolve_layers(model, [layer])[layer]
    j = _check_filter(conv, layer, filter, "jaxconv.feature_map")
    return feature_maps(model, x, layers=[layer], stage=stage)[layer][..., j]


# ----------------------------------------------------------------------------------------------------------------
# Receptive spans
# ----------------------------------------------------------------------------------------------------------------


def _default_input(model: nnx.Module, input_length) -> jax.ShapeDtypeStruct:
    lengths = shapes.per_axis_ints(input_length, name="input_length")
    if _takes_token_ids(model):
        return jax.ShapeDtypeStruct((1, *lengths), jnp.int32)
    convs = [m for _, m in nnx.iter_modules(model) if isinstance(m, ConvND)]
    if not convs:
        raise ValueError(f"cannot guess the input of this {type(model).__name__} (no nnx.Embed, no jaxconv conv); "
                         f"pass x_or_shape=.")
    first = convs[0]
    return jax.ShapeDtypeStruct((1, *lengths, first.in_channels), jnp.float32)


def receptive_spans(model: nnx.Module, layer: str, input_length: int | Sequence[int], *, x_or_shape=None,
                    dtype=None) -> Int[np.ndarray, "out_length 2"] | tuple[np.ndarray, ...]:
    """For each output position of ``layer``, the half-open range ``[start, end)`` of input positions it sees.

    Args:
      model: the model; ``layer`` one of its conv (or pool) paths.
      input_length: the model input's length (token count); ``(height, width)`` for 2-D models.
      x_or_shape: the model input to trace with (as in :func:`explain`). Default: token ids ``(1, input_length)``
        int32 when the model has an ``nnx.Embed`` or an ``embed`` method, else ``(1, *input_length, in_channels)`` float32 with the
        ``in_channels`` of the first jaxconv conv in graph order.

    Returns:
      1-D: an int numpy array of shape ``(out_length, 2)``: row ``t`` is ``[start, end)`` from
      :func:`jaxconv.shapes.field_span` (the clipping :func:`jaxconv.shapes.input_span` uses; empty when the output
      sees only padding). N-D: a tuple with one such array per spatial axis.

    Raises:
      ValueError: unknown layer, or a layer whose receptive field cannot be traced back to the input.
    """
    struct = _default_input(model, input_length) if x_or_shape is None else _as_struct(x_or_shape, dtype)
    e = explain(model, struct)
    r = e.row(layer) if any(r.path == layer for r in e.rows) else None
    if r is None or r.formula is None:
        raise ValueError(f"layer {layer!r} is not a convolution or pool called by this {type(model).__name__}; "
                         f"conv paths: {', '.join(repr(p) for p in e.conv_paths) or '(none)'}.")
    if r.rf_size is None:
        raise ValueError(f"layer {layer!r}: its receptive field cannot be traced back to the model input "
                         f"{fmt_tuple(e.input_shape)} (an op between them changes the position axes).")
    in_axes = sorted(_input_rf(struct))
    lengths = [struct.shape[a] for a in in_axes]
    n = len(r.rf_size)
    spans = []
    for size, jump, start, L, out_len in zip(r.rf_size, r.rf_jump, r.rf_start, lengths, r.output_spatial):
        rf = shapes.ReceptiveField(size, jump, start)
        spans.append(np.array([shapes.field_span(rf, t, L) for t in range(out_len)], dtype=np.int64).reshape(out_len, 2))
    return spans[0] if n == 1 else tuple(spans)
