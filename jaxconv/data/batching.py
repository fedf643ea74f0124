"""Length-bucketed, fixed-shape batches.

XLA compiles one program per input shape, so sentences are padded to one of a few bucket lengths
and every batch has exactly ``batch_size`` rows: an epoch compiles the step at most once per
bucket. Each example goes to the smallest bucket that holds it::

    needed_i = pad_left + len_i + pad_right          # positions the example occupies
    bucket_i = min(b for b in bucket_lengths if b >= needed_i)   # else the largest: truncated

Row layout of ``tokens`` in a batch of bucket length ``B`` (0 is ``<pad>``)::

    [0] * pad_left + ids[:B - pad_left - pad_right] + [0] * (B - pad_left - len)

Kim (2014) pads ``filter_width - 1`` zeros on each side; pass ``pad_left=pad_right=max_width - 1``
for the same effect (the right side then holds at least that many pads).

>>> bb = BucketedBatches([[5, 6], [7, 8, 9, 10, 11], [12]], [0, 1, 0], batch_size=2,
...                      bucket_lengths=(4, 8), shuffle=False)
>>> bb.steps_per_epoch, bb.bucket_lengths, bb.bucket_sizes
(2, (4, 8), (2, 1))
>>> [b.tokens.shape for b in bb.epoch(0)]
[(2, 4), (2, 8)]
>>> b = list(bb.epoch(0))[1]
>>> b.tokens.tolist(), b.weights.tolist(), b.lengths.tolist()
([[7, 8, 9, 10, 11, 0, 0, 0], [7, 8, 9, 10, 11, 0, 0, 0]], [1.0, 0.0], [5, 5])
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Batch", "BucketedBatches", "default_bucket_lengths"]


@dataclass(frozen=True)
class Batch:
    """One fixed-shape batch (all from one bucket of length ``L``).

    Attributes:
      tokens: ``int32 (batch_size, L)`` token ids, 0 = ``<pad>``.
      labels: ``int32 (batch_size,)``, or ``(batch_size, T)`` targets per position (language models).
      weights: ``float32 (batch_size,)``: 1 for real examples, 0 for filler rows. Filler rows repeat
        the batch's real rows (so no row is all padding) and must be ignored via ``weights`` in
        losses and metrics.
      lengths: ``int32 (batch_size,)`` true token counts after truncation, padding excluded.
      indices: ``int64 (batch_size,)`` the row's example index in the ``token_ids`` given to
        :class:`BucketedBatches` (filler rows repeat an index but have weight 0); ``None`` for a
        hand-built batch.
    """

    tokens: np.ndarray
    labels: np.ndarray
    weights: np.ndarray
    lengths: np.ndarray
    indices: np.ndarray | None = None

    @property
    def batch_size(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def num_real(self) -> int:
        """Rows with weight 1."""
        return int(self.weights.sum())


def _round_up(x: int, multiple: int) -> int:
    return -(-x // multiple) * multiple


def default_bucket_lengths(needed: Sequence[int], *, min_length: int = 1, max_buckets: int = 5,
                           multiple: int = 8) -> tuple[int, ...]:
    """Bucket lengths from the data: the at most ``max_buckets`` lengths that pad the least.

    Candidates are the multiples of ``multiple`` from ``round_up(min_length, multiple)`` up to
    ``top = round_up(max(max(needed), min_length), multiple)``; ``top`` is always chosen (nothing is
    truncated). Among the sets of at most ``max_buckets`` candidates, the one returned minimises the
    total padded length ``sum_i min(b for b in buckets if b >= needed_i)`` -- the positions an epoch
    computes on -- and, at equal totals, has the fewest buckets (fewer compilations). Found exactly by
    dynamic programming over the candidates that are the smallest holding length of some example,
    ``O(c^2 x max_buckets)`` for ``c`` of them (at most the number of distinct needed lengths). Every
    bucket receives at least one example.

    >>> default_bucket_lengths([3, 9, 20, 40, 60])
    (8, 16, 24, 40, 64)
    >>> default_bucket_lengths([9, 20, 40, 64], min_length=9, max_buckets=3)
    (24, 40, 64)
    >>> default_bucket_lengths([5, 6, 7, 30], max_buckets=1)
    (32,)
    """
    needed = np.asarray(needed, dtype=np.int64).reshape(-1)
    if needed.size == 0:
        raise ValueError("default_bucket_lengths: needed must be non-empty.")
    for name, value in (("min_length", min_length), ("max_buckets", max_buckets), ("multiple", multiple)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"default_bucket_lengths: {name} must be an int >= 1; got {name}={value!r}.")
    top = _round_up(max(int(needed.max()), min_length), multiple)
    cands = np.arange(_round_up(min_length, multiple), top + 1, multiple, dtype=np.int64)    # (m,), ends at top
    # count[j]: examples whose smallest holding candidate is cands[j]
    count = np.bincount(np.searchsorted(cands, np.minimum(needed, top), side="left"), minlength=len(cands))
    # Only lengths some example needs can be in the best set (lowering a bucket to the largest such length below it
    # pads less), so the search runs over those: a 100,000-token outlier adds one candidate, not 12,500.
    keep = count > 0                                                                       # top is always kept
    cands, count = cands[keep], count[keep]
    m, k_max = len(cands), min(int(max_buckets), len(cands))
    cum = np.concatenate([[0], np.cumsum(count)])                                          # examples up to cand j
    # best[k][j]: (total, buckets) for the examples with needed <= cands[j], cands[j] the k-th (largest) bucket
    # chosen; prev[k][j]: the bucket chosen before it (-1: none).
    inf = (math.inf, math.inf)
    best = [[inf] * m for _ in range(k_max + 1)]
    prev = [[-1] * m for _ in range(k_max + 1)]
    for j in range(m):
        best[1][j] = (int(cum[j + 1]) * int(cands[j]), 1)
    for k in range(2, k_max + 1):
        for j in range(m):
            for i in range(j):
                if best[k - 1][i] is inf:
                    continue
                total = best[k - 1][i][0] + int(cum[j + 1] - cum[i + 1]) * int(cands[j])
                cand = (total, k)
                if cand < best[k][j]:
                    best[k][j], prev[k][j] = cand, i
    # the best over bucket counts, ending at top; equal totals keep the fewest buckets (tuple order)
    k = min(range(1, k_max + 1), key=lambda kk: best[kk][m - 1])
    chosen, j = [], m - 1
    while j >= 0 and k >= 1:
        chosen.append(j)
        j, k = prev[k][j], k - 1
    # no chosen bucket is empty: dropping it keeps the total and uses fewer buckets, which the tie-break prefers
    return tuple(sorted(int(cands[j]) for j in chosen))


class BucketedBatches:
    """Fixed-shape batches over length buckets, with a deterministic per-epoch order.

    Args:
      token_ids: ``N`` token-id lists (0 must mean ``<pad>``; see :class:`jaxconv.data.Vocab`).
      labels: ``(N,)`` integer labels, or ``(N, T)`` integer targets per position (a language model's next
        tokens; its examples are windows of one length ``T``, padded as any other).
      batch_size: rows per batch (>= 1).
      bucket_lengths: the padded lengths; ``None`` chooses them with :func:`default_bucket_lengths`
        (at most 5 multiples of 8, the set that pads the least). Every bucket must be >= ``min_length``
        and > ``pad_left + pad_right``. Examples needing more than the largest bucket are truncated
        (keeping their first tokens) and counted in :attr:`truncated`.
      seed: with the epoch number, fixes the order: ``np.random.default_rng([seed, epoch])``.
      shuffle: shuffle examples within each bucket and batches across buckets; ``False``: buckets in
        ascending length, examples in input order (the same every epoch).
      min_length: the smallest allowed bucket length (a width-5 convolution with valid padding needs
        >= 5 positions).
      pad_left: zeros before each sentence.
      pad_right: zeros reserved after each sentence (more follow up to the bucket length).

    Attributes:
      bucket_lengths: ``tuple[int, ...]`` ascending.
      bucket_sizes: examples per bucket, aligned with ``bucket_lengths``.
      truncated: number of truncated examples.
      lengths: ``(N,)`` token counts after truncation.
      steps_per_epoch: ``sum(ceil(bucket_size / batch_size))``.
    """

    def __init__(self, token_ids: Sequence[Sequence[int]], labels, *, batch_size: int,
                 bucket_lengths: tuple[int, ...] | None = None, seed: int = 0, shuffle: bool = True,
                 min_length: int = 1, pad_left: int = 0, pad_right: int = 0):
        for name, value, lo in (("batch_size", batch_size, 1), ("min_length", min_length, 1),
                                ("pad_left", pad_left, 0), ("pad_right", pad_right, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"{name} must be an int >= {lo}; got {name}={value!r}.")
        n = len(token_ids)
        if n == 0:
            raise ValueError("token_ids must hold at least one example; got 0.")
        y = np.asarray(labels)
        if y.ndim not in (1, 2) or y.shape[0] != n:
            raise ValueError(f"labels must have shape ({n},) (a class per example) or ({n}, T) (a target per "
                             f"position) to match len(token_ids)={n}; got {y.shape}.")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"labels must be integers; got dtype {y.dtype}.")
        self.batch_size = int(batch_size)
        self.seed = seed
        self.shuffle = bool(shuffle)
        self.min_length = int(min_length)
        self.pad_left = int(pad_left)
        self.pad_right = int(pad_right)
        raw_len = np.fromiter((len(t) for t in token_ids), dtype=np.int64, count=n)
        needed = raw_len + pad_left + pad_right

        if bucket_lengths is None:
            buckets = default_bucket_lengths(needed, min_length=max(min_length, pad_left + pad_right + 1))
        else:
            buckets = tuple(sorted({int(b) for b in bucket_lengths}))
            if not buckets:
                raise ValueError("bucket_lengths must be non-empty (or None to choose from the data).")
            floor = max(min_length, pad_left + pad_right + 1)
            if buckets[0] < floor:
                raise ValueError(
                    f"bucket_lengths must all be >= max(min_length, pad_left + pad_right + 1) = "
                    f"max({min_length}, {pad_left} + {pad_right} + 1) = {floor}; got {buckets}.")
        self.bucket_lengths: tuple[int, ...] = buckets
        top = buckets[-1]
        max_tokens = top - pad_left - pad_right
        self.truncated = int((raw_len > max_tokens).sum())
        self.lengths = np.minimum(raw_len, max_tokens).astype(np.int32)
        which = np.searchsorted(np.asarray(buckets), np.minimum(needed, top), side="left")

        # Per bucket: member example indices (input order) and their padded token matrix.
        self._members: list[np.ndarray] = []
        self._tokens: list[np.ndarray] = []
        for b, blen in enumerate(buckets):
            members = np.flatnonzero(which == b)
            mat = np.zeros((len(members), blen), dtype=np.int32)
            for row, i in enumerate(members):
                ids = token_ids[i][: self.lengths[i]]
                mat[row, pad_left: pad_left + len(ids)] = ids
            self._members.append(members.astype(np.int64))
            self._tokens.append(mat)
        self.bucket_sizes: tuple[int, ...] = tuple(len(m) for m in self._members)
        self._labels = y.astype(np.int32)
        self._row_of = np.empty(n, dtype=np.int64)  # example -> row within its bucket matrix
        for members in self._members:
            self._row_of[members] = np.arange(len(members))
        self.num_examples = n

    # ------------------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return sum(-(-s // self.batch_size) for s in self.bucket_sizes)

    def __len__(self) -> int:
        return self.steps_per_epoch

    def __repr__(self) -> str:
        return (f"BucketedBatches(N={self.num_examples}, batch_size={self.batch_size}, "
                f"bucket_lengths={self.bucket_lengths}, bucket_sizes={self.bucket_sizes}, "
                f"steps_per_epoch={self.steps_per_epoch}, truncated={self.truncated})")

    def epoch_plan(self, epoch: int) -> list[tuple[int, np.ndarray]]:
        """The epoch's batches as ``(bucket index, example indices)`` (before filler rows)."""
        return [batch for run in self.epoch_runs(epoch) for batch in run]

    def epoch_runs(self, epoch: int, run_length: int = 1) -> list[list[tuple[int, np.ndarray]]]:
        """The epoch's batches in runs of up to ``run_length`` consecutive batches of one bucket.

        Each bucket's members are shuffled (from ``(seed, epoch)``) and cut into batches, a bucket's batches into
        runs of ``run_length`` (its last run may be shorter), and the runs of all buckets are shuffled. With
        ``run_length=1`` this is :meth:`epoch_plan`'s order, one batch per run.

        >>> bb = BucketedBatches([[1]] * 5 + [[1] * 6] * 3, [0] * 8, batch_size=1, bucket_lengths=(4, 8))
        >>> [[b for b, _ in run] for run in bb.epoch_runs(0, 2)]
        [[1], [0, 0], [0], [0, 0], [1, 1]]
        """
        if isinstance(run_length, bool) or not isinstance(run_length, (int, np.integer)) or run_length < 1:
            raise ValueError(f"run_length must be an int >= 1; got run_length={run_length!r}.")
        rng = np.random.default_rng([int(self.seed), int(epoch)]) if self.shuffle else None
        runs: list[list[tuple[int, np.ndarray]]] = []
        for b, members in enumerate(self._members):
            order = rng.permutation(members) if rng is not None else members
            batches = [(b, order[start: start + self.batch_size]) for start in range(0, len(order), self.batch_size)]
            runs += [batches[i: i + run_length] for i in range(0, len(batches), run_length)]
        if rng is not None:
            runs = [runs[i] for i in rng.permutation(len(runs))]
        return runs

    def bucket_arrays(self, bucket: int) -> tuple[np.ndarray, np.ndarray]:
        """The padded token matrix ``int32 (bucket_sizes[bucket], bucket_lengths[bucket])`` and the labels
        ``int32 (bucket_sizes[bucket],)`` of a bucket's members: the rows that :meth:`batch_rows` indexes."""
        return self._tokens[bucket], self._labels[self._members[bucket]]

    def batch_rows(self, examples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """A batch of ``examples`` (one bucket's, as :meth:`epoch_plan` gives them) as rows of its bucket's matrix:
        ``(rows int64 (batch_size,), weights float32 (batch_size,))``; filler rows repeat the real ones, weight 0."""
        real = len(examples)
        idx = examples[np.arange(self.batch_size) % real]  # filler rows cycle through the real ones
        weights = np.zeros(self.batch_size, dtype=np.float32)
        weights[:real] = 1.0
        return self._row_of[idx], weights

    def _make_batch(self, bucket: int, examples: np.ndarray) -> Batch:
        rows, weights = self.batch_rows(examples)
        idx = self._members[bucket][rows]
        return Batch(tokens=self._tokens[bucket][rows], labels=self._labels[idx], weights=weights,
                     lengths=self.lengths[idx], indices=idx)

    def epoch(self, epoch: int, *, start_step: int = 0) -> Iterator[Batch]:
        """The batches of epoch ``epoch``, from step ``start_step`` on.

        The order depends only on ``(seed, epoch)`` (and ``shuffle``); resuming with
        ``start_step=s`` yields exactly batches ``s, s+1, ...`` of the uninterrupted epoch.

        Yields:
          :class:`Batch` with ``tokens`` of shape ``(batch_size, bucket_length)``.
        """
        steps = self.steps_per_epoch
        if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or not 0 <= start_step <= steps:
            raise ValueError(f"start_step must be an int in [0, steps_per_epoch={steps}]; got start_step={start_step!r}.")
        plan = self.epoch_plan(epoch)
        for bucket, examples in plan[start_step:]:
            yield self._make_batch(bucket, examples)

    def __iter__(self) -> Iterator[Batch]:
        """Epoch 0."""
        return self.epoch(0)
