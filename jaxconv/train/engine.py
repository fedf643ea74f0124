"""The compiled path of one run's training, without the bookkeeping: resident data, programs, dispatch, evaluation.

:class:`Engine` holds a run's :class:`~jaxconv.train.state.TrainState`, its training examples and evaluation batches
on the device (:mod:`jaxconv.train.dispatch`), and the compiled programs (:mod:`jaxconv.train.steps`).
:meth:`Engine.dispatch` sends one call of ``K`` steps; :meth:`Engine.evaluate` scores a split. The trainer
(:mod:`jaxconv.train.trainer`) adds metrics, checkpoints and early stopping on top; the benchmarks time this same
path. A stack of runs has its own engine (:class:`jaxconv.train.stacked.StackedEngine`).

>>> from jaxconv.configs import DEFAULT_CONFIG, load_config
>>> from jaxconv.data.pipeline import build_data
>>> from jaxconv.train import mesh as mesh_lib
>>> config = load_config(DEFAULT_CONFIG, {"data.synthetic.num_examples": 200, "model.embed_dim": 8, "model.filters": 4,
...                                   "train.steps_per_call": 2})
>>> engine = Engine.fresh(config, build_data(config, min_length=5), mesh_lib.make_mesh())
>>> calls = engine.epoch_calls(0)                           # epoch 0 as dispatches of up to 2 steps
>>> plans = engine.plans(calls)
>>> sums = engine.dispatch(int(calls.bucket[0]), plans[int(calls.bucket[0])], engine.call(calls, 0))
>>> sorted(sums), sums["loss_sum"].shape                    # per step: loss_sum, correct, count
(['correct', 'count', 'loss_sum'], (2,))
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.data.pipeline import DataPipeline
from jaxconv.inspection._algorithms import measure_algorithms, uses_auto
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.dispatch import EpochCalls, EvalData, TrainData, epoch_calls
from jaxconv.train.optim import schedule_steps
from jaxconv.train.state import TrainState, init_state, make_spec
from jaxconv.train.steps import Call, programs_for, step_settings
from jaxconv.train.tasks import SUMS

__all__ = ["Engine", "add_sums"]


def add_sums(per_batch: list[dict]) -> dict[str, float]:
    """Float64 totals of per-batch float32 sums, added in order (the same numbers every run)."""
    out = dict.fromkeys(SUMS, 0.0)
    for sums in per_batch:
        for k in SUMS:
            out[k] += float(sums[k])
    return out


class Engine:
    """The device side of one run.

    Args:
      config: the run's config: its ``config.train`` max-norm settings are compiled in.
      data: the run's :class:`~jaxconv.data.pipeline.DataPipeline`.
      state: the run's :class:`~jaxconv.train.state.TrainState` on the mesh.
      dropout_key: the run's dropout key.
      mesh: the device mesh (batches split over its ``"data"`` axis; everything else replicated).
      steps_per_call: ``K``.

    Attributes:
      state: the current :class:`~jaxconv.train.state.TrainState` (replaced by every dispatch: the old arrays are
        donated to it).
    """

    vmapped = False

    def __init__(self, config, data: DataPipeline, state: TrainState, dropout_key, mesh, *, steps_per_call: int):
        self.state, self.mesh, self.k = state, mesh, int(steps_per_call)
        self.put = functools.partial(mesh_lib.replicate, mesh=mesh)
        self.programs = programs_for(step_settings(config, state.defs, mesh), self.vmapped)
        self.train_exe: dict[int, object] = {}  # bucket -> its compiled train program
        self._uses_auto: bool | None = None       # whether a conv computes by "auto" (measure_algorithms)
        self._place_data(data, dropout_key)

    def _place_data(self, data: DataPipeline, dropout_key) -> None:
        self.data = data
        self.train_data = TrainData(data.train, self.put)
        self.eval_data = {"dev": EvalData(data.dev, self.put)}
        if data.test is not None:
            self.eval_data["test"] = EvalData(data.test, self.put)
        self.keys = self.put(dropout_key)

    @classmethod
    def fresh(cls, config, data: DataPipeline, mesh) -> Engine:
        """A run of ``config`` from its seed, as the trainer starts it (parameters from ``fold_in(key(seed), 0)``,
        dropout key ``fold_in(key(seed), 1)``, ``K`` from ``config.train.steps_per_call`` (0: auto))."""
        from jaxconv.train.run import resolve_steps_per_call

        root = jax.random.key(int(config.seed))
        spec = make_spec(config, len(data.vocab), data.num_classes,
                         schedule_steps(config.train, data.train.steps_per_epoch))
        state = init_state(jax.random.fold_in(root, 0), spec).replicated(mesh)
        return cls(config, data, state, jax.random.fold_in(root, 1), mesh,
                   steps_per_call=resolve_steps_per_call(config))

    def epoch_calls(self, epoch: int) -> EpochCalls:
        """The run's dispatches of ``epoch`` (:func:`jaxconv.train.dispatch.epoch_calls`)."""
        return epoch_calls(self.data.train, epoch, self.k)

    def plans(self, calls: EpochCalls) -> list[dict]:
        """The epoch's row indices on the device, per bucket (:meth:`jaxconv.train.dispatch.TrainData.plans`)."""
        return self.train_data.plans(calls)

    def call(self, calls: EpochCalls, index: int, step: int = 0, lo: int = 0, hi: int | None = None) -> np.ndarray:
        """The packed :class:`~jaxconv.train.steps.Call` of ``calls``' call ``index``, its first batch being update
        ``step``, its steps ``lo <= j < hi`` applied (default: all)."""
        n = int(calls.length[index])
        return Call(int(calls.slot[index]), int(step), int(lo), n if hi is None else int(hi)).array()

    def _blank_call(self) -> np.ndarray:
        return np.zeros(len(Call._fields), np.int32)

    def _train_job(self, bucket: int, plan: dict) -> tuple:
        return "train", (self.state.model, self.state.opt, self.train_data.buckets[bucket], plan, self._blank_call(),
                         self.keys)

    def measure_algorithms(self, token_shapes) -> None:
        """Let convs with ``impl="auto"`` (or a model with ``conv_impl="auto"``) measure their algorithms for these
        ``(..., B, L)`` token batches now, before tracing: under ``jit`` an unmeasured shape runs ``"xla"``
        (:func:`jaxconv.inspection.measure_algorithms`)."""
        if self._uses_auto is None:                     # the model's static attributes: looked at once per engine
            self._uses_auto = uses_auto(nnx.merge(self.state.defs.model_def, self.state.model_state()))
        if not self._uses_auto:                         # no auto conv: nothing to merge or slice at each compile
            return
        state = self.state.model_state()
        model = nnx.merge(self.state.defs.model_def, jax.tree.map(lambda a: a[0], state) if self.vmapped else state)
        for shape in dict.fromkeys(tuple(s[-2:]) for s in token_shapes):      # a stack's leading run axis: vmapped
            for path, result in measure_algorithms(model, jax.ShapeDtypeStruct(shape, jnp.int32)).items():
                logging.getLogger("jaxconv.train").info("conv algorithm of %s for tokens %s: %s", path, shape, result)

    def compile(self, plans: list[dict]) -> None:
        """Compile every bucket's train program and every evaluation shape (in parallel threads)."""
        jobs = [self._train_job(b, plan) for b, plan in enumerate(plans)]
        shapes = {}
        for split in self.eval_data.values():
            for batch in split.batches:
                shapes.setdefault(batch["tokens"].shape, batch)
        batch_size = self.data.train.batch_size
        self.measure_algorithms([(batch_size, b["tokens"].shape[-1]) for b in self.train_data.buckets] + list(shapes))
        jobs += [("eval", (self.state.model, batch)) for batch in shapes.values()]
        self.train_exe = dict(enumerate(self.programs.compile(jobs)[:len(plans)]))

    def dispatch(self, bucket: int, plan: dict, call: np.ndarray) -> dict:
        """Run one call on ``bucket`` (``plan``: that bucket's entry of :meth:`plans`; ``call``: a packed
        :class:`~jaxconv.train.steps.Call`); returns the device per-step sums by name, ``(K,)`` each. A bucket not
        compiled yet (:meth:`compile`) is compiled first."""
        if bucket not in self.train_exe:
            self.measure_algorithms([(self.data.train.batch_size, self.train_data.buckets[bucket]["tokens"].shape[-1])])
            self.train_exe[bucket] = self.programs.executable(*self._train_job(bucket, plan))
        model, opt, sums = self.train_exe[bucket](self.state.model, self.state.opt, self.train_data.buckets[bucket],
                                                  plan, call, self.keys)
        self.state = TrainState(model, opt, self.state.defs)
        return sums

    def _evaluate(self, split: str, model: list | None) -> list:
        model = self.state.model if model is None else model
        batches = self.eval_data[split].batches
        self.measure_algorithms([batch["tokens"].shape for batch in batches])
        exe = self.programs.compile([("eval", (model, batch)) for batch in batches])
        return jax.device_get([e(model, batch) for e, batch in zip(exe, batches)])

    def evaluate(self, split: str, model: list | None = None) -> dict[str, float]:
        """The sums (:data:`jaxconv.train.tasks.SUMS`) over the real rows of ``split`` under ``model`` (default: the
        current one), float64 totals in a fixed order: the same numbers every run."""
        return add_sums(self._evaluate(split, model))
