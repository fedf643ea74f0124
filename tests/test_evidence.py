"""``run.predict``, ``repr(run)``, ``run.evidence`` / ``jaxconv.evidence`` and ``jaxconv predict``.

The identity under test: for a model whose filters are max-pooled and read by a linear layer, the logits are exactly
the bias plus one term per filter, ``contributions.sum(0) + bias == logits == model(tokens)``; for Kim's CNN trained
here (``demo_run``), with Kim's test-time dropout scaling, and for imported Kim-shape models (softmax and a single
sigmoid unit). Other shapes raise one line saying why.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv
import jaxconv.imports as imports
from jaxconv import predict as jpredict
from jaxconv.cli import main
from jaxconv.imports import SourceModel, import_model

TEXTS = ["m00b m00a m00c w0001 w0002", "w0003 m01c m01a m01b w0004 w0005", "w0006",
         " ".join(f"w{i:04d}" for i in range(1, 30)) + " m00b m00a m00c", "unseen words only", ""]


@pytest.fixture(scope="module")
def run(demo_run):
    return jaxconv.load_run(demo_run)


def _check_identity(ev, model, tokens=None):
    """contributions.sum(0) + bias == logits == model(tokens); the pooled values and windows are the maps'. The model
    runs at evidence's precision (full float32; a GPU's default would be TF32)."""
    with jax.default_matmul_precision(jpredict.PRECISION):
        _identity(ev, model, tokens)


def _identity(ev, model, tokens):
    tokens = ev.tokens[None] if tokens is None else tokens
    np.testing.assert_allclose(ev.contributions.sum(0) + ev.bias, ev.logits, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ev.logits, np.asarray(model(jnp.asarray(tokens)))[0], atol=1e-5, rtol=0)
    c = ev.prediction
    others = np.delete(ev.logits, c).mean()
    np.testing.assert_allclose(ev.margins().sum() + ev.margin_bias(), ev.logits[c] - others, atol=1e-5)
    maps = jaxconv.feature_maps(model, jnp.asarray(tokens))
    row = 0
    for layer, f in ev.filters:
        m = np.asarray(maps[layer])[0, :, f]                                           # (P,)
        w = ev.ngrams[row]
        assert ev.pooled[row] == pytest.approx(m.max(), abs=1e-6) and m[w.position] == pytest.approx(m.max(), abs=1e-6)
        first = ev.start
        assert list(w.words) == ev.words[w.span[0] - first:w.span[1] - first]
        row += 1
    assert row == ev.contributions.shape[0] == len(ev.ngrams)


# ------------------------------------------------------------------------------------------------ predict, repr


def test_predict_gives_names_and_probabilities_batched_and_jitted(run):
    preds = run.predict(TEXTS, batch_size=4)
    assert [p.text for p in preds] == TEXTS
    with jax.default_matmul_precision(jpredict.PRECISION):
        logits = np.concatenate([np.asarray(run.model(jnp.asarray(run.encode([t], length=jpredict.padded_length(run, t)))))
                                 for t in TEXTS])
    for p, z in zip(preds, logits):
        assert p.label == ["class0", "class1"][p.index] and list(p.probabilities) == ["class0", "class1"]
        assert p.index == int(np.argmax(z)) and sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(list(p.probabilities.values()), np.asarray(jax.nn.softmax(z)), atol=1e-5)
    assert preds[0].label == "class1" and preds[1].label == "class0"                  # the planted motifs
    # One compile per padded length: the same shapes again compile nothing.
    before = jpredict.forward._cache_size()
    assert [p.index for p in run.predict(TEXTS, batch_size=4)] == [p.index for p in preds]
    assert jpredict.forward._cache_size() == before
    # A text's prediction does not depend on the texts batched with it.
    for i in (0, 3):
        single = run.predict(TEXTS[i])
        assert len(single) == 1 and single[0].probabilities == pytest.approx(preds[i].probabilities, abs=1e-6)
    with pytest.raises(TypeError, match=r"Run.predict: texts\[1\]=3 is a int; expected a str"):
        run.predict(["ok", 3])
    with pytest.raises(ValueError, match="batch_size=0"):
        run.predict(["ok"], batch_size=0)


def test_repr_of_a_run_is_a_short_summary(run, demo_run):
    text = repr(run)
    assert len(text.splitlines()) <= 6 and len(text) < 500, text
    for part in (str(demo_run), "text_cnn (TextCNN)", "step 96", "2 (class0, class1)", f"{len(run.vocab)} tokens"):
        assert part in text, part
    assert "ConfigDict" not in text and "Param" not in text


# ------------------------------------------------------------------------------------------------ evidence: Kim


def test_evidence_of_a_trained_text_cnn_is_exact(run):
    evs = run.evidence(TEXTS, batch_size=4)
    assert len(evs) == len(TEXTS)
    preds = run.predict(TEXTS, batch_size=4)
    for ev, p in zip(evs, preds):
        assert ev.contributions.shape == (96, 2) and ev.bias.shape == (2,) and ev.logits.shape == (2,)
        assert ev.filters[0] == ("convs/0", 0) and ev.filters[-1] == ("convs/2", 31) and ev.scale == 1.0
        _check_identity(ev, run.model)
        assert ev.label == p.label and ev.probabilities == pytest.approx(p.probabilities, abs=1e-5)
    ev = evs[0]
    assert isinstance(run.evidence(TEXTS[0]), jaxconv.Evidence)
    top = ev.top(3)
    assert len(top.supporting) == 3 and all(t.contribution > 0 for t in top.supporting)
    assert [t.contribution for t in top.supporting] == sorted([t.contribution for t in top.supporting], reverse=True)
    assert all(t.contribution < 0 for t in top.opposing)
    assert top.supporting[0].text == "m00b m00a m00c"                                  # the planted motif
    against = ev.top(3, for_class="class0")
    assert [t.filter for t in against.opposing] == [t.filter for t in top.supporting]  # two classes: mirrored
    # Word scores: the margins of the filters whose window covers each word.
    scores = ev.word_scores()
    by_hand = np.zeros(len(ev.words))
    for j, w in enumerate(ev.ngrams):
        by_hand[w.span[0] - ev.start:w.span[1] - ev.start] += ev.margins()[j]
    np.testing.assert_allclose(scores, by_hand)
    assert scores[:3].min() > scores[3:].max()                                         # the motif's words
    assert "prediction: class1" in str(ev) and "for class1:" in str(ev) and "m00b m00a m00c" in str(ev)


def test_kims_test_time_dropout_scale_is_in_the_contributions():
    from jaxconv.models import TextCNN

    model = TextCNN(50, 3, embed_dim=8, widths=(2, 3), filters=4, dropout=0.5, dropout_scaling="test-time",
                    rngs=nnx.Rngs(0))
    model.classifier.bias[...] = jnp.array([0.3, -0.2, 0.1])
    tokens = np.array([[5, 6, 7, 8, 0, 0], [9, 3, 0, 0, 0, 0]], np.int32)
    evs = jaxconv.evidence(model, tokens, class_names=["a", "b", "c"])
    for i, ev in enumerate(evs):
        assert ev.scale == 0.5 and ev.class_names == ["a", "b", "c"] and len(ev.filters) == 8
        _check_identity(ev, model, tokens[i:i + 1])
    np.testing.assert_allclose(evs[0].contributions, 0.5 * evs[0].pooled[:, None] *
                               np.asarray(model.classifier.kernel[...]), rtol=1e-6)


# ------------------------------------------------------------------------------------------------ evidence: imported

V, D = 40, 6
WORDS = ["<pad>"] + [f"w{i}" for i in range(1, V)]


def _graph(head="softmax", hidden=False, masked=False):
    """Embedding -> Conv1D(2) and Conv1D(3) + ReLU -> global max each -> concatenate -> [Dense(4)] -> Dense."""
    units = 1 if head == "sigmoid" else 3
    nodes = [{"name": "emb", "op": "embedding", "inputs": ["ids"], "vocab_size": V, "dim": D},
             {"name": "c2", "op": "conv1d", "inputs": ["emb"], "in_channels": D, "filters": 4, "kernel_size": 2,
              "activation": "relu", "padding": "same" if masked else "valid"},              # a mask needs L positions
             {"name": "c3", "op": "conv1d", "inputs": ["emb"], "in_channels": D, "filters": 5, "kernel_size": 3,
              "activation": "relu"},
             {"name": "p2", "op": "global_max_pool", "inputs": ["c2"], "masked": masked},
             {"name": "p3", "op": "global_max_pool", "inputs": ["c3"]},
             {"name": "cat", "op": "concatenate", "inputs": ["p2", "p3"], "axis": -1},
             {"name": "drop", "op": "identity", "inputs": ["cat"]}]
    last = "drop"
    if hidden:
        nodes.append({"name": "hid", "op": "dense", "inputs": ["drop"], "in_features": 9, "units": 4,
                      "activation": "relu"})
        last = "hid"
    nodes.append({"name": "out", "op": "dense", "inputs": [last], "in_features": 4 if hidden else 9, "units": units,
                  "activation": head})
    return {"input": "ids", "output": "out", "nodes": nodes}


def _params(graph, seed=0):
    rng = np.random.default_rng(seed)
    shapes = {"emb": {"table": (V, D)}, "c2": {"kernel": (2, D, 4), "bias": (4,)},
              "c3": {"kernel": (3, D, 5), "bias": (5,)}}
    for n in graph["nodes"]:
        if n["op"] == "dense":
            shapes[n["name"]] = {"kernel": (n["in_features"], n["units"]), "bias": (n["units"],)}
    return {k: {w: rng.normal(size=s).astype("f4") for w, s in v.items()} for k, v in shapes.items()}


def _imported(monkeypatch, workdir=None, **kw):
    """An imported run (fixed length 10, Keras' pre-padding) of a NumPy-sourced graph (written to ``workdir``)."""
    graph = _graph(**kw)
    src = SourceModel(graph, _params(graph), "keras 3.test", "numpy cnn", [("c2", "Conv1D", "conv1d")], length=10,
                      padding="pre")
    monkeypatch.setattr(imports, "read_source", lambda s, example_input=None: src)
    return import_model("model", workdir, vocab=WORDS, label_names=None)


@pytest.mark.parametrize("head", ["softmax", "sigmoid", "linear"])
def test_evidence_of_an_imported_kim_shape_model_is_exact(monkeypatch, head):
    run = _imported(monkeypatch, head=head)
    texts = ["w1 w2 w3", "w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15", "w39"]
    evs = run.evidence(texts)
    K = 2 if head == "sigmoid" else 3
    for ev, text in zip(evs, texts):
        assert ev.contributions.shape == (9, K) and ev.class_names == [str(k) for k in range(K)]
        assert ev.filters[:5] == [("layers/c2", 0), ("layers/c2", 1), ("layers/c2", 2), ("layers/c2", 3),
                                  ("layers/c3", 0)]
        _check_identity(ev, run.model)
        assert ev.start + len(ev.words) == 10                                           # pre-padded rows
        for w in ev.ngrams:
            assert set(w.words) <= set(text.split())
    if head == "sigmoid":                                                               # logits [0, z]
        assert np.all(evs[0].contributions[:, 0] == 0) and evs[0].bias[0] == 0
        np.testing.assert_allclose(evs[0].margins(1), -evs[0].margins(0))
    probs = np.asarray(run.model.source_output(jnp.asarray(np.stack([ev.tokens for ev in evs]))))
    if head != "linear":
        got = np.array([list(ev.probabilities.values()) for ev in evs])
        np.testing.assert_allclose(got[:, -1] if head == "sigmoid" else got, probs[:, 0] if head == "sigmoid"
                                   else probs, atol=1e-5)


def test_models_of_another_shape_get_one_line_saying_why(monkeypatch):
    from jaxconv.models import CharCNN, ConvLM

    for kw, match in [({"hidden": True}, "dense layer 'out' reads 4 features|conv 'c2'"),
                      ({"masked": True}, "conv 'c2' of this ImportedModel is not read as evidence needs"),
                      ({"head": "relu"}, "ends in a 'relu' activation")]:
        run = _imported(monkeypatch, **kw)
        with pytest.raises(ValueError, match=match) as e:
            run.evidence("w1 w2 w3")
        assert "\n" not in str(e.value)
        assert run.predict("w1 w2 w3")[0].label in ("0", "1", "2")                     # predict works for any
    char = CharCNN(40, 3, length=150, features=4, hidden=8, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="this CharCNN is not: its convolutions are stacked"):
        jaxconv.evidence(char, np.ones((1, 150), np.int32))
    lm = ConvLM(30, embed_dim=4, channels=8, kernel_size=2, dilations=(1,), rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="ConvLM is not: it is a language model"):
        jaxconv.evidence(lm, np.ones((1, 8), np.int32))
    from jaxconv.dump.memory import memory_run

    lm_run = memory_run(lm, [f"t{i}" for i in range(30)])
    with pytest.raises(ValueError, match="language model .* predict needs a classifier"):
        lm_run.predict(["t1 t2"])


# ------------------------------------------------------------------------------------------------ the command


def test_jaxconv_predict_prints_the_prediction_and_its_filters(demo_run, capsys):
    assert main(["predict", "--workdir", str(demo_run), TEXTS[0], TEXTS[1], "--top", "2"]) == 0
    out = capsys.readouterr().out
    first, second = out.split("\n\n")
    assert first.startswith(repr(TEXTS[0])) and "prediction: class1    (class0 0.0" in first
    assert "for class1:" in first and "against class1:" in first and "m00b m00a m00c" in first
    assert first.count(" convs/") == 4 and "prediction: class0" in second
    assert main(["predict", "--workdir", str(demo_run), TEXTS[0], "--no-evidence"]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("prediction: class1    (class0 ")


def test_jaxconv_predict_errors_are_one_line(demo_run, tmp_path, monkeypatch, capsys):
    assert main(["predict", "--workdir", str(tmp_path / "nope"), "x"]) == 2
    assert "workdir" in capsys.readouterr().err
    assert main(["predict", "--workdir", str(demo_run)]) == 2
    assert "give the texts to classify" in capsys.readouterr().err
    folder = tmp_path / "hidden"
    _imported(monkeypatch, folder, hidden=True)
    assert main(["predict", "--workdir", str(folder), "w1 w2 w3", "--evidence"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("jaxconv predict: error: --evidence: ") and err.count("\n") == 1
    assert main(["predict", "--workdir", str(folder), "w1 w2 w3"]) == 0                # evidence only when it can
    captured = capsys.readouterr()
    assert "prediction: " in captured.out and "no per-filter evidence" in captured.err


def test_readme_shows_what_jaxconv_predict_prints_for_the_demo_run(demo_run, capsys):
    """The README's ``jaxconv predict`` block is this command's output on make demo's run (the same config, trained
    on a CPU: a GPU trains other weights)."""
    if jax.default_backend() != "cpu":
        pytest.skip("the README's numbers come from a run trained on a CPU")
    import pathlib
    import re
    import shlex

    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = re.search(r"```\n\$ (jaxconv predict --workdir runs/demo [^\n]+)\n(.*?)```", readme, re.S)
    argv = shlex.split(block.group(1))[1:]
    argv[argv.index("runs/demo")] = str(demo_run)
    assert main(argv) == 0
    assert capsys.readouterr().out == block.group(2)
