"""A gated, dilated, causal convolutional language model (Dauphin et al. 2017's gated linear units; the dilations of
WaveNet and ByteNet), on :class:`jaxconv.Conv1D` with ``padding="causal"``.

    tokens (B, L) --embed--> (B, L, D) --Linear--> (B, L, C)
      --N blocks: h + GLU(Conv1D(C -> 2C, k, dilation d_i, causal))--> (B, L, C) --LayerNorm, Linear--> logits (B, L, V)

``GLU(y) = a * sigmoid(b)`` with ``y = [a, b]`` split on the channel axis: filter ``j < C`` of a block's conv is the
linear path of unit ``j``, filter ``C + j`` its gate. Dilations ``1, 2, 4, ..., 2^(n-1)`` repeated ``stacks`` times
give a receptive field of ``1 + (k - 1) * sum(dilations)`` tokens (``jaxconv.explain`` prints it; a gradient probe
measures it in the tests).

Causality: every convolution pads ``(d*(k-1), 0)``, so the logits at position ``p`` depend on tokens ``0..p`` only
and predict token ``p + 1``. Token id 0 is padding and embeds to zeros, the same as the convolutions' own zero
padding: a left-padded context and a shorter one give the same logits (what :meth:`ConvLM.sample` relies on).

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> lm = ConvLM(258, embed_dim=8, channels=16, kernel_size=3, dilations=(1, 2, 4), rngs=nnx.Rngs(0))
>>> lm(jnp.ones((2, 20), jnp.int32)).shape                 # logits (B, L, V)
(2, 20, 258)
>>> lm.receptive_field                                     # 1 + (3 - 1) * (1 + 2 + 4)
15

The model kind ``"conv_lm"`` (registered at the bottom of this module) builds it from ``config.model`` (the fields
are the constructor's keyword arguments) and trains it on the next token of windows of ``config.data.seq_len``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv import shapes
from jaxconv.data.vocab import BYTE_VOCAB_SIZE, decode_bytes, encode_bytes
from jaxconv.configs.conv_lm import get_config as default_config
from jaxconv.configs.rules import int_min, ints_min, one_of, real
from jaxconv.models.adapter import DumpAdapter
from jaxconv.models.registry import PAD_ID, UNK_ID, ModelKind, register
from jaxconv.nn._validation import check_rate
from jaxconv.nn.algorithms import IMPLS
from jaxconv.nn.conv import Conv1D

__all__ = ["ConvLM", "ConvLMAdapter", "BYTE_VOCAB_SIZE", "encode_bytes", "decode_bytes"]


class ConvLM(nnx.Module):
    """Gated dilated causal-conv language model.

    Args:
      vocab_size: ``V`` (258 for bytes: :data:`BYTE_VOCAB_SIZE`; a word :class:`jaxconv.data.Vocab` otherwise).
      embed_dim: token embedding size ``D``.
      channels: residual width ``C``; each block's conv has ``2C`` filters (linear path and gate).
      kernel_size: ``k`` of every block.
      dilations: one block per entry, e.g. ``(1, 2, 4, 8)``; repeated ``stacks`` times.
      stacks: how many times the dilation pattern repeats.
      dropout: dropout rate on each block's output before the residual add.
      conv_impl: how the convolutions are computed: ``"xla"`` (default), ``"im2col"``, ``"fft"`` or ``"auto"``
        (the fastest measured per shape; :mod:`jaxconv.nn.algorithms`). Same values, another algorithm.
      rngs: ``nnx.Rngs`` for initialisation; dropout keys are passed per call.
    """

    def __init__(self, vocab_size: int, *, embed_dim: int = 64, channels: int = 128, kernel_size: int = 3,
                 dilations: Sequence[int] = (1, 2, 4, 8, 16), stacks: int = 1, dropout: float = 0.0,
                 conv_impl: str = "xla", rngs: nnx.Rngs):
        for arg, val in (("vocab_size", vocab_size), ("embed_dim", embed_dim), ("channels", channels),
                         ("kernel_size", kernel_size), ("stacks", stacks)):
            if isinstance(val, bool) or not shapes.is_integral(val) or val < 1:
                raise ValueError(f"ConvLM: {arg} must be an int >= 1; got {arg}={val!r}.")
        dilations = shapes.per_axis_ints(tuple(dilations), None, name="dilations", minimum=1)
        dropout = check_rate("ConvLM", "dropout", dropout)
        self.vocab_size, self.channels, self.kernel_size = int(vocab_size), int(channels), int(kernel_size)
        self.dilations = tuple(dilations) * int(stacks)
        table = jax.random.normal(rngs.params(), (vocab_size, embed_dim)) * (1.0 / math.sqrt(embed_dim))
        self.embedding = nnx.Param(table.at[PAD_ID].set(0.0))                            # (V, D)
        self.input_proj = nnx.Linear(embed_dim, channels, rngs=rngs)                     # (D, C)
        self.convs = nnx.List([Conv1D(channels, 2 * channels, kernel_size, dilation=d, padding="causal",
                                       impl=conv_impl, rngs=rngs)
                               for d in self.dilations])                                 # kernels (k, C, 2C)
        self.dropout = nnx.Dropout(float(dropout))
        self.norm = nnx.LayerNorm(channels, rngs=rngs)
        self.head = nnx.Linear(channels, vocab_size, rngs=rngs)                          # (C, V)

    @property
    def receptive_field(self) -> int:
        """Tokens one position's logits see: ``1 + (k - 1) * sum(dilations)``."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    @property
    def min_length(self) -> int:
        return 1

    def embed(self, tokens: jax.Array) -> jax.Array:
        """tokens int ``(B, L)`` -> ``(B, L, D)``, zeros at padding (id 0)."""
        x = jnp.take(self.embedding[...], tokens, axis=0)                                # (B, L, D)
        return jnp.where((tokens != PAD_ID)[..., None], x, 0.0)

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True, dropout_key: jax.Array | None = None):
        """tokens int ``(B, L)`` -> next-token logits ``(B, L, V)``: position ``p`` predicts token ``p + 1``."""
        tokens = jnp.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"ConvLM: tokens must have shape (batch, length); got shape {tuple(tokens.shape)}.")
        return self.logits_from_vectors(self.embed(tokens), deterministic=deterministic, dropout_key=dropout_key)

    def logits_from_vectors(self, x: jax.Array, *, deterministic: bool = True,
                            dropout_key: jax.Array | None = None) -> jax.Array:
        """Embedded tokens ``(B, L, D)`` (as :meth:`embed` gives them) -> logits ``(B, L, V)``."""
        h = self.input_proj(x)                                                           # (B, L, C)
        keys = (jax.random.split(dropout_key, len(self.convs)) if dropout_key is not None
                else [None] * len(self.convs))
        for conv, key in zip(self.convs, keys):
            a, b = jnp.split(conv(h), 2, axis=-1)                                        # (B, L, C) each
            h = h + self.dropout(a * jax.nn.sigmoid(b), deterministic=deterministic, rngs=key)   # GLU, residual
        return self.head(self.norm(h))                                                   # (B, L, V)

    def sample(self, prompt: Sequence[int], n: int, *, temperature: float = 0.0,
               key: jax.Array | None = None) -> np.ndarray:
        """Continue ``prompt`` (token ids ``(P,)``, P >= 1) by ``n`` tokens; returns the ``n`` new ids ``(n,)``.

        ``temperature=0`` is greedy (argmax); above 0, tokens are drawn from ``softmax(logits / temperature)`` with
        ``key`` (default ``jax.random.key(0)``). Each step looks at the last :attr:`receptive_field` tokens (all
        the logits can see), left-padded with id 0 when the context is shorter, in one compiled ``lax.scan``.
        """
        prompt = np.asarray(prompt, np.int32).reshape(-1)
        if prompt.size < 1 or not shapes.is_integral(n) or n < 1:
            raise ValueError(f"ConvLM.sample: prompt must hold >= 1 token and n an int >= 1; got {prompt.size} "
                             f"prompt tokens and n={n!r}.")
        if temperature < 0:
            raise ValueError(f"ConvLM.sample: temperature must be >= 0; got temperature={temperature!r}.")
        W = self.receptive_field
        window = np.zeros((W,), np.int32)
        tail = prompt[-W:]
        window[W - tail.size:] = tail
        graphdef, state = nnx.split(self)
        key = jax.random.key(0) if key is None else key
        out = _sample_scan(graphdef, int(n), float(temperature))(state, jnp.asarray(window), key)
        return np.asarray(out)


@functools.lru_cache(maxsize=16)
def _sample_scan(graphdef, n: int, temperature: float):
    @jax.jit
    def run(state, window, key):
        model = nnx.merge(graphdef, state)

        def step(carry, k):
            win = carry
            logits = model(win[None, :])[0, -1]                                          # (V,) next-token logits
            logits = logits.at[PAD_ID].set(-jnp.inf).at[UNK_ID].set(-jnp.inf)          # never emit pad or unknown
            tok = (jnp.argmax(logits) if temperature == 0.0
                   else jax.random.categorical(k, logits / temperature)).astype(jnp.int32)
            return jnp.concatenate([win[1:], tok[None]]), tok

        _, toks = jax.lax.scan(step, window, jax.random.split(key, n))
        return toks                                                                      # (n,)

    return run


class ConvLMAdapter(DumpAdapter):
    """The dump adapter of :class:`ConvLM`: no class logits (its output is the next token's, per position); its
    first convolution reads ``input_proj(embed(tokens))``, so those are the vectors its slot words score."""

    def logits(self, model: nnx.Module, tokens: jax.Array) -> None:
        return None

    def embedding_table(self, model: nnx.Module, vocab_size: int) -> np.ndarray:
        ids = jnp.arange(vocab_size, dtype=jnp.int32)[None, :]
        return np.asarray(model.input_proj(model.embed(ids))[0], np.float32)            # (V, C)


register(ModelKind(
    name="conv_lm",
    cls=ConvLM,
    fields=("embed_dim", "channels", "kernel_size", "dilations", "stacks", "dropout", "conv_impl"),
    task="next_token",
    input_length=lambda m: (1, None),                      # causal: windows of any length >= 1
    rules=(
        ("model.embed_dim", int_min(1), "the token vector size"),
        ("model.channels", int_min(1), "the residual width"),
        ("model.kernel_size", int_min(1), "the kernel size of every block"),
        ("model.dilations", ints_min(1), "one block per dilation"),
        ("model.stacks", int_min(1), "repeats of the dilation pattern"),
        ("model.dropout", real(0.0, 1.0), "the dropout rate on each block's output"),
        ("model.conv_impl", one_of(IMPLS), "how the convolutions are computed"),
        ("data.seq_len", int_min(1), "tokens per training window"),
    ),
    adapter=ConvLMAdapter(),
    default_config=default_config,
))
