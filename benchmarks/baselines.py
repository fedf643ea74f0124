"""The baselines the benchmarks compare jaxconv with: Kim's CNN written the textbook way in flax.nnx and in PyTorch.

Both train Kim (2014)'s CNN-rand: 300-d uniform[-0.25, 0.25] word vectors (pad row zero), widths 3, 4, 5 x 100
filters + ReLU, max over time, dropout 0.5, a dense layer, softmax cross-entropy, Adadelta (rho 0.95, eps 1e-6,
learning rate 1.0) on every parameter (the embedding table densely), then max-norm 3 on each class's weight vector.

- :class:`PlainFlaxRunner`: :class:`PlainKimCNN` (``nnx.Embed``, ``nnx.Conv(padding="VALID")`` per width,
  ``nnx.Dropout``, ``nnx.Linear``) and an ``nnx.jit`` step with optax Adadelta and the max-norm.
- :class:`TorchRunner`: ``nn.Embedding(padding_idx=0)``, ``nn.Conv1d`` per width, ``torch.optim.Adadelta``,
  ``torch.renorm``; on CUDA when ``device="cuda"`` (batches copied from the host each step, as the textbook loop
  does).

A runner's ``run(batches) -> (real examples, last loss)`` trains on host batches ``(tokens int32 (B, L), labels int32
(B,), weights float32 (B,))`` and blocks until the last step is done. :func:`plain_batches` makes them.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

try:
    import torch
except ImportError:  # optional
    torch = None

__all__ = ["PlainKimCNN", "PlainFlaxRunner", "TorchRunner", "plain_batches", "torch", "torch_device"]


def plain_batches(ids: list, labels: np.ndarray, steps: int, batch_size: int, pad: int, length: int | None,
                  seed: int = 1) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """``steps`` batches of consecutive examples of one shuffled pass (cycling if needed): ``(tokens int32 (B, L),
    labels int32 (B,), weights float32 (B,))``; ``L = length`` or, if None, the batch's longest sentence + 2 pad.

    >>> b = plain_batches([np.array([5, 6]), np.array([7])], np.array([0, 1]), 1, 2, 1, None)
    >>> b[0][0].shape, b[0][2].tolist()
    ((2, 4), [1.0, 1.0])
    """
    order = np.random.default_rng(seed).permutation(len(ids))
    out = []
    for s in range(steps):
        idx = order[np.arange(s * batch_size, (s + 1) * batch_size) % len(order)]
        seqs = [ids[i] for i in idx]
        L = length if length is not None else max(len(x) for x in seqs) + 2 * pad
        tokens = np.zeros((batch_size, L), np.int32)
        for r, x in enumerate(seqs):
            tokens[r, pad: pad + len(x)] = x
        out.append((tokens, labels[idx], np.ones(batch_size, np.float32)))
    return out


class PlainKimCNN(nnx.Module):
    """Kim's CNN written the textbook flax.nnx way (no jaxconv): tokens (B, L) -> logits (B, K)."""

    def __init__(self, vocab_size, num_classes, *, embed_dim=300, widths=(3, 4, 5), filters=100, dropout=0.5,
                 rngs: nnx.Rngs):
        uniform = lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -0.25, 0.25)
        self.embed = nnx.Embed(vocab_size, embed_dim, embedding_init=uniform, rngs=rngs)
        self.embed.embedding[...] = self.embed.embedding[...].at[0].set(0.0)           # pad row zero
        init = nnx.initializers.glorot_uniform()
        self.convs = nnx.List([nnx.Conv(embed_dim, filters, kernel_size=(w,), padding="VALID", kernel_init=init,
                                        rngs=rngs) for w in widths])
        self.dropout = nnx.Dropout(dropout, rngs=rngs)
        self.linear = nnx.Linear(len(widths) * filters, num_classes, kernel_init=init, rngs=rngs)

    def __call__(self, tokens):
        x = self.embed(tokens) * (tokens != 0)[..., None]                             # (B, L, D), pads zero
        h = jnp.concatenate([jax.nn.relu(conv(x)).max(axis=1) for conv in self.convs], axis=-1)  # (B, W*F)
        return self.linear(self.dropout(h))                                           # (B, K)


def _plain_step(model, optimizer, tokens, labels, weights):
    def loss_fn(model):
        ce = optax.softmax_cross_entropy_with_integer_labels(model(tokens), labels)
        return jnp.sum(ce * weights) / jnp.sum(weights)

    loss, grads = nnx.value_and_grad(loss_fn)(model)
    optimizer.update(model, grads)
    w = model.linear.kernel[...]                                                      # (W*F, K): max-norm 3 per class
    norms = jnp.sqrt(jnp.sum(w * w, axis=0, keepdims=True))
    model.linear.kernel[...] = jnp.where(norms > 3.0, w * (3.0 / jnp.maximum(norms, 1e-12)), w)
    return loss


PLAIN_TX = optax.adadelta(learning_rate=1.0, rho=0.95, eps=1e-6)


@functools.partial(nnx.jit, static_argnums=(0, 1, 2))
def _create_plain(vocab_size, num_classes, seed):
    """Model and optimizer in one compiled program (eagerly, every initialiser op would compile on its own)."""
    model = PlainKimCNN(vocab_size, num_classes, rngs=nnx.Rngs(params=seed, dropout=seed + 1))
    return model, nnx.Optimizer(model, PLAIN_TX, wrt=nnx.Param)


class PlainFlaxRunner:
    """PlainKimCNN + optax Adadelta + max-norm in an ``nnx.jit`` step of its own (own compile cache)."""

    def __init__(self, vocab_size, num_classes, seed=0):
        self.model, self.optimizer = _create_plain(vocab_size, num_classes, seed)
        self.model.train()                                                            # dropout on
        self.step_fn = nnx.jit(_plain_step)

    def run(self, batches):
        loss, count = None, 0.0
        for tokens, labels, weights in batches:
            loss = self.step_fn(self.model, self.optimizer, tokens, labels, weights)
            count += float(weights.sum())
        return count, float(jax.block_until_ready(loss))


def torch_device() -> str:
    """``"cuda"`` when PyTorch sees a GPU, else ``"cpu"`` (``"none"`` without PyTorch)."""
    if torch is None:
        return "none"
    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchRunner:
    """Kim's CNN in plain PyTorch eager on ``device``, Adadelta, max-norm 3 on the Linear weight rows each step."""

    def __init__(self, vocab_size, num_classes, seed=0, device: str = "cpu"):
        torch.manual_seed(seed)
        nn = torch.nn
        self.device = torch.device(device)

        class KimCNN(nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = nn.Embedding(vocab_size, 300, padding_idx=0)
                nn.init.uniform_(self.embed.weight, -0.25, 0.25)
                with torch.no_grad():
                    self.embed.weight[0].zero_()
                self.convs = nn.ModuleList([nn.Conv1d(300, 100, w) for w in (3, 4, 5)])
                self.dropout = nn.Dropout(0.5)
                self.linear = nn.Linear(300, num_classes)

            def forward(self, tokens):                                                # (B, L) -> (B, K)
                x = self.embed(tokens).transpose(1, 2)                                # (B, D, L)
                h = torch.cat([torch.relu(c(x)).amax(dim=2) for c in self.convs], dim=1)  # (B, W*F)
                return self.linear(self.dropout(h))

        self.model = KimCNN().to(self.device).train()
        self.optimizer = torch.optim.Adadelta(self.model.parameters(), lr=1.0, rho=0.95, eps=1e-6)

    def run(self, batches):
        loss, count = None, 0.0
        for tokens, labels, weights in batches:
            tokens_t = torch.from_numpy(tokens).long().to(self.device)
            labels_t = torch.from_numpy(labels).long().to(self.device)
            weights_t = torch.from_numpy(weights).to(self.device)
            ce = torch.nn.functional.cross_entropy(self.model(tokens_t), labels_t, reduction="none")
            loss = (ce * weights_t).sum() / weights_t.sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            with torch.no_grad():                                                     # each class's row, norm <= 3
                w = self.model.linear.weight
                w.copy_(torch.renorm(w, p=2, dim=0, maxnorm=3.0))
            count += float(weights.sum())
        return count, float(loss.detach())                                            # .item() waits for the GPU
