"""The trainer's lazy row-sparse Adadelta for the embedding table (config.train.sparse_embedding) against the dense
optax.adadelta update: same parameters, losses and accumulators; untouched rows unread; exact resume."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxconv.configs import load_config
from jaxconv.models import build_model
from jaxconv.train import load_params, read_metrics, train_and_evaluate
from jaxconv.train.trainer import SparseEmbeddingAdadelta, make_optimizer, make_steps, sparse_embedding_settings

pytestmark = pytest.mark.slow  # end-to-end runs of the row-sparse update


def _config(**overrides):
    values = {"data.synthetic.num_examples": 400, "data.max_buckets": 1, "model.embed_dim": 16, "model.filters": 8,
              "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 5, "train.checkpoint_every_steps": 0,
              "train.optimizer": "adadelta", "train.learning_rate": 1.0, "progress": False, "tensorboard": False}
    return load_config("text_cnn", {**values, **overrides})


V = 40
UNTOUCHED = (30, 31, 35, 39)   # never in a batch
RARE = 29                       # only in the first and the last batch


def _batches(n=10, b=12, length=9):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        tokens = rng.integers(1, RARE, size=(b, length)).astype(np.int32)     # ids 1..28
        tokens[:, 7:] = 0                                                    # pads
        tokens[:, :7][rng.random((b, 7)) < 0.2] = 0                          # and some inside
        if i in (0, n - 1):
            tokens[0, 1] = RARE
        out.append({"tokens": jnp.asarray(tokens), "labels": jnp.asarray(rng.integers(0, 2, size=b), jnp.int32),
                    "weights": jnp.asarray((np.arange(b) < b - 2).astype(np.float32))})   # two filler rows
    return out


def _flat(state) -> dict[str, np.ndarray]:
    return {"/".join(map(str, p)): np.asarray(v) for p, v in nnx.to_flat_state(state)}


def test_sparse_matches_dense_adadelta_and_leaves_untouched_rows_alone():
    config = _config()
    settings = sparse_embedding_settings(config)
    assert settings == (1.0, 0.95, 1e-6)
    tx = make_optimizer(config.train)
    dense_model = build_model(config, V, 2, rngs=nnx.Rngs(params=0))
    sparse_model = build_model(config, V, 2, rngs=nnx.Rngs(params=0))
    init = np.asarray(sparse_model.embedding[...]).copy()
    dense_opt = nnx.Optimizer(dense_model, tx, wrt=nnx.Param)
    sparse_opt = SparseEmbeddingAdadelta(sparse_model, tx, learning_rate=1.0, rho=0.95, eps=1e-6)
    train_step, _ = make_steps(config)
    key = jax.random.key(0)
    batches = _batches()
    for i, batch in enumerate(batches):
        a = train_step(dense_model, dense_opt, batch, key, jnp.asarray(i, jnp.uint32))
        b = train_step(sparse_model, sparse_opt, batch, key, jnp.asarray(i, jnp.uint32))
        np.testing.assert_allclose(float(b["loss"]), float(a["loss"]), rtol=1e-6)
        assert float(a["correct"]) == float(b["correct"])
    dense, sparse = _flat(nnx.state(dense_model, nnx.Param)), _flat(nnx.state(sparse_model, nnx.Param))
    assert sorted(dense) == sorted(sparse)
    for k in dense:
        np.testing.assert_allclose(sparse[k], dense[k], rtol=1e-5, atol=1e-7, err_msg=k)
    assert int(sparse_opt.step[...]) == len(batches)

    table = np.asarray(sparse_model.embedding[...])
    np.testing.assert_array_equal(table[0], 0.0)                              # pad row stays zero
    np.testing.assert_array_equal(table[list(UNTOUCHED)], init[list(UNTOUCHED)])
    last = np.asarray(sparse_opt.last_step[...])
    assert (last[list(UNTOUCHED)] == 0).all() and (np.asarray(sparse_opt.e_g[...])[list(UNTOUCHED)] == 0).all()
    assert last[RARE] == len(batches)          # touched at the last step

    # The lazily decayed accumulators equal the dense ones (rows touched or not).
    dense_opt_state = _flat(nnx.state(dense_opt))
    e_g = next(v for k, v in dense_opt_state.items() if k.endswith("e_g/embedding"))
    e_x = next(v for k, v in dense_opt_state.items() if k.endswith("e_x/embedding"))
    decay = (0.95 ** (len(batches) - last)).astype(np.float32)[:, None]
    np.testing.assert_allclose(np.asarray(sparse_opt.e_g[...]) * decay, e_g, rtol=1e-5, atol=1e-12)
    np.testing.assert_allclose(np.asarray(sparse_opt.e_x[...]) * decay, e_x, rtol=1e-5, atol=1e-12)
    assert np.abs(e_g[RARE]).max() > 0


def test_sparse_only_for_adadelta_and_trained_tables():
    assert sparse_embedding_settings(_config(**{"train.sparse_embedding": False})) is None
    assert sparse_embedding_settings(_config(**{"train.optimizer": "adam"})) is None
    assert sparse_embedding_settings(_config(**{"model.embedding": "static"})) is None
    assert sparse_embedding_settings(_config(**{"model.embedding": "multichannel"})) is None


def test_trainer_sparse_equals_dense_and_resumes_exactly(tmp_path):
    full = train_and_evaluate(_config(), tmp_path / "sparse")
    train_and_evaluate(_config(**{"train.sparse_embedding": False}), tmp_path / "dense")
    a, b = read_metrics(tmp_path / "sparse", "train"), read_metrics(tmp_path / "dense", "train")
    assert [r["step"] for r in a] == [r["step"] for r in b] and len(a) >= 4
    np.testing.assert_allclose([r["loss"] for r in a], [r["loss"] for r in b], rtol=1e-5)
    ps, pd = load_params(tmp_path / "sparse"), load_params(tmp_path / "dense")
    assert sorted(ps) == sorted(pd)
    for k in ps:
        np.testing.assert_allclose(ps[k], pd[k], rtol=1e-4, atol=1e-6, err_msg=k)
    opt = load_params(tmp_path / "sparse", what="optimizer")
    assert any(k.endswith("last_step") for k in opt) and any(k.endswith("e_g") for k in opt)

    # Stop after 7 steps (mid-epoch), then continue the same workdir: identical to the uninterrupted run.
    train_and_evaluate(_config(**{"train.steps": 7}), tmp_path / "resumed")
    resumed = train_and_evaluate(_config(), tmp_path / "resumed")
    assert resumed["step"] == full["step"]
    for what in ("model", "optimizer"):
        ours, theirs = load_params(tmp_path / "resumed", what=what), load_params(tmp_path / "sparse", what=what)
        assert sorted(ours) == sorted(theirs)
        for k in ours:
            assert np.array_equal(ours[k], theirs[k]), f"{what}/{k} differs after resume"


def test_sparse_update_reads_out_of_range_ids_as_unk():
    """Under jit an id outside [0, V) is read as <unk> (id 1) by the model; the row-sparse update of the table sends
    its gradient to that same row (not to a row counted from the end, and not nowhere)."""
    config = _config()
    tx = make_optimizer(config.train)
    train_step, _ = make_steps(config)
    batch = _batches(n=1)[0]
    tokens = np.array(batch["tokens"])
    tokens[0, 0], tokens[1, 2], tokens[2, 3] = 1, 1, 1
    bad = tokens.copy()
    bad[0, 0], bad[1, 2], bad[2, 3] = V, -1, -V
    runs = []
    for t in (tokens, bad):
        model = build_model(config, V, 2, rngs=nnx.Rngs(params=0))
        opt = SparseEmbeddingAdadelta(model, tx, learning_rate=1.0, rho=0.95, eps=1e-6)
        out = train_step(model, opt, dict(batch, tokens=jnp.asarray(t)), jax.random.key(0), jnp.asarray(0, jnp.uint32))
        runs.append((float(out["loss"]), _flat(nnx.state(model, nnx.Param)), _flat(nnx.state(opt))))
    (loss_a, params_a, opt_a), (loss_b, params_b, opt_b) = runs
    assert loss_a == loss_b
    for k in params_a:
        np.testing.assert_array_equal(params_b[k], params_a[k], err_msg=k)
    for k in opt_a:
        np.testing.assert_array_equal(opt_b[k], opt_a[k], err_msg=k)
