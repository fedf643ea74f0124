"""The character-level CNN (Zhang et al. 2015) and the gated dilated causal-conv language model: shapes, the
paper's length chain, causality, the receptive field against a gradient probe, sampling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv.models.char_cnn import ZHANG_ALPHABET, CharCNN
from jaxconv.models.conv_lm import BYTE_VOCAB_SIZE, ConvLM, decode_bytes, encode_bytes

pytestmark = pytest.mark.slow  # the character CNN and language model trained end to end


# ------------------------------------------------------------------------------------------------- char CNN

def test_zhang2015_length_chain_in_explain():
    model = nnx.eval_shape(lambda: CharCNN(len(ZHANG_ALPHABET) + 2, 4, length=1014, features=1024, hidden=2048,
                                           rngs=nnx.Rngs(0)))
    assert model.length_chain() == [1014, 336, 110, 108, 106, 104, 34]
    e = jaxconv.explain(model, jax.ShapeDtypeStruct((1, 1014), jnp.int32))
    layer_out = {r.path: r.output_shape[1] for r in e.rows if r.formula is not None}
    chain = [1014, layer_out["pools/0"], layer_out["pools/1"], layer_out["convs/2"], layer_out["convs/3"],
             layer_out["convs/4"], layer_out["pools/5"]]
    assert chain == [1014, 336, 110, 108, 106, 104, 34]
    assert e.row("dense/0").input_shape == (1, 34 * 1024)
    assert e.formula("pools/0") == "336 = floor((1008 + 0 + 0 - 1*(3-1) - 1) / 3) + 1"
    # Receptive field of one final position, in characters: 7, x3 pool, 7, x3 pool, 3, 3, 3, 3, x3 pool.
    assert e.row("pools/5").rf_size == (123,) and e.row("pools/5").rf_jump == (27,)


def test_char_cnn_forward_onehot_and_errors():
    m = CharCNN(40, 3, length=150, features=8, hidden=16, rngs=nnx.Rngs(0))
    tokens = jnp.asarray(np.random.default_rng(0).integers(0, 40, (4, 150)), jnp.int32)
    assert m(tokens).shape == (4, 3)
    x = m.embed(jnp.asarray([[0, 1, 2, 39]]))
    assert x.shape == (1, 4, 38)                                             # a channel per character, none for 0, 1
    np.testing.assert_array_equal(np.asarray(x[0, :2]), 0.0)                 # pad and unknown: all-zero vectors
    assert np.asarray(x[0, 2]).argmax() == 0 and np.asarray(x[0, 3]).argmax() == 37 and np.asarray(x).sum() == 2.0
    with pytest.raises(ValueError, match=r"CharCNN: tokens must have shape \(batch, length=150\); got shape \(4, 149\)"):
        m(tokens[:, :149])
    with pytest.raises(ValueError, match=r"CharCNN: length=20 is too short for convolution 1 \(kernel 7\) and its pool: input length 4 is "
                                         r"shorter than the dilated kernel"):
        CharCNN(40, 3, length=20, features=4, hidden=4, rngs=nnx.Rngs(0))
    a = m(tokens, deterministic=False, dropout_key=jax.random.key(1))
    b = m(tokens, deterministic=False, dropout_key=jax.random.key(2))
    assert not np.allclose(np.asarray(a), np.asarray(b))                     # dropout on in training


# ------------------------------------------------------------------------------------------------- conv LM

@pytest.fixture(scope="module")
def lm():
    return ConvLM(BYTE_VOCAB_SIZE, embed_dim=8, channels=16, kernel_size=3, dilations=(1, 2, 4), stacks=2,
                  rngs=nnx.Rngs(0))


def test_changing_token_t_never_changes_earlier_logits(lm):
    rng = np.random.default_rng(0)
    tokens = rng.integers(2, BYTE_VOCAB_SIZE, (2, 48)).astype(np.int32)
    base = np.asarray(lm(tokens))
    for t in (0, 1, 17, 30, 47):
        changed = tokens.copy()
        changed[:, t] = 2 + (changed[:, t] - 2 + 1) % (BYTE_VOCAB_SIZE - 2)       # another byte
        out = np.asarray(lm(changed))
        np.testing.assert_array_equal(out[:, :t], base[:, :t])                 # the past is untouched, exactly
        assert not np.allclose(out[:, t], base[:, t])                          # and position t does see token t


def test_explain_receptive_field_equals_a_gradient_probe(lm):
    L = 64
    e = jaxconv.explain(lm, jax.ShapeDtypeStruct((1, L), jnp.int32))
    last = [r for r in e.rows if r.is_conv][-1]
    assert last.rf_size == (lm.receptive_field,) == (1 + 2 * 2 * (1 + 2 + 4),)
    x = lm.embed(jnp.asarray(np.random.default_rng(1).integers(2, BYTE_VOCAB_SIZE, (1, L)), jnp.int32))
    spans = jaxconv.receptive_spans(lm, last.path, L)
    for p in (0, 10, 40, 63):
        g = jax.grad(lambda v: lm.logits_from_vectors(v)[0, p].sum())(x)       # (1, L, D)
        seen = np.flatnonzero(np.abs(np.asarray(g[0])).sum(-1) > 0)
        assert (seen.min(), seen.max() + 1) == tuple(spans[p]), (p, seen)
        assert seen.max() == p and seen.size == min(p + 1, lm.receptive_field)


def test_left_padding_equals_a_shorter_context(lm):
    tokens = encode_bytes("convolutions see the past")[None]
    padded = np.concatenate([np.zeros((1, 9), np.int32), tokens], axis=1)
    np.testing.assert_allclose(np.asarray(lm(padded))[:, 9:], np.asarray(lm(tokens)), rtol=1e-5, atol=1e-5)


def test_sample_greedy_matches_step_by_step_argmax(lm):
    prompt = encode_bytes("the film ")
    out = lm.sample(prompt, 12)
    graphdef, state = nnx.split(lm)
    forward = jax.jit(lambda state, tokens: nnx.merge(graphdef, state)(tokens))   # one program per length, not per op
    context = list(prompt)
    for tok in out:
        logits = np.array(forward(state, np.asarray([context], np.int32)))[0, -1]
        logits[:2] = -np.inf                                                  # pad and unknown
        assert int(tok) == int(logits.argmax())
        context.append(int(tok))
    drawn = lm.sample(prompt, 30, temperature=1.0, key=jax.random.key(3))
    assert drawn.shape == (30,) and (drawn >= 2).all() and isinstance(decode_bytes(drawn), str)
    assert not np.array_equal(drawn, lm.sample(prompt, 30, temperature=1.0, key=jax.random.key(4)))
    with pytest.raises(ValueError, match=r"temperature must be >= 0; got temperature=-1"):
        lm.sample(prompt, 3, temperature=-1)


def test_byte_codec_round_trip():
    text = "naïve café — 1,2,3\n"
    ids = encode_bytes(text)
    assert ids.min() >= 2 and ids.max() <= 257 and decode_bytes(ids) == text
    from jaxconv.data import BYTES, Vocab, byte_tokenize
    assert Vocab.from_alphabet(BYTES).encode(byte_tokenize(text)) == ids.tolist()   # the byte vocabulary agrees


# ------------------------------------------------------------------------------------------------- in the trainer

import json

from helpers import copy_run

from jaxconv.cli import main
from jaxconv.configs import load_config
from jaxconv.train import train_and_evaluate
from jaxconv.train.state import RunState
from jaxconv.train.tasks import TASKS
from jaxconv.train.steps import loss_terms

LM_TINY = {"data.synthetic.num_examples": 300, "train.epochs": 2, "progress": False, "tensorboard": False}
CHAR_TINY = {"data.synthetic.num_examples": 200, "model.features": 8, "model.hidden": 16, "train.epochs": 1,
             "progress": False, "tensorboard": False}


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("conv_lm")
    return workdir, train_and_evaluate(load_config("conv_lm:tiny", LM_TINY), workdir)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    """A tiny char_cnn run (a classifier), trained once for the tests that read it."""
    workdir = tmp_path_factory.mktemp("char_cnn")
    return workdir, train_and_evaluate(load_config("char_cnn", CHAR_TINY), workdir)


def test_loss_terms_per_position_and_per_row_weights():
    rng = np.random.default_rng(0)
    logits = jnp.asarray(rng.normal(size=(3, 5, 7)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 7, (3, 5)), jnp.int32)
    rows = jnp.asarray([1.0, 0.0, 1.0])
    ce, sums = loss_terms(logits, labels, rows)                              # a row's weight covers its positions
    logp = np.asarray(jax.nn.log_softmax(logits, axis=-1))
    manual = -np.take_along_axis(logp, np.asarray(labels)[..., None], -1)[..., 0]   # (3, 5)
    np.testing.assert_allclose(np.asarray(ce), manual, rtol=1e-5)
    assert float(sums["count"]) == 10.0
    np.testing.assert_allclose(float(sums["loss_sum"]), manual[[0, 2]].sum(), rtol=1e-5)
    _, per_pos = loss_terms(logits, labels, jnp.asarray(np.tril(np.ones((3, 5)))))   # per-position weights
    np.testing.assert_allclose(float(per_pos["loss_sum"]), (manual * np.tril(np.ones((3, 5)))).sum(), rtol=1e-5)


def test_best_dev_by_loss_for_language_models():
    lm, classify = TASKS["next_token"], TASKS["classify"]
    rs = RunState()
    assert rs.record_dev(_dev(0.5, 2.0), True, lm) and not rs.record_dev(_dev(0.9, 2.1), True, lm)
    assert rs.record_dev(_dev(0.1, 1.5), True, lm) and rs.best_dev_loss == 1.5
    acc = RunState()
    assert acc.record_dev(_dev(0.5, 2.0), True, classify) and acc.record_dev(_dev(0.9, 2.1), True, classify)  # accuracy first


def _dev(accuracy: float, loss: float) -> dict:
    return {"accuracy": accuracy, "loss": loss}


def test_conv_lm_trains_and_reports_bits_per_byte(lm_run):
    workdir, result = lm_run
    assert result["task"] == "next_token" and 0 < result["test_bits_per_byte"] < 4.0   # uniform over bytes: 8
    assert result["test_bits_per_byte"] == pytest.approx(result["test_loss"] / np.log(2))
    dev = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
           if json.loads(line)["split"] == "dev"]
    best = min(dev, key=lambda r: r["loss"])                                # the best epoch is the lowest dev loss
    assert result["best_epoch"] == best["epoch"] and result["best_step"] == best["step"]
    for r in dev:                       # every dev record carries bits per byte, and the best loss so far
        assert r["bits_per_byte"] == pytest.approx(r["loss"] / np.log(2)) and r["best_loss"] <= r["loss"]
    assert dev[-1]["best_loss"] == best["loss"]
    train = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()
             if json.loads(line)["split"] == "train"]
    assert train and all(r["bits_per_byte"] == pytest.approx(r["loss"] / np.log(2)) for r in train)


def test_conv_lm_load_run_scores_and_samples(lm_run):
    workdir, result = lm_run
    run = jaxconv.load_run(workdir)
    assert isinstance(run.model, ConvLM) and run.tokenizer == "bytes" and len(run.vocab) == BYTE_VOCAB_SIZE
    from jaxconv.data.lm import build_lm_data

    data = build_lm_data(run.config)
    nats = count = 0.0
    for b in data.test.epoch(0):
        _, sums = loss_terms(run.model(b.tokens), jnp.asarray(b.labels), jnp.asarray(b.weights))
        nats, count = nats + float(sums["loss_sum"]), count + float(sums["count"])
    assert nats / count == pytest.approx(result["test_loss"], rel=1e-4)
    text = decode_bytes(run.model.sample(encode_bytes("w0001 "), 20))
    assert isinstance(text, str) and len(text) > 0


def test_conv_lm_dump_records_the_preceding_contexts(lm_run, capsys):
    workdir, _ = lm_run
    assert main(["dump", "--workdir", str(workdir), "--split", "test"]) == 0
    dump = jaxconv.load_dump(workdir, "test")
    rf = jaxconv.explain(jaxconv.load_run(workdir).model, (1, 64), dtype=jnp.int32).row("convs/2").rf_size[0]
    assert dump.labels is None and dump.predictions is None                 # a language model has no classes
    for g in dump.top_ngrams("convs/2", 3, k=5):
        assert g.span[1] == g.position + 1 and g.span[1] - g.span[0] <= rf    # the bytes up to the position, no later
        assert g.text == "".join(g.words).encode("latin-1").decode("utf-8", "replace")
    assert main(["report", "--workdir", str(workdir), "--dump", "test"]) == 0
    assert (workdir / "report" / "test" / "index.html").is_file()


def test_char_cnn_trains_dumps_at_its_length(char_run, tmp_path, capsys):
    workdir, result = char_run
    workdir = copy_run(workdir, tmp_path / "run")                           # the dump goes into a copy
    assert result["buckets"] == [160] and result["task"] == "classify"
    assert main(["dump", "--workdir", str(workdir), "--layers", "convs/0"]) == 0
    dump = jaxconv.load_dump(workdir, "test")
    assert dump.column("tokens").shape[1] == 160                            # the model's one input length
    g = dump.top_ngrams("convs/0", 0, k=1)[0]
    assert g.span[1] - g.span[0] <= 7 and g.text == "".join(g.words)        # characters, joined as they are


def test_explain_cli_shows_the_papers_length_chain(capsys):
    assert main(["explain", "char_cnn:zhang2015"]) == 0
    out = capsys.readouterr().out
    for path, shape in (("convs/0", "(1, 1014, 69) -> (1, 1008, 1024)"), ("pools/0", "-> (1, 336, 1024)"),
                        ("pools/1", "-> (1, 110, 1024)"), ("convs/2", "-> (1, 108, 1024)"),
                        ("convs/3", "-> (1, 106, 1024)"), ("convs/4", "-> (1, 104, 1024)"),
                        ("pools/5", "-> (1, 34, 1024)")):
        row = next(line for line in out.splitlines() if line.startswith(path + " "))
        assert shape in row, row


def test_generate_decodes_the_models_samples_and_draws_with_a_seed(lm_run):
    workdir, _ = lm_run
    run = jaxconv.load_run(workdir)
    greedy = run.generate("w0001 ", 30)
    assert greedy == decode_bytes(run.model.sample(encode_bytes("w0001 "), 30))    # the prompt's bytes, continued
    hot = [run.generate("w0001 ", 30, temperature=1.5, seed=s) for s in (0, 1, 0)]
    assert hot[0] == hot[2] and hot[0] != hot[1]                                     # seeded draws
    with pytest.raises(ValueError, match=r"ConvLM.sample: temperature must be >= 0; got temperature=-1"):
        run.generate("w0001 ", 5, temperature=-1)
    with pytest.raises(ValueError, match=r"prompt='' has no token for the 'bytes' tokenizer"):
        run.generate("", 5)


def test_a_classifier_run_does_not_generate(char_run):
    workdir, _ = char_run
    with pytest.raises(ValueError, match=r"holds a CharCNN, which classifies; generate needs a language model"):
        jaxconv.load_run(workdir).generate("abc", 3)


def test_word_level_lm_predicts_words_and_line_ends(tmp_path):
    corpus = tmp_path / "corpus.txt"
    rng = np.random.default_rng(0)
    corpus.write_text("\n".join(" ".join(rng.choice(["the", "cat", "sat", "on", "a", "mat"], 8)) for _ in range(400)))
    config = load_config("conv_lm:tiny", {"data.name": "file", "data.train": str(corpus), "data.tokenizer": "whitespace",
                                          "data.seq_len": 16, "train.epochs": 1, "progress": False,
                                          "tensorboard": False})
    result = train_and_evaluate(config, tmp_path / "run")
    run = jaxconv.load_run(tmp_path / "run")
    assert run.tokenizer == "whitespace" and set(run.vocab.tokens) >= {"the", "cat", "mat", "\n"}
    assert len(run.vocab) == 2 + 6 + 1                                                # pad, unknown, words, line end
    assert "test_bits_per_byte" not in result and result["test_loss"] < np.log(len(run.vocab))   # learnt something
    words = run.generate("the cat", 12).split()
    assert len(words) >= 6 and set(words) <= {"the", "cat", "sat", "on", "a", "mat"}


def test_conv_lm_experiment_trains_then_samples(tmp_path, capsys):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "experiments" / "conv_lm.py"
    spec = importlib.util.spec_from_file_location("conv_lm_experiment", path)
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    args = ["--config", "conv_lm:tiny", "--workdir", str(tmp_path), "--config.progress=false",
            "--config.data.synthetic.num_examples=200", "--sample", "w0001 ", "--sample_length", "12"]
    assert experiment.main(args) == 0
    out = capsys.readouterr().out
    assert json.loads(out.splitlines()[0])["test_bits_per_byte"] > 0
    assert out.splitlines()[-1].startswith("'w0001 ' -> '")
    assert experiment.main([*args, "--temperature", "-2"]) == 2                      # finished: samples only
    assert "conv_lm: error: --sample: ConvLM.sample: temperature must be >= 0" in capsys.readouterr().err


def test_char_cnn_learns_on_trec(tmp_path):
    import collections

    from conftest import require_shared

    test_file = require_shared("TREC.test.all")
    labels = collections.Counter(line.split()[0] for line in test_file.read_text(encoding="latin-1").splitlines())
    majority = max(labels.values()) / sum(labels.values())
    result = train_and_evaluate(load_config("char_cnn:trec", {"train.epochs": 6, "progress": False,
                                                                  "tensorboard": False}), tmp_path)
    assert result["test_accuracy"] > majority + 0.15, result                 # far above the majority class
