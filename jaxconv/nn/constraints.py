"""Max-norm weight constraint (Hinton et al. 2012; Kim 2014): after each update, rescale weight vectors whose L2
norm exceeds ``s`` back onto the ball of radius ``s``.

Which vectors? ``axis`` names the axis (or axes) the norm is taken over; every index along the *other* axes is one
vector. For :class:`flax.nnx.Linear` the kernel is ``(in, out)``, and Kim's constraint is on each output unit's
(each class's) weight vector ``kernel[:, j]``, so ``axis=0``::

    kernel (in, out) --norm over axis 0--> norms (1, out) --> kernel[:, j] *= min(1, s / ||kernel[:, j]||)

Kim's Theano code stores the same matrix as ``W (n_in, n_out)`` and takes ``col_norms`` over ``axis=0`` too;
written the other way round, PyTorch/Theano's ``(out, in)`` view, these are the *rows* ("rescale each row to norm
<= s"). Vectors already inside the ball are returned unchanged, bit for bit.

Three ways to apply it:

- :func:`project_max_norm` ``(w, max_norm, axis) -> w``: the pure projection on an array;
- :func:`apply_max_norm` ``(model, targets, max_norm) -> paths``: project chosen ``nnx.Param`` s of a model in place,
  called in the train step right after ``optimizer.update``;
- :func:`optax_max_norm`: an optax transform that changes the last update so that ``params + update`` lands on the
  ball (exact up to one float rounding of ``params + update``; see its docstring).

>>> import numpy as np
>>> w = np.array([[3.0, 0.3], [4.0, 0.4]], np.float32)   # (in=2, out=2): column norms 5.0 and 0.5
>>> p = np.asarray(project_max_norm(w, 3.0, axis=0))     # column 0 rescaled to norm 3, column 1 untouched
>>> np.linalg.norm(p, axis=0).round(5).tolist(), (p[:, 1] == w[:, 1]).all()
([3.0, 0.5], np.True_)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import nnx

__all__ = ["project_max_norm", "apply_max_norm", "optax_max_norm", "matching_params"]


def _check(max_norm) -> float:
    try:
        value = float(max_norm)
    except (TypeError, ValueError):
        raise TypeError(f"max_norm must be a positive number; got max_norm={max_norm!r}.") from None
    if not value > 0:
        raise ValueError(f"max_norm must be > 0; got max_norm={max_norm!r}.")
    return value


def project_max_norm(w: jax.Array, max_norm: float, axis: int | Sequence[int] = 0) -> jax.Array:
    """Rescale every vector of ``w`` (taken along ``axis``) whose L2 norm exceeds ``max_norm`` to norm ``max_norm``.

    Args:
      w: any shape, e.g. a dense kernel ``(in, out)``.
      max_norm: the radius ``s > 0``.
      axis: the axis or axes the norm runs over: ``0`` for per-output-unit vectors of an ``(in, out)`` kernel.

    Returns:
      An array of ``w.shape`` and dtype: ``w * s / ||w||`` where ``||w|| > s``, ``w`` itself (unchanged bits)
      elsewhere. Directions are preserved.
    """
    s = _check(max_norm)
    w = jnp.asarray(w)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if not -w.ndim <= a < w.ndim:
            raise ValueError(f"axis={axis!r} is out of range for an array of shape {w.shape} (rank {w.ndim}).")
    norms = jnp.sqrt(jnp.sum(jnp.square(w.astype(jnp.float32)), axis=axes, keepdims=True))  # (..., 1, ...)
    scale = (s / jnp.maximum(norms, jnp.finfo(jnp.float32).tiny)).astype(w.dtype)      # only used where norms > s
    return jnp.where(norms > s, w * scale, w)


def _path_str(path: tuple) -> str:
    return "/".join(str(p) for p in path)


def matching_params(model: nnx.Module, targets: Any) -> list[tuple[str, nnx.Variable]]:
    """``(path, variable)`` for each ``nnx.Param`` of ``model`` chosen by ``targets``, in path order.

    ``targets``: a path string ``"classifier/kernel"`` (``.`` works as separator too), a sequence of such strings,
    or an nnx filter (``nnx.PathContains("classifier")``, a callable ``(path, value) -> bool``, ...) applied to the
    model's ``nnx.Param`` s.
    """
    flat = nnx.to_flat_state(nnx.state(model, nnx.Param))
    if isinstance(targets, str) or (isinstance(targets, Sequence) and targets and all(isinstance(t, str) for t in targets)):
        wanted = [targets] if isinstance(targets, str) else list(targets)
        wanted = [t.replace(".", "/") for t in wanted]
        by_path = {_path_str(p): v for p, v in flat}
        missing = [t for t in wanted if t not in by_path]
        if missing:
            raise ValueError(f"max-norm targets {missing} match no nnx.Param of {type(model).__name__}; its parameters "
                             f"are: {sorted(by_path)}.")
        return [(t, by_path[t]) for t in wanted]
    predicate = nnx.filterlib.to_predicate(targets)
    return [(_path_str(p), v) for p, v in flat if predicate(p, v)]


def apply_max_norm(model: nnx.Module, targets: Any = "classifier/kernel", max_norm: float = 3.0,
                   axis: int | Sequence[int] = 0) -> list[str]:
    """Project the chosen parameters of ``model`` onto the max-norm ball, in place; returns the projected paths.

    Call it after ``optimizer.update(model, grads)`` (inside ``nnx.jit`` too: the assignment is traced). Kim's
    setting is the default: ``targets="classifier/kernel"`` (an ``nnx.Linear`` kernel ``(in, out)``), ``axis=0``
    (each class's weight vector), ``max_norm=3``.

    >>> from flax import nnx
    >>> import jax.numpy as jnp
    >>> class Net(nnx.Module):
    ...     def __init__(self):
    ...         self.classifier = nnx.Linear(4, 2, rngs=nnx.Rngs(0))
    >>> net = Net(); net.classifier.kernel[...] = 10 * jnp.ones((4, 2))
    >>> apply_max_norm(net, "classifier/kernel", 3.0)
    ['classifier/kernel']
    >>> jnp.linalg.norm(net.classifier.kernel[...], axis=0)
    Array([3., 3.], dtype=float32)
    """
    chosen = matching_params(model, targets)
    for _, var in chosen:
        var[...] = project_max_norm(var[...], max_norm, axis)
    return [p for p, _ in chosen]


class MaxNormState(NamedTuple):
    """No state: the projection only needs the current parameters."""


def optax_max_norm(max_norm: float = 3.0, axis: int | Sequence[int] = 0,
                   mask: Any = None) -> optax.GradientTransformationExtraArgs:
    """An optax transform, last in a chain, that rewrites the update so that ``params + update`` is max-normed.

    ``update(updates, state, params)`` returns ``project(params + updates) - params`` on the masked leaves (``mask``:
    a pytree of bools like ``params``, or a callable ``params -> that pytree``; ``None`` means every leaf). Applying
    it with ``optax.apply_updates`` gives ``params + (project(params + u) - params)``, which equals the projection up
    to one rounding of the final addition (it is not bit-exact; :func:`apply_max_norm` is). Requires ``params``.
    """
    s = _check(max_norm)

    def init_fn(params):
        del params
        return MaxNormState()

    def update_fn(updates, state, params=None, **extra_args):
        del extra_args
        if params is None:
            raise ValueError("optax_max_norm needs the current params: call tx.update(updates, state, params).")

        def one(u, p):
            return project_max_norm(p + u, s, axis) - p

        if mask is None:
            return jax.tree.map(one, updates, params), state
        m = mask(params) if callable(mask) else mask
        return jax.tree.map(lambda u, p, keep: one(u, p) if keep else u, updates, params, m), state

    return optax.GradientTransformationExtraArgs(init_fn, update_fn)
