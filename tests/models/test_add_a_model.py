"""Adding a model is one declaration (docs/adding_a_model.md): a model defined and registered in this file, with no
edit under jaxconv/, trains, loads, explains, dumps and reports like the built-in ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv.configs import ConfigError, load_config, reference_config, validate
from jaxconv.configs import text_cnn as text_cnn_config
from jaxconv.configs.rules import int_min
from jaxconv.dump import dump_activations, get_adapter, load_dump
from jaxconv.dump.report import filter_slug, write_report
from jaxconv.models import PAD_ID, DumpAdapter, ModelKind, build_model, model_kind, model_kinds, register, unregister
from jaxconv.nn import Conv1D

NAME = "tiny_cnn"


class TinyCNN(nnx.Module):
    """tokens (B, L) --embed--> (B, L, D) --Conv1D(width) + ReLU--> (B, L-width+1, F) --max over time--> (B, F)
    --Linear--> logits (B, K)."""

    def __init__(self, vocab_size: int, num_classes: int, *, embed_dim: int = 8, width: int = 3, filters: int = 4,
                 rngs: nnx.Rngs):
        table = jax.random.normal(rngs.params(), (vocab_size, embed_dim)) * 0.1
        self.embedding = nnx.Param(table.at[PAD_ID].set(0.0))                      # (V, D)
        self.conv = Conv1D(embed_dim, filters, width, activation="relu", rngs=rngs)  # kernel (width, D, F)
        self.classifier = nnx.Linear(filters, num_classes, rngs=rngs)             # (F, K)

    def embed(self, tokens: jax.Array) -> jax.Array:
        """tokens int (B, L) -> (B, L, D), zeros at padding: the vectors the dump's slot words score."""
        x = jnp.take(self.embedding[...], tokens, axis=0)                          # (B, L, D)
        return jnp.where((tokens != PAD_ID)[..., None], x, 0.0)

    def __call__(self, tokens: jax.Array, *, deterministic: bool = True, dropout_key: jax.Array | None = None):
        """tokens int (B, L) -> logits (B, K); no dropout, so ``deterministic`` and ``dropout_key`` change nothing."""
        return self.classifier(self.conv(self.embed(jnp.asarray(tokens))).max(axis=1))   # (B, F) -> (B, K)


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    """The data and training fields of text_cnn's synthetic preset, a small run, and this model's section."""
    config = text_cnn_config.get_config("synthetic")
    config.data.synthetic.num_examples = 240
    config.data.synthetic.vocab_size = 60
    config.train.epochs = 1
    config.train.steps = 4
    config.train.batch_size = 16
    config.train.log_every_steps = 0
    config.progress = False
    config.tensorboard = False
    config.model = ml_collections.ConfigDict({"name": NAME, "embed_dim": 8, "width": 3, "filters": 4})
    return config


KIND = ModelKind(
    name=NAME,
    cls=TinyCNN,
    fields=("embed_dim", "width", "filters"),
    task="classify",
    input_length=lambda m: (int(m.width), None),
    rules=(("model.width", int_min(1), "the conv's width"),
           ("model.filters", int_min(1), "feature maps")),
    default_config=get_config,
)


@pytest.fixture
def tiny_kind():
    """The kind registered for one test, and removed after it (the registry is as it was for the other tests)."""
    before = dict(model_kinds())
    register(KIND)
    try:
        yield KIND
    finally:
        unregister(NAME)
    assert dict(model_kinds()) == before


def test_the_kind_is_registered_and_validated(tiny_kind):
    assert model_kind(NAME) is tiny_kind and register(KIND) is KIND          # the same kind again: a no-op
    assert model_kind(NAME).adapter is None and type(get_adapter(get_config())) is DumpAdapter   # the default one
    config = load_config(NAME)                                                # no built-in config: its default one
    assert config.model.name == NAME and reference_config(config).model.to_dict() == config.model.to_dict()
    model = build_model(config, vocab_size=30, num_classes=2)
    assert isinstance(model, TinyCNN) and model.conv.kernel.shape == (3, 8, 4)
    with pytest.raises(ConfigError, match=r"^config.model.width=0: expected an int >= 1 \(the conv's width\)\.$"):
        validate(load_config(NAME, {"model.width": 0}))


def test_a_second_kind_cannot_take_the_name(tiny_kind):
    other = ModelKind(name=NAME, cls=nnx.Module, fields=(), task="classify", input_length=lambda m: (1, None))
    with pytest.raises(ValueError, match=r"config.model.name='tiny_cnn' is already registered, to "
                                         r"test_add_a_model.TinyCNN; a second kind \(flax.nnx.*\) cannot take the name"):
        register(other)
    assert model_kind(NAME) is tiny_kind


def test_unknown_after_unregister():
    assert NAME not in model_kinds()
    with pytest.raises(ValueError, match=r"config.model.name='tiny_cnn' is not known; expected one of \["):
        model_kind(NAME)


@pytest.mark.slow
def test_train_load_explain_dump_report(tiny_kind, tmp_path):
    workdir = tmp_path / "run"
    result = jaxconv.train_and_evaluate(get_config(), workdir)
    assert 0.0 <= result["test_accuracy"] <= 1.0 and np.isfinite(result["test_loss"]) and result["step"] == 4

    run = jaxconv.load_run(workdir)
    assert isinstance(run.model, TinyCNN) and run.min_length == 3
    tokens = run.encode(["w0001 w0002 w0003 w0004 w0005"])                      # (1, L)
    assert run.model(tokens).shape == (1, 2)

    e = jaxconv.explain(run.model, tokens)
    assert e.conv_paths == ["conv"]
    row = e.row("conv")
    assert row.kernel_shape == (3, 8, 4) and row.output_shape == (1, tokens.shape[1] - 2, 4) and row.rf_size == (3,)

    dump = dump_activations(workdir)
    assert dump.layers == ("conv",)
    d = load_dump(workdir, "test")
    n, L = d.num_examples, d.attrs["padded_length"]
    assert n == dump.num_examples > 0 and d.column("tokens").shape == (n, L)
    assert d.group["maps/conv"].shape == (n, L - 3 + 1, 4) and d.pooled("conv").shape == (n, 4)
    assert d.group["kernels/conv"].shape == (3, 8, 4) and d.group["embedding"].shape == (len(run.vocab), 8)
    assert d.predictions.shape == (n,) and d.group["probabilities"].shape == (n, 2)
    maps = np.asarray(jaxconv.feature_maps(run.model, d.column("tokens"))["conv"])            # (N, L - 2, F)
    np.testing.assert_allclose(d.feature_map("conv", 1)[:], maps[..., 1], atol=1e-5)

    report = write_report(d, workdir / "report")
    index = (workdir / "report" / "index.html").read_text()
    assert report.pages == 4 and f"filters/{filter_slug('conv', 3)}.html" in index and "conv" in index
