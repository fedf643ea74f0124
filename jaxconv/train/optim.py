"""Optimizers of the trainer: ``config.train`` -> optax, and the lazy row-sparse Adadelta of the embedding table.

:func:`make_optimizer` builds the optax transformation of ``config.train.optimizer``. When Adadelta trains an
embedding table (``config.train.sparse_embedding``, the default), :class:`SparseEmbeddingAdadelta` updates the
table's rows lazily (only those of the batch's tokens) and hands every other parameter to ``nnx.Optimizer``: the same
numbers as the dense update, at a cost that follows the batch instead of the vocabulary.

>>> import ml_collections
>>> from jaxconv.configs import DEFAULT_CONFIG, load_config
>>> t = load_config(DEFAULT_CONFIG, {"train.optimizer": "adadelta", "train.lr_schedule": "cosine"}).train
>>> make_optimizer(t, 100) is make_optimizer(t, 100)    # one object per setting: runs share compiled steps
True

The learning rate follows ``config.train.lr_schedule`` (:func:`make_schedule`), the row-sparse update's too.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxconv.configs import LR_SCHEDULES
from jaxconv.models.registry import PAD_ID

__all__ = ["OPTIMIZERS", "LR_SCHEDULES", "make_optimizer", "make_schedule", "schedule_steps", "learning_rate_at",
           "NOT_EMBEDDING", "sparse_embedding_settings", "SparseEmbeddingAdadelta", "SPARSE_STATE"]

OPTIMIZERS = ("adadelta", "adam", "sgd")


def schedule_steps(train_config, steps_per_epoch: int) -> int:
    """The updates a run makes in all (``epochs x steps_per_epoch``, at most ``train.steps`` when it caps them):
    the span a decaying schedule falls over."""
    total = int(train_config.epochs) * int(steps_per_epoch)
    cap = int(train_config.steps)
    return max(min(total, cap) if cap else total, 1)


def make_schedule(train_config, total_steps: int):
    """``config.train.lr_schedule`` -> the learning rate: a float for ``"constant"`` (Kim's), else an optax schedule
    ``update count -> rate``, over ``total_steps`` updates (:func:`schedule_steps`):

    - ``"cosine"``: from ``learning_rate`` down to 0 at the last update;
    - ``"linear_warmup_cosine"``: from 0 up to ``learning_rate`` over ``warmup_steps`` (0: 5% of the updates,
      at least 1), then cosine down to 0;
    - ``"step"``: ``learning_rate`` times ``lr_step_factor`` after every ``lr_step_every`` updates (0: a third of
      the updates).

    >>> import ml_collections
    >>> t = ml_collections.ConfigDict({"learning_rate": 1.0, "lr_schedule": "step", "warmup_steps": 0,
    ...                                "lr_step_every": 10, "lr_step_factor": 0.5})
    >>> [float(make_schedule(t, 30)(s)) for s in (0, 9, 10, 25)]
    [1.0, 1.0, 0.5, 0.25]
    """
    t = train_config
    if t.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"config.train.lr_schedule={t.lr_schedule!r} is not known; expected one of "
                         f"{', '.join(map(repr, LR_SCHEDULES))}.")
    if t.lr_schedule == "constant":
        return float(t.learning_rate)
    return _schedule(t.lr_schedule, float(t.learning_rate), int(total_steps), int(t.warmup_steps),
                     int(t.lr_step_every), float(t.lr_step_factor))


@functools.lru_cache(maxsize=32)
def _schedule(name: str, lr: float, total: int, warmup: int, every: int, factor: float):
    # One function object per setting: the optimizer (and the compiled steps) of two runs of one setting are equal.
    if name == "cosine":
        return optax.cosine_decay_schedule(lr, decay_steps=total)
    if name == "linear_warmup_cosine":
        warmup = warmup or max(total // 20, 1)
        return optax.warmup_cosine_decay_schedule(0.0, lr, warmup_steps=min(warmup, total),
                                                  decay_steps=max(total, warmup + 1))
    every = every or max(total // 3, 1)
    return optax.exponential_decay(lr, transition_steps=every, decay_rate=factor, staircase=True)


def make_optimizer(train_config, total_steps: int = 1) -> optax.GradientTransformation:
    """``config.train`` -> optax: ``"adadelta"`` (``learning_rate``, ``rho``, ``eps``; Kim's 1.0, 0.95, 1e-6),
    ``"adam"`` (``learning_rate``, ``eps``) or ``"sgd"`` (``learning_rate``, ``momentum``), the rate following
    ``lr_schedule`` over ``total_steps`` updates (:func:`make_schedule`). The defaults are the config's
    (the built-in configs, :mod:`jaxconv.configs`).

    The same settings give the same transformation object, so a second run in one process (kim2014.py) has an equal
    optimizer graph and reuses the compiled train step.
    """
    t = train_config
    if t.optimizer not in OPTIMIZERS:
        raise ValueError(f"config.train.optimizer={t.optimizer!r} is not known; expected one of "
                         f"{', '.join(map(repr, OPTIMIZERS))}.")
    return _optimizer(t.optimizer, make_schedule(t, total_steps), float(t.rho), float(t.eps), float(t.momentum))


@functools.lru_cache(maxsize=32)
def _optimizer(name: str, lr, rho: float, eps: float, momentum: float) -> optax.GradientTransformation:
    if name == "adadelta":
        return optax.adadelta(learning_rate=lr, rho=rho, eps=eps)
    if name == "adam":
        return optax.adam(learning_rate=lr, eps=eps)
    return optax.sgd(learning_rate=lr, momentum=momentum or None)


def learning_rate_at(schedule, update: int) -> float:
    """The rate of update ``update`` (0-based) under ``schedule`` (a float or an optax schedule)."""
    return float(schedule(update)) if callable(schedule) else float(schedule)


#: The parameters the dense optimizer updates when the embedding table has its own row-sparse Adadelta.
NOT_EMBEDDING = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("embedding")))
#: The attributes of :class:`SparseEmbeddingAdadelta` (and the model's ``embedding``) that the row-sparse update
#: writes itself; every other variable is written by the dense update.
SPARSE_STATE = ("e_g", "e_x", "last_step")


def sparse_embedding_settings(config, total_steps: int = 1) -> tuple | None:
    """``(learning rate or schedule, rho, eps)`` when ``config`` trains its embedding table with the row-sparse
    Adadelta (``train.optimizer == "adadelta"``, ``train.sparse_embedding`` true, and a model kind whose
    ``sparse_embedding`` accepts ``config.model``: a trained table with ``check_tokens``, ``embed``,
    ``ids_in_range`` and ``logits_from_vectors``), else None (one dense optax update of every parameter)."""
    from jaxconv.models.registry import model_kind

    t = config.train
    if t.optimizer != "adadelta" or not t.sparse_embedding or not model_kind(config.model.name).sparse_embedding(
            config.model):
        return None
    return make_schedule(t, total_steps), float(t.rho), float(t.eps)


class SparseEmbeddingAdadelta(nnx.Module):
    """Adadelta with a lazy row-sparse update of ``model.embedding``; ``optax.adadelta`` for everything else.

    Exactly the dense ``optax.adadelta`` (up to float rounding): a row whose gradient is zero gets update 0 and
    its accumulators only decay, ``E[g^2] <- rho E[g^2]``, ``E[dx^2] <- rho E[dx^2]``. So a row is touched only when
    its token is in the batch; ``last_step[v]`` counts the updates row ``v`` has seen, and at update ``t`` (0-based)
    its accumulators are first scaled by ``rho ** (t - last_step[v])`` (the decays it skipped), then updated as optax
    does: ``E[g^2] = (1 - rho) g^2 + rho E[g^2]``, ``u = sqrt(E[dx^2] + eps) / sqrt(E[g^2] + eps) * g``,
    ``E[dx^2] = (1 - rho) u^2 + rho E[dx^2]``, ``param += -learning_rate * u``. Rows not in the batch are not read
    or written, so a step costs O(tokens in the batch x D) for the table instead of O(V x D).

    The stored ``e_g`` / ``e_x`` rows are stale by ``rho ** (step - last_step)``; every read goes through that
    decay, and checkpoints (``nnx.state`` of this object) hold ``last_step`` with them.

    Attributes:
      dense: ``nnx.Optimizer`` over the model's Params except the embedding table (``step`` counts updates).
      e_g, e_x: ``(V, D)`` accumulators of the table, as of update ``last_step`` of each row.
      last_step: int32 ``(V,)``.
    """

    def __init__(self, model, tx: optax.GradientTransformation, *, learning_rate, rho: float, eps: float):
        self.dense = nnx.Optimizer(model, tx, wrt=NOT_EMBEDDING)
        table = model.embedding[...]                                                        # (V, D)
        self.e_g = nnx.OptState(jnp.zeros_like(table))
        self.e_x = nnx.OptState(jnp.zeros_like(table))
        self.last_step = nnx.OptState(jnp.zeros((table.shape[0],), jnp.int32))
        self.learning_rate = learning_rate if callable(learning_rate) else float(learning_rate)
        self.rho, self.eps = float(rho), float(eps)

    @property
    def step(self):
        return self.dense.step

    def update_embedding(self, model, tokens, grad_vectors, t, active=None) -> None:
        """Apply update ``t`` (0-based) to the rows of ``model.embedding`` in ``tokens`` ``(B, L)``, given the loss's
        gradient w.r.t. the embedded vectors ``grad_vectors`` ``(B, L, D)`` (pad positions are ignored).

        ``active``: an optional boolean scalar; when false, nothing is written (every row index is sent out of
        range, so the scatters drop it): how a masked step of a scanned or stacked program leaves the table alone.
        """
        t = jnp.asarray(t).astype(jnp.int32)
        rho, eps = self.rho, self.eps
        lr = self.learning_rate(t) if callable(self.learning_rate) else self.learning_rate   # the dense update's rate
        table = model.embedding[...]                                                        # (V, D)
        vocab, dim = table.shape
        n = tokens.size
        mask = (tokens != PAD_ID)[..., None]                                                # (B, L, 1)
        gx = jnp.where(mask, grad_vectors, 0.0).reshape(n, dim)                            # (N, D), pads 0
        # Distinct ids of the batch, padded with vocab (out of range: gathers fill, scatters drop it).
        ids, inv = jnp.unique(tokens.reshape(-1), size=n, fill_value=vocab, return_inverse=True)   # (N,), (N,)
        g = jax.ops.segment_sum(gx, inv.reshape(-1), num_segments=n)                       # (N, D) row gradients
        age = t - self.last_step[...].at[ids].get(mode="fill", fill_value=0)               # (N,) skipped decays
        decay = jnp.where(age == 0, 1.0, jnp.power(jnp.float32(rho), age.astype(jnp.float32)))[:, None]  # (N, 1)
        e_g = self.e_g[...].at[ids].get(mode="fill", fill_value=0.0) * decay                # (N, D) as of step t
        e_x = self.e_x[...].at[ids].get(mode="fill", fill_value=0.0) * decay
        e_g = (1 - rho) * g ** 2 + rho * e_g                                                # optax's update_moment
        u = jnp.sqrt(e_x + eps) / jnp.sqrt(e_g + eps) * g
        e_x = (1 - rho) * u ** 2 + rho * e_x
        rows = table.at[ids].get(mode="fill", fill_value=0.0)                               # (N, D)
        rows = (rows + u * (-lr)).astype(table.dtype)                                       # scale_by_lr, apply
        if active is not None:
            ids = jnp.where(active, ids, vocab)                                             # masked: write nothing
        model.embedding[...] = table.at[ids].set(rows, mode="drop")
        self.e_g[...] = self.e_g[...].at[ids].set(e_g, mode="drop")
        self.e_x[...] = self.e_x[...].at[ids].set(e_x, mode="drop")
        self.last_step[...] = self.last_step[...].at[ids].set(t + 1, mode="drop")
