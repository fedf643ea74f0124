"""Seeded, stratified splits: k-fold cross-validation folds, a dev hold-out, and fractional splits.

All functions take the labels as a 1-D integer sequence of length ``N`` and return sorted ``int64``
index arrays into it. Stratified means each class is spread over the parts in proportion to its
size: a class with ``n_c`` examples puts ``floor(n_c/k)`` or ``ceil(n_c/k)`` of them in each of ``k``
folds.

>>> labels = [0] * 6 + [1] * 4
>>> folds = stratified_kfold(labels, 2, seed=0)
>>> [[labels[i] for i in test].count(1) for _, test in folds]    # class 1 split 2 + 2
[2, 2]
>>> sorted(i for _, test in folds for i in test) == list(range(10))
True
>>> train, dev = holdout_dev(10, labels, fraction=0.2, seed=0)
>>> len(train), len(dev), sorted(labels[i] for i in dev)
(8, 2, [0, 1])
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["stratified_kfold", "holdout_dev", "stratified_split"]


def _as_labels(labels) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"labels must be a non-empty 1-D sequence of ints; got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"labels must be integers; got dtype {arr.dtype}.")
    return arr


def stratified_kfold(labels, k: int, *, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` stratified cross-validation folds.

    Within each class (in label order) the examples are shuffled with
    ``np.random.default_rng(seed)`` and dealt round-robin to the folds, the deal continuing from one
    class to the next, with the fold order itself shuffled once. So every index is in exactly one
    test fold, fold sizes differ by at most 1, and each class has ``floor(n_c/k)`` or
    ``ceil(n_c/k)`` examples in each test fold.

    Args:
      labels: ``(N,)`` integer labels.
      k: number of folds, ``2 <= k <= min over classes of n_c``.
      seed: the shuffle seed; the same seed gives the same folds.

    Returns:
      ``k`` pairs ``(train_idx, test_idx)``, sorted ``int64`` arrays with
      ``len(train_idx) + len(test_idx) == N``.

    Raises:
      ValueError: ``k < 2``, or a class has fewer than ``k`` examples.
    """
    y = _as_labels(labels)
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 2:
        raise ValueError(f"k must be an int >= 2; got k={k!r}.")
    classes, counts = np.unique(y, return_counts=True)
    if k > counts.min():
        c = classes[counts.argmin()]
        raise ValueError(f"k={k} folds need at least k examples of every class; class {c} has "
                         f"{counts.min()} (expected k <= {counts.min()}).")
    rng = np.random.default_rng(seed)
    fold_order = rng.permutation(k)
    fold_of = np.empty(len(y), dtype=np.int64)
    dealt = 0
    for c in classes:
        idx = rng.permutation(np.flatnonzero(y == c))
        fold_of[idx] = fold_order[(dealt + np.arange(len(idx))) % k]
        dealt += len(idx)
    all_idx = np.arange(len(y), dtype=np.int64)
    return [(all_idx[fold_of != f], all_idx[fold_of == f]) for f in range(k)]


def _largest_remainder(quotas: np.ndarray, total: int, rng: np.random.Generator) -> np.ndarray:
    """Non-negative integers summing to ``total``, each ``floor`` or ``ceil`` of its quota when
    ``total`` is within rounding of ``sum(quotas)``."""
    base = np.floor(quotas).astype(np.int64)
    frac = quotas - base
    rest = total - int(base.sum())
    # Ties broken at random (seeded) rather than by class id.
    tie = rng.random(len(quotas))
    while rest > 0:
        order = np.lexsort((tie, -frac))[: rest]
        base[order] += 1
        frac[order] -= 1.0
        rest -= len(order)
    while rest < 0:
        order = [i for i in np.lexsort((tie, frac)) if base[i] > 0][: -rest]
        base[order] -= 1
        frac[order] += 1.0
        rest += len(order)
    return base


def stratified_split(labels, fractions: Sequence[float], *, seed: int) -> list[np.ndarray]:
    """Split ``range(N)`` into ``len(fractions)`` stratified parts (e.g. train/dev/test 0.8/0.1/0.1).

    Part ``j`` gets ``round(fractions[j] * N)`` examples (largest-remainder rounding, so the sizes sum
    to ``N``), and within it each class gets ``floor`` or ``ceil`` of its proportional share.

    Args:
      labels: ``(N,)`` integer labels.
      fractions: positive numbers summing to 1.
      seed: shuffle seed.

    Returns:
      one sorted ``int64`` index array per fraction; together they hold every index once.
    """
    y = _as_labels(labels)
    fr = np.asarray(fractions, dtype=np.float64)
    if fr.ndim != 1 or fr.size < 1 or (fr <= 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ValueError(f"fractions must be positive and sum to 1; got fractions={list(fractions)!r}.")
    rng = np.random.default_rng(seed)
    n = len(y)
    part_sizes = _largest_remainder(fr * n, n, rng)
    classes, counts = np.unique(y, return_counts=True)
    # cells[c, j]: examples of class c in part j. Fill part by part so row and column sums both match.
    cells = np.zeros((len(classes), len(fr)), dtype=np.int64)
    remaining = counts.astype(np.int64).copy()
    for j in range(len(fr) - 1):
        share = fr[j] / fr[j:].sum()
        cells[:, j] = _largest_remainder(remaining * share, int(part_sizes[j]), rng)
        over = cells[:, j] > remaining
        if over.any():  # only possible for tiny classes; move the excess to classes with room
            excess = int((cells[over, j] - remaining[over]).sum())
            cells[over, j] = remaining[over]
            room = np.flatnonzero(remaining - cells[:, j] > 0)
            for c in rng.permutation(room):
                if excess == 0:
                    break
                take = min(excess, int(remaining[c] - cells[c, j]))
                cells[c, j] += take
                excess -= take
        remaining -= cells[:, j]
    cells[:, -1] = remaining
    parts: list[list[np.ndarray]] = [[] for _ in fr]
    for ci, c in enumerate(classes):
        idx = rng.permutation(np.flatnonzero(y == c))
        bounds = np.cumsum(cells[ci])[:-1]
        for j, chunk in enumerate(np.split(idx, bounds)):
            parts[j].append(chunk)
    return [np.sort(np.concatenate(p)).astype(np.int64) for p in parts]


def holdout_dev(indices_or_n, labels, *, fraction: float = 0.1, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out a stratified dev set: ``(train_idx, dev_idx)``.

    Args:
      indices_or_n: the candidates: an int ``n`` (meaning ``range(n)``, and then ``len(labels)`` must
        be ``n``) or a 1-D array of indices into ``labels`` (e.g. a CV fold's ``train_idx``).
      labels: the labels of the WHOLE dataset, ``(N,)``; candidate ``i`` has label ``labels[i]``.
      fraction: dev share, ``0 < fraction < 1``; the dev set has ``round(fraction * n)`` candidates,
        each class ``floor`` or ``ceil`` of its share.
      seed: shuffle seed.

    Returns:
      ``(train_idx, dev_idx)``: sorted ``int64`` arrays, disjoint, a partition of the candidates,
      with values taken from the candidates (so they index ``labels`` directly).

    Raises:
      ValueError: a fraction outside ``(0, 1)``, a dev or train part that would be empty, indices out
        of range, or ``n != len(labels)``.
    """
    y = _as_labels(labels)
    if isinstance(indices_or_n, (int, np.integer)) and not isinstance(indices_or_n, bool):
        if int(indices_or_n) != len(y):
            raise ValueError(f"holdout_dev(n, labels): n must equal len(labels); got n={indices_or_n}, "
                             f"len(labels)={len(y)}. Pass an index array to hold out from a subset.")
        cand = np.arange(len(y), dtype=np.int64)
    else:
        cand = np.asarray(indices_or_n)
        if cand.ndim != 1 or not np.issubdtype(cand.dtype, np.integer):
            raise ValueError(f"indices_or_n must be an int or a 1-D integer array; got shape {cand.shape}, "
                             f"dtype {cand.dtype}.")
        if cand.size and (cand.min() < 0 or cand.max() >= len(y)):
            raise ValueError(f"indices_or_n must index labels (0 <= i < {len(y)}); got values in "
                             f"[{cand.min()}, {cand.max()}].")
        cand = cand.astype(np.int64)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1); got fraction={fraction!r}.")
    n_dev = int(round(fraction * len(cand)))
    if n_dev == 0 or n_dev == len(cand):
        raise ValueError(f"fraction={fraction} of {len(cand)} candidates gives {n_dev} dev examples; "
                         f"expected between 1 and {len(cand) - 1}.")
    train_part, dev_part = stratified_split(y[cand], [1.0 - n_dev / len(cand), n_dev / len(cand)], seed=seed)
    return np.sort(cand[train_part]), np.sort(cand[dev_part])
