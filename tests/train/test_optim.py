"""Learning-rate schedules (config.train.lr_schedule): their shapes, the row-sparse embedding update following the
same schedule as the dense one, and a trained run whose train records show the rate."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.configs import ConfigError, load_config
from jaxconv.models import build_model
from jaxconv.train import read_metrics, train_and_evaluate
from jaxconv.train.optim import (LR_SCHEDULES, SparseEmbeddingAdadelta, learning_rate_at, make_optimizer,
                                 make_schedule, schedule_steps, sparse_embedding_settings)
from jaxconv.train.trainer import make_steps


def _train(**overrides):
    values = {"data.synthetic.num_examples": 400, "data.max_buckets": 1, "model.embed_dim": 16, "model.filters": 8,
              "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 5, "train.optimizer": "adadelta",
              "train.learning_rate": 1.0, "progress": False, "tensorboard": False}
    return load_config("text_cnn", {**values, **overrides}).train


def test_schedules_fall_as_documented():
    total = 100
    constant = make_schedule(_train(), total)
    assert constant == 1.0 and learning_rate_at(constant, 57) == 1.0
    cosine = make_schedule(_train(**{"train.lr_schedule": "cosine"}), total)
    rates = [learning_rate_at(cosine, s) for s in range(total + 1)]
    assert rates[0] == pytest.approx(1.0) and rates[-1] == pytest.approx(0.0, abs=1e-7)
    assert rates[50] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)), abs=1e-6)
    assert all(a >= b for a, b in zip(rates, rates[1:]))
    warm = make_schedule(_train(**{"train.lr_schedule": "linear_warmup_cosine", "train.warmup_steps": 10}), total)
    assert learning_rate_at(warm, 0) == 0.0 and learning_rate_at(warm, 5) == pytest.approx(0.5)
    assert learning_rate_at(warm, 10) == pytest.approx(1.0) and learning_rate_at(warm, total) < 1e-6
    auto_warm = make_schedule(_train(**{"train.lr_schedule": "linear_warmup_cosine"}), total)   # 5% of 100 steps
    assert learning_rate_at(auto_warm, 5) == pytest.approx(1.0)
    step = make_schedule(_train(**{"train.lr_schedule": "step", "train.lr_step_factor": 0.5}), 90)  # drops every 30
    assert [learning_rate_at(step, s) for s in (0, 29, 30, 60, 89)] == pytest.approx([1.0, 1.0, 0.5, 0.25, 0.25])
    assert schedule_steps(_train(**{"train.epochs": 3}), 40) == 120
    assert schedule_steps(_train(**{"train.epochs": 3, "train.steps": 50}), 40) == 50


def test_an_unknown_schedule_is_refused_naming_the_field():
    with pytest.raises(ValueError, match=r"config.train.lr_schedule='linear' is not known; expected one of "
                                         r"'constant', 'cosine', 'linear_warmup_cosine', 'step'"):
        make_optimizer(_train(**{"train.lr_schedule": "linear"}), 10)
    assert LR_SCHEDULES == ("constant", "cosine", "linear_warmup_cosine", "step")


def test_a_bad_schedule_is_one_config_error_before_anything_runs(tmp_path):
    from jaxconv.configs import validate

    config = load_config("text_cnn", {"train.lr_schedule": "cosine", "train.warmup_steps": -1,
                                      "train.lr_step_factor": 0.0})
    with pytest.raises(ConfigError, match=r"config.train.lr_step_factor=0.0: expected a float in \(0, 1\].*"
                                          r"config.train.warmup_steps=-1: expected an int >= 0"):
        validate(config)
    with pytest.raises(ConfigError, match=r"config.train.lr_schedule='cosin': expected one of 'constant', 'cosine', "
                                          r"'linear_warmup_cosine', 'step'"):
        validate(load_config("text_cnn", {"train.lr_schedule": "cosin"}))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cosine", "step"])
def test_the_row_sparse_update_follows_the_schedule_as_the_dense_one_does(name):
    """10 Adadelta updates of Kim's CNN with a falling rate: the row-sparse table equals the dense optax one."""
    config = load_config("text_cnn", {"model.embed_dim": 16, "model.filters": 8, "train.optimizer": "adadelta",
                                      "train.learning_rate": 1.0, "train.lr_schedule": name})
    steps = 10
    lr, rho, eps = sparse_embedding_settings(config, steps)
    assert callable(lr) and float(lr(steps - 1)) < float(lr(0))
    tx = make_optimizer(config.train, steps)
    dense_model, sparse_model = (build_model(config, 40, 2, rngs=nnx.Rngs(params=0)) for _ in range(2))
    dense_opt = nnx.Optimizer(dense_model, tx, wrt=nnx.Param)
    sparse_opt = SparseEmbeddingAdadelta(sparse_model, tx, learning_rate=lr, rho=rho, eps=eps)
    train_step, _ = make_steps(config)
    rng = np.random.default_rng(0)
    for i in range(steps):
        tokens = rng.integers(1, 40, size=(8, 9)).astype(np.int32)
        batch = {"tokens": jnp.asarray(tokens), "labels": jnp.asarray(rng.integers(0, 2, 8), jnp.int32),
                 "weights": jnp.ones(8, jnp.float32)}
        a = train_step(dense_model, dense_opt, batch, jax.random.key(0), jnp.asarray(i, jnp.uint32))
        b = train_step(sparse_model, sparse_opt, batch, jax.random.key(0), jnp.asarray(i, jnp.uint32))
        np.testing.assert_allclose(float(b["loss"]), float(a["loss"]), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(sparse_model.embedding[...]), np.asarray(dense_model.embedding[...]),
                               rtol=1e-5, atol=1e-7)


def test_the_row_sparse_rate_at_update_s_is_the_schedules():
    """One row-sparse update at update ``s`` from zero accumulators moves a row by ``-rate(s) * u`` with Adadelta's
    ``u = sqrt(eps) / sqrt((1 - rho) g^2 + eps) * g``: the rate read back equals the schedule's at ``s``."""
    config = load_config("text_cnn", {"model.embed_dim": 4, "model.filters": 2, "train.optimizer": "adadelta",
                                      "train.lr_schedule": "linear_warmup_cosine", "train.warmup_steps": 4})
    schedule = make_schedule(config.train, 20)
    rho, eps = 0.95, 1e-6
    g = np.linspace(-1.0, 1.0, 4).astype(np.float32) + 0.1
    for s in (0, 2, 4, 9, 19):
        model = build_model(config, 8, 2, rngs=nnx.Rngs(params=0))
        opt = SparseEmbeddingAdadelta(model, make_optimizer(config.train, 20), learning_rate=schedule, rho=rho,
                                      eps=eps)
        opt.last_step[...] = jnp.full((8,), s, jnp.int32)                       # no skipped decays before s
        model.embedding[...] = jnp.zeros_like(model.embedding[...])             # the row moves from 0: exact
        before = np.asarray(model.embedding[...]).copy()
        tokens = jnp.asarray([[3]], jnp.int32)
        opt.update_embedding(model, tokens, jnp.asarray(g)[None, None, :], s)
        u = np.sqrt(eps) / np.sqrt((1 - rho) * g.astype(np.float64) ** 2 + eps) * g
        rate = (before[3] - np.asarray(model.embedding[...])[3]) / u
        np.testing.assert_allclose(rate, learning_rate_at(schedule, s), rtol=1e-5, atol=1e-9)
        np.testing.assert_array_equal(np.asarray(model.embedding[...])[4], before[4])   # other rows untouched


@pytest.mark.slow
def test_cosine_trains_and_its_train_records_show_the_rate_falling(tmp_path):
    config = load_config("text_cnn", {"data.synthetic.num_examples": 400, "data.max_buckets": 1,
                                      "model.embed_dim": 16, "model.filters": 8, "train.batch_size": 16,
                                      "train.epochs": 3, "train.log_every_steps": 5, "train.lr_schedule": "cosine",
                                      "progress": False, "tensorboard": False})
    result = train_and_evaluate(config, tmp_path)
    assert result["test_accuracy"] > 0.6
    train = read_metrics(tmp_path, "train")
    rates = [r["learning_rate"] for r in train]
    total = schedule_steps(config.train, 20)
    assert rates[0] == pytest.approx(learning_rate_at(make_schedule(config.train, total), train[0]["step"] - 1))
    assert all(a > b for a, b in zip(rates, rates[1:])) and rates[-1] < 0.05 * config.train.learning_rate
    constant = read_metrics(train_and_evaluate(load_config("text_cnn", {
        "data.synthetic.num_examples": 200, "model.embed_dim": 8, "model.filters": 4, "train.epochs": 1,
        "train.log_every_steps": 2, "progress": False, "tensorboard": False}), tmp_path / "c")["workdir"], "train")
    assert {r["learning_rate"] for r in constant} == {0.003}
