"""Keras layers -> layer-graph nodes (:mod:`jaxconv.models.imported`): :class:`KerasGraph`.

Every source (a Keras 1/2/3 file, an in-memory ``keras.Model``) comes here as layers with Keras 2/3 class names and
configs (:mod:`jaxconv.imports.keras` renames Keras 1's), each with its weights in Keras 2/3 layouts. The builder
tracks each node's shape after the batch axis (the length may be None) and its Keras mask.

Masks (``Embedding(mask_zero=True)``), as measured with Keras 3.15 on the JAX backend and read in Keras 1.2.2 /
2.2.4's sources:

- Keras 3 passes the mask through ``Dropout``, ``SpatialDropout1D``, ``Activation`` and ``Dense`` (their
  ``supports_masking``); ``Conv1D``, ``Conv2D``, the pools, ``Flatten`` and ``Reshape`` drop it (a ``Reshape`` to
  the shape it already has keeps it: JAX returns the same array, which carries the mask). ``Concatenate`` makes an
  unmasked input's mask all ones and takes ``any`` over the channels, so on the last axis the result is masked only
  when every input is. ``GlobalAveragePooling1D`` averages the unmasked positions only (an all-zero row gives NaN);
  ``GlobalMaxPooling1D`` ignores the mask.
- Keras 1 and 2 raise when a mask reaches a layer that does not support it (``Conv1D`` included), so those models
  cannot exist; ``Concatenate`` / ``Merge`` take ``all`` (masked if any input is). Keras 2 also passes masks through
  ``Dense``; its ``GlobalAveragePooling1D`` (from 2.2.3) averages as Keras 3 does; Keras 1's raises.

Keras 1 and 2 on Theano computed true convolutions: kernels are flipped on their spatial axes (Keras' own
``convert_kernel``), and ``padding='same'`` was Theano's ``'half'`` (``K//2`` zeros on each side of an effective
kernel of size ``K``), cropped to ``ceil(L / stride)`` outputs for even kernels: the explicit padding
``[K // 2, (K - 1) // 2]`` (Keras 1.2.2 / 2.2.4 ``keras/backend/theano_backend.py``, ``conv2d``).
"""

from __future__ import annotations

import math

import numpy as np

from jaxconv.imports.source import UnsupportedModel

__all__ = ["KerasGraph", "SUPPORTED", "ACTIVATIONS"]

#: Keras activation names -> the layer graph's. ``swish`` is ``silu``; ``gelu`` is exact (Keras 3's default, and
#: its only serializable form: ``approximate=True`` takes a ``functools.partial`` that ``get_config`` refuses).
ACTIVATIONS = {None: "linear", "linear": "linear", "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid",
               "elu": "elu", "selu": "selu", "gelu": "gelu", "softplus": "softplus", "silu": "silu",
               "swish": "silu", "relu6": "relu6", "softmax": "softmax", "log_softmax": "log_softmax"}
_IDENTITY = ("Dropout", "SpatialDropout1D")
#: Layers whose output carries their input's mask, by Keras major version.
_MASK_PASS = {1: ("Dropout", "SpatialDropout1D", "Activation"),
              2: ("Dropout", "SpatialDropout1D", "Activation", "Dense"),
              3: ("Dropout", "SpatialDropout1D", "Activation", "Dense")}


def _ints(value, n: int, what: str) -> list[int]:
    """``3 -> [3] * n``, ``[3] -> [3]``, ``(2, 2) -> [2, 2]``."""
    vals = [int(value)] * n if isinstance(value, (int, np.integer)) else [int(v) for v in value]
    if len(vals) != n:
        raise ValueError(f"{what}={value!r}; expected {n} integer(s)")
    return vals


def _out_length(n: int | None, k: int, stride: int, dilation: int, padding) -> int | None:
    """Output positions of a convolution or pool over ``n`` positions (None: unknown)."""
    if n is None:
        return None
    span = (k - 1) * dilation + 1
    if padding == "same":
        return -(-n // stride)
    lo, hi = (span - 1, 0) if padding == "causal" else (0, 0) if padding == "valid" else padding
    return (n + lo + hi - span) // stride + 1


class KerasGraph:
    """Builds the layer graph one Keras layer at a time, in an order where inputs come first.

    Args:
      major: the Keras major version (1, 2, 3): decides how masks flow.
      theano: the weights come from the Theano backend (true convolutions: flip kernels, Theano's 'same').
      length: the input length the model fixes, or None.

    Attributes:
      nodes, params, rows: the graph's nodes, ``{node: {param: array}}``, and ``(name, class, became)`` per layer.
      shapes: ``{node: shape after the batch axis}`` (``"ids"``: ``(L,)``).
    """

    def __init__(self, major: int, *, theano: bool = False, length: int | None = None):
        self.major, self.theano = major, theano
        self.nodes: list[dict] = []
        self.params: dict[str, dict[str, np.ndarray]] = {}
        self.rows: list[tuple[str, str, str]] = []
        self.shapes: dict[str, tuple] = {"ids": (length,)}
        self.masks: dict[str, str | None] = {"ids": None}                  # None, "ids" (token id 0), "other"
        self.alias: dict[str, str] = {}

    # ------------------------------------------------------------------------------------------ errors

    def unsupported(self, name: str, cls: str, why: str) -> UnsupportedModel:
        return UnsupportedModel(f"layer {name!r} ({cls}): {why}.")

    def _weights(self, name, cls, weights, labels: list[str]) -> list[np.ndarray]:
        if len(weights) != len(labels):
            raise self.unsupported(name, cls, f"the source holds {len(weights)} weight array(s) "
                                              f"{[tuple(w.shape) for w in weights]}; expected {len(labels)}: "
                                              f"{', '.join(labels) or 'none'}")
        return [np.asarray(w, np.float32) for w in weights]

    def _activation(self, name, cls, value) -> str:
        if isinstance(value, dict):                                       # Keras 3 serialized function
            value = value.get("config") if isinstance(value.get("config"), str) else value.get("class_name")
        if value not in ACTIVATIONS:
            raise self.unsupported(name, cls, f"activation {value!r} is not supported; expected one of "
                                              f"{', '.join(k for k in ACTIVATIONS if k)}")
        return ACTIVATIONS[value]

    # ------------------------------------------------------------------------------------------ layers

    def add(self, name: str, cls: str, source_cls: str, kconf: dict, inputs: list[str],
            weights: list[np.ndarray]) -> None:
        """Add one layer: ``cls``/``config`` in Keras 2/3 terms (``source_cls`` as the source names it), reading
        the layers ``inputs`` (the model input's name stands for the token ids ``"ids"``), with its weights.

        Raises:
          UnsupportedModel: a layer class or setting jaxconv does not support (one line naming the layer).
        """
        ins = [self.alias.get(i, i) for i in inputs]
        if cls == "InputLayer":
            shape = kconf.get("batch_shape", kconf.get("batch_input_shape"))
            if shape is not None and len(shape) != 2:
                raise self.unsupported(name, source_cls, f"the model input has shape {tuple(shape)}; jaxconv "
                                                         f"imports models of token ids of shape (batch, length)")
            self.alias[name] = "ids"
            self.rows.append((name, source_cls, "input: token ids (B, L)"))
            return
        if name == "ids" or name in self.shapes:
            raise self.unsupported(name, source_cls, "its name is taken (by the token ids or another layer)")
        mapper = getattr(self, "_" + cls, None) if cls in SUPPORTED else None
        if mapper is None:
            raise self.unsupported(name, source_cls, f"not supported; jaxconv imports {', '.join(SUPPORTED)} "
                                                     f"(Keras 1: Convolution1D/2D, AtrousConvolution1D, "
                                                     f"Merge(mode='concat'))")
        if ("ids" in ins) != (cls == "Embedding") or (cls == "Embedding" and ins != ["ids"]):
            raise self.unsupported(name, source_cls, "the token ids must go into Embedding layers, and "
                                                     f"Embeddings read the token ids; this one reads {inputs}")
        try:
            node, params, shape, what = mapper(name, source_cls, kconf, ins, weights)
        except (KeyError, ValueError, TypeError) as e:
            if isinstance(e, UnsupportedModel):
                raise
            raise self.unsupported(name, source_cls, f"config {type(e).__name__}: {e}") from None
        if any(s is not None and s <= 0 for s in shape):
            raise self.unsupported(name, source_cls, f"its output would have shape {shape} after the batch axis "
                                                     f"(inputs {[self.shapes[i] for i in ins]})")
        self.nodes.append({"name": name, "op": node.pop("op"), "inputs": ins, **node})
        if params:
            self.params[name] = params
        self.shapes[name] = tuple(shape)
        self.masks[name] = self._mask(cls, kconf, ins, shape)
        self.rows.append((name, source_cls, what))

    def _mask(self, cls, kconf, ins, shape) -> str | None:
        masks = [self.masks[i] for i in ins]
        if cls == "Embedding":
            return "ids" if kconf.get("mask_zero") else None
        if cls in _MASK_PASS[self.major]:
            return masks[0]
        if cls == "Reshape" and self.major == 3 and tuple(shape) == self.shapes[ins[0]]:
            return masks[0]
        if cls == "Concatenate" and any(m is not None for m in masks):
            rank = len(self.shapes[ins[0]]) + 1
            axis = int(kconf.get("axis", -1))
            if (axis + rank if axis < 0 else axis) != rank - 1:
                return "other"                                             # positions of several inputs
            present = [m for m in masks if m is not None]
            if self.major == 3 and len(present) < len(masks):
                return None                                                # any(mask, ones) = all ones
            return "ids" if all(m == "ids" for m in present) else "other"
        return None

    def _Embedding(self, name, cls, c, ins, weights):
        (table,) = self._weights(name, cls, weights, ["embeddings (input_dim, output_dim)"])
        V, D = int(c["input_dim"]), int(c["output_dim"])
        if table.shape != (V, D):
            raise self.unsupported(name, cls, f"embeddings of shape {table.shape}; the config says "
                                              f"(input_dim={V}, output_dim={D})")
        mask = bool(c.get("mask_zero", False))
        node = {"op": "embedding", "vocab_size": V, "dim": D, "mask_zero": mask}
        return node, {"table": table}, (*self.shapes["ids"], D), \
            f"embedding ({V}, {D})" + (" mask_zero" if mask else "")

    def _conv(self, rank, name, cls, c, ins, weights):
        if c.get("data_format") not in (None, "channels_last"):
            raise self.unsupported(name, cls, f"data_format={c['data_format']!r}; jaxconv's layer graph is "
                                              f"channels-last")
        x = self.shapes[ins[0]]
        if len(x) != rank + 1:
            raise self.unsupported(name, cls, f"its input has shape {x} after the batch axis; expected {rank} "
                                              f"position axis/axes and channels")
        ks = _ints(c["kernel_size"], rank, "kernel_size")
        st = _ints(c.get("strides", 1), rank, "strides")
        dl = _ints(c.get("dilation_rate", 1), rank, "dilation_rate")
        groups, filters, use_bias = int(c.get("groups", 1)), int(c["filters"]), bool(c.get("use_bias", True))
        labels = ["kernel"] + (["bias"] if use_bias else [])
        kernel, *bias = self._weights(name, cls, weights, labels)
        if list(kernel.shape[:rank]) != ks or kernel.ndim != rank + 2 or kernel.shape[-1] != filters:
            raise self.unsupported(name, cls, f"kernel of shape {kernel.shape}; the config says kernel_size={ks}, "
                                              f"filters={filters}: expected ({', '.join(map(str, ks))}, in/groups, "
                                              f"{filters})")
        in_channels = kernel.shape[-2] * groups
        if x[-1] is not None and x[-1] != in_channels:
            raise self.unsupported(name, cls, f"kernel of shape {kernel.shape} (groups={groups}) reads "
                                              f"{in_channels} channels; its input has {x[-1]}")
        padding = str(c.get("padding", "valid")).lower()
        if padding not in (("valid", "same", "causal") if rank == 1 else ("valid", "same")):
            raise self.unsupported(name, cls, f"padding={padding!r}; expected 'valid', 'same'"
                                              + (" or 'causal'" if rank == 1 else ""))
        if self.theano:
            kernel = np.ascontiguousarray(np.flip(kernel, axis=tuple(range(rank))))
            if padding == "same":
                spans = [(k - 1) * d + 1 for k, d in zip(ks, dl)]
                padding = [[s // 2, (s - 1) // 2] for s in spans]
        pads = [padding] * rank if isinstance(padding, str) else padding
        shape = (*(_out_length(n, k, s, d, p) for n, k, s, d, p in zip(x[:-1], ks, st, dl, pads)), filters)
        one = (lambda v: v[0]) if rank == 1 else (lambda v: v)
        node = {"op": f"conv{rank}d", "in_channels": in_channels, "filters": filters, "kernel_size": one(ks),
                "stride": one(st), "dilation": one(dl), "groups": groups,
                "padding": padding if isinstance(padding, str) else one(padding), "use_bias": use_bias,
                "activation": self._activation(name, cls, c.get("activation"))}
        params = {"kernel": kernel, **({"bias": bias[0]} if use_bias else {})}
        return node, params, shape, f"conv{rank}d {tuple(kernel.shape)}"

    def _Conv1D(self, *args):
        return self._conv(1, *args)

    def _Conv2D(self, *args):
        return self._conv(2, *args)

    def _Dense(self, name, cls, c, ins, weights):
        units, use_bias = int(c["units"]), bool(c.get("use_bias", True))
        kernel, *bias = self._weights(name, cls, weights, ["kernel"] + (["bias"] if use_bias else []))
        x = self.shapes[ins[0]]
        if kernel.ndim != 2 or kernel.shape[1] != units or x[-1] not in (None, kernel.shape[0]):
            raise self.unsupported(name, cls, f"kernel of shape {kernel.shape}; expected (in={x[-1]}, "
                                              f"units={units})")
        node = {"op": "dense", "in_features": int(kernel.shape[0]), "units": units, "use_bias": use_bias,
                "activation": self._activation(name, cls, c.get("activation"))}
        params = {"kernel": kernel, **({"bias": bias[0]} if use_bias else {})}
        return node, params, (*x[:-1], units), f"dense {tuple(kernel.shape)}"

    def _Activation(self, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        fn = self._activation(name, cls, c.get("activation"))
        node = {"op": "activation", "fn": fn, **({"axis": -1} if fn in ("softmax", "log_softmax") else {})}
        return node, {}, self.shapes[ins[0]], f"activation {fn}"

    def _pool(self, op, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        x = self.shapes[ins[0]]
        if c.get("data_format") not in (None, "channels_last") or len(x) != 2:
            raise self.unsupported(name, cls, f"input of shape {x}, data_format={c.get('data_format')!r}; "
                                              f"expected (length, channels), channels_last")
        (k,) = _ints(c.get("pool_size", 2), 1, "pool_size")
        (s,) = _ints(c.get("strides") or k, 1, "strides")
        padding = str(c.get("padding", "valid")).lower()
        if padding not in ("valid", "same"):
            raise self.unsupported(name, cls, f"padding={padding!r}; expected 'valid' or 'same'")
        if padding == "same" and self.theano:
            raise self.unsupported(name, cls, "padding='same' on the Theano backend (symmetric zero padding, "
                                              "then cropped) is not supported; 'valid' is")
        node = {"op": op, "pool_size": k, "stride": s, "padding": padding}
        if op == "avg_pool1d":
            node["count_include_pad"] = False                            # Keras 'same' averages real positions
        return node, {}, (_out_length(x[0], k, s, 1, padding), x[1]), f"{op} {k}/{s} {padding}"

    def _MaxPooling1D(self, *args):
        return self._pool("max_pool1d", *args)

    def _AveragePooling1D(self, *args):
        return self._pool("avg_pool1d", *args)

    def _global(self, op, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        x = self.shapes[ins[0]]
        if c.get("data_format") not in (None, "channels_last") or len(x) != 2:
            raise self.unsupported(name, cls, f"input of shape {x}, data_format={c.get('data_format')!r}; "
                                              f"expected (length, channels), channels_last")
        keep = bool(c.get("keepdims", False))
        masked = op == "global_avg_pool" and self.masks[ins[0]] is not None
        if masked and self.masks[ins[0]] != "ids":
            raise self.unsupported(name, cls, "it averages under a mask that is not the token ids' (a "
                                              "concatenation along the positions); not supported")
        node = {"op": op, "axis": 1, "keepdims": keep, "masked": masked}
        return node, {}, ((1, x[1]) if keep else (x[1],)), op + (" masked" if masked else "")

    def _GlobalMaxPooling1D(self, *args):
        return self._global("global_max_pool", *args)

    def _GlobalAveragePooling1D(self, *args):
        return self._global("global_avg_pool", *args)

    def _Concatenate(self, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        xs = [self.shapes[i] for i in ins]
        rank, axis = len(xs[0]) + 1, int(c.get("axis", -1))
        a = (axis + rank if axis < 0 else axis) - 1
        if len(ins) < 2 or not 0 <= a < rank - 1 or any(len(s) != rank - 1 for s in xs):
            raise self.unsupported(name, cls, f"axis={axis} over inputs of shapes {xs} (after the batch axis)")
        total = None if any(s[a] is None for s in xs) else sum(s[a] for s in xs)
        return {"op": "concatenate", "axis": axis}, {}, (*xs[0][:a], total, *xs[0][a + 1:]), \
            f"concatenate axis {axis}"

    def _Flatten(self, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        x = self.shapes[ins[0]]
        if c.get("data_format") == "channels_first" and len(x) > 1:
            raise self.unsupported(name, cls, "data_format='channels_first'; jaxconv's graph is channels-last")
        size = None if None in x else math.prod(x)
        return {"op": "flatten"}, {}, (size,), "flatten"

    def _Reshape(self, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        x, target = self.shapes[ins[0]], [int(s) for s in c["target_shape"]]
        shape: list = list(target)
        if -1 in target:
            known = math.prod(s for s in target if s != -1)
            shape[target.index(-1)] = None if None in x else math.prod(x) // max(known, 1)
        if None not in x and None not in shape and math.prod(shape) != math.prod(x):
            raise self.unsupported(name, cls, f"target_shape={tuple(target)} from input shape {x}")
        return {"op": "reshape", "shape": target}, {}, tuple(shape), f"reshape {tuple(target)}"

    def _Dropout(self, name, cls, c, ins, weights):
        self._weights(name, cls, weights, [])
        return {"op": "identity"}, {}, self.shapes[ins[0]], "identity (inference)"

    _SpatialDropout1D = _Dropout


#: The Keras layer classes jaxconv imports (Keras 2/3 names).
SUPPORTED = ("InputLayer", "Embedding", "Conv1D", "Conv2D", "Dense", "Activation", "MaxPooling1D",
             "AveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling1D", "Concatenate", "Flatten",
             "Reshape", "Dropout", "SpatialDropout1D")
