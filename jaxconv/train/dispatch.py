"""An epoch as dispatches of ``K`` steps, and the examples resident on the device.

**Dispatches.** With ``K = config.train.steps_per_call``, epoch ``e`` of a run is
:meth:`jaxconv.data.BucketedBatches.epoch_runs` ``(e, K)``: each bucket's examples shuffled from ``(seed, e)`` and cut
into batches, a bucket's batches into runs of ``K`` (its last run shorter), the runs shuffled. One run is one
dispatch (:func:`jaxconv.train.steps.train_calls`). ``K = 1`` is the batch order of earlier versions exactly. A
resume restarts the epoch at its saved ``step_in_epoch``: :meth:`EpochCalls.locate` finds the call and the step
inside it, and the steps before it are masked.

**Resident data.** Each bucket's padded token matrix and labels are put on the device once
(:class:`TrainData`); an epoch sends only its row indices and weights, ``(C_b, K, B)`` per bucket (``C_b`` =
``ceil(batches of bucket b / K)``, the same every epoch, so no shape changes and no recompilation). Evaluation
batches are put on the device once too (:class:`EvalData`).

Stacks of runs align these by bucket: :mod:`jaxconv.train.stacked`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from jaxconv.data import BucketedBatches
from jaxconv.train.steps import Call

__all__ = ["EpochCalls", "epoch_calls", "calls_per_bucket", "TrainData", "EvalData", "eval_batches_by_bucket"]


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

    def next_call(self, cursor: tuple[int, int], step: int, cap: int):
        """The dispatch at ``cursor`` (``(call index, steps of it already done)``) for a run at update ``step``
        with step cap ``cap`` (0: none): ``(bucket, Call, cursor after it)``, or None when the epoch or the cap is
        done. Its steps before the cursor are masked, and so are those past the cap."""
        index, lo = cursor
        if index >= len(self.bucket) or (cap and step >= cap):
            return None
        n = int(self.length[index])
        hi = min(n, lo + cap - step) if cap else n
        after = (index + 1, 0) if hi == n else (index, hi)
        return int(self.bucket[index]), Call(int(self.slot[index]), step - lo, lo, hi), after

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


class TrainData:
    """One run's training examples resident on the device, bucket by bucket.

    Args:
      batches: the run's training :class:`~jaxconv.data.BucketedBatches`.
      put: host tree -> device tree (e.g. replicated over the mesh).

    Attributes:
      buckets: per bucket ``{"tokens": int32 (N_b, L_b), "labels": int32 (N_b,)}`` on the device.
    """

    def __init__(self, batches: BucketedBatches, put: Callable):
        self.put = put
        self.bucket_lengths = batches.bucket_lengths
        self.buckets = []
        for b in range(len(self.bucket_lengths)):
            tokens, labels = batches.bucket_arrays(b)
            self.buckets.append(put({"tokens": tokens, "labels": np.asarray(labels, np.int32)}))

    def plans(self, calls: EpochCalls) -> list[dict]:
        """The epoch's row indices and weights on the device, per bucket ``{"rows": int32 (C_b, K, B), "weights":
        float32 (C_b, K, B)}``."""
        return [self.put({"rows": rows, "weights": weights}) for rows, weights in zip(calls.rows, calls.weights)]


def eval_batches_by_bucket(batches: BucketedBatches) -> dict[int, list]:
    """A split's evaluation batches (:meth:`jaxconv.data.BucketedBatches.epoch` ``(0)``) by padded length."""
    by_bucket: dict[int, list] = {}
    for batch in batches.epoch(0):
        by_bucket.setdefault(batch.tokens.shape[1], []).append(batch)
    return by_bucket


class EvalData:
    """A split's evaluation batches on the device, bucket by bucket in the order of the bucket lengths.

    Attributes:
      batches: ``[{"tokens": int32 (B, L), "labels": int32 (B,), "weights": float32 (B,)}, ...]``.
    """

    def __init__(self, batches: BucketedBatches, put: Callable):
        by_bucket = eval_batches_by_bucket(batches)
        self.batches = [put({"tokens": b.tokens, "labels": np.asarray(b.labels, np.int32), "weights": b.weights})
                        for length in batches.bucket_lengths for b in by_bucket.get(length, [])]
