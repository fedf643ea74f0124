"""What a filter detects, from its dumped activations (NumPy only; :class:`jaxconv.dump.Dump` wraps these).

After Jacovi, Sar Shalom and Goldberg (2018), "Understanding Convolutional Neural Networks for Text
Classification" (BlackboxNLP; the authors' code: github.com/alonjacovi/interpreting-cnn-for-text):

- :func:`slot_scores`: each kernel position's ("slot's") dot product with every word's embedding; the words with
  the largest are the words that slot looks for.
- :func:`purity_threshold`: the max-pooled value above which a filter's n-grams carry class information.
- :func:`class_association`: how strongly a filter's pooled value separates one class from the rest.

>>> values = np.array([9., 8., 7., 6., 5., 4.]); predicted = np.array([1, 1, 1, 0, 1, 0])
>>> t = purity_threshold(values, predicted, identity_class=1, minimum_purity=0.75)
>>> t.value, t.passing, t.purity, t.coverage
(4.0, 5, 0.8, 0.8333333333333334)
"""

from __future__ import annotations

import dataclasses

import numpy as np
from jaxtyping import Float, Int

__all__ = ["Threshold", "purity_threshold", "identity_class", "class_association", "slot_scores", "token_scores",
           "MINIMUM_PURITY"]

#: The default purity a threshold must reach. The authors' released interpretation config uses 0.5, which on a
#: balanced two-class task passes every example of any filter (half the predictions are its class anyway); 0.75
#: asks for half the way from chance to pure.
MINIMUM_PURITY = 0.75


@dataclasses.dataclass(frozen=True)
class Threshold:
    """A filter's purity threshold.

    Attributes:
      value: the pooled value above which (strictly) the filter's n-grams are pure enough; the largest pooled
        value when no cut reaches the purity (then no n-gram passes).
      identity_class: the class the filter is read as detecting.
      purity: the fraction of the passing examples predicted as ``identity_class`` (0 when none pass).
      passing: how many examples have a pooled value above ``value``; coverage: ``passing / count``.
      count: examples considered; minimum_purity: the purity asked for.
    """

    value: float
    identity_class: int
    purity: float
    passing: int
    count: int
    minimum_purity: float

    @property
    def coverage(self) -> float:
        return self.passing / self.count if self.count else 0.0


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
      :class:`Threshold`.
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
        return Threshold(float(v[0]), int(identity_class), 0.0, 0, n, float(minimum_purity))
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


def class_association(pooled: Float[np.ndarray, " examples filters"], classes: Int[np.ndarray, " examples"],
                      num_classes: int) -> tuple[Int[np.ndarray, " filters"], Float[np.ndarray, " filters"]]:
    """Per filter, the class it separates best and how well: the standardized mean difference
    ``(mean of pooled over class c - mean over the other classes) / std over all``, maximised over ``c``.

    Returns:
      ``(best_class (F,), effect (F,))``; a filter that never varies gets effect 0.
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
    return best.astype(np.int64), np.where(np.isfinite(effect), effect, 0.0)


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
