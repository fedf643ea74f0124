"""Look inside a model: the explain table, receptive fields, feature maps and saliency.

- :func:`explain` traces ``model(x)`` with ``jax.eval_shape`` (no FLOPs spent) and returns an :class:`Explanation`:
  one row per module call with shapes, kernel shape with axis names, padding ``(lo, hi)``, stride, dilation, groups,
  params, FLOPs and the receptive field in input positions (tokens).
- :func:`feature_maps` / :func:`feature_map` read conv activations through ``nnx.capture`` (the convs sow them).
- :func:`receptive_spans` maps each output position of a conv to the ``[start, end)`` input range it sees.
- :func:`measure_algorithms` lets ``impl="auto"`` measure every conv shape of ``model(x)`` now, outside ``jit``.
- :func:`saliency` differentiates one filter's pooled activation w.r.t. the embedding output.

The public names are all here; the code sits in one private module per job: ``_trace`` (paths, patched calls, the
conv view, the call recorder and receptive-field propagation), ``_explain``, ``_feature_maps`` (with
:func:`receptive_spans` and :func:`conv_paths`) and ``_saliency``.

A small stacked model::

    >>> import jax.numpy as jnp
    >>> from flax import nnx
    >>> from jaxconv import Conv1D, explain
    >>> class Stack(nnx.Module):
    ...     def __init__(self, rngs):
    ...         self.convs = nnx.List([Conv1D(8, 8, 3, dilation=d, padding="causal", rngs=rngs) for d in (1, 2)])
    ...     def __call__(self, x):
    ...         for conv in self.convs:
    ...             x = conv(x)
    ...         return x
    >>> e = explain(Stack(nnx.Rngs(0)), (1, 20, 8))
    >>> [(r.path, r.output_shape, r.rf_size) for r in e.rows if r.is_conv]
    [('convs/0', (1, 20, 8), (3,)), ('convs/1', (1, 20, 8), (7,))]
    >>> e.formula("convs/1")
    '20 = floor((20 + 4 + 0 - 2*(3-1) - 1) / 1) + 1'
"""

from jaxconv.inspection._algorithms import measure_algorithms
from jaxconv.inspection._explain import Explanation, LayerRow, explain
from jaxconv.inspection._feature_maps import conv_paths, feature_map, feature_maps, receptive_spans
from jaxconv.inspection._saliency import Saliency, saliency

__all__ = ["LayerRow", "Explanation", "explain", "feature_maps", "feature_map", "receptive_spans", "Saliency",
           "saliency", "conv_paths", "measure_algorithms"]
