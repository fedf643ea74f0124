"""The compiled steps and the dispatches: K steps per dispatch against K single steps on the same batches (losses and
every array to 1e-6), masked steps that change nothing, the epoch as runs of K same-bucket batches, a run with
K > 1 that stops mid-call and resumes exactly, times reported apart, bfloat16 compute."""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from jaxconv.configs import load_config
from jaxconv.train import build_data, load_params, read_metrics, train_and_evaluate
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.engine import Engine
from jaxconv.train.run import resolve_steps_per_call
from jaxconv.train.dispatch import epoch_calls
from jaxconv.train.stacked_engine import Dispatches
from jaxconv.train.tasks import SUMS

pytestmark = pytest.mark.slow  # compiled K-step programs and end-to-end runs

TINY = {"data.synthetic.num_examples": 400, "data.max_buckets": 2, "model.embed_dim": 16, "model.filters": 8,
        "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 5, "train.checkpoint_every_steps": 0,
        "train.optimizer": "adadelta", "train.learning_rate": 1.0, "progress": False, "tensorboard": False}


def tiny(**overrides):
    return load_config("text_cnn", {**TINY, **overrides})


@pytest.fixture(scope="module")
def data():
    config = tiny()
    return build_data(config, min_length=max(config.model.widths))


#: Steps per call of the K-step tests.
K = 4


def _leaves(engine: Engine) -> list[np.ndarray]:
    return [np.asarray(x) for x in engine.state.model + engine.state.opt]


def _sums(sums: dict) -> np.ndarray:
    """A dispatch's named per-step sums as one ``(K, 3)`` array: loss_sum, correct, count."""
    return np.stack([np.asarray(sums[k]) for k in SUMS], axis=-1)


def _plan(engine: Engine, rows: np.ndarray, weights: np.ndarray) -> dict:
    return engine.put({"rows": rows.astype(np.int32), "weights": weights.astype(np.float32)})


@pytest.mark.parametrize("optimizer", ["adadelta", "adam"])   # the row-sparse embedding update, and a dense one
def test_k_steps_in_one_call_equal_k_single_calls(data, optimizer):
    """Feeding the same K=4 batches: one call of K steps and K calls of 1 step give the same losses and arrays (on
    CPU the K steps are unrolled, so compiling grows with K; 4 shows as much as 8)."""
    mesh = mesh_lib.make_mesh()
    one = Engine.fresh(tiny(**{"train.steps_per_call": 1, "train.optimizer": optimizer}), data, mesh)
    many = Engine.fresh(tiny(**{"train.steps_per_call": K, "train.optimizer": optimizer}), data, mesh)
    calls = many.epoch_calls(0)
    c = int(np.flatnonzero(calls.length == K)[0])
    bucket, slot = int(calls.bucket[c]), int(calls.slot[c])
    rows, weights = calls.rows[bucket][slot], calls.weights[bucket][slot]                   # (K, B) each
    assert (weights[:, -1] == 0).any() or (weights == 1).all()

    big = many.dispatch(bucket, many.plans(calls)[bucket], np.asarray([slot, 0, 0, K], np.int32))
    plan_one = _plan(one, rows[:, None], weights[:, None])                                  # K calls of 1 step
    small = [one.dispatch(bucket, plan_one, np.asarray([j, j, 0, 1], np.int32)) for j in range(K)]
    big, small = _sums(big), np.concatenate([_sums(s) for s in small])                     # (K, 3) each
    assert big.shape == (K, 3) and np.all(big[:, 2] > 0)
    np.testing.assert_allclose(big[:, 0] / big[:, 2], small[:, 0] / small[:, 2], rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(big[:, 1:], small[:, 1:])
    for a, b in zip(_leaves(many), _leaves(one)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_masked_steps_leave_every_array_as_it_was(data):
    """Steps outside [lo, hi) change nothing: a call applying steps 1..2 of 4 equals single steps 1..2."""
    mesh = mesh_lib.make_mesh()
    many = Engine.fresh(tiny(**{"train.steps_per_call": K}), data, mesh)
    one = Engine.fresh(tiny(**{"train.steps_per_call": 1}), data, mesh)
    calls = many.epoch_calls(0)
    c = int(np.flatnonzero(calls.length == K)[0])
    bucket, slot = int(calls.bucket[c]), int(calls.slot[c])
    rows, weights = calls.rows[bucket][slot], calls.weights[bucket][slot]
    before = _leaves(many)
    none = _sums(many.dispatch(bucket, many.plans(calls)[bucket], np.asarray([slot, 0, 2, 2], np.int32)))
    assert (none == 0).all()
    for a, b in zip(_leaves(many), before):
        np.testing.assert_array_equal(a, b)
    sums = _sums(many.dispatch(bucket, many.plans(calls)[bucket], np.asarray([slot, 10, 1, 3], np.int32)))
    assert (sums[[0, 3]] == 0).all() and (sums[1:3, 2] > 0).all()            # masked before lo and from hi on
    plan_one = _plan(one, rows[:, None], weights[:, None])
    small = np.concatenate([_sums(one.dispatch(bucket, plan_one, np.asarray([j, 10 + j, 0, 1], np.int32)))
                            for j in range(1, 3)])
    np.testing.assert_allclose(sums[1:3], small, rtol=1e-6)
    for a, b in zip(_leaves(many), _leaves(one)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_epoch_is_shuffled_runs_of_k_same_bucket_batches(data):
    bb = data.train
    plan = bb.epoch_plan(3)
    ones = epoch_calls(bb, 3, 1)
    assert ones.steps == bb.steps_per_epoch == len(plan)
    for i, (bucket, examples) in enumerate(plan):            # K=1: the batch order of epoch_plan, exactly
        assert int(ones.bucket[i]) == bucket
        rows, weights = bb.batch_rows(examples)
        np.testing.assert_array_equal(ones.rows[bucket][ones.slot[i], 0], rows)
    fours = epoch_calls(bb, 3, 4)
    assert fours.steps == bb.steps_per_epoch and (fours.length <= 4).all()
    for b in range(len(bb.bucket_lengths)):                  # one call per bucket is shorter, at most
        lengths = fours.length[fours.bucket == b]
        assert (lengths < 4).sum() <= 1
    seen, count = set(), 0
    for b, slot, n in zip(fours.bucket, fours.slot, fours.length):
        rows = fours.rows[int(b)][slot, :n][fours.weights[int(b)][slot, :n] > 0]
        seen |= {(int(b), int(r)) for r in rows}
        count += len(rows)
    assert count == len(seen) == bb.num_examples             # every example once
    assert list(fours.bucket) == list(epoch_calls(bb, 3, 4).bucket) != list(epoch_calls(bb, 4, 4).bucket)
    assert fours.locate(0) == (0, 0) and fours.locate(int(fours.length[0]) + 1) == (1, 1)
    assert fours.locate(fours.steps) == (len(fours.bucket), 0)


def test_dispatches_keep_each_runs_own_order(data):
    """Two runs with different seeds stacked: each run steps through its own calls, in its own order."""
    other = build_data(tiny(seed=1), min_length=5)
    calls = [epoch_calls(data.train, 0, 2), epoch_calls(other.train, 0, 2)]
    assert list(calls[0].bucket) != list(calls[1].bucket)
    taken = [[], []]
    for bucket, call, moved in Dispatches(calls, [0, 0], [0, 0], [0, 0]):
        assert len(moved) >= 1 and all(call[i, 3] == 0 for i in range(2) if i not in [m[0] for m in moved])
        for i, before, n, lo in moved:
            assert call[i, 1] == before and lo == 0 and n == call[i, 3]
            taken[i].append((bucket, int(call[i, 0])))
    for i in range(2):
        assert taken[i] == [(int(b), int(s)) for b, s in zip(calls[i].bucket, calls[i].slot)]
    capped = list(Dispatches([calls[0]], [3], [10], [12]))    # resumed after 3 steps, 2 more allowed by the cap
    assert sum(n for _, _, moved in capped for _, _, n, _ in moved) == 2


def test_steps_per_call_auto_and_errors():
    assert resolve_steps_per_call(tiny(**{"train.steps_per_call": 0}), "cpu") == 1
    assert resolve_steps_per_call(tiny(**{"train.steps_per_call": 0}), "gpu") == 8
    assert resolve_steps_per_call(tiny(**{"train.steps_per_call": 5}), "gpu") == 5
    with pytest.raises(ValueError, match=r"config.train.steps_per_call=-1 is not valid; expected an int >= 1"):
        resolve_steps_per_call(tiny(**{"train.steps_per_call": -1}))


def test_k4_run_stopped_mid_call_resumes_exactly(tmp_path):
    """With K=4 a run capped at step 7 (inside a call) and continued equals the uninterrupted run."""
    k4 = {"train.steps_per_call": 4, "train.epochs": 2}
    full = train_and_evaluate(tiny(**k4), tmp_path / "full")
    assert full["steps_per_call"] == 4 and full["test_accuracy"] > 0.6
    records = read_metrics(tmp_path / "full", "train")
    assert [r["step"] for r in records][:3] == [5, 10, 15]     # records at multiples of log_every, not of K
    train_and_evaluate(tiny(**k4, **{"train.steps": 7}), tmp_path / "resumed")
    resumed = train_and_evaluate(tiny(**k4), tmp_path / "resumed")
    assert resumed["step"] == full["step"]
    for what in ("model", "optimizer"):
        ours, theirs = load_params(tmp_path / "resumed", what=what), load_params(tmp_path / "full", what=what)
        for k in ours:
            assert np.array_equal(ours[k], theirs[k]), f"{what}/{k} differs after resume"
    strip = lambda recs: [{k: v for k, v in r.items() if not k.endswith(("_s", "time", "_sec")) and "compile" not in k}
                          for r in recs]
    # The capped run logged and evaluated at its cap (step 7), as any capped run does; from the first full window
    # after it on, the records are the uninterrupted run's.
    after = lambda d: strip(r for r in read_metrics(d) if r["step"] > 10)
    assert after(tmp_path / "resumed") == after(tmp_path / "full") and len(after(tmp_path / "full")) >= 6


def test_throughput_excludes_eval_and_checkpoint_time(tmp_path, monkeypatch):
    """A slow dev evaluation and slow checkpoint saves show in eval_time_s / checkpoint_time_s, not in the
    examples_per_sec of the train records around them."""
    from jaxconv.train.checkpoint import Checkpoints

    evaluate, save = Engine.evaluate, Checkpoints.save

    def slow_evaluate(self, split, model=None):
        time.sleep(1.0)
        return evaluate(self, split, model)

    def slow_save(self, *args, **kwargs):
        time.sleep(0.5)
        return save(self, *args, **kwargs)

    monkeypatch.setattr(Engine, "evaluate", slow_evaluate)
    monkeypatch.setattr(Checkpoints, "save", slow_save)
    result = train_and_evaluate(tiny(**{"train.log_every_steps": 4}), tmp_path)   # tiny()'s programs: compiled once
    dev = read_metrics(tmp_path, "dev")
    assert all(r["eval_time_s"] >= 1.0 for r in dev) and dev[-1]["checkpoint_time_s"] >= 1.0
    assert result["eval_time_s"] >= 2.0 and result["checkpoint_time_s"] >= 1.5
    train = read_metrics(tmp_path, "train")
    second_epoch = [r for r in train if r["epoch"] == 2]
    first = second_epoch[0]                                   # its window follows the eval and the saves
    assert first["examples_per_sec"] > 4 * 16 / 0.5, first    # far more than 64 examples in 1.5 s of sleeping
    assert result["train_time_s"] < result["wall_time_s"] - 2.5


def test_checkpoints_at_the_end_only_give_the_same_run(tmp_path):
    """checkpoint_every_epochs=0: one latest checkpoint (the last step) and the best one, written at the end; the same
    metrics, best model and test score as saving every epoch."""
    every = train_and_evaluate(tiny(), tmp_path / "every")
    end = train_and_evaluate(tiny(**{"train.checkpoint_every_epochs": 0}), tmp_path / "end")
    assert [p.name for p in (tmp_path / "end" / "checkpoints" / "latest").iterdir()] == [str(end["step"])]
    assert len(list((tmp_path / "every" / "checkpoints" / "latest").iterdir())) == 2
    assert (end["best_step"], end["test_accuracy"]) == (every["best_step"], every["test_accuracy"])
    for name, value in load_params(tmp_path / "end", "best").items():
        np.testing.assert_array_equal(value, load_params(tmp_path / "every", "best")[name])


def test_bfloat16_compute_keeps_float32_parameters(tmp_path):
    from flax import nnx

    from jaxconv.models import build_model

    config = tiny(**{"model.compute_dtype": "bfloat16", "train.epochs": 3, "data.max_buckets": 1})
    model = build_model(config, 50, 2, rngs=nnx.Rngs(0))
    tokens = np.ones((2, 12), np.int32)
    assert model(tokens).dtype == np.dtype("bfloat16") and model.embed(tokens).dtype == np.float32
    result = train_and_evaluate(config, tmp_path)
    assert result["test_accuracy"] > 0.6
    for what in ("model", "optimizer"):
        assert {str(v.dtype) for v in load_params(tmp_path, what=what).values()} <= {"float32", "int32", "uint32"}
    with pytest.raises(ValueError, match=r"TextCNN: compute_dtype='float16' is not known; expected one of 'float32', "
                                         r"'bfloat16'"):
        build_model(tiny(**{"model.compute_dtype": "float16"}), 50, 2)


def test_engine_evaluate_matches_the_sums_of_its_batches(data):
    engine = Engine.fresh(tiny(), data, mesh_lib.make_mesh())
    sums = engine.evaluate("dev")
    result = {"examples": sums["count"], "accuracy": sums["correct"] / sums["count"]}
    model, _ = engine.state.modules()
    correct = count = 0.0
    for b in data.dev.epoch(0):
        pred = np.asarray(model(b.tokens)).argmax(-1)
        correct += float(((pred == b.labels) * b.weights).sum())
        count += float(b.weights.sum())
    assert result["examples"] == count == len(data.dev.lengths) and result["accuracy"] == pytest.approx(correct / count)
    jax.block_until_ready(engine.state.model)
