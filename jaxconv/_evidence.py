"""Why the model predicted that: the exact per-filter terms of a prediction, :func:`evidence` / ``run.evidence``::

    ev = run.evidence("m00b m00a m00c w0001 w0002")
    ev.label, ev.probabilities                     # 'class1', {'class0': 0.003, 'class1': 0.997}
    ev.contributions.sum(0) + ev.bias              # == ev.logits, to float32 rounding
    supporting, opposing = ev.top(3)               # the filters for and against the predicted class
    print(ev)                                      # the same as a short table

For a model whose filters are max-pooled over time and read by a linear output layer (Kim's CNN, or an imported
model of that shape; :mod:`jaxconv._readout`), every logit is a sum over filters, with no approximation::

    logit_c = sum_j contributions[j, c] + bias[c],   contributions[j, c] = scale * W[j, c] * pooled_j

and each ``pooled_j`` is the filter's value on one window of words, its n-gram. Softmax reads only the differences
between logits, so :meth:`Evidence.top` and :meth:`Evidence.word_scores` rank filters by their *margin* for a class
``c``: ``contributions[j, c]`` minus the mean of ``contributions[j, k]`` over the other classes ``k``. The margins
and :meth:`Evidence.margin_bias` sum exactly to ``logit_c`` minus the mean of the other logits; with two classes
that is the log-odds of ``c``, and a filter's margin is how far it moves them.

The forward pass is one ``jax.jit`` function over ``nnx.split``'s graph and state (one compile per graph, layers and
padded length), at full float32 precision on every backend (``jax.default_matmul_precision("highest")``, as
:func:`jaxconv.predict.predict`): ``model(tokens)`` at a GPU's default TF32 precision differs from ``logits`` by
about 1e-3. Windows are the conv's receptive spans (:func:`jaxconv.receptive_spans`) cut to the text's words: a
max that falls on padding alone has no words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from jaxconv._args import check_count, check_index, check_texts, shown
from jaxconv._readout import Readout, readout
from jaxconv.data.tokenize import detokenize
from jaxconv.predict import PRECISION

__all__ = ["evidence", "Evidence", "FilterEvidence", "NgramWindow", "TopFilters", "readout", "Readout"]


@dataclasses.dataclass(frozen=True)
class NgramWindow:
    """The words behind a filter's max: ``words`` (a tuple of str; empty when the max fell on padding alone),
    ``span`` ``(start, end)`` the token positions they occupy in the row of ``tokens``, ``position`` the map position
    of the max, and ``text`` the words joined as the tokenizer joins them."""

    words: tuple[str, ...]
    span: tuple[int, int]
    position: int
    text: str


@dataclasses.dataclass(frozen=True)
class FilterEvidence:
    """One filter's term in a prediction: ``layer``, ``filter``, its ``pooled`` value (max over positions), its
    ``contribution`` to the class asked for (the margin, see the module docstring; ``logit`` is its plain
    contribution to that class's logit) and the ``window`` of words behind its max."""

    layer: str
    filter: int
    pooled: float
    contribution: float
    logit: float
    window: NgramWindow

    @property
    def text(self) -> str:
        return self.window.text


class TopFilters(NamedTuple):
    """The filters that raise a class's margin most (``supporting``, largest first) and lower it most (``opposing``,
    most negative first)."""

    supporting: list[FilterEvidence]
    opposing: list[FilterEvidence]


@dataclasses.dataclass(frozen=True, eq=False)
class Evidence:
    """The exact decomposition of one prediction (module docstring). ``N`` filters, ``K`` classes, ``L`` tokens.

    Attributes:
      text: the text (None when built from token ids); words: the row's words (padding excluded), ``words[i]`` at
        token position ``start + i``; tokens: int32 ``(L,)``, the ids the model read; tokenizer: its name.
      class_names: ``K`` names (``"0"``, ``"1"``, ... when the run has none).
      logits: ``(K,)`` float32, the model's own (``model(tokens)``); bias: ``(K,)`` the read-out's bias.
      contributions: ``(N, K)`` float32, ``scale * W[j, c] * pooled_j``; ``contributions.sum(0) + bias == logits``.
      pooled: ``(N,)`` float32, each filter's max over positions; scale: the dropout scale (1, or Kim's
        test-time ``1 - rate``).
      filters: ``N`` ``(layer, filter)`` pairs; ngrams: ``N`` :class:`NgramWindow` s, the window behind each max.
      prediction: the argmax of ``logits``.
    """

    text: str | None
    words: list[str]
    start: int
    tokens: Int[np.ndarray, " L"]
    tokenizer: str
    class_names: list[str]
    logits: Float[np.ndarray, " K"]
    bias: Float[np.ndarray, " K"]
    contributions: Float[np.ndarray, "N K"]
    pooled: Float[np.ndarray, " N"]
    scale: float
    filters: list[tuple[str, int]]
    ngrams: list[NgramWindow]

    @property
    def prediction(self) -> int:
        return int(np.argmax(self.logits))

    @property
    def label(self) -> str:
        """The predicted class's name."""
        return self.class_names[self.prediction]

    @property
    def probabilities(self) -> dict[str, float]:
        """``{class name: softmax(logits)}``."""
        p = np.exp(self.logits - self.logits.max())
        return {n: float(v) for n, v in zip(self.class_names, p / p.sum())}

    def _class(self, for_class: int | str | None) -> int:
        if for_class is None:
            return self.prediction
        if isinstance(for_class, str) and for_class in self.class_names:
            return self.class_names.index(for_class)
        if isinstance(for_class, str):
            raise ValueError(f"Evidence: for_class={shown(for_class)} is not a class; expected one of "
                             f"{self.class_names} or an index.")
        return check_index("Evidence", "for_class", for_class, len(self.class_names),
                           what=f"the classes {self.class_names}")

    def margins(self, for_class: int | str | None = None) -> Float[np.ndarray, " N"]:
        """``(N,)``: each filter's contribution to class ``c`` (default: the predicted one) minus its mean
        contribution to the other classes; with :meth:`margin_bias` they sum to ``logit_c`` minus the mean of the
        other logits."""
        c = self._class(for_class)
        C = self.contributions
        if C.shape[1] == 1:
            return C[:, 0].copy()
        return C[:, c] - (C.sum(1) - C[:, c]) / (C.shape[1] - 1)

    def margin_bias(self, for_class: int | str | None = None) -> float:
        """The bias's share of the margin: ``bias[c]`` minus the mean of the other classes' biases."""
        c = self._class(for_class)
        b = self.bias
        return float(b[c] - (b.sum() - b[c]) / max(len(b) - 1, 1)) if len(b) > 1 else float(b[0])

    def filter(self, j: int, for_class: int | str | None = None) -> FilterEvidence:
        """Row ``j``'s term (:attr:`filters` order) for class ``for_class`` (default: the predicted one); ``j`` is an
        int in ``[0, len(filters))``."""
        j = check_index("Evidence.filter", "j", j, len(self.filters))
        c = self._class(for_class)
        layer, f = self.filters[j]
        return FilterEvidence(layer, f, float(self.pooled[j]), float(self.margins(c)[j]),
                              float(self.contributions[j, c]), self.ngrams[j])

    def top(self, k: int = 5, for_class: int | str | None = None) -> TopFilters:
        """The ``k`` filters with the largest positive margins for the class (default: the predicted one), and the
        ``k`` with the most negative; filters with a zero margin are in neither. ``k`` is an int >= 1."""
        k = check_count("Evidence.top", "k", k)
        c = self._class(for_class)
        m = self.margins(c)
        order = np.argsort(-m, kind="stable")
        pos = [self.filter(int(j), c) for j in order[:k] if m[j] > 0]
        neg = [self.filter(int(j), c) for j in order[::-1][:k] if m[j] < 0]
        return TopFilters(pos, neg)

    def word_scores(self, for_class: int | str | None = None) -> Float[np.ndarray, " words"]:
        """``(len(words),)``: per word, the sum of the margins (for the class; default the predicted one) of the
        filters whose max window covers it."""
        m = self.margins(for_class)
        out = np.zeros(len(self.words), np.float64)
        for j, w in enumerate(self.ngrams):
            lo, hi = w.span[0] - self.start, w.span[1] - self.start
            out[max(lo, 0):max(hi, 0)] += m[j]
        return out

    def table(self, k: int = 5) -> str:
        """The prediction, its probabilities and the top ``k`` filters for and against it, as plain text."""
        k = check_count("Evidence.table", "k", k)
        c = self.prediction
        probs = "  ".join(f"{n} {p:.3f}" for n, p in self.probabilities.items())
        margin = float(self.margins(c).sum() + self.margin_bias(c))
        versus = "the other logit" if len(self.class_names) == 2 else "the mean of the other logits"
        lines = [f"prediction: {self.label}    ({probs})",
                 f"logit {self.label} - {versus} = {margin:.3f} = bias {self.margin_bias(c):+.3f} + "
                 f"{len(self.filters)} filters"]
        top = self.top(k)
        width = max([len(f"{t.layer} f{t.filter}") for t in top.supporting + top.opposing] + [6])
        for title, rows in ((f"for {self.label}", top.supporting), (f"against {self.label}", top.opposing)):
            lines.append(f"  {title}:" + ("" if rows else " (none)"))
            lines += [f"    {t.contribution:+8.3f}  {f'{t.layer} f{t.filter}':<{width}}  pooled {t.pooled:7.3f}  "
                      f"{t.text or '(padding)'!s}" for t in rows]
        return "\n".join(lines)

    def __str__(self) -> str:
        head = repr(self.text) if self.text is not None else detokenize(self.tokenizer, self.words)
        return f"{head}\n{self.table()}"

    def __repr__(self) -> str:
        logits = ", ".join(f"{v:.3f}" for v in self.logits)
        return f"Evidence({self.label!r}, logits [{logits}], {len(self.filters)} filters, text {self.text!r})"


# ------------------------------------------------------------------------------------------------ compute


def _pooled(graphdef, layers: tuple[str, ...], state, tokens: Int[Array, "B L"]):
    """logits ``(B, K)``, pooled ``(B, N)`` and argmax ``(B, N)`` of ``layers``' maps, filters in read-out order."""
    from jaxconv.inspection import feature_maps

    model = nnx.merge(graphdef, state)
    maps = feature_maps(model, tokens, layers=list(layers))                            # {layer: (B, P, F)}
    logits = model(tokens).astype(jnp.float32)                                         # (B, K)
    pooled = jnp.concatenate([maps[la].max(axis=1) for la in layers], -1).astype(jnp.float32)
    argmax = jnp.concatenate([maps[la].argmax(axis=1) for la in layers], -1).astype(jnp.int32)
    return logits, pooled, argmax


_forward = jax.jit(_pooled, static_argnums=(0, 1))
_SPANS: dict = {}


def _spans(model, graphdef, layer: str, length: int) -> np.ndarray:
    """``(P, 2)`` the token range each map position of ``layer`` sees, cached per (graph, layer, length)."""
    from jaxconv.inspection import receptive_spans

    key = (graphdef, layer, int(length))
    if key not in _SPANS:
        if len(_SPANS) > 256:
            _SPANS.clear()
        _SPANS[key] = np.asarray(receptive_spans(model, layer, int(length)))
    return _SPANS[key]


def evidence_rows(model: nnx.Module, tokens: Int[np.ndarray, "B L"], starts: Sequence[int],
                  words: Sequence[Sequence[str]], *, class_names: Sequence[str] | None = None,
                  tokenizer: str = "whitespace", texts: Sequence[str | None] | None = None,
                  batch_size: int = 32) -> list[Evidence]:
    """One :class:`Evidence` per row of ``tokens`` ``(B, L)``: row ``i``'s words ``words[i]`` sit at token positions
    ``starts[i]`` onwards. Rows run in chunks of ``batch_size`` (the last one padded with all-padding rows).

    Raises:
      ValueError: the model is not of the shape evidence needs (one line saying why).
    """
    r = readout(model)
    tokens = np.asarray(tokens, np.int32)
    if tokens.ndim != 2:
        raise ValueError(f"tokens has shape {tokens.shape}; expected token ids (batch, length).")
    B, L = tokens.shape
    names = list(class_names) if class_names else [str(i) for i in range(r.kernel.shape[1])]
    graphdef, state = nnx.split(model)
    spans = {la: _spans(model, graphdef, la, L) for la in r.layers}
    weights = r.kernel * np.float32(r.scale)                                           # (N, K)
    offsets = np.cumsum((0,) + r.sizes)
    out = []
    for lo in range(0, B, batch_size):
        chunk = tokens[lo:lo + batch_size]
        if len(chunk) < batch_size:
            chunk = np.concatenate([chunk, np.zeros((batch_size - len(chunk), L), np.int32)])
        with jax.default_matmul_precision(PRECISION):                                  # as predict: full float32
            logits, pooled, argmax = (np.asarray(a) for a in _forward(graphdef, r.layers, state, jnp.asarray(chunk)))
        for b in range(min(batch_size, B - lo)):
            i = lo + b
            first, row_words = int(starts[i]), list(words[i])
            windows = []
            for li, la in enumerate(r.layers):
                for j in range(offsets[li], offsets[li + 1]):
                    pos = int(argmax[b, j])
                    s, e = (int(x) for x in spans[la][pos])
                    a, z = max(s, first), min(e, first + len(row_words))
                    span = (a, z) if z > a else (a, a)
                    chosen = tuple(row_words[span[0] - first:span[1] - first])
                    windows.append(NgramWindow(chosen, span, pos, detokenize(tokenizer, chosen)))
            out.append(Evidence(
                text=texts[i] if texts is not None else None, words=row_words, start=first, tokens=tokens[i],
                tokenizer=tokenizer, class_names=names, logits=logits[b], bias=r.bias.copy(),
                contributions=pooled[b][:, None] * weights, pooled=pooled[b], scale=float(r.scale),
                filters=r.filters, ngrams=windows))
    return out


def evidence(run_or_model, texts_or_tokens, *, words: Sequence[Sequence[str]] | None = None,
             starts: Sequence[int] | None = None, class_names: Sequence[str] | None = None,
             batch_size: int = 32) -> Evidence | list[Evidence]:
    """Why the model predicted what it did, exactly (module docstring).

    Args:
      run_or_model: a :class:`jaxconv.Run` (texts are encoded as in training and padded as
        :meth:`jaxconv.Run.predict` pads them: :func:`jaxconv.predict.padded_length`), or a model (``nnx.Module``)
        with token ids.
      texts_or_tokens: with a run, one text (-> one :class:`Evidence`) or a sequence of texts (-> a list); with a
        model, int token ids ``(B, L)`` (-> a list).
      words, starts: with a model, each row's words and the token position of the first (default: every token id as
        a word, from position 0); class_names: with a model, the ``K`` class names.
      batch_size: rows per forward pass.

    Raises:
      ValueError: the model is not of the shape evidence needs (the message says why), a language model's run, or
        a text that is not a str.
    """
    from jaxconv.predict import batches, check_classifier, class_names as names_of
    from jaxconv.runs import Run

    batch_size = check_count("jaxconv.evidence", "batch_size", batch_size)
    if isinstance(run_or_model, Run):
        run = run_or_model
        check_classifier(run, "evidence")
        readout(run.model)                                                              # the shape error first
        single = isinstance(texts_or_tokens, str)
        texts = check_texts("jaxconv.evidence", "texts_or_tokens", texts_or_tokens)
        out: list = [None] * len(texts)
        for rows, length in batches(run, texts, batch_size):
            chunk = [texts[i] for i in rows]
            tokens, first, _, kept = run.encode_rows(chunk, length=length)
            evs = evidence_rows(run.model, tokens, first, kept, class_names=names_of(run), tokenizer=run.tokenizer,
                                texts=chunk, batch_size=batch_size)
            for i, ev in zip(rows, evs):
                out[i] = ev
        return out[0] if single else out
    if not isinstance(run_or_model, nnx.Module):
        raise ValueError(f"run_or_model is a {type(run_or_model).__name__}; expected a jaxconv.Run or an nnx.Module.")
    tokens = np.asarray(texts_or_tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"texts_or_tokens has shape {tokens.shape} and dtype {tokens.dtype}; with a model, expected "
                         f"int token ids (batch, length) (a jaxconv.Run encodes texts).")
    if words is None:
        words, starts = [[str(int(t)) for t in row] for row in tokens], [0] * len(tokens)
    return evidence_rows(run_or_model, tokens, starts if starts is not None else [0] * len(tokens), words,
                         class_names=class_names, batch_size=batch_size)
