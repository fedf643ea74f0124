"""The device side of a stack of ``R`` runs of one model shape: aligned data, ``jax.vmap`` ped programs, and the
dispatches of an epoch that step every run waiting for the same bucket.

Runs of a stack are aligned by bucket: bucket ``b``'s matrix of the stack is ``(R, max_r N_b^r, L_b)``; a run with
fewer examples in ``b`` gets weight-0 filler rows after its own (all ``<pad>``, label 0; its row indices never point
at them). Its plan is ``(R, max_r C_b^r, K, B)``, the slots past its own calls being weight-0 and never dispatched.
Evaluation batches are aligned by bucket the same way: bucket ``b`` has ``max_r n_b^r`` batch positions, and a run
with fewer batches in ``b`` gets weight-0 batches there (which add exactly 0 to its sums). All runs of a stack must
share the bucket lengths, batch size and ``K``.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.data import BucketedBatches
from jaxconv.data.pipeline import DataPipeline
from jaxconv.train.dispatch import EpochCalls, calls_per_bucket, epoch_calls, eval_batches_by_bucket
from jaxconv.train.engine import Engine, add_sums
from jaxconv.train.optim import schedule_steps
from jaxconv.train.state import TrainState, init_state, make_spec
from jaxconv.train.steps import Call

__all__ = ["StackedEngine", "Dispatches", "StackedTrainData", "StackedEvalData"]


class Dispatches:
    """The dispatches of one epoch of ``R`` runs, in order: each is one bucket's program, run by every run whose next
    call is in that bucket (the others are masked). The bucket chosen is the one most runs wait for (ties: the
    shorter bucket). With ``R = 1`` these are the run's calls in its own order.

    Args:
      calls: each run's :class:`~jaxconv.train.dispatch.EpochCalls` (None: the run trains nothing this epoch).
      done: steps of the epoch each run has already applied (a resume); steps: each run's update count so far.
      caps: each run's step cap (0: none).

    Iterating yields ``(bucket, call, moved)``: ``call`` int32 ``(R, 4)`` (a packed
    :class:`~jaxconv.train.steps.Call` per run; zeros for the masked runs), ``moved`` the runs that step:
    ``[(run, update count before, steps, first applied step j), ...]``.
    """

    def __init__(self, calls: Sequence[EpochCalls | None], done: Sequence[int], steps: Sequence[int],
                 caps: Sequence[int]):
        self.calls, self.steps, self.caps = list(calls), [int(s) for s in steps], [int(c) for c in caps]
        self.cursor = [c.locate(int(d)) if c is not None else None for c, d in zip(calls, done)]

    def _head(self, i: int):
        """Run ``i``'s next dispatch ``(bucket, Call, cursor after it)``, or None."""
        c = self.calls[i]
        return None if c is None else c.next_call(self.cursor[i], self.steps[i], self.caps[i])

    def __iter__(self):
        while True:
            heads = {i: h for i in range(len(self.calls)) if (h := self._head(i)) is not None}
            if not heads:
                return
            count = collections.Counter(b for b, _, _ in heads.values())
            bucket = max(count, key=lambda b: (count[b], -b))
            call = np.zeros((len(self.calls), len(Call._fields)), np.int32)
            moved = []
            for i, (b, run_call, after) in heads.items():
                if b != bucket:
                    continue
                call[i] = run_call
                moved.append((i, self.steps[i], run_call.hi - run_call.lo, run_call.lo))
                self.steps[i] += run_call.hi - run_call.lo
                self.cursor[i] = after
            yield bucket, call, moved


def _check_alignable(batch_sets: Sequence[BucketedBatches], what: str) -> None:
    first = batch_sets[0]
    for i, bb in enumerate(batch_sets[1:], 1):
        if bb.bucket_lengths != first.bucket_lengths or bb.batch_size != first.batch_size:
            raise ValueError(
                f"runs 0 and {i} cannot be stacked: their {what} batches differ (bucket lengths {first.bucket_lengths}"
                f" vs {bb.bucket_lengths}, batch size {first.batch_size} vs {bb.batch_size}); runs trained in one "
                f"program must share them (set config.data.bucket_lengths, or train the runs apart).")


def stack_rows(arrays: list[np.ndarray]) -> np.ndarray:
    """``R`` arrays that differ only in their first dimension -> ``(R, max first dim, ...)`` with zeros after each
    run's own rows."""
    n = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), n, *arrays[0].shape[1:]), arrays[0].dtype)
    for r, a in enumerate(arrays):
        out[r, :a.shape[0]] = a
    return out


class StackedTrainData:
    """The training examples of ``R`` runs resident on the device, aligned by bucket (module docstring).

    Attributes:
      buckets: per bucket ``{"tokens": int32 (R, N_b, L_b), "labels": int32 (R, N_b)}`` on the device.
    """

    def __init__(self, batch_sets: Sequence[BucketedBatches], steps_per_call: int, put: Callable):
        _check_alignable(batch_sets, "training")
        self.batch_sets, self.k, self.put = list(batch_sets), int(steps_per_call), put
        self.bucket_lengths = batch_sets[0].bucket_lengths
        self.buckets = []
        for b in range(len(self.bucket_lengths)):
            tokens, labels = zip(*(bb.bucket_arrays(b) for bb in batch_sets))
            self.buckets.append(put({"tokens": stack_rows(list(tokens)),
                                     "labels": stack_rows([np.asarray(y, np.int32) for y in labels])}))
        self.slots = [max(c) for c in zip(*(calls_per_bucket(bb, self.k) for bb in batch_sets))]

    def plans(self, calls: Sequence[EpochCalls | None]) -> list[dict]:
        """The epoch's row indices and weights on the device, per bucket ``{"rows": int32 (R, C_b, K, B),
        "weights": float32 (same)}``; ``calls[r]`` None: run ``r`` trains nothing this epoch (all weight 0)."""
        out = []
        for b, slots in enumerate(self.slots):
            shape = (slots, self.k, self.batch_sets[0].batch_size)
            rows = [c.rows[b] if c is not None else np.zeros(shape, np.int32) for c in calls]
            weights = [c.weights[b] if c is not None else np.zeros(shape, np.float32) for c in calls]
            out.append(self.put({"rows": stack_rows(rows), "weights": stack_rows(weights)}))
        return out


class StackedEvalData:
    """A split's evaluation batches of ``R`` runs on the device, aligned by bucket (weight-0 batches where a run has
    fewer).

    Attributes:
      batches: ``[{"tokens": int32 (R, B, L), "labels": int32 (R, B), "weights": float32 (R, B)}, ...]``.
    """

    def __init__(self, batch_sets: Sequence[BucketedBatches], put: Callable):
        _check_alignable(batch_sets, "evaluation")
        per_run = [eval_batches_by_bucket(bb) for bb in batch_sets]
        size = batch_sets[0].batch_size
        self.batches = []
        for length in batch_sets[0].bucket_lengths:
            for j in range(max(len(run.get(length, [])) for run in per_run)):
                parts = {"tokens": [], "labels": [], "weights": []}
                for run in per_run:
                    mine = run.get(length, [])
                    if j < len(mine):
                        tokens, labels, weights = mine[j].tokens, mine[j].labels, mine[j].weights
                    else:  # filler batch: all <pad>, weight 0
                        tokens, labels, weights = (np.zeros((size, length), np.int32), np.zeros(size, np.int32),
                                                   np.zeros(size, np.float32))
                    parts["tokens"].append(tokens)
                    parts["labels"].append(np.asarray(labels, np.int32))
                    parts["weights"].append(weights)
                self.batches.append(put({k: np.stack(v) for k, v in parts.items()}))


class StackedEngine(Engine):
    """:class:`~jaxconv.train.engine.Engine` for ``R`` runs: every array has a leading run axis and the programs
    are ``jax.vmap`` ped over it.

    Args:
      config: the first run's config (its max-norm settings are compiled in).
      datas: each run's :class:`~jaxconv.data.pipeline.DataPipeline`.
      state: the stacked :class:`~jaxconv.train.state.TrainState` (arrays ``(R, ...)``).
      dropout_keys: each run's dropout key.
      mesh, steps_per_call: as for :class:`~jaxconv.train.engine.Engine`.
    """

    vmapped = True

    def __init__(self, config, datas: Sequence[DataPipeline], state: TrainState, dropout_keys: Sequence, mesh, *,
                 steps_per_call: int):
        self.datas = list(datas)
        super().__init__(config, datas[0], state, dropout_keys, mesh, steps_per_call=steps_per_call)

    @property
    def runs(self) -> int:
        return len(self.datas)

    def _place_data(self, data: DataPipeline, dropout_keys) -> None:
        self.data = data
        self.train_data = StackedTrainData([d.train for d in self.datas], self.k, self.put)
        self.eval_data = {"dev": StackedEvalData([d.dev for d in self.datas], self.put)}
        if all(d.test is not None for d in self.datas):
            self.eval_data["test"] = StackedEvalData([d.test for d in self.datas], self.put)
        self.keys = self.put(jnp.stack(list(dropout_keys)))

    @classmethod
    def fresh(cls, configs: Sequence, datas: Sequence[DataPipeline], mesh) -> StackedEngine:
        """Runs of ``configs`` from their seeds, stacked (see :meth:`jaxconv.train.engine.Engine.fresh`)."""
        from jaxconv.train.run import resolve_steps_per_call

        states, keys = [], []
        for config, data in zip(configs, datas):
            root = jax.random.key(int(config.seed))
            spec = make_spec(config, len(data.vocab), data.num_classes,
                             schedule_steps(config.train, data.train.steps_per_epoch))
            states.append(init_state(jax.random.fold_in(root, 0), spec))
            keys.append(jax.random.fold_in(root, 1))
        return cls(configs[0], datas, TrainState.stack(states).replicated(mesh), keys, mesh,
                   steps_per_call=resolve_steps_per_call(configs[0]))

    def epoch_calls(self, epoch: int) -> list[EpochCalls]:
        """Each run's dispatches of ``epoch``."""
        return [epoch_calls(d.train, epoch, self.k) for d in self.datas]

    def _blank_call(self) -> np.ndarray:
        return np.zeros((self.runs, len(Call._fields)), np.int32)

    def evaluate(self, split: str, model: list | None = None) -> list[dict[str, float]]:
        """Each run's sums over the real rows of ``split`` (see :meth:`jaxconv.train.engine.Engine.evaluate`)."""
        fetched = self._evaluate(split, model)
        return [add_sums([{k: v[i] for k, v in sums.items()} for sums in fetched]) for i in range(self.runs)]
