"""The compiled path of training, without the bookkeeping: resident data, programs, dispatch, evaluation.

:class:`Engine` holds one run's (or a stack of runs') :class:`~jaxconv.train.state.TrainState`, its training examples
and evaluation batches on the device (:mod:`jaxconv.train.schedule`), and the compiled programs
(:mod:`jaxconv.train.steps`). :meth:`Engine.dispatch` sends one call of ``K`` steps; :meth:`Engine.evaluate` scores a
split. The loop (:mod:`jaxconv.train.loop`) adds schedules, metrics, checkpoints and early stopping on top; the
benchmarks time this same path.

>>> import jax, tempfile
>>> from jaxconv.configs import load_config
>>> from jaxconv.train import build_data, mesh as mesh_lib
>>> config = load_config("text_cnn", {"data.synthetic.num_examples": 200, "model.embed_dim": 8, "model.filters": 4,
...                                   "train.steps_per_call": 2})
>>> engine = Engine.fresh([config], [build_data(config, min_length=5)], mesh_lib.make_mesh())
>>> calls = engine.epoch_calls(0)[0]                        # the run's epoch 0 as dispatches of up to 2 steps
>>> plans = engine.plans([calls])
>>> sums = engine.dispatch(int(calls.bucket[0]), plans[int(calls.bucket[0])], engine.call(calls, 0))
>>> sums.shape                                              # (K, 3): loss_sum, correct, count per step
(2, 3)
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxconv.train import mesh as mesh_lib
from jaxconv.train.input_pipeline import DataPipeline
from jaxconv.train.schedule import EpochCalls, EvalData, TrainData, epoch_calls
from jaxconv.train.state import TrainState, init_state, make_spec
from jaxconv.train.steps import programs_for, step_settings

__all__ = ["Engine"]


class Engine:
    """The device side of ``R`` runs of one shape (``R = 1`` unless ``stacked``).

    Args:
      config: the (first) run's config: its ``config.train`` max-norm settings are compiled in.
      datas: each run's :class:`~jaxconv.train.input_pipeline.DataPipeline` (one unless ``stacked``).
      state: the runs' :class:`~jaxconv.train.state.TrainState` on the mesh (stacked: arrays ``(R, ...)``).
      dropout_keys: each run's dropout key.
      mesh: the device mesh (batches split over its ``"data"`` axis; everything else replicated).
      steps_per_call: ``K``.
      stacked: the arrays have a leading run axis and the programs are ``jax.vmap`` ped over it.

    Attributes:
      state: the current :class:`~jaxconv.train.state.TrainState` (replaced by every dispatch: the old arrays are
        donated to it).
    """

    def __init__(self, config, datas: Sequence[DataPipeline], state: TrainState, dropout_keys: Sequence, mesh, *,
                 steps_per_call: int, stacked: bool):
        self.state, self.mesh, self.stacked, self.k = state, mesh, stacked, int(steps_per_call)
        self.runs = len(datas)
        self.put = functools.partial(mesh_lib.replicate, mesh=mesh)
        self.programs = programs_for(step_settings(config, state.defs, mesh), stacked)
        self.train_data = TrainData([d.train for d in datas], self.k, self.put, stacked)
        self.eval_data = {"dev": EvalData([d.dev for d in datas], self.put, stacked)}
        if all(d.test is not None for d in datas):
            self.eval_data["test"] = EvalData([d.test for d in datas], self.put, stacked)
        self.keys = self.put(jnp.stack(list(dropout_keys)) if stacked else dropout_keys[0])
        self.datas = list(datas)
        self.train_exe: dict[int, object] = {}  # bucket -> its compiled train program

    @classmethod
    def fresh(cls, configs: Sequence, datas: Sequence[DataPipeline], mesh, *, stacked: bool = False) -> Engine:
        """Runs of ``configs`` from their seeds, as the trainer starts them (parameters from ``fold_in(key(seed),
        0)``, dropout keys ``fold_in(key(seed), 1)``, ``K`` from ``config.train.steps_per_call`` (0: auto))."""
        from jaxconv.train.run import resolve_steps_per_call

        states, keys = [], []
        for config, data in zip(configs, datas):
            root = jax.random.key(int(config.seed))
            states.append(init_state(jax.random.fold_in(root, 0), make_spec(config, len(data.vocab), data.num_classes)))
            keys.append(jax.random.fold_in(root, 1))
        state = TrainState.stack(states) if stacked else states[0]
        return cls(configs[0], datas, state.replicated(mesh), keys, mesh,
                   steps_per_call=resolve_steps_per_call(configs[0]), stacked=stacked)

    def epoch_calls(self, epoch: int) -> list[EpochCalls]:
        """Each run's dispatches of ``epoch`` (:func:`jaxconv.train.schedule.epoch_calls`)."""
        return [epoch_calls(d.train, epoch, self.k) for d in self.datas]

    def plans(self, calls: Sequence[EpochCalls | None]) -> list[dict]:
        """The epoch's row indices on the device, per bucket (:meth:`jaxconv.train.schedule.TrainData.plans`)."""
        return self.train_data.plans(calls)

    def call(self, calls: EpochCalls, index: int, step: int = 0) -> np.ndarray:
        """The int32 ``(4,)`` call array of ``calls``' call ``index``, all of its steps, the first being update
        ``step`` (for a single run; the loop builds ``(R, 4)`` arrays itself)."""
        return np.asarray([calls.slot[index], step, 0, calls.length[index]], np.int32)

    def _train_job(self, bucket: int, plan: dict) -> tuple:
        call = np.zeros((self.runs, 4) if self.stacked else (4,), np.int32)
        return "train", (self.state.model, self.state.opt, self.train_data.buckets[bucket], plan, call, self.keys)

    def compile(self, plans: list[dict]) -> None:
        """Compile every bucket's train program and every evaluation shape (in parallel threads)."""
        jobs = [self._train_job(b, plan) for b, plan in enumerate(plans)]
        shapes = {}
        for split in self.eval_data.values():
            for batch in split.batches:
                shapes.setdefault(batch["tokens"].shape, batch)
        jobs += [("eval", (self.state.model, batch)) for batch in shapes.values()]
        self.train_exe = dict(enumerate(self.programs.compile(jobs)[:len(plans)]))

    def dispatch(self, bucket: int, plan: dict, call: np.ndarray):
        """Run one call on ``bucket`` (``plan``: that bucket's entry of :meth:`plans`; ``call``: int32 ``(4,)`` or
        ``(R, 4)``, :func:`jaxconv.train.steps.train_calls`); returns the device per-step sums ``([R,] K, 3)``.
        A bucket not compiled yet (:meth:`compile`) is compiled first."""
        if bucket not in self.train_exe:
            self.train_exe[bucket] = self.programs.executable(*self._train_job(bucket, plan))
        model, opt, sums = self.train_exe[bucket](self.state.model, self.state.opt, self.train_data.buckets[bucket],
                                                  plan, call, self.keys)
        self.state = TrainState(model, opt, self.state.defs)
        return sums

    def evaluate(self, split: str, model: list | None = None) -> list[dict]:
        """Loss and accuracy over the real rows of ``split`` for every run: ``[{"loss", "accuracy", "examples"}]``
        (float64 sums of the per-batch float32 sums, in a fixed order: the same numbers every run)."""
        model = self.state.model if model is None else model
        batches = self.eval_data[split].batches
        exe = self.programs.compile([("eval", (model, batch)) for batch in batches])
        fetched = jax.device_get([e(model, batch) for e, batch in zip(exe, batches)])
        out = []
        for i in range(self.runs):
            loss = correct = count = 0.0
            for sums in fetched:
                mine = sums[i] if self.stacked else sums
                loss += float(mine[0])
                correct += float(mine[1])
                count += float(mine[2])
            out.append({"loss": loss / max(count, 1.0), "accuracy": correct / max(count, 1.0), "examples": int(count)})
        return out
