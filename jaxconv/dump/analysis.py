"""What a filter detects, from its dumped activations (NumPy only; :class:`jaxconv.dump.Dump` wraps these).

After Jacovi, Sar Shalom and Goldberg (2018), "Understanding Convolutional Neural Networks for Text
Classification" (BlackboxNLP; the authors' code: github.com/alonjacovi/interpreting-cnn-for-text):

- :func:`slot_scores`: each kernel position's ("slot's") dot product with every word's embedding; the words with
  the largest are the words that slot looks for.
- :func:`purity_threshold`: the max-pooled value above which a filter's n-grams carry class information.
- :func:`class_association`: how strongly a filter's pooled value separates one class from the rest.
- :func:`slot_contributions` and :func:`firing_slots`: each slot's share of a window's activation (kernel row dot
  the word's vector), and which slots carry it: the n-grams of a filter grouped by the slots that fire (their
  Section 5, "slot activation patterns").

>>> values = np.array([9., 8., 7., 6., 5., 4.]); predicted = np.array([1, 1, 1, 0, 1, 0])
>>> t = purity_threshold(values, predicted, identity_class=1, minimum_purity=0.75)
>>> t.value, t.passing, t.purity, t.coverage
(4.0, 5, 0.8, 0.8333333333333334)
>>> purity_threshold(values, np.zeros(6, int), identity_class=1).found   # no cut reaches 75%: no threshold
False
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from jaxtyping import Float, Int

__all__ = ["Threshold", "purity_threshold", "identity_class", "ClassAssociation", "class_association", "slot_scores",
           "token_scores", "slot_contributions", "firing_slots", "MINIMUM_PURITY", "FIRING_SHARE"]

#: The default purity a threshold must reach. The authors' released interpretation config uses 0.5, which on a
#: balanced two-class task passes every example of any filter (half the predictions are its class anyway); 0.75
#: asks for half the way from chance to pure.
MINIMUM_PURITY = 0.75

#: A slot fires in a window when its contribution is positive and at least this share of the window's largest.
FIRING_SHARE = 0.5


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A filter's purity threshold.

    Attributes:
      value: the pooled value above which (strictly) the filter's n-grams are pure enough; None when no cut
        reaches the purity (then there is no threshold and no n-gram passes; ``found`` is False).
      identity_class: the class the filter is read as detecting.
      purity: the fraction of the passing examples predicted as ``identity_class`` (0 when none pass).
      passing: how many examples have a pooled value above ``value``; coverage: ``passing / count``.
      count: examples considered; minimum_purity: the purity asked for.
    """

    value: float | None
    identity_class: int
    purity: float
    passing: int
    count: int
    minimum_purity: float

    @property
    def coverage(self) -> float:
        return self.passing / self.count if self.count else 0.0

    @property
    def found(self) -> bool:
        """Whether some cut reaches ``minimum_purity`` (else ``value`` is None)."""
        return self.value is not None

    def describe(self) -> str:
        """One line: ``"threshold 0.374: 84 of 200 examples (42%) above it, 75% pure"``, or
        ``"no threshold reaches 75% purity"``."""
        if not self.found:
            return f"no threshold reaches {self.minimum_purity:.0%} purity"
        return (f"threshold {self.value:.3f}: {self.passing} of {self.count} examples ({self.coverage:.0%}) above it, "
                f"{self.purity:.0%} pure")


def purity_threshold(values: Float[np.ndarray, " examples"], predicted: Int[np.ndarray, " examples"], *,
                     identity_class: int, minimum_purity: float = MINIMUM_PURITY) -> Threshold:
    """The lowest max-pooled value above which a filter's n-grams are at least ``minimum_purity`` pure.

    The rule is the "purity" heuristic of Jacovi et al. (2018), as in their ``calculate_threshold``: take each
    example's max-pooled n-gram for the filter, labelled with the model's prediction for that example; sort by
    pooled value, descending; the threshold is the lowest cut such that, of the examples above it, at least
    ``minimum_purity`` are predicted as the filter's ``identity_class``. n-grams above the threshold are the
    filter's informative ("deliberate") ones; those below it are ignored by the classifier in effect.

    Two details differ from the authors' code, both documented here: a cut is only placed between two different
    values (tied values, such as the zeros a ReLU leaves, pass or fail together), and the cut may keep every
    example. The values are the dump's pooled activations (bias and activation included) where the authors sort
    by the summed slot activations (without them); the order is the same except among values the ReLU zeroes.

    Args:
      values: ``(N,)`` the filter's pooled value per example.
      predicted: ``(N,)`` the model's predicted class per example.
      identity_class: the filter's class (:func:`identity_class`).
      minimum_purity: in ``(0, 1]``.

    Returns:
      :class:`Threshold`; when no cut reaches ``minimum_purity``, one with ``value=None`` (``found`` False),
      ``passing=0`` and ``purity=0``.
    """
    if not 0.0 < float(minimum_purity) <= 1.0:
        raise ValueError(f"minimum_purity={minimum_purity!r} must be in (0, 1].")
    values, predicted = np.asarray(values, np.float64), np.asarray(predicted)
    n = len(values)
    if n == 0:
        raise ValueError("purity_threshold: no examples (values has length 0).")
    order = np.argsort(-values, kind="stable")
    v = values[order]                                                                    # (N,) descending
    hits = np.cumsum(predicted[order] == identity_class)                                 # (N,)
    purity = hits / np.arange(1, n + 1)                                                  # (N,) of the top t
    cut_ok = np.append(v[:-1] > v[1:], True)                                             # a cut after t is real
    ok = np.flatnonzero((purity >= minimum_purity - 1e-12) & cut_ok)
    if ok.size == 0:
        return Threshold(None, int(identity_class), 0.0, 0, n, float(minimum_purity))
    t = int(ok[-1]) + 1                                                                  # examples kept
    value = float(v[t]) if t < n else float(np.nextafter(v[-1], -np.inf))
    return Threshold(value, int(identity_class), float(purity[t - 1]), t, n, float(minimum_purity))


def identity_class(weights: Float[np.ndarray, " classes"] | None, values: Float[np.ndarray, " examples"],
                   predicted: Int[np.ndarray, " examples"], num_classes: int) -> int:
    """The class a filter is read as detecting: the class whose logit its pooled value raises most (``weights``
    ``(K,)``, its row of the classifier, as Jacovi et al.); without weights, the class whose predicted examples
    have the highest mean pooled value."""
    if weights is not None:
        return int(np.argmax(weights))
    means = [values[predicted == c].mean() if np.any(predicted == c) else -np.inf for c in range(num_classes)]
    return int(np.argmax(means))


class ClassAssociation(NamedTuple):
    """Per filter, the class its pooled value separates best (``classes`` ``(F,)`` int) and how well (``effect``
    ``(F,)``, the standardized mean difference). A named tuple: ``classes, effect = ...`` still unpacks."""

    classes: Int[np.ndarray, " filters"]
    effect: Float[np.ndarray, " filters"]


def class_association(pooled: Float[np.ndarray, " examples filters"], classes: Int[np.ndarray, " examples"],
                      num_classes: int) -> ClassAssociation:
    """Per filter, the class it separates best and how well: the standardized mean difference
    ``(mean of pooled over class c - mean over the other classes) / std over all``, maximised over ``c``.

    Returns:
      :class:`ClassAssociation` ``(classes (F,), effect (F,))``; a filter that never varies gets effect 0.
    """
    pooled = np.asarray(pooled, np.float64)                                              # (N, F)
    classes = np.asarray(classes)
    std = pooled.std(axis=0)                                                             # (F,)
    effects = np.full((num_classes, pooled.shape[1]), -np.inf)                           # (K, F)
    for c in range(num_classes):
        inside = classes == c
        if inside.any() and (~inside).any():
            effects[c] = (pooled[inside].mean(axis=0) - pooled[~inside].mean(axis=0)) / np.where(std > 0, std, 1)
    best = effects.argmax(axis=0)                                                        # (F,)
    effect = effects[best, np.arange(pooled.shape[1])]
    return ClassAssociation(best.astype(np.int64), np.where(np.isfinite(effect), effect, 0.0))


def slot_scores(kernel: Float[np.ndarray, " width channels"],
                embedding: Float[np.ndarray, " vocab channels"]) -> Float[np.ndarray, " width vocab"]:
    """Each slot's (kernel row's) dot product with every word vector: ``(width, vocab)`` =
    ``kernel (width, C) @ embedding (V, C)^T``. Row ``j``'s largest entries are slot ``j``'s words."""
    kernel, embedding = np.asarray(kernel, np.float32), np.asarray(embedding, np.float32)
    if kernel.shape[1] != embedding.shape[1]:
        raise ValueError(f"slot_scores: the kernel has {kernel.shape[1]} input channels but the embedding "
                         f"{embedding.shape[1]}; slot words need a conv that reads the embedding directly.")
    return kernel @ embedding.T                                                          # (W, V)


def token_scores(fmap: Float[np.ndarray, " positions"], spans: Int[np.ndarray, "positions 2"], first: int,
                 count: int) -> Float[np.ndarray, " tokens"]:
    """Per token, the strongest activation of any map position whose span covers it: ``(count,)`` for the tokens
    at positions ``first .. first + count`` (0 for a token no position sees).

    >>> token_scores(np.array([1., 3., 2.]), np.array([[0, 2], [1, 3], [2, 4]]), 1, 3)
    array([3., 3., 2.])
    """
    pos = np.arange(first, first + count)                                                # (T,)
    cover = (spans[:, :1] <= pos[None]) & (pos[None] < spans[:, 1:])                     # (P, T)
    scores = np.where(cover, np.asarray(fmap, np.float64)[:, None], -np.inf).max(axis=0)  # (T,)
    return np.where(np.isfinite(scores), scores, 0.0)


def slot_contributions(kernel: Float[np.ndarray, " width channels"], embedding: Float[np.ndarray, " vocab channels"],
                       tokens: Int[np.ndarray, "windows length"], positions: Int[np.ndarray, " windows"], *,
                       stride: int = 1, padding: int = 0, dilation: int = 1) -> Float[np.ndarray, "windows width"]:
    """Each slot's contribution to a window's activation: ``kernel[j] . embedding[token read by slot j]``, the
    terms that sum, with the bias, to the filter's value before its nonlinearity (Jacovi et al.'s "slot
    activations"). For a conv that reads the word vectors directly.

    Args:
      kernel: ``(W, C)`` the filter's kernel; embedding: ``(V, C)``.
      tokens: ``(n, L)`` each window's row of token ids; positions: ``(n,)`` each window's map position.
      stride, padding, dilation: the conv's (``padding`` its ``lo`` side); slot ``j`` of map position ``p`` reads
        token ``p * stride - padding + j * dilation``; one outside the row reads the conv's zero padding (0).

    Returns:
      ``(n, W)``.

    >>> slot_contributions(np.array([[1., 0.], [0., 2.]]), np.array([[0., 0.], [1., 1.], [3., 1.]]),
    ...                    np.array([[1, 2, 0]]), np.array([0]))
    array([[1., 2.]], dtype=float32)
    """
    kernel, embedding = np.asarray(kernel, np.float32), np.asarray(embedding, np.float32)
    tokens, positions = np.asarray(tokens), np.asarray(positions)
    W, L = kernel.shape[0], tokens.shape[1]
    idx = positions[:, None] * int(stride) - int(padding) + np.arange(W)[None] * int(dilation)   # (n, W)
    inside = (idx >= 0) & (idx < L)
    ids = np.take_along_axis(tokens, np.clip(idx, 0, L - 1), axis=1)                     # (n, W)
    vectors = embedding[ids]                                                             # (n, W, C)
    return np.where(inside, np.einsum("nwc,wc->nw", vectors, kernel), 0.0).astype(np.float32)


def firing_slots(contributions: Float[np.ndarray, " width"], share: float = FIRING_SHARE) -> tuple[int, ...]:
    """The slots that fire in a window: those whose contribution is positive and at least ``share`` of the
    window's largest; ``()`` when no slot contributes positively.

    >>> firing_slots(np.array([0.2, 1.5, 0.9]))
    (1, 2)
    """
    c = np.asarray(contributions, np.float64)
    top = float(c.max()) if c.size else 0.0
    if top <= 0:
        return ()
    return tuple(int(j) for j in np.flatnonzero((c > 0) & (c >= share * top)))
