"""Optimizers of the trainer: ``config.train`` -> optax, and the lazy row-sparse Adadelta of the embedding table.

:func:`make_optimizer` builds the optax transformation of ``config.train.optimizer``. When Adadelta trains an
embedding table (``config.train.sparse_embedding``, the default), :class:`SparseEmbeddingAdadelta` updates the
table's rows lazily (only those of the batch's tokens) and hands every other parameter to ``nnx.Optimizer``: the same
numbers as the dense update, at a cost that follows the batch instead of the vocabulary.

>>> import ml_collections
>>> t = ml_collections.ConfigDict({"optimizer": "adadelta", "learning_rate": 1.0, "rho": 0.95, "eps": 1e-6,
...                                "momentum": 0.0})
>>> make_optimizer(t) is make_optimizer(t)      # one object per setting: runs in a process share compiled steps
True
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from jaxconv.models.text_cnn import PAD_ID

__all__ = ["OPTIMIZERS", "make_optimizer", "NOT_EMBEDDING", "SPARSE_EMBEDDINGS", "sparse_embedding_settings",
           "SparseEmbeddingAdadelta", "SPARSE_STATE"]

OPTIMIZERS = ("adadelta", "adam", "sgd")


def make_optimizer(train_config) -> optax.GradientTransformation:
    """``config.train`` -> optax: ``"adadelta"`` (``learning_rate``, ``rho``, ``eps``; Kim's 1.0, 0.95, 1e-6),
    ``"adam"`` (``learning_rate``, ``eps``) or ``"sgd"`` (``learning_rate``, ``momentum``). The defaults are the
    config's (:mod:`jaxconv.configs.text_cnn`).

    The same settings give the same transformation object, so a second run in one process (kim2014.py) has an equal
    optimizer graph and reuses the compiled train step.
    """
    t = train_config
    if t.optimizer not in OPTIMIZERS:
        raise ValueError(f"config.train.optimizer={t.optimizer!r} is not known; expected one of "
                         f"{', '.join(map(repr, OPTIMIZERS))}.")
    return _optimizer(t.optimizer, float(t.learning_rate), float(t.rho), float(t.eps), float(t.momentum))


@functools.lru_cache(maxsize=32)
def _optimizer(name: str, lr: float, rho: float, eps: float, momentum: float) -> optax.GradientTransformation:
    if name == "adadelta":
        return optax.adadelta(learning_rate=lr, rho=rho, eps=eps)
    if name == "adam":
        return optax.adam(learning_rate=lr, eps=eps)
    return optax.sgd(learning_rate=lr, momentum=momentum or None)


#: The parameters the dense optimizer updates when the embedding table has its own row-sparse Adadelta.
NOT_EMBEDDING = nnx.All(nnx.Param, nnx.Not(nnx.PathContains("embedding")))
#: Embedding variants whose trained table gets the row-sparse update (the others keep the dense path).
SPARSE_EMBEDDINGS = ("rand", "non-static")
#: The attributes of :class:`SparseEmbeddingAdadelta` (and the model's ``embedding``) that the row-sparse update
#: writes itself; every other variable is written by the dense update.
SPARSE_STATE = ("e_g", "e_x", "last_step")


#: Models whose trained table the row-sparse update knows (an ``embedding`` Param, ``embed``, ``ids_in_range``,
#: ``logits_from_vectors``).
SPARSE_MODELS = ("text_cnn",)


def sparse_embedding_settings(config) -> tuple[float, float, float] | None:
    """``(learning_rate, rho, eps)`` when ``config`` trains its embedding table with the row-sparse Adadelta
    (``train.optimizer == "adadelta"``, ``train.sparse_embedding`` true, Kim's CNN with ``model.embedding`` "rand"
    or "non-static"), else None (one dense optax update of every parameter)."""
    t, m = config.train, config.model
    if (t.optimizer != "adadelta" or not t.sparse_embedding or m.name not in SPARSE_MODELS
            or m.embedding not in SPARSE_EMBEDDINGS):
        return None
    return float(t.learning_rate), float(t.rho), float(t.eps)


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

    def __init__(self, model, tx: optax.GradientTransformation, *, learning_rate: float, rho: float, eps: float):
        self.dense = nnx.Optimizer(model, tx, wrt=NOT_EMBEDDING)
        table = model.embedding[...]                                                        # (V, D)
        self.e_g = nnx.OptState(jnp.zeros_like(table))
        self.e_x = nnx.OptState(jnp.zeros_like(table))
        self.last_step = nnx.OptState(jnp.zeros((table.shape[0],), jnp.int32))
        self.learning_rate, self.rho, self.eps = float(learning_rate), float(rho), float(eps)

    @property
    def step(self):
        return self.dense.step

    def update_embedding(self, model, tokens, grad_vectors, t, active=None) -> None:
        """Apply update ``t`` (0-based) to the rows of ``model.embedding`` in ``tokens`` ``(B, L)``, given the loss's
        gradient w.r.t. the embedded vectors ``grad_vectors`` ``(B, L, D)`` (pad positions are ignored).

        ``active``: an optional boolean scalar; when false, nothing is written (every row index is sent out of
        range, so the scatters drop it): how a masked step of a scanned or stacked program leaves the table alone.
        """
        rho, eps, lr = self.rho, self.eps, self.learning_rate
        table = model.embedding[...]                                                        # (V, D)
        vocab, dim = table.shape
        n = tokens.size
        mask = (tokens != PAD_ID)[..., None]                                                # (B, L, 1)
        gx = jnp.where(mask, grad_vectors, 0.0).reshape(n, dim)                            # (N, D), pads 0
        # Distinct ids of the batch, padded with vocab (out of range: gathers fill, scatters drop it).
        ids, inv = jnp.unique(tokens.reshape(-1), size=n, fill_value=vocab, return_inverse=True)   # (N,), (N,)
        g = jax.ops.segment_sum(gx, inv.reshape(-1), num_segments=n)                       # (N, D) row gradients
        t = jnp.asarray(t).astype(jnp.int32)
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
