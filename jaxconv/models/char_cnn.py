"""Zhang, Zhao and LeCun (2015)'s character-level CNN for text classification, on :class:`jaxconv.Conv1D`.

    chars (B, L) --one-hot (or a learned table)--> (B, L, C) --6 x [Conv1D(k) + ReLU], max-pool 3 after conv 1, 2, 6-->
      (B, L', F) --flatten--> (B, L'*F) --Linear + ReLU, dropout, Linear + ReLU, dropout--> Linear --> logits (B, K)

The paper's convolutions have kernels 7, 7, 3, 3, 3, 3 with no padding and 1024 ("large") or 256 ("small") maps,
non-overlapping max-pooling of 3 after layers 1, 2 and 6, then two fully connected layers of 2048 / 1024 units with
dropout 0.5 between them. Its input is 1014 characters, quantized one-hot over its alphabet (:data:`ZHANG_ALPHABET`;
characters outside it, and padding, are all-zero vectors), so the length chain is

    1014 -conv 7-> 1008 -pool 3-> 336 -conv 7-> 330 -pool 3-> 110 -conv 3-> 108 -conv 3-> 106 -conv 3-> 104
         -conv 3-> 102 -pool 3-> 34,      34 x 1024 = 34,816 features into the first dense layer,

that is 1014 -> 336 -> 110 -> 108 -> 106 -> 104 -> 34 layer by layer (:meth:`CharCNN.length_chain`).

``jaxconv explain`` shows it layer by layer: ``jaxconv explain char_cnn:zhang2015``.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> m = CharCNN(72, 2, length=150, features=8, hidden=16, rngs=nnx.Rngs(0))
>>> m(jnp.ones((3, 150), jnp.int32)).shape
(3, 2)
>>> m.length_chain()                      # after each layer: conv 7 + pool, conv 7 + pool, conv 3 x 3, conv 3 + pool
[150, 48, 14, 12, 10, 8, 2]

The model kind ``"char_cnn"`` (registered at the bottom of this module) builds it from ``config.model``: the
fields are the constructor's keyword arguments, ``length`` to ``init_std``; every text is padded or cut to
``config.model.length`` characters.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from jaxconv import shapes
from jaxconv.configs.char_cnn import get_config as default_config
from jaxconv.configs.rules import int_min, ints_min, one_of, real
from jaxconv.data.vocab import ZHANG_ALPHABET
from jaxconv.models.registry import PAD_ID, ModelKind, register
from jaxconv.nn._validation import check_rate
from jaxconv.nn.algorithms import IMPLS
from jaxconv.nn.conv import Conv1D
from jaxconv.nn.pool import MaxPool1D

__all__ = ["CharCNN", "ZHANG_KERNELS", "ZHANG_POOL_AFTER", "CHAR_EMBEDDINGS", "ZHANG_ALPHABET"]

#: Zhang et al. (2015), Table 1: kernel sizes of the six convolutions.
ZHANG_KERNELS = (7, 7, 3, 3, 3, 3)
#: ... and the (0-based) convolutions followed by a max-pool of 3.
ZHANG_POOL_AFTER = (0, 1, 5)
#: "onehot": Zhang's quantization (fixed one-hot vectors, pad and unknown all-zero); "learned": a trained table.
CHAR_EMBEDDINGS = ("onehot", "learned")


class CharCNN(nnx.Module):
    """Character-level CNN (Zhang et al. 2015).

    Args:
      vocab_size: ``V``: padding (id 0), unknown (id 1) and the characters (:meth:`jaxconv.data.Vocab.from_alphabet`
        of :data:`ZHANG_ALPHABET` gives the paper's characters, so ``V = 71``); one-hot inputs have ``V - 2`` channels.
      num_classes: output classes ``K``.
      length: the fixed input length ``L`` (the paper: 1014); the dense layer's size depends on it.
      kernels: kernel size of each convolution (the paper's 7, 7, 3, 3, 3, 3).
      pool_after: indices of the convolutions followed by a max-pool (the paper's 0, 1, 5).
      pool_size: the max-pool window and stride (3).
      features: maps per convolution ``F`` (1024 large, 256 small).
      hidden: units of each of the two dense layers (2048 large, 1024 small).
      dropout: dropout rate after each of the two hidden dense layers (0.5).
      embedding: ``"onehot"`` (the paper) or ``"learned"`` (a trained ``(V, embed_dim)`` table).
      embed_dim: table width for ``"learned"`` (ignored for one-hot, whose width is ``V``).
      init_std: ``None`` (default): LeCun-normal weights (variance 1 / fan-in), which keep the activations of a
        narrow model from vanishing through six layers; a float: Gaussian N(0, init_std) weights, the paper's
        0.02 (large) or 0.05 (small).
      conv_impl: how the convolutions are computed: ``"xla"`` (default), ``"im2col"``, ``"fft"`` or ``"auto"``
        (the fastest measured per shape; :mod:`jaxconv.nn.algorithms`). Same values, another algorithm.
      rngs: ``nnx.Rngs`` for initialisation; dropout keys are passed per call. Biases start at zero.
    """

    def __init__(self, vocab_size: int, num_classes: int, *, length: int = 1014,
                 kernels: Sequence[int] = ZHANG_KERNELS, pool_after: Sequence[int] = ZHANG_POOL_AFTER,
                 pool_size: int = 3, features: int = 1024, hidden: int = 2048, dropout: float = 0.5,
                 embedding: str = "onehot", embed_dim: int = 16, init_std: float | None = None,
                 conv_impl: str = "xla", rngs: nnx.Rngs):
        for arg, val in (("vocab_size", vocab_size), ("num_classes", num_classes), ("length", length),
                         ("features", features), ("hidden", hidden), ("pool_size", pool_size),
                         ("embed_dim", embed_dim)):
            if isinstance(val, bool) or not shapes.is_integral(val) or val < 1:
                raise ValueError(f"CharCNN: {arg} must be an int >= 1; got {arg}={val!r}.")
        kernels = shapes.per_axis_ints(tuple(kernels), None, name="kernels", minimum=1)
        pool_after = tuple(int(i) for i in pool_after)
        if any(not 0 <= i < len(kernels) for i in pool_after):
            raise ValueError(f"CharCNN: pool_after={pool_after} names convolutions outside 0..{len(kernels) - 1} "
                             f"(kernels={kernels}).")
        if embedding not in CHAR_EMBEDDINGS:
            raise ValueError(f"CharCNN: embedding={embedding!r} is not known; expected one of {CHAR_EMBEDDINGS}.")
        dropout = check_rate("CharCNN", "dropout", dropout)
        self.vocab_size, self.num_classes, self.length = int(vocab_size), int(num_classes), int(length)
        self.kernels, self.pool_after, self.embedding_kind = kernels, pool_after, embedding
        if embedding == "learned":
            table = jax.random.normal(rngs.params(), (vocab_size, embed_dim)) * 0.02
            self.embedding = nnx.Param(table.at[PAD_ID].set(0.0))                     # (V, E)
            channels = int(embed_dim)
        else:
            channels = int(vocab_size) - 2                                             # pad and unknown: no channel
            if channels < 1:
                raise ValueError(f"CharCNN: vocab_size={vocab_size} leaves no character for the one-hot input "
                                 f"(ids 0 and 1 are padding and unknown); expected vocab_size >= 3.")
        init = nnx.initializers.he_normal() if init_std is None else nnx.initializers.normal(float(init_std))
        convs, pools = [], []
        for i, k in enumerate(kernels):
            convs.append(Conv1D(channels if i == 0 else features, features, k, activation="relu", kernel_init=init,
                                impl=conv_impl, rngs=rngs))
            pools.append(MaxPool1D(pool_size) if i in pool_after else None)
        self.convs = nnx.List(convs)                                                   # kernels (k, C or F, F)
        self.pools = nnx.List(pools)
        chain = self.length_chain()
        flat = chain[-1] * int(features)
        self.dense = nnx.List([nnx.Linear(flat if j == 0 else hidden, hidden, kernel_init=init, rngs=rngs)
                               for j in range(2)])                                     # (L'*F, H), (H, H)
        self.dropout = nnx.Dropout(float(dropout))
        self.classifier = nnx.Linear(hidden, num_classes, kernel_init=init, rngs=rngs)  # (H, K)

    @property
    def min_length(self) -> int:
        return self.length

    def length_chain(self) -> list[int]:
        """The input length, then the length after each layer (a convolution and its pool, if any). No compute.

        Raises ValueError with the output-length formula when ``length`` is too short for the stack.
        """
        L, chain = self.length, [self.length]
        for i, k in enumerate(self.kernels):
            try:
                L = shapes.conv_output_length(L, k)
                pool = self.pools[i]
                if pool is not None:
                    L = shapes.conv_output_length(L, pool.kernel_size[0], stride=pool.stride[0])
            except ValueError as e:
                raise ValueError(f"CharCNN: length={self.length} is too short for convolution {i} (kernel {k}) and "
                                 f"its pool: {e}") from None
            chain.append(L)
        return chain

    def embed(self, tokens: jax.Array) -> jax.Array:
        """chars int ``(B, L)`` -> ``(B, L, C)``: one-hot over the ``V - 2`` characters (``C = V - 2``; padding and
        unknown characters, ids 0 and 1, are all-zero vectors, as Zhang et al. quantize them), or table rows."""
        if self.embedding_kind == "onehot":
            return jax.nn.one_hot(tokens - 2, self.vocab_size - 2, dtype=jnp.float32)  # (B, L, V-2); ids < 2: zeros
        x = jnp.take(self.embedding[...], tokens, axis=0)                              # (B, L, E)
        return jnp.where((tokens != PAD_ID)[..., None], x, 0.0)

    def features(self, tokens: jax.Array) -> jax.Array:
        """chars ``(B, L)`` -> the flattened last feature map ``(B, L'*F)`` (before the dense layers)."""
        tokens = jnp.asarray(tokens)
        self.check_tokens(tokens)
        x = self.embed(tokens)                                                         # (B, L, C)
        for conv, pool in zip(self.convs, self.pools):
            x = conv(x)                                                                # (B, L_i, F)
            if pool is not None:
                x = pool(x)                                                            # (B, L_i / 3, F)
        return x.reshape(x.shape[0], -1)                                               # (B, L'*F)

    def check_tokens(self, tokens: jax.Array) -> None:
        if tokens.ndim != 2 or tokens.shape[1] != self.length:
            raise ValueError(f"CharCNN: tokens must have shape (batch, length={self.length}); got shape "
                             f"{tuple(tokens.shape)}. Pad or cut every text to {self.length} characters (the dense "
                             f"layer's input size, {self.length_chain()[-1]} x {self.convs[0].filters}, depends on it).")

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True, dropout_key: jax.Array | None = None):
        """chars int ``(B, L)`` -> logits ``(B, num_classes)``."""
        h = self.features(tokens)                                                      # (B, L'*F)
        keys = jax.random.split(dropout_key, 2) if dropout_key is not None else [None, None]
        for dense, key in zip(self.dense, keys):                                       # "2 dropout modules in between
            h = jax.nn.relu(dense(h))                                                  #  the 3 fully-connected layers"
            h = self.dropout(h, deterministic=deterministic, rngs=key)                 # (B, H)
        return self.classifier(h)                                                      # (B, K)

    def num_params(self) -> int:
        return int(sum(math.prod(x.shape) for x in jax.tree.leaves(nnx.state(self, nnx.Param))))


register(ModelKind(
    name="char_cnn",
    cls=CharCNN,
    fields=("length", "kernels", "pool_after", "pool_size", "features", "hidden", "dropout", "embedding",
            "embed_dim", "init_std", "conv_impl"),
    task="classify",
    input_length=lambda m: (int(m.length), int(m.length)),  # exactly `length` characters: the dense layer's size
    rules=(
        ("model.length", int_min(1), "characters per input"),
        ("model.kernels", ints_min(1), "kernel sizes of the convolutions"),
        ("model.pool_size", int_min(1), "the max-pool window"),
        ("model.features", int_min(1), "feature maps per convolution"),
        ("model.hidden", int_min(1), "units of each dense layer"),
        ("model.dropout", real(0.0, 1.0), "the dropout rate between the dense layers"),
        ("model.embed_dim", int_min(1), "the learned character vector size"),
        ("model.conv_impl", one_of(IMPLS), "how the convolutions are computed"),
    ),
    default_config=default_config,
))
