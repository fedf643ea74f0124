"""TextCNN: shapes line by line, pad masking, embedding variants, word-vector loader, errors, build_model."""

import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from flax import nnx

from jaxconv.models import StaticEmbedding, TextCNN, build_model, load_word_vectors

V, K, D, F = 40, 3, 6, 4
WIDTHS = (2, 3, 4)


def _model(embedding="rand", pretrained=None, **kw):
    return TextCNN(V, K, embed_dim=D, widths=WIDTHS, filters=F, embedding=embedding, pretrained=pretrained,
                   rngs=nnx.Rngs(0), **kw)


def _tokens(b=2, length=9, seed=0):
    t = np.random.default_rng(seed).integers(2, V, size=(b, length)).astype(np.int32)
    t[:, 6:] = 0   # last 3 positions are padding
    return jnp.asarray(t)


def test_shapes_each_stage():
    m = _model()
    tokens = _tokens()                                            # (B=2, L=9)
    x = m.embed(tokens)
    assert x.shape == (2, 9, D)                                   # (B, L, D)
    maps = [conv(x) for conv in m.convs]
    assert [y.shape for y in maps] == [(2, 9 - w + 1, F) for w in WIDTHS]   # (B, L-w+1, F)
    feats = m.features(tokens)
    assert feats.shape == (2, len(WIDTHS) * F)                    # (B, W*F)
    np.testing.assert_allclose(feats, jnp.concatenate([y.max(axis=1) for y in maps], -1), rtol=1e-6)
    assert m(tokens).shape == (2, K)                              # (B, K)
    assert m.classifier.kernel.shape == (len(WIDTHS) * F, K)
    assert [c.kernel.shape for c in m.convs] == [(w, D, F) for w in WIDTHS]
    assert m.embedding.shape == (V, D)


def test_shapes_agree_as_jaxtyping_annotations():
    from jaxtyping import Array, Float, Int, jaxtyped

    model, tokens = _model(), _tokens(b=3, length=7)
    with jaxtyped("context"):   # one memo: "b" and "l" must mean the same size in every check
        assert isinstance(tokens, Int[Array, "b l"])
        assert isinstance(model.embed(tokens), Float[Array, f"b l {D}"])
        for conv, w in zip(model.convs, WIDTHS):
            assert isinstance(conv.kernel[...], Float[Array, f"{w} {D} {F}"])
        assert isinstance(model.features(tokens), Float[Array, f"b {len(WIDTHS) * F}"])
        assert isinstance(model(tokens), Float[Array, f"b {K}"])
        assert not isinstance(model(tokens[:2]), Float[Array, f"b {K}"])   # a different batch size is caught


def test_pad_embeds_to_zero_even_if_the_row_is_not_zero():
    m = _model()
    m.embedding[...] = m.embedding[...].at[0].set(5.0)            # corrupt the pad row
    x = m.embed(_tokens())
    np.testing.assert_array_equal(np.asarray(x[:, 6:]), 0.0)      # masked by tokens != 0
    assert float(jnp.abs(x[:, :6]).min()) > 0.0
    fresh = _model()
    np.testing.assert_array_equal(np.asarray(fresh.embedding[...][0]), 0.0)   # and zero at init


def test_static_embedding_has_no_param_and_no_gradient():
    table = np.random.default_rng(1).normal(size=(V, D)).astype(np.float32)
    m = _model("static", pretrained=table)
    assert isinstance(m.static_embedding, StaticEmbedding) and not hasattr(m, "embedding")
    params = nnx.state(m, nnx.Param)
    flat = {"/".join(map(str, p)) for p, _ in nnx.to_flat_state(params)}
    assert not any("embedding" in p for p in flat)
    assert "classifier/kernel" in flat

    def loss(model):
        return model(_tokens()).sum()

    grads = nnx.grad(loss)(m)
    assert "static_embedding" not in grads
    # and the optimizer leaves it alone
    import optax
    opt = nnx.Optimizer(m, optax.sgd(1.0), wrt=nnx.Param)
    opt.update(m, grads)
    expected = table.copy()
    expected[0] = 0.0
    np.testing.assert_array_equal(np.asarray(m.static_embedding[...]), expected)


def test_multichannel_is_the_sum_of_per_channel_filters():
    table = np.random.default_rng(2).normal(size=(V, D)).astype(np.float32)
    m = _model("multichannel", pretrained=table)
    assert [c.kernel.shape for c in m.convs] == [(w, 2 * D, F) for w in WIDTHS]   # (w, 2D, F)
    m.embedding[...] = m.embedding[...] * 0.5 + 1.0   # the non-static copy drifts from the static one
    tokens = _tokens()
    x = m.embed(tokens)                                            # (B, L, 2D): [static, non-static]
    np.testing.assert_array_equal(np.asarray(x[..., :D]), np.asarray(_model("static", table).embed(tokens)))
    conv = m.convs[0]
    k, b = conv.kernel[...], conv.bias[...]
    # Kim: each filter applied to both channels, responses added (one bias)
    sep = [jax.lax.conv_general_dilated(x[..., sl], k[:, sl], (1,), "VALID", dimension_numbers=("NWC", "WIO", "NWC"))
           for sl in (slice(0, D), slice(D, 2 * D))]
    np.testing.assert_allclose(np.asarray(conv(x)), np.asarray(jax.nn.relu(sep[0] + sep[1] + b)), rtol=1e-5, atol=1e-5)
    grads = nnx.grad(lambda mm: mm(tokens).sum())(m)
    assert "embedding" in grads and "static_embedding" not in grads


def test_dropout_needs_a_key_and_is_deterministic_given_one():
    m = _model()
    tokens = _tokens()
    with pytest.raises(ValueError, match="deterministic=False needs a dropout_key"):
        m(tokens, deterministic=False)
    key = jax.random.key(3)
    a = m(tokens, deterministic=False, dropout_key=key)
    b = m(tokens, deterministic=False, dropout_key=key)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(m(tokens)))


@pytest.mark.slow
def test_test_time_dropout_masks_without_scaling_and_scales_at_eval():
    m = _model(dropout_scaling="test-time")
    tokens = _tokens(b=6)
    h = m.features(tokens)                                                    # (B, W*F)
    kernel, bias = m.classifier.kernel[...], m.classifier.bias[...]
    np.testing.assert_allclose(m(tokens), (0.5 * h) @ kernel + bias, rtol=1e-5, atol=1e-6)   # eval: x (1 - p)
    key = jax.random.key(7)
    keep = jax.random.bernoulli(key, 0.5, h.shape)                            # the mask the model draws
    np.testing.assert_allclose(m(tokens, deterministic=False, dropout_key=key),
                               jnp.where(keep, h, 0.0) @ kernel + bias, rtol=1e-5, atol=1e-6)   # train: no 1/(1-p)
    # Inverted dropout with the same rate and key keeps the same units but doubles them in training.
    inv = _model()
    np.testing.assert_allclose(inv(tokens, deterministic=False, dropout_key=key),
                               (2.0 * jnp.where(keep, h, 0.0)) @ kernel + bias, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(inv(tokens), h @ kernel + bias, rtol=1e-5, atol=1e-6)
    # Expected training logits match the eval logits (Monte Carlo over 4,000 masks).
    keys = jax.random.split(jax.random.key(0), 4000)
    mean = jnp.mean(jax.vmap(lambda k: m(tokens, deterministic=False, dropout_key=k))(keys), axis=0)
    np.testing.assert_allclose(mean, m(tokens), atol=0.1 * float(jnp.abs(m(tokens)).max()) + 1e-3)


def test_zero_classifier_init_first_gradient_reaches_only_the_classifier():
    m = _model(classifier_init="zeros")
    assert not np.any(np.asarray(m.classifier.kernel[...]))
    tokens, labels = _tokens(), jnp.array([0, 2])

    def loss(model):
        logits = model(tokens)
        return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(2), labels])

    grads = nnx.grad(loss)(m)
    assert np.any(np.asarray(grads["classifier"]["kernel"][...]))
    for g in jax.tree.leaves(grads["convs"]) + [grads["embedding"][...]]:
        assert not np.any(np.asarray(g))                  # dL/dfeatures = kernel @ dL/dlogits = 0
    assert np.any(np.asarray(_model().classifier.kernel[...]))   # the default is Glorot, not zeros


def test_too_short_input_error_names_lengths():
    m = _model()
    with pytest.raises(ValueError, match=r"TextCNN: tokens have length 3 \(shape \(2, 3\)\); the widest filter needs "
                                         r"length >= max\(widths\) = 4 \(widths=\(2, 3, 4\)\)"):
        m(jnp.ones((2, 3), jnp.int32))
    with pytest.raises(ValueError, match=r"tokens must have shape \(batch, length\); got shape \(5,\)"):
        m(jnp.ones((5,), jnp.int32))


def test_token_ids_out_of_range_are_refused_outside_jit():
    """Concrete ids >= vocab_size (which gave NaN logits) or < 0 (which read rows counted from the end) raise, naming
    the argument, the first bad position, the id and the vocabulary size."""
    m = _model()
    bad = np.array(_tokens())
    bad[1, 4], bad[0, 7] = V + 5, V          # row-major: (0, 7) comes first
    with pytest.raises(ValueError, match=re.escape(
            f"TextCNN: tokens[0, 7] = {V} is out of range; token ids must be in [0, vocab_size) = [0, {V}) (0 = pad, "
            f"1 = <unk>), and 2 of the 18 ids are not. Map unknown words to 1 (<unk>) when encoding "
            f"(jaxconv.data.Vocab.encode does), or build the model with the vocabulary's size.")):
        m(bad)
    negative = np.array(_tokens())
    negative[1, 2] = -3
    for call in (m, m.features):
        with pytest.raises(ValueError, match=re.escape(f"TextCNN: tokens[1, 2] = -3 is out of range; token ids must "
                                                       f"be in [0, vocab_size) = [0, {V})")):
            call(jnp.asarray(negative))
    with pytest.raises(TypeError, match=re.escape(
            "TextCNN: tokens must be integer token ids (batch, length), e.g. int32; got dtype float32 (shape (2, 9)). "
            "Encode texts with the run's vocabulary")):
        m(jnp.ones((2, 9), jnp.float32))


@pytest.mark.parametrize("embedding", ["rand", "static", "multichannel"])
def test_token_ids_out_of_range_read_unk_under_jit(embedding):
    """Under jit the ids cannot be checked: an id outside [0, V) is read as <unk> (id 1), never as NaN or a row
    counted from the end; in range ids are untouched."""
    m = _model(embedding, pretrained=np.random.default_rng(0).normal(size=(V, D)).astype(np.float32))
    good = np.array(_tokens())
    bad = good.copy()
    bad[0, 1], bad[1, 3], bad[1, 0] = V, -1, 10 ** 6
    unk = good.copy()
    unk[0, 1] = unk[1, 3] = unk[1, 0] = 1
    logits = nnx.jit(lambda model, t: model(t))(m, jnp.asarray(bad))
    assert np.isfinite(np.asarray(logits)).all()
    np.testing.assert_array_equal(logits, m(jnp.asarray(unk)))
    np.testing.assert_array_equal(m.ids_in_range(jnp.asarray(bad)), unk)
    assert not np.array_equal(logits, m(jnp.asarray(good)))            # the ids did change what the model saw
    shape = jax.eval_shape(lambda t: m(t), jax.ShapeDtypeStruct((2, 9), jnp.int32)).shape   # abstract: no check
    assert shape == (2, K)
    one_row = TextCNN(1, K, embed_dim=D, widths=(2,), filters=F, rngs=nnx.Rngs(0))
    np.testing.assert_array_equal(one_row.ids_in_range(jnp.asarray([[0, 3, -2]])), [[0, 0, 0]])   # no <unk> row


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match=r"embedding='glove' is not known; expected one of 'rand', 'static'"):
        _model("glove")
    with pytest.raises(ValueError, match=r"pretrained must have shape \(vocab_size, embed_dim\) = \(40, 6\); got \(40, 5\)"):
        _model("static", pretrained=np.zeros((V, 5)))
    with pytest.raises(ValueError, match=r"dropout_scaling='kim' is not known; expected one of 'inverted', 'test-time'"):
        _model(dropout_scaling="kim")
    with pytest.raises(ValueError, match=r"classifier_init='normal' is not known; expected one of 'glorot', 'zeros'"):
        _model(classifier_init="normal")


def test_load_word_vectors_text_file(tmp_path):
    path = tmp_path / "vecs.txt"
    path.write_text("3 4\nthe 0.1 0.2 0.3 0.4\ncat 1 2 3 4\nzebra 9 9 9 9\n")   # word2vec text header + 3 words
    vocab = ["<pad>", "<unk>", "the", "cat", "dog"]
    table, found = load_word_vectors(path, vocab, 4, seed=0)
    assert table.shape == (5, 4) and table.dtype == np.float32 and found == 2
    np.testing.assert_array_equal(table[0], 0.0)                         # <pad>
    np.testing.assert_allclose(table[2], [0.1, 0.2, 0.3, 0.4])
    np.testing.assert_allclose(table[3], [1, 2, 3, 4])
    assert np.abs(table[[1, 4]]).max() <= 0.25 and np.abs(table[4]).min() > 0   # unknown: uniform[-0.25, 0.25]
    again, _ = load_word_vectors(path, vocab, 4, seed=0)
    np.testing.assert_array_equal(table, again)                           # seeded
    glove = tmp_path / "glove.txt"
    glove.write_text("dog 1 1 1 1\n")                                    # GloVe: no header
    assert load_word_vectors(glove, {"<pad>": 0, "<unk>": 1, "dog": 2}, 4)[1] == 1
    with pytest.raises(ValueError, match=r"line 2 of .*vecs.txt has 4 numbers after the word 'the'; expected dim=3"):
        load_word_vectors(path, vocab, 3)


def test_build_model_from_config():
    cfg = ml_collections.ConfigDict({"seed": 0, "model": {"name": "text_cnn", "embed_dim": D, "widths": WIDTHS,
                                                          "filters": F, "dropout": 0.5, "embedding": "rand"}})
    m = build_model(cfg, V, K)
    assert m.classifier.kernel.shape == (len(WIDTHS) * F, K) and m.min_length == 4
    assert m.num_params() == V * D + sum(w * D * F + F for w in WIDTHS) + len(WIDTHS) * F * K + K
    cfg.model.name = "lstm"
    with pytest.raises(ValueError, match=r"config.model.name='lstm' is not known"):
        build_model(cfg, V, K)
