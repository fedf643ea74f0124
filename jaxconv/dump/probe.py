"""Which filters carry a property of the examples: a regularised linear probe on the pooled activations
(:func:`rank_filters`): ``rank_filters(d)`` ranks the filters that best predict the gold class; with a yes/no
property per example ("contains this motif"), the filters that detect it.

The probe is the linear correlation analysis that NeuroX (Dalvi et al. 2019) runs on neurons, here on filters:
standardise every filter's max-pooled value over the dump's examples, fit a logistic regression (softmax for more
than two values) with an elastic-net penalty ``alpha * (l1_ratio * |w|_1 + (1 - l1_ratio) / 2 * |w|_2^2)`` by
proximal gradient descent, and rank the filters by their weight: for a yes/no property, by the weight towards
"yes"; for more values, by the largest weight magnitude over them. The L1 part leaves most weights at zero, so the
filters that remain are the ones the property needs.

>>> d = jaxconv.load_dump("runs/demo", "test")                                 # doctest: +SKIP
>>> jaxconv.rank_filters(d)[:3]                  # doctest: +SKIP
>>> has_motif = ["m00b m00a m00c" in " ".join(d.words(i)) for i in range(d.num_examples)]   # doctest: +SKIP
>>> jaxconv.rank_filters(d, has_motif)[0]        # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from jaxconv._args import check_count

__all__ = ["FilterRank", "rank_filters", "fit_probe"]


@dataclasses.dataclass(frozen=True)
class FilterRank:
    """A filter's place in the probe: ``rank`` (0 = first), ``layer``, ``filter``, ``weight`` (towards "yes" for a
    yes/no property, else the largest magnitude over the values) and ``weights`` (one per value of the property)."""

    rank: int
    layer: str
    filter: int
    weight: float
    weights: tuple[float, ...]


def _labels(dump, labels: Any) -> np.ndarray:
    n = dump.num_examples
    if labels is None or (isinstance(labels, str) and labels == "class"):
        if dump.labels is None:
            raise ValueError("rank_filters: labels=None probes the gold class, but this dump has no labels; pass "
                             "labels= (one per example) or labels='predictions'.")
        return np.asarray(dump.labels)
    if isinstance(labels, str) and labels == "predictions":
        return np.asarray(dump.predictions)
    if isinstance(labels, (str, os.PathLike)):
        from jaxconv.paths import as_path

        path = as_path(labels)
        if not path.is_file():
            raise FileNotFoundError(f"rank_filters: labels file {path}: no such file.")
        values = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    else:
        values = list(labels)
    if len(values) != n:
        raise ValueError(f"rank_filters: {len(values)} labels for {n} examples; expected one per example of the "
                         f"dump, in its order.")
    return np.asarray(values)


def fit_probe(x: np.ndarray, y: np.ndarray, *, alpha: float = 0.01, l1_ratio: float = 0.5,
              iterations: int = 500) -> np.ndarray:
    """Elastic-net logistic (``C = 2``) or softmax regression on standardised ``x`` ``(N, F)`` with class ids
    ``y`` ``(N,)`` in ``[0, C)``; returns the weights ``(F, C)`` (for ``C = 2``, column 1 is the "yes" weight and
    column 0 its negative). Proximal gradient descent with step ``1 / L``, ``L`` the smoothness bound."""
    n, f = x.shape
    c = int(y.max()) + 1
    binary = c == 2
    k = 1 if binary else c
    onehot = (y[:, None] == np.arange(c)[None]).astype(np.float64)                   # (N, C)
    w, b = np.zeros((f, k)), np.zeros(k)
    lipschitz = (0.25 if binary else 0.5) * np.linalg.norm(x, 2) ** 2 / n + alpha * (1 - l1_ratio)
    step = 1.0 / max(lipschitz, 1e-12)
    for _ in range(int(iterations)):
        z = x @ w + b                                                                 # (N, K)
        if binary:
            p = 1.0 / (1.0 + np.exp(-z))
            err = p - onehot[:, 1:]
        else:
            p = np.exp(z - z.max(1, keepdims=True))
            err = p / p.sum(1, keepdims=True) - onehot
        grad = x.T @ err / n + alpha * (1 - l1_ratio) * w
        w = w - step * grad
        w = np.sign(w) * np.maximum(np.abs(w) - step * alpha * l1_ratio, 0.0)        # the L1 part's proximal step
        b = b - step * err.mean(0)
    return np.concatenate([-w, w], axis=1) if binary else w


def rank_filters(dump, labels: Any = None, *, layers: str | Sequence[str] | None = None, alpha: float = 0.01,
                 l1_ratio: float = 0.5, iterations: int = 500) -> list[FilterRank]:
    """Rank the dump's filters by how well their pooled values predict a property of the examples.

    Args:
      dump: a :class:`jaxconv.dump.Dump`.
      labels: the property, one value per example in the dump's order: None (the gold class), ``"predictions"``,
        a sequence (bools, ints or strings), or a file with one value per line.
      layers: conv paths (default every dumped layer); alpha, l1_ratio, iterations (an int >= 1): the probe
        (:func:`fit_probe`).

    Returns:
      Every filter as a :class:`FilterRank`, first the one the probe weighs most.

    Raises:
      ValueError: a label count that is not the dump's example count, a property with one value only, no labels.
    """
    iterations = check_count("rank_filters", "iterations", iterations)
    y_raw = _labels(dump, labels)
    values, y = np.unique(y_raw, return_inverse=True)
    if len(values) < 2:
        raise ValueError(f"rank_filters: the property has one value only ({values[0]!r}) over the "
                         f"{dump.num_examples} examples; a probe needs two or more.")
    names = [layers] if isinstance(layers, str) else list(layers or dump.layers)
    pooled = [np.asarray(dump.pooled(layer), np.float64) for layer in names]                  # (N, F) each
    x = np.concatenate(pooled, axis=1)
    x = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)                               # standardised
    w = fit_probe(x, y, alpha=alpha, l1_ratio=l1_ratio, iterations=iterations)                 # (Ftot, C)
    score = w[:, 1] if len(values) == 2 else np.abs(w).max(1)
    pairs = [(layer, j) for layer, p in zip(names, pooled) for j in range(p.shape[1])]
    order = np.argsort(-score, kind="stable")
    return [FilterRank(rank, pairs[i][0], pairs[i][1], float(score[i]), tuple(float(v) for v in w[i]))
            for rank, i in enumerate(order)]
