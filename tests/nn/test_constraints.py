"""Max-norm: the pure projection, the in-place NNX projection, and the optax transform."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxconv.nn.constraints import apply_max_norm, matching_params, optax_max_norm, project_max_norm


def _kernel(seed=0, shape=(12, 5), scale=3.0):
    w = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    w[:, 1] *= 0.05   # column 1 well inside the ball
    w[:, 3] *= scale  # column 3 far outside
    return w


def test_norms_bounded_inside_unchanged_direction_kept():
    w = _kernel()
    p = np.asarray(project_max_norm(w, 3.0, axis=0))
    norms_before = np.linalg.norm(w, axis=0)
    norms_after = np.linalg.norm(p, axis=0)
    assert (norms_after <= 3.0 * (1 + 1e-6)).all()
    inside = norms_before <= 3.0
    assert inside.any() and (~inside).any()
    np.testing.assert_array_equal(p[:, inside], w[:, inside])           # bit for bit
    np.testing.assert_allclose(norms_after[~inside], 3.0, rtol=1e-6)    # onto the sphere
    cos = (p * w).sum(0) / (norms_after * norms_before)
    np.testing.assert_allclose(cos, 1.0, rtol=1e-6)                      # same direction


def test_axis_selects_which_vectors():
    w = _kernel(shape=(4, 6))
    rows = np.asarray(project_max_norm(w, 1.0, axis=1))   # per row: each w[i, :]
    assert (np.linalg.norm(rows, axis=1) <= 1.0 + 1e-6).all()
    both = np.asarray(project_max_norm(w, 1.0, axis=(0, 1)))  # the whole matrix as one vector
    np.testing.assert_allclose(np.linalg.norm(both), min(1.0, np.linalg.norm(w)), rtol=1e-6)


def test_zero_vector_and_bad_arguments():
    w = np.zeros((3, 2), np.float32)
    np.testing.assert_array_equal(np.asarray(project_max_norm(w, 3.0)), w)
    with pytest.raises(ValueError, match=r"max_norm must be > 0; got max_norm=0"):
        project_max_norm(w, 0)
    with pytest.raises(ValueError, match=r"axis=2 is out of range for an array of shape \(3, 2\)"):
        project_max_norm(w, 1.0, axis=2)


class _Net(nnx.Module):
    def __init__(self):
        self.hidden = nnx.Linear(12, 12, rngs=nnx.Rngs(0))
        self.classifier = nnx.Linear(12, 5, rngs=nnx.Rngs(1))


def test_apply_max_norm_in_place_only_targets():
    net = _Net()
    net.classifier.kernel[...] = jnp.asarray(_kernel())       # (in=12, out=5): one vector per class
    net.hidden.kernel[...] = 10 * net.hidden.kernel[...]
    hidden_before = np.asarray(net.hidden.kernel[...])
    assert apply_max_norm(net, "classifier.kernel", 3.0) == ["classifier/kernel"]
    norms = np.linalg.norm(np.asarray(net.classifier.kernel[...]), axis=0)   # per class (output column)
    assert (norms <= 3.0 * (1 + 1e-6)).all()
    np.testing.assert_array_equal(np.asarray(net.hidden.kernel[...]), hidden_before)


def test_apply_max_norm_inside_jit_and_with_a_filter():
    net = _Net()
    net.classifier.kernel[...] = 100.0 * jnp.ones((12, 5))

    @nnx.jit
    def project(model):
        apply_max_norm(model, nnx.PathContains("classifier"), 2.0)

    project(net)
    np.testing.assert_allclose(np.linalg.norm(np.asarray(net.classifier.kernel[...]), axis=0), 2.0, rtol=1e-6)
    # the filter also chose the bias (norm over its only axis): 0 stays 0
    np.testing.assert_array_equal(np.asarray(net.classifier.bias[...]), 0.0)


def test_unknown_target_names_the_parameters():
    with pytest.raises(ValueError, match=r"match no nnx.Param of _Net; its parameters are: .*'classifier/kernel'"):
        matching_params(_Net(), "clasifier/kernel")


def test_optax_transform_lands_on_the_ball():
    params = {"w": jnp.asarray(_kernel()), "b": jnp.ones((5,))}
    grads = jax.tree.map(lambda x: -jnp.ones_like(x), params)
    tx = optax.chain(optax.sgd(1.0), optax_max_norm(3.0, axis=0, mask={"w": True, "b": False}))
    state = tx.init(params)
    updates, state = tx.update(grads, state, params)
    new = optax.apply_updates(params, updates)
    expected = project_max_norm(params["w"] + 1.0, 3.0, axis=0)
    np.testing.assert_allclose(np.asarray(new["w"]), np.asarray(expected), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(np.asarray(new["b"]), 2.0)   # masked out: plain SGD
    with pytest.raises(ValueError, match="needs the current params"):
        optax_max_norm(3.0).update(grads, state)
