"""Saliency: which tokens drive one filter (:func:`saliency`, returning a :class:`Saliency`)."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from jaxconv.inspection._explain import explain
from jaxconv.inspection._feature_maps import _check_filter, _resolve_layers, _stage, feature_maps
from jaxconv.inspection._trace import _modules_by_path, _patched_calls


@dataclasses.dataclass(frozen=True)
class Saliency:
    """Gradients of one filter's pooled activation w.r.t. the embedding output, per token.

    Attributes:
      grad_norm: ``(batch, length)``: the L2 norm over the embedding dim of ``d pooled / d emb[b, t, :]``.
      grad_x_input: ``(batch, length)``: ``sum_e (d pooled / d emb[b, t, e]) * emb[b, t, e]``.
      pooled: ``(batch,)``: the pooled activation itself.
    """

    grad_norm: Float[Array, "batch length"]
    grad_x_input: Float[Array, "batch length"]
    pooled: Float[Array, " batch"]


_REDUCE = {"max": jnp.max, "mean": jnp.mean, "sum": jnp.sum}


@contextlib.contextmanager
def _intercept_output(target: nnx.Module, method: str, fn: Callable):
    """Replace the output of ``target.<method>(...)`` by ``fn(output)`` for the duration (other instances untouched)."""

    def hook(orig, module, args, kwargs):
        out = orig(module, *args, **kwargs)
        return fn(out) if module is target else out

    with _patched_calls([target], hook, method):
        yield


def _split_embed(model: nnx.Module, embed: str) -> tuple[str, str]:
    """``embed`` -> (module path, method name): a module path means its ``__call__``; otherwise ``"path/method"``
    or ``"method"`` (a method of the model itself, e.g. ``TextCNN.embed``)."""
    mods = _modules_by_path(model)
    if embed in mods:
        return embed, "__call__"
    path, _, method = embed.rpartition("/")
    if path in mods and method and callable(getattr(mods[path], method, None)):
        return path, method
    raise ValueError(f"embed={embed!r} is neither a module path of this {type(model).__name__} nor a method "
                     f"'path/method' (or 'method' of the model); module paths: "
                     f"{', '.join(repr(p) for p in mods if p) or '(none)'}.")


@functools.lru_cache(maxsize=32)
def _saliency_fn(graphdef, embed_path: str, embed_method: str, layer: str, filter: int, reduce: str, stage: str):
    def forward(delta, state, x):
        m = nnx.merge(graphdef, state)
        target = _modules_by_path(m)[embed_path]
        seen = []

        def add_delta(out):
            seen.append(out)
            return out + delta.astype(out.dtype)

        with _intercept_output(target, embed_method, add_delta):
            fmap = feature_maps(m, x, layers=[layer], stage=stage)[layer][..., filter]
        if not seen:
            raise ValueError(f"the embedding {embed_path or '(model)'}.{embed_method} was not called by the forward pass.")
        pooled = _REDUCE[reduce](fmap.reshape(fmap.shape[0], -1), axis=1)  # (batch,)
        return pooled, seen[0]

    def emb_shape(state, x):
        return jax.eval_shape(lambda d: forward(d, state, x)[1], jnp.zeros((), jnp.float32))

    @jax.jit
    def run(state, x):
        emb = emb_shape(state, x)
        delta = jnp.zeros(emb.shape, emb.dtype)

        def objective(delta):
            pooled, emb = forward(delta, state, x)
            return pooled.sum(), (emb, pooled)   # examples are independent: d sum_b pooled[b] / d emb[b] per b

        g, (emb, pooled) = jax.grad(objective, has_aux=True)(delta)
        return jnp.sqrt(jnp.sum(g * g, axis=-1)), jnp.sum(g * emb, axis=-1), pooled

    return run


def saliency(model: nnx.Module, x, layer: str, filter: int, *, reduce: str = "max", embed: str | None = None,
             stage: str = "post") -> Saliency:
    """Which tokens drive filter ``filter`` of conv ``layer``: gradients of its pooled activation per example.

    ``pooled[b] = reduce_t fmap[b, t]`` with ``reduce`` in ``"max"`` (max over time, as Kim's CNN), ``"mean"`` or
    ``"sum"``; its gradient w.r.t. the embedding output ``emb`` (``(batch, length, dim)``) gives, per token,
    ``grad_norm = ||d pooled / d emb[b, t]||_2`` and ``grad_x_input = <d pooled / d emb[b, t], emb[b, t]>``.

    Args:
      model: a model whose token ids go through an embedding (call ``model.eval()`` first if it has dropout).
      x: the model input, token ids ``(batch, length)``.
      layer: a jaxconv conv path, e.g. ``"convs/0"``; filter: its filter index.
      reduce: ``"max"``, ``"mean"`` or ``"sum"`` over output positions.
      embed: where the embedding output comes from: a module path (its ``__call__`` output), or ``"method"`` /
        ``"path/method"`` for a method such as ``TextCNN.embed``. Default: the first ``nnx.Embed`` called, else the
        model's own ``embed`` method if it has one.
      stage: ``"post"`` (after the activation) or ``"pre"``.

    Returns:
      :class:`Saliency` with ``grad_norm`` and ``grad_x_input`` of shape ``(batch, length)`` and ``pooled``
      ``(batch,)``. One jitted gradient, compiled once per model structure, layer, filter, reduce and input shape.

    Raises:
      ValueError: unknown layer / embed / reduce / stage, or no embedding found. TypeError: a ``filter`` that is
        not an int. IndexError (also a ValueError): ``filter`` outside ``[0, filters)``, negative ones included.
    """
    if reduce not in _REDUCE:
        raise ValueError(f"reduce={reduce!r} is not known; expected 'max', 'mean' or 'sum'.")
    _stage(stage)
    conv = _resolve_layers(model, [layer])[layer]
    j = _check_filter(conv, layer, filter, "jaxconv.saliency")
    x = jnp.asarray(x)
    if embed is None:
        mods = _modules_by_path(model)
        found = [r.path for r in explain(model, x).rows if isinstance(mods.get(r.path), nnx.Embed)]
        if found:
            embed_path, method = found[0], "__call__"
        elif callable(getattr(model, "embed", None)) and not isinstance(getattr(model, "embed"), nnx.Module):
            embed_path, method = "", "embed"
        else:
            raise ValueError(f"this {type(model).__name__} calls no nnx.Embed and has no embed method; pass embed=<module "
                             f"path or 'path/method' whose output is the embedded input>.")
    else:
        embed_path, method = _split_embed(model, embed)
    graphdef, state = nnx.split(model)
    run = _saliency_fn(graphdef, embed_path, method, layer, j, reduce, stage)
    norm, gxi, pooled = run(state, x)
    return Saliency(norm, gxi, pooled)
