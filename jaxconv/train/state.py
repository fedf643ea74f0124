"""What a run carries: the model and optimizer as arrays (:class:`TrainState`), and its bookkeeping (:class:`RunState`).

The model and optimizer are split once (``nnx.split``) into a static part (:class:`StateDefs`: graph definitions
and pytree structures, hashable, so equal across runs of one shape) and flat lists of arrays. The compiled steps
(:mod:`jaxconv.train.steps`) take and return those lists: no NNX graph is walked at dispatch. A stack of ``R`` runs
is the same lists with a leading run axis on every array.

:class:`RunState` holds the counters, the best-so-far and early-stopping state, the times and the open metrics
window; it round-trips through the checkpoint's JSON meta (:meth:`RunState.to_meta` / :meth:`RunState.from_meta`).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxconv.models import build_model
from jaxconv.train.optim import SPARSE_STATE, SparseEmbeddingAdadelta, make_optimizer, sparse_embedding_settings
from jaxconv.train.tasks import SUMS

__all__ = ["StateDefs", "TrainState", "RunState", "Window", "StateSpec", "make_spec", "create_modules", "init_state"]


@dataclasses.dataclass(frozen=True)
class StateDefs:
    """The static half of a split model and optimizer (hashable; equal for runs of one model shape).

    Attributes:
      model_def, opt_def: ``nnx.GraphDef`` s.
      model_tree, opt_tree: the ``jax.tree`` structures of their ``nnx.State`` s.
      model_sparse, opt_sparse: per leaf, whether the row-sparse embedding update writes it itself (the table and
        its accumulators): a masked step leaves those to that update and selects every other leaf.
    """

    model_def: Any
    opt_def: Any
    model_tree: Any
    opt_tree: Any
    model_sparse: tuple[bool, ...]
    opt_sparse: tuple[bool, ...]


def _first_key(path) -> str:
    key = path[0]
    return str(getattr(key, "key", getattr(key, "name", key)))


@dataclasses.dataclass
class TrainState:
    """A model and its optimizer as flat lists of arrays, with the :class:`StateDefs` that rebuild them.

    Attributes:
      model: the leaves of ``nnx.state(model)`` (shapes as the model's variables, e.g. the table ``(V, D)``; with a
        leading run axis ``(R, ...)`` in a stack).
      opt: the leaves of ``nnx.state(optimizer)``.
      defs: :class:`StateDefs`.
    """

    model: list
    opt: list
    defs: StateDefs

    @classmethod
    def split(cls, model: nnx.Module, optimizer: nnx.Module) -> TrainState:
        model_def, model_state = nnx.split(model)
        opt_def, opt_state = nnx.split(optimizer)
        m_paths, model_tree = jax.tree_util.tree_flatten_with_path(model_state)
        o_paths, opt_tree = jax.tree_util.tree_flatten_with_path(opt_state)
        sparse = isinstance(optimizer, SparseEmbeddingAdadelta)
        defs = StateDefs(model_def, opt_def, model_tree, opt_tree,
                         tuple(sparse and _first_key(p) == "embedding" for p, _ in m_paths),
                         tuple(sparse and _first_key(p) in SPARSE_STATE for p, _ in o_paths))
        return cls([x for _, x in m_paths], [x for _, x in o_paths], defs)

    def model_state(self) -> nnx.State:
        return jax.tree.unflatten(self.defs.model_tree, self.model)

    def opt_state(self) -> nnx.State:
        return jax.tree.unflatten(self.defs.opt_tree, self.opt)

    def modules(self) -> tuple[nnx.Module, nnx.Module]:
        """``(model, optimizer)`` rebuilt around these arrays (for inspection; the trainer never needs them)."""
        return nnx.merge(self.defs.model_def, self.model_state()), nnx.merge(self.defs.opt_def, self.opt_state())

    def with_states(self, model_state: Any, opt_state: Any = None) -> TrainState:
        """The same structure with the arrays of ``model_state`` (and ``opt_state``), e.g. restored ones."""
        opt = self.opt if opt_state is None else jax.tree.leaves(opt_state)
        return TrainState(jax.tree.leaves(model_state), opt, self.defs)

    def replicated(self, mesh) -> TrainState:
        """The same arrays with a full copy on every device of ``mesh`` (:func:`jaxconv.train.mesh.replicate`)."""
        from jaxconv.train.mesh import replicate

        return TrainState(replicate(self.model, mesh), replicate(self.opt, mesh), self.defs)

    @staticmethod
    def stack(states: list[TrainState]) -> TrainState:
        """``R`` states of one :class:`StateDefs` -> one state whose arrays have a leading run axis ``(R, ...)``."""
        defs = states[0].defs
        for i, s in enumerate(states):
            if s.defs != defs:
                raise ValueError(f"TrainState.stack: state {i} has another model or optimizer structure than state 0; "
                                 f"only runs of one model shape stack.")
        return TrainState([jnp.stack(xs) for xs in zip(*(s.model for s in states))],
                          [jnp.stack(xs) for xs in zip(*(s.opt for s in states))], defs)

    def unstack(self, r: int) -> TrainState:
        """Run ``r`` of a stack (arrays without the run axis)."""
        return TrainState([x[r] for x in self.model], [x[r] for x in self.opt], self.defs)


class StateSpec(NamedTuple):
    """What a model and its optimizer are built from (hashable: runs with equal specs share compiled programs).

    Attributes:
      model: ``config.model`` as sorted ``(field, value)`` items.
      vocab_size, num_classes: the embedding rows and the classes (a language model: the vocabulary size).
      optimizer: the optax transformation (:func:`jaxconv.train.optim.make_optimizer`).
      sparse: the row-sparse embedding Adadelta's ``(rate or schedule, rho, eps)``, or None (dense updates only).
    """

    model: tuple
    vocab_size: int
    num_classes: int
    optimizer: Any
    sparse: tuple | None


def make_spec(config, vocab_size: int, num_classes: int, total_steps: int = 1) -> StateSpec:
    """The :class:`StateSpec` of ``config`` for a run of ``total_steps`` updates (the span of its learning-rate
    schedule, :func:`jaxconv.train.optim.schedule_steps`)."""
    return StateSpec(tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in config.model.items())),
                     int(vocab_size), int(num_classes), make_optimizer(config.train, total_steps),
                     sparse_embedding_settings(config, total_steps))


def create_modules(key, spec: StateSpec, pretrained=None) -> tuple[nnx.Module, nnx.Module]:
    """Model and optimizer from ``spec`` (:func:`make_spec`): an ``nnx.Optimizer`` over every Param, or a
    :class:`~jaxconv.train.optim.SparseEmbeddingAdadelta` when the spec's sparse settings are not None."""
    model = build_model({"model": dict(spec.model)}, spec.vocab_size, spec.num_classes, rngs=nnx.Rngs(params=key),
                        pretrained=pretrained)
    if spec.sparse is not None:
        lr, rho, eps = spec.sparse
        return model, SparseEmbeddingAdadelta(model, spec.optimizer, learning_rate=lr, rho=rho, eps=eps)
    return model, nnx.Optimizer(model, spec.optimizer, wrt=nnx.Param)


# One compiled program (cached per spec) instead of one per initialiser op.
_create_jit = nnx.jit(create_modules, static_argnames=("spec",))


def init_state(key, spec, pretrained=None) -> TrainState:
    """The initial :class:`TrainState` of ``spec`` with parameters from ``key``; jitted unless a host ``pretrained``
    ``(V, D)`` table is given."""
    modules = create_modules(key, spec, pretrained) if pretrained is not None else _create_jit(key, spec=spec)
    return TrainState.split(*modules)


# ======================================================================================================================
# Bookkeeping
# ======================================================================================================================

@dataclasses.dataclass
class Window:
    """Train sums (:data:`jaxconv.train.tasks.SUMS`, by name) since the last train record, and the steps they
    cover (saved in checkpoints, so a resumed run logs the same)."""

    sums: dict = dataclasses.field(default_factory=lambda: dict.fromkeys(SUMS, 0.0))
    steps: int = 0

    def add(self, sums: dict) -> None:
        for k in SUMS:
            self.sums[k] += float(sums[k])
        self.steps += 1

    def state(self) -> dict:
        return dict(self.sums, steps=self.steps)

    @classmethod
    def from_state(cls, state: dict | None) -> Window:
        state = state or {}
        return cls({k: float(state.get(k, 0.0)) for k in SUMS}, int(state.get("steps", 0)))


@dataclasses.dataclass
class RunState:
    """A run's counters and records, saved with every checkpoint.

    Attributes:
      step: updates applied; epoch: epochs completed (0-based index of the current one); step_in_epoch: updates of
        the current epoch applied (a resume restarts the epoch's schedule there).
      best_dev_accuracy, best_dev_loss, best_step, best_epoch: the best dev evaluation so far (epoch 1-based).
      epochs_without_improvement, stopped_early: early stopping.
      train_time_s, eval_time_s, checkpoint_time_s: seconds spent training (dispatch to the last step's metrics),
        evaluating on dev, and saving checkpoints; wall_time_s: all of it over every invocation of the run.
      epoch_times: wall seconds of each completed epoch.
      steps_per_call: the ``K`` the run's schedule was made with (kept when the run resumes).
      window: the open train-metrics :class:`Window`.
    """

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    best_dev_accuracy: float = -1.0
    best_dev_loss: float = math.inf
    best_step: int | None = None
    best_epoch: int | None = None
    epochs_without_improvement: int = 0
    stopped_early: bool = False
    train_time_s: float = 0.0
    eval_time_s: float = 0.0
    checkpoint_time_s: float = 0.0
    wall_time_s: float = 0.0
    epoch_times: list = dataclasses.field(default_factory=list)
    steps_per_call: int | None = None
    window: Window = dataclasses.field(default_factory=Window)

    def to_meta(self) -> dict:
        meta = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "window"}
        return dict(meta, epoch_times=list(self.epoch_times), window=self.window.state())

    @classmethod
    def from_meta(cls, meta: dict) -> RunState:
        """From a checkpoint's meta (fields it lacks keep their defaults: checkpoints of older versions resume)."""
        names = {f.name for f in dataclasses.fields(cls)} - {"window"}
        state = cls(**{k: v for k, v in meta.items() if k in names})
        state.window = Window.from_state(meta.get("window"))
        return state

    def finished(self, epochs: int, cap: int) -> bool:
        """Whether training is over: stopped early, all ``epochs`` done, or the step ``cap`` (0: none) reached."""
        return bool(self.stopped_early or self.epoch >= epochs or (cap and self.step >= cap))

    def record_dev(self, metrics: dict, epoch_done: bool, task) -> bool:
        """Count a dev evaluation (``{"loss", "accuracy", ...}``) at the current step; returns whether it is the best
        so far by ``task``'s rule (:meth:`jaxconv.train.tasks.Task.improved`)."""
        improved = task.improved(metrics, self.best_dev_accuracy, self.best_dev_loss)
        if improved:
            self.best_dev_accuracy, self.best_dev_loss = metrics["accuracy"], metrics["loss"]
            self.best_step, self.best_epoch, self.epochs_without_improvement = self.step, self.epoch + 1, 0
        elif epoch_done:
            self.epochs_without_improvement += 1
        return improved


def num_params(state: TrainState) -> int:
    """Scalars in the model's ``nnx.Param`` s (of one run)."""
    params = nnx.state(nnx.merge(state.defs.model_def, state.model_state()), nnx.Param)
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(params)))
