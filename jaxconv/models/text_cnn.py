"""Kim (2014)'s one-layer CNN for sentence classification, on :class:`jaxconv.Conv1D`.

    tokens (B, L) --embed--> (B, L, C) --Conv1D(w) + ReLU, one per width--> (B, L-w+1, F)
      --max over time--> (B, F) --concat--> (B, W*F) --dropout--> --Linear--> logits (B, num_classes)

``B`` batch, ``L`` padded length (>= max(widths)), ``D`` embedding size, ``C`` = ``D`` (or ``2D`` for the
multichannel model), ``F`` filters per width, ``W`` number of widths.

Embeddings (Kim's four variants):

- ``"rand"``: a trained ``nnx.Param`` table, initialised uniform[-0.25, 0.25] (or from ``pretrained``);
- ``"static"``: a frozen table held in a :class:`StaticEmbedding` variable (not an ``nnx.Param``, so an
  ``nnx.Optimizer(..., wrt=nnx.Param)`` never updates it and ``nnx.grad`` gives it no gradient);
- ``"non-static"``: a trained ``nnx.Param`` table initialised from ``pretrained`` (word2vec/GloVe);
- ``"multichannel"``: both, a static and a non-static copy. Kim applies every filter to both channels and adds
  the two responses; here the two ``(B, L, D)`` channels are concatenated to ``(B, L, 2D)`` and each conv has
  ``in_channels = 2D``. That is the same function: ``kernel[:, :D]`` is the filter on the static channel,
  ``kernel[:, D:]`` on the non-static one, and the conv sums over all ``2D`` input channels (one bias, as Kim).

The pad token (id 0) embeds to zeros (the row is zero at init and is masked by ``tokens != 0`` in the forward pass,
so training cannot move it either), like Kim's zero padding vectors.

Token ids must lie in ``[0, vocab_size)``. Called on concrete arrays, the model raises a ValueError naming the first
id outside that range and its position. Under a transform (``jax.jit``, ``nnx.jit``, ``jax.eval_shape``) the ids
cannot be inspected, so an id outside the range (negative, or ``>= vocab_size``) is looked up as ``<unk>``, id 1
(:meth:`TextCNN.ids_in_range`), never as a NaN row nor as a row counted from the end.

>>> import jax.numpy as jnp
>>> from flax import nnx
>>> model = TextCNN(1000, 2, embed_dim=30, widths=(3, 4, 5), filters=8, rngs=nnx.Rngs(0))
>>> model(jnp.ones((4, 12), jnp.int32)).shape            # logits (B, num_classes)
(4, 2)
>>> model.features(jnp.ones((4, 12), jnp.int32)).shape   # pooled features (B, W*F)
(4, 24)
>>> [c.kernel.shape for c in model.convs]                 # (width, in=D, out=F) per width
[(3, 30, 8), (4, 30, 8), (5, 30, 8)]

The model kind ``"text_cnn"`` (registered at the bottom of this module) builds it from ``config.model``::

    config.model.name        "text_cnn"
    config.model.embed_dim   D (Kim: 300)
    config.model.widths      filter widths (Kim: (3, 4, 5))
    config.model.filters     feature maps per width (Kim: 100)
    config.model.dropout     dropout rate (Kim: 0.5)
    config.model.embedding   "rand" | "static" | "non-static" | "multichannel"
    config.model.vectors     a word2vec/GloVe text file for the embedding ("": none; the frozen variants need one)
    config.model.dropout_scaling   "inverted" (default) | "test-time" (Kim's code)
    config.model.classifier_init   "glorot" (default) | "zeros" (Kim's code)
    config.model.compute_dtype     "float32" (default) | "bfloat16": activations and convolutions
    config.model.conv_impl   how the convolutions are computed: "xla" (default) | "im2col" | "fft" | "fused" (all
                             widths in one GEMM) | "auto" (the fastest measured; jaxconv.nn.multi_width)

>>> import ml_collections
>>> from jaxconv.models import build_model
>>> cfg = ml_collections.ConfigDict({"seed": 0, "model": {"name": "text_cnn", "embed_dim": 8, "widths": (2, 3),
...                                  "filters": 4, "dropout": 0.5, "embedding": "rand"}})
>>> build_model(cfg, vocab_size=50, num_classes=3).classifier.kernel.shape
(8, 3)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.configs.rules import int_min, ints_min, one_of, real
from jaxconv.configs.text_cnn import get_config as default_config
from jaxconv.models.adapter import DumpAdapter
from jaxconv.models.registry import PAD_ID, UNK_ID, ModelKind, register
from jaxconv.models.word_vectors import INIT_SCALE, load_word_vectors, uniform_embeddings
from jaxconv.nn._validation import check_rate
from jaxconv.nn.algorithms import ALGORITHMS, check_impl
from jaxconv.nn.conv import Conv1D
from jaxconv.nn.multi_width import PARALLEL_IMPLS, apply_parallel

__all__ = ["TextCNN", "TextCNNAdapter", "StaticEmbedding", "EMBEDDINGS", "DROPOUT_SCALINGS", "CLASSIFIER_INITS",
           "COMPUTE_DTYPES", "FROZEN_EMBEDDINGS", "PAD_ID", "UNK_ID", "load_word_vectors", "uniform_embeddings"]

#: Kim's four embedding variants.
EMBEDDINGS = ("rand", "static", "non-static", "multichannel")
#: Where dropout rescales: "inverted" (kept units x 1/(1-p) in training, nothing at eval; ``nnx.Dropout``) or
#: "test-time" (Hinton et al. 2012 and Kim's code: units masked in training, all units x (1-p) at eval).
DROPOUT_SCALINGS = ("inverted", "test-time")
#: Classifier kernel initialisers: "glorot" (Glorot-uniform) or "zeros" (Kim's code: logistic regression from W = 0).
CLASSIFIER_INITS = ("glorot", "zeros")
#: Dtypes the activations, convolutions and classifier may compute in; parameters are always float32.
COMPUTE_DTYPES = ("float32", "bfloat16")
#: Embedding variants that keep a frozen table: without ``config.model.vectors`` it would stay random.
FROZEN_EMBEDDINGS = ("static", "multichannel")

class StaticEmbedding(nnx.Variable):
    """A frozen embedding table ``(vocab_size, embed_dim)``. Not an ``nnx.Param``: optimisers built with
    ``wrt=nnx.Param`` skip it, ``nnx.grad`` does not differentiate it, checkpoints still save it."""


class TextCNN(nnx.Module):
    """Kim (2014)'s sentence CNN.

    Args:
      vocab_size: rows of the embedding table ``V`` (pad id 0 included).
      num_classes: output classes ``K``.
      embed_dim: word vector size ``D`` (Kim: 300).
      widths: filter widths (Kim: 3, 4, 5); inputs must be at least ``max(widths)`` tokens long.
      filters: feature maps per width ``F`` (Kim: 100).
      dropout: dropout rate on the pooled features (Kim: 0.5).
      embedding: ``"rand"``, ``"static"``, ``"non-static"`` or ``"multichannel"`` (see the module docstring).
      pretrained: optional float array ``(V, D)`` to initialise the table(s), e.g. from :func:`load_word_vectors`.
      dropout_scaling: ``"inverted"`` (default) or ``"test-time"`` (Kim). The two give the same expected
        pre-activations, but not the same parameter scale: with test-time scaling the classifier sees unscaled
        features in training, so a max-norm bound ``s`` on its kernel means what it means in Kim's code; with
        inverted dropout the same ``s`` is a bound of ``2s`` (at rate 0.5) in Kim's units.
      classifier_init: ``"glorot"`` (default) or ``"zeros"`` (Kim's code). With zeros, the first step's gradient
        reaches only the classifier (the features' gradient is ``kernel @ dlogits`` = 0); later steps reach all.
      compute_dtype: ``"float32"`` (default) or ``"bfloat16"``: the dtype of everything after the embedding lookup
        (word vectors, convolutions, pooling, classifier; logits are returned in it). Parameters (and so optimizer
        state) stay float32; :meth:`embed` returns float32 vectors, cast in :meth:`logits_from_vectors`.
      conv_impl: how the convolutions are computed (:data:`jaxconv.nn.multi_width.PARALLEL_IMPLS`): ``"xla"``
        (default), ``"im2col"``, ``"fft"``, ``"fused"`` (every width by one GEMM) or ``"auto"`` (the fastest,
        measured per input shape outside ``jit``: :func:`jaxconv.inspection.measure_algorithms`, which the
        trainer calls for every shape it compiles). The values are the same to float
        rounding; the parameters, feature maps and dumps are the same per-width layers whatever the choice.
      rngs: ``nnx.Rngs`` for initialisation (``params`` stream). Dropout keys are passed per call instead.

    Initialisation: embeddings uniform[-0.25, 0.25] (Kim), conv kernels Glorot-uniform, classifier kernel per
    ``classifier_init``, biases zero.

    Inputs: integer token ids ``(B, L)`` with ``L >= max(widths)`` and every id in ``[0, vocab_size)``. Outside a
    transform a bad id raises ValueError (the message names ``tokens``, the position, the id and ``vocab_size``);
    under ``jit`` an id outside the range is read as ``<unk>`` (id ``UNK_ID = 1``; id 0 when ``vocab_size`` is 1).

    Attributes:
      embedding: ``nnx.Param (V, D)`` for "rand", "non-static", "multichannel" (absent for "static").
      static_embedding: :class:`StaticEmbedding` ``(V, D)`` for "static" and "multichannel".
      convs: ``nnx.List`` of :class:`jaxconv.Conv1D`, kernel ``(w, C, F)`` each, ReLU.
      dropout: ``nnx.Dropout`` (its ``rate``; used as is for ``"inverted"`` scaling).
      classifier: ``nnx.Linear``, kernel ``(W*F, K)``, bias ``(K,)``.
    """

    def __init__(self, vocab_size: int, num_classes: int, *, embed_dim: int = 300, widths: Sequence[int] = (3, 4, 5),
                 filters: int = 100, dropout: float = 0.5, embedding: str = "rand", pretrained: Any = None,
                 dropout_scaling: str = "inverted", classifier_init: str = "glorot", compute_dtype: str = "float32",
                 conv_impl: str = "xla", rngs: nnx.Rngs):
        for arg, val in (("vocab_size", vocab_size), ("num_classes", num_classes), ("embed_dim", embed_dim),
                         ("filters", filters)):
            if isinstance(val, bool) or not isinstance(val, (int, np.integer)) or val < 1:
                raise ValueError(f"TextCNN: {arg} must be an int >= 1; got {arg}={val!r}.")
        widths = tuple(int(w) for w in widths)
        if not widths or min(widths) < 1:
            raise ValueError(f"TextCNN: widths must be a non-empty sequence of ints >= 1; got widths={widths!r}.")
        if embedding not in EMBEDDINGS:
            raise ValueError(f"TextCNN: embedding={embedding!r} is not known; expected one of "
                             f"{', '.join(repr(e) for e in EMBEDDINGS)}.")
        dropout = check_rate("TextCNN", "dropout", dropout)
        if dropout_scaling not in DROPOUT_SCALINGS:
            raise ValueError(f"TextCNN: dropout_scaling={dropout_scaling!r} is not known; expected one of "
                             f"{', '.join(repr(e) for e in DROPOUT_SCALINGS)}.")
        if classifier_init not in CLASSIFIER_INITS:
            raise ValueError(f"TextCNN: classifier_init={classifier_init!r} is not known; expected one of "
                             f"{', '.join(repr(e) for e in CLASSIFIER_INITS)}.")
        if compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"TextCNN: compute_dtype={compute_dtype!r} is not known; expected one of "
                             f"{', '.join(repr(e) for e in COMPUTE_DTYPES)}.")
        self.conv_impl = check_impl("TextCNN: conv_impl", conv_impl, PARALLEL_IMPLS)
        self.dropout_scaling, self.classifier_init, self.compute_dtype = dropout_scaling, classifier_init, compute_dtype
        dtype = jnp.dtype(compute_dtype)
        self.vocab_size, self.num_classes, self.embed_dim = int(vocab_size), int(num_classes), int(embed_dim)
        self.widths, self.filters, self.embedding_kind = widths, int(filters), embedding

        if pretrained is not None:
            table = np.asarray(pretrained, dtype=np.float32)                          # (V, D)
            if table.shape != (vocab_size, embed_dim):
                raise ValueError(f"TextCNN: pretrained must have shape (vocab_size, embed_dim) = ({vocab_size}, "
                                 f"{embed_dim}); got {table.shape}.")
            table = table.copy()
            table[PAD_ID] = 0.0
            table = jnp.asarray(table)
        else:                                                                         # Kim: uniform[-0.25, 0.25]
            table = jax.random.uniform(rngs.params(), (vocab_size, embed_dim), jnp.float32, -INIT_SCALE, INIT_SCALE)
            table = table.at[PAD_ID].set(0.0)                                         # (V, D), pad row zero
        if embedding in ("rand", "non-static", "multichannel"):
            self.embedding = nnx.Param(table)                                         # (V, D), trained
        if embedding in ("static", "multichannel"):
            self.static_embedding = StaticEmbedding(table)                            # (V, D), frozen
        channels = 2 * embed_dim if embedding == "multichannel" else embed_dim        # C

        init = nnx.initializers.glorot_uniform()  # Kim: uniform filters with a Glorot-style bound; zero biases
        layer_impl = conv_impl if conv_impl in ALGORITHMS else "xla"
        self.convs = nnx.List([Conv1D(channels, filters, w, activation="relu", kernel_init=init, dtype=dtype,
                                      impl=layer_impl, rngs=rngs) for w in widths])   # kernels (w, C, F)
        self.dropout = nnx.Dropout(float(dropout))
        head_init = init if classifier_init == "glorot" else nnx.initializers.zeros_init()
        self.classifier = nnx.Linear(len(widths) * filters, num_classes, kernel_init=head_init, dtype=dtype,
                                     rngs=rngs)                                       # (W*F, K)

    @property
    def min_length(self) -> int:
        """The shortest input length the model accepts: ``max(widths)`` (one full window of the widest filter)."""
        return max(self.widths)

    def ids_in_range(self, tokens: jax.Array) -> jax.Array:
        """tokens int ``(B, L)`` -> the same ids, with each id outside ``[0, vocab_size)`` replaced by ``<unk>``
        (``UNK_ID``, or ``PAD_ID`` when ``vocab_size`` is 1): the rows :meth:`embed` reads."""
        unk = UNK_ID if self.vocab_size > UNK_ID else PAD_ID
        return jnp.where((tokens >= 0) & (tokens < self.vocab_size), tokens, unk)    # (B, L)

    def embed(self, tokens: jax.Array) -> jax.Array:
        """tokens int ``(B, L)`` -> word vectors ``(B, L, C)`` with zeros at pad positions (``C`` = D, or 2D).

        Ids outside ``[0, vocab_size)`` are read as ``<unk>`` (:meth:`ids_in_range`); ``__call__`` and
        :meth:`features` refuse them first when the ids are concrete."""
        mask = (tokens != PAD_ID)[..., None]                                          # (B, L, 1)
        tokens = self.ids_in_range(tokens)                                            # (B, L)
        if self.embedding_kind in ("rand", "non-static"):
            x = jnp.take(self.embedding[...], tokens, axis=0)                         # (B, L, D)
        elif self.embedding_kind == "static":
            x = jnp.take(jax.lax.stop_gradient(self.static_embedding[...]), tokens, axis=0)  # (B, L, D)
        else:
            static = jnp.take(jax.lax.stop_gradient(self.static_embedding[...]), tokens, axis=0)  # (B, L, D)
            trained = jnp.take(self.embedding[...], tokens, axis=0)                   # (B, L, D)
            x = jnp.concatenate([static, trained], axis=-1)                           # (B, L, 2D)
        return jnp.where(mask, x, 0.0)                                                # (B, L, C)

    def features(self, tokens: jax.Array) -> jax.Array:
        """tokens int ``(B, L)`` -> max-over-time features ``(B, W*F)``, width by width (before dropout)."""
        tokens = jnp.asarray(tokens)
        self.check_tokens(tokens)
        return self._pool(self.embed(tokens))                                         # (B, W*F)

    def check_tokens(self, tokens: jax.Array) -> None:
        if tokens.ndim != 2:
            raise ValueError(f"TextCNN: tokens must have shape (batch, length); got shape {tokens.shape}.")
        if not jnp.issubdtype(tokens.dtype, jnp.integer):
            raise TypeError(f"TextCNN: tokens must be integer token ids (batch, length), e.g. int32; got dtype "
                            f"{tokens.dtype} (shape {tokens.shape}). Encode texts with the run's vocabulary "
                            f"(jaxconv.data.Vocab.encode, or Run.encode of jaxconv.load_run).")
        if tokens.shape[1] < self.min_length:
            raise ValueError(
                f"TextCNN: tokens have length {tokens.shape[1]} (shape {tokens.shape}); the widest filter needs "
                f"length >= max(widths) = {self.min_length} (widths={self.widths}). Pad the batch to at least "
                f"{self.min_length} tokens (the data batcher's min_length / bucket lengths do this).")
        if not isinstance(tokens, jax.core.Tracer):   # concrete ids (outside jit): name the first one out of range
            ids = np.asarray(tokens)
            bad = (ids < 0) | (ids >= self.vocab_size)
            if bad.any():
                pos = tuple(int(i) for i in np.argwhere(bad)[0])
                raise ValueError(
                    f"TextCNN: tokens[{pos[0]}, {pos[1]}] = {ids[pos]} is out of range; token ids must be in "
                    f"[0, vocab_size) = [0, {self.vocab_size}) (0 = pad, 1 = <unk>), and {int(bad.sum())} of the "
                    f"{ids.size} ids are not. Map unknown words to 1 (<unk>) when encoding (jaxconv.data.Vocab.encode "
                    f"does), or build the model with the vocabulary's size.")

    def _pool(self, x: jax.Array) -> jax.Array:
        """word vectors ``(B, L, C)`` -> max-over-time features ``(B, W*F)``."""
        maps = apply_parallel(list(self.convs), x, self.conv_impl)                    # W x (B, L-w+1, F)
        pooled = [y.max(axis=1) for y in maps]                                        # W x (B, F)
        return jnp.concatenate(pooled, axis=-1)                                       # (B, W*F)

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True, dropout_key: jax.Array | None = None):
        """tokens int ``(B, L)`` -> logits ``(B, num_classes)``.

        Training passes ``deterministic=False`` and a ``dropout_key`` (the trainer derives one per step with
        ``fold_in(key, step)``, so a resumed run draws the same masks).
        """
        tokens = jnp.asarray(tokens)
        self.check_tokens(tokens)
        return self.logits_from_vectors(self.embed(tokens), deterministic=deterministic, dropout_key=dropout_key)

    def logits_from_vectors(self, x: jax.Array, *, deterministic: bool = True,
                            dropout_key: jax.Array | None = None) -> jax.Array:
        """word vectors ``(B, L, C)`` (as :meth:`embed` gives them) -> logits ``(B, num_classes)``: everything after
        the embedding lookup. The trainer's row-sparse embedding update differentiates w.r.t. ``x`` through this."""
        if not deterministic and dropout_key is None and self.dropout.rate > 0:
            raise ValueError("TextCNN: deterministic=False needs a dropout_key (a jax.random key) for the dropout masks.")
        h = self._pool(x.astype(self.compute_dtype))                                  # (B, W*F)
        if self.dropout_scaling == "inverted":
            h = self.dropout(h, deterministic=deterministic, rngs=dropout_key)        # (B, W*F)
        elif self.dropout.rate > 0:                                                   # "test-time" (Kim)
            keep = 1.0 - self.dropout.rate
            if deterministic:
                h = h * jnp.asarray(keep, h.dtype)                                    # (B, W*F)
            else:
                h = jnp.where(jax.random.bernoulli(dropout_key, keep, h.shape), h, jnp.zeros((), h.dtype))
        return self.classifier(h)                                                     # (B, K)

    def num_params(self, trainable_only: bool = True) -> int:
        """Number of scalars in ``nnx.Param`` s (``trainable_only``) or in all variables."""
        state = nnx.state(self, nnx.Param if trainable_only else nnx.Variable)
        return int(sum(math.prod(x.shape) for x in jax.tree.leaves(state)))


class TextCNNAdapter(DumpAdapter):
    """The dump adapter of :class:`TextCNN`: every conv reads the embedding; the classifier's kernel ``(W*F, K)``
    holds the pooled features of ``convs/i`` in rows ``i*F .. (i+1)*F``."""

    def embedded_layers(self, model: nnx.Module) -> list[str]:
        return [f"convs/{i}" for i in range(len(model.convs))]

    def class_weights(self, model: nnx.Module, layer: str) -> np.ndarray:
        i = int(layer.split("/")[1])
        f = model.filters
        return np.asarray(model.classifier.kernel[...], np.float32)[i * f:(i + 1) * f]  # (F, K)


def _frozen_without_vectors(config) -> list[str]:
    m = config.model
    if m.embedding in FROZEN_EMBEDDINGS and not m.vectors:
        return [f"config.model.embedding={m.embedding!r} keeps the word vectors frozen, but config.model.vectors is "
                f"empty, so they would stay random and never train: set config.model.vectors to a word2vec/GloVe "
                f"text file, or use config.model.embedding='rand' (random vectors that train)"]
    return []


register(ModelKind(
    name="text_cnn",
    cls=TextCNN,
    fields=("embed_dim", "widths", "filters", "dropout", "embedding", "dropout_scaling", "classifier_init",
            "compute_dtype", "conv_impl"),
    task="classify",
    input_length=lambda m: (max(m.widths), None),          # one full window of the widest filter; any length above
    rules=(
        ("model.embed_dim", int_min(1), "the word vector size"),
        ("model.widths", ints_min(1), "filter widths"),
        ("model.filters", int_min(1), "feature maps per width"),
        ("model.dropout", real(0.0, 1.0), "the dropout rate on the pooled features"),
        ("model.conv_impl", one_of(PARALLEL_IMPLS), "how the convolutions are computed"),
    ),
    check=_frozen_without_vectors,
    adapter=TextCNNAdapter(),
    # The row-sparse Adadelta trains the `embedding` Param; "static" has none, "multichannel" keeps the dense path.
    sparse_embedding=lambda m: m.embedding in ("rand", "non-static"),
    default_config=default_config,
))
