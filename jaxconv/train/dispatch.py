"""An epoch as dispatches, and the examples resident on the device.

**Schedule.** With ``K = config.train.steps_per_call``, epoch ``e`` of a run is
:meth:`jaxconv.data.BucketedBatches.epoch_runs` ``(e, K)``: each bucket's examples shuffled from ``(seed, e)`` and cut
into batches, a bucket's batches into runs of ``K`` (its last run shorter), the runs shuffled. One run is one
dispatch (:func:`jaxconv.train.steps.train_calls`). ``K = 1`` is the batch order of earlier versions exactly. A
resume restarts the epoch at its saved ``step_in_epoch``: :meth:`EpochCalls.locate` finds the call and the step
inside it, and the steps before it are masked.

**Resident data.** Each bucket's padded token matrix and labels are put on the device once
(:class:`TrainData`); an epoch sends only its row indices and weights, ``(C_b, K, B)`` per bucket (``C_b`` =
``ceil(batches of bucket b / K)``, the same every epoch, so no shape changes and no recompilation). Evaluation
batches are put on the device once too (:class:`EvalData`).

**Stacks of runs** (``jaxconv.train.train_many``), aligned by bucket: bucket ``b``'s matrix of the stack is
``(R, max_r N_b^r, L_b)``; a run with fewer examples in ``b`` gets weight-0 filler rows after its own (all ``<pad>``,
label 0; its row indices never point at them). Its plan is ``(R, max_r C_b^r, K, B)``, the slots past its own calls
being weight-0 and never dispatched. Evaluation batches are aligned by bucket the same way: bucket ``b`` has
``max_r n_b^r`` batch positions, and a run with fewer batches in ``b`` gets weight-0 batches there (which add exactly
0 to its sums). All runs of a stack must share the bucket lengths, batch size and ``K``.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

from jaxconv.data import BucketedBatches

__all__ = ["EpochCalls", "epoch_calls", "calls_per_bucket", "Dispatches", "TrainData", "EvalData"]


@dataclasses.dataclass
class EpochCalls:
    """One run's epoch as dispatches, in order.

    Attributes:
      bucket: int ``(C,)`` bucket of each call; slot: int ``(C,)`` its index among its bucket's calls (the row of
        ``rows[bucket]``); length: int ``(C,)`` batches in it (``<= K``); start: int ``(C,)`` steps of the epoch
        before it.
      rows, weights: per bucket, int32 / float32 ``(C_b, K, B)``: the bucket-matrix rows of each batch and their
        weights (0 for filler rows, and for the unused steps of a short call).
    """

    bucket: np.ndarray
    slot: np.ndarray
    length: np.ndarray
    start: np.ndarray
    rows: list[np.ndarray]
    weights: list[np.ndarray]

    @property
    def steps(self) -> int:
        return int(self.length.sum())

    def locate(self, step_in_epoch: int) -> tuple[int, int]:
        """``(call index, steps of that call already done)`` after ``step_in_epoch`` steps of the epoch."""
        i = int(np.searchsorted(self.start, step_in_epoch, side="right")) - 1
        if i >= 0 and step_in_epoch - self.start[i] == self.length[i]:
            return i + 1, 0
        return max(i, 0), int(step_in_epoch - self.start[max(i, 0)])


def calls_per_bucket(batches: BucketedBatches, steps_per_call: int) -> list[int]:
    """``C_b = ceil(ceil(bucket size / batch size) / K)`` for every bucket: the calls of bucket ``b`` per epoch."""
    per = [-(-s // batches.batch_size) for s in batches.bucket_sizes]
    return [-(-n // steps_per_call) for n in per]


def epoch_calls(batches: BucketedBatches, epoch: int, steps_per_call: int) -> EpochCalls:
    """The dispatches of ``epoch`` (module docstring): ``K = steps_per_call`` batches of one bucket per call."""
    k, b_size = int(steps_per_call), batches.batch_size
    counts = calls_per_bucket(batches, k)
    rows = [np.zeros((c, k, b_size), np.int32) for c in counts]
    weights = [np.zeros((c, k, b_size), np.float32) for c in counts]
    used = [0] * len(counts)
    bucket, slot, length = [], [], []
    for run in batches.epoch_runs(epoch, k):
        b = run[0][0]
        s = used[b]
        used[b] += 1
        for j, (_, examples) in enumerate(run):
            rows[b][s, j], weights[b][s, j] = batches.batch_rows(examples)
        bucket.append(b)
        slot.append(s)
        length.append(len(run))
    length_a = np.asarray(length, np.int64)
    start = np.concatenate([[0], np.cumsum(length_a)[:-1]]).astype(np.int64)
    return EpochCalls(np.asarray(bucket, np.int64), np.asarray(slot, np.int64), length_a, start, rows, weights)


class Dispatches:
    """The dispatches of one epoch of ``R`` runs, in order: each is one bucket's program, run by every run whose next
    call is in that bucket (the others are masked). The bucket chosen is the one most runs wait for (ties: the
    shorter bucket). With ``R = 1`` these are the run's calls in its own order.

    Args:
      calls: each run's :class:`EpochCalls` (None: the run trains nothing this epoch).
      done: steps of the epoch each run has already applied (a resume); steps: each run's update count so far.
      caps: each run's step cap (0: none).

    Iterating yields ``(bucket, call, moved)``: ``call`` int32 ``(R, 4)`` (``[slot, base, lo, hi]`` per run,
    :func:`jaxconv.train.steps.train_calls`; zeros for the masked runs), ``moved`` the runs that step:
    ``[(run, update count before, steps, first applied step j), ...]``.
    """

    def __init__(self, calls: Sequence[EpochCalls | None], done: Sequence[int], steps: Sequence[int],
                 caps: Sequence[int]):
        self.calls, self.steps, self.caps = list(calls), [int(s) for s in steps], [int(c) for c in caps]
        self.cursor = [c.locate(int(d)) if c is not None else None for c, d in zip(calls, done)]

    def _head(self, i: int) -> int | None:
        c, cur = self.calls[i], self.cursor[i]
        if c is None or cur[0] >= len(c.bucket) or (self.caps[i] and self.steps[i] >= self.caps[i]):
            return None
        return int(c.bucket[cur[0]])

    def __iter__(self):
        while True:
            heads = {i: b for i in range(len(self.calls)) if (b := self._head(i)) is not None}
            if not heads:
                return
            count = collections.Counter(heads.values())
            bucket = max(count, key=lambda b: (count[b], -b))
            call = np.zeros((len(self.calls), 4), np.int32)
            moved = []
            for i in (i for i, b in heads.items() if b == bucket):
                c, (ci, lo), step = self.calls[i], self.cursor[i], self.steps[i]
                n = int(c.length[ci])
                hi = min(n, lo + self.caps[i] - step) if self.caps[i] else n
                call[i] = (c.slot[ci], step - lo, lo, hi)
                moved.append((i, step, hi - lo, lo))
                self.steps[i] += hi - lo
                self.cursor[i] = (ci + 1, 0) if hi == n else (ci, hi)
            yield bucket, call, moved


def _check_alignable(batch_sets: Sequence[BucketedBatches], what: str) -> None:
    first = batch_sets[0]
    for i, bb in enumerate(batch_sets[1:], 1):
        if bb.bucket_lengths != first.bucket_lengths or bb.batch_size != first.batch_size:
            raise ValueError(
                f"runs 0 and {i} cannot be stacked: their {what} batches differ (bucket lengths {first.bucket_lengths}"
                f" vs {bb.bucket_lengths}, batch size {first.batch_size} vs {bb.batch_size}); runs trained in one "
                f"program must share them (set config.data.bucket_lengths, or train the runs apart).")


def _stack(arrays: list[np.ndarray], stacked: bool) -> np.ndarray:
    """``R`` arrays that differ only in their first dimension -> ``(R, max first dim, ...)`` with zeros after each
    run's own rows (or the one array itself when not ``stacked``)."""
    if not stacked:
        return arrays[0]
    n = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n, *arrays[0].shape[1:]), arrays[0].dtype)
    for r, a in enumerate(arrays):
        out[r, :a.shape[0]] = a
    return out


class TrainData:
    """The training examples of one run, or of a stack of runs, resident on the device, bucket by bucket.

    Args:
      batch_sets: the runs' training :class:`~jaxconv.data.BucketedBatches` (one, unless ``stacked``).
      steps_per_call: ``K``.
      put: host tree -> device tree (e.g. replicated over the mesh).
      stacked: arrays get a leading run axis (module docstring: alignment by bucket).

    Attributes:
      buckets: per bucket ``{"tokens": int32 ([R,] N_b, L_b), "labels": int32 ([R,] N_b)}`` on the device.
    """

    def __init__(self, batch_sets: Sequence[BucketedBatches], steps_per_call: int, put: Callable,
                 stacked: bool):
        _check_alignable(batch_sets, "training")
        self.batch_sets, self.k, self.put, self.stacked = list(batch_sets), int(steps_per_call), put, stacked
        self.bucket_lengths = batch_sets[0].bucket_lengths
        self.buckets = []
        for b in range(len(self.bucket_lengths)):
            tokens, labels = zip(*(bb.bucket_arrays(b) for bb in batch_sets))
            self.buckets.append(put({"tokens": _stack(list(tokens), stacked),
                                     "labels": _stack([np.asarray(y, np.int32) for y in labels], stacked)}))
        self.slots = [max(c) for c in zip(*(calls_per_bucket(bb, self.k) for bb in batch_sets))]

    def plans(self, calls: Sequence[EpochCalls | None]) -> list[dict]:
        """The epoch's row indices and weights on the device, per bucket ``{"rows": int32 ([R,] C_b, K, B),
        "weights": float32 (same)}``; ``calls[r]`` None: run ``r`` trains nothing this epoch (all weight 0)."""
        out = []
        for b, slots in enumerate(self.slots):
            shape = (slots, self.k, self.batch_sets[0].batch_size)
            rows = [c.rows[b] if c is not None else np.zeros(shape, np.int32) for c in calls]
            weights = [c.weights[b] if c is not None else np.zeros(shape, np.float32) for c in calls]
            out.append(self.put({"rows": _stack(rows, self.stacked), "weights": _stack(weights, self.stacked)}))
        return out


class EvalData:
    """A split's evaluation batches on the device, for one run or a stack (aligned by bucket, weight-0 batches where
    a run has fewer), in the order of :meth:`jaxconv.data.BucketedBatches.epoch` ``(0)``.

    Attributes:
      batches: ``[{"tokens": int32 ([R,] B, L), "labels": int32 ([R,] B), "weights": float32 ([R,] B)}, ...]``.
    """

    def __init__(self, batch_sets: Sequence[BucketedBatches], put: Callable, stacked: bool):
        _check_alignable(batch_sets, "evaluation")
        per_run = []
        for bb in batch_sets:
            by_bucket: dict[int, list] = {}
            for batch in bb.epoch(0):
                by_bucket.setdefault(batch.tokens.shape[1], []).append(batch)
            per_run.append(by_bucket)
        size = batch_sets[0].batch_size
        self.batches = []
        for length in batch_sets[0].bucket_lengths:
            for j in range(max(len(run.get(length, [])) for run in per_run)):
                parts = {"tokens": [], "labels": [], "weights": []}
                for run in per_run:
                    mine = run.get(length, [])
                    if j < len(mine):
                        batch = mine[j]
                        tokens, labels, weights = batch.tokens, batch.labels, batch.weights
                    else:  # filler batch: all <pad>, weight 0
                        tokens, labels, weights = (np.zeros((size, length), np.int32), np.zeros(size, np.int32),
                                                   np.zeros(size, np.float32))
                    parts["tokens"].append(tokens)
                    parts["labels"].append(np.asarray(labels, np.int32))
                    parts["weights"].append(weights)
                host = {k: np.stack(v) if stacked else v[0] for k, v in parts.items()}
                self.batches.append(put(host))
