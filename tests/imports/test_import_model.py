"""import_model's own part, apart from any source format: vocabularies, padding sides, the run folder (written whole
or not at all), the check against the source, the dump of an imported run, and the command line.

The source here is a NumPy model (a Kim-style text CNN written out by hand), handed to ``import_model`` as a
:class:`jaxconv.imports.SourceModel`; the Keras and PyTorch readers have their own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import jaxconv
import jaxconv.imports as imports
from jaxconv.data import SourceVocab, keras_tokenizer
from jaxconv.imports import SourceModel, UnsupportedModel, import_model
from jaxconv.imports.vocab import read_vocab

V, D, F = 40, 8, 5


def _numpy_cnn(seed=0, *, softmax=True):
    """A layer graph, its weights and a NumPy forward pass of Embedding -> Conv1D(3) + ReLU -> max -> Dense."""
    rng = np.random.default_rng(seed)
    graph = {"input": "ids", "output": "out", "nodes": [
        {"name": "emb", "op": "embedding", "inputs": ["ids"], "vocab_size": V, "dim": D},
        {"name": "conv", "op": "conv1d", "inputs": ["emb"], "in_channels": D, "filters": F, "kernel_size": 3,
         "activation": "relu"},
        {"name": "pool", "op": "global_max_pool", "inputs": ["conv"]},
        {"name": "drop", "op": "identity", "inputs": ["pool"]},
        {"name": "out", "op": "dense", "inputs": ["drop"], "in_features": F, "units": 2,
         "activation": "softmax" if softmax else "linear"}]}
    params = {"emb": {"table": rng.normal(size=(V, D)).astype("f4")},
              "conv": {"kernel": rng.normal(size=(3, D, F)).astype("f4"), "bias": rng.normal(size=F).astype("f4")},
              "out": {"kernel": rng.normal(size=(F, 2)).astype("f4"), "bias": rng.normal(size=2).astype("f4")}}

    def forward(ids):
        x = params["emb"]["table"][np.asarray(ids)]                                       # (B, L, D)
        L = x.shape[1]
        y = np.stack([np.einsum("bkd,kdf->bf", x[:, t:t + 3], params["conv"]["kernel"]) for t in range(L - 2)], 1)
        z = np.maximum(y + params["conv"]["bias"], 0).max(1) @ params["out"]["kernel"] + params["out"]["bias"]
        if not softmax:
            return z
        e = np.exp(z - z.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    return graph, params, forward


@pytest.fixture
def source(monkeypatch):
    """Make ``import_model("model")`` read the NumPy model (a Keras-like source: fixed length 12, pre-padding)."""
    graph, params, forward = _numpy_cnn()
    src = SourceModel(graph, params, "keras 3.test", "numpy cnn", [("conv", "Conv1D", "conv1d")], length=12,
                      padding="pre", reference=forward)
    monkeypatch.setattr(imports, "read_source", lambda s, example_input=None: src)
    return src


WORDS = ["<pad>"] + [f"w{i}" for i in range(1, V)]


def test_import_writes_a_run_that_load_run_reads_with_equal_outputs(source, tmp_path):
    run = import_model("model", tmp_path / "run", vocab=WORDS, label_names=["neg", "pos"])
    assert run.source["max_difference"] is not None and run.source["max_difference"] <= 1e-5
    assert sorted(os.listdir(tmp_path)) == ["run"]                                       # no .partial left
    loaded = jaxconv.load_run(tmp_path / "run")
    assert (loaded.fixed_length, loaded.padding, loaded.truncating, loaded.label_names) == (12, "pre", "pre",
                                                                                        ["neg", "pos"])
    assert loaded.config.model.name == "imported" and loaded.source["framework"] == "keras 3.test"
    ids = np.random.default_rng(1).integers(0, V, (6, 12)).astype(np.int32)
    np.testing.assert_allclose(np.asarray(loaded.model.source_output(ids)), source.reference(ids), atol=1e-6)
    # The logits leave the softmax off: the same argmax, and softmax(logits) is the source's output.
    logits = np.asarray(loaded.model(ids))
    np.testing.assert_allclose(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True), source.reference(ids),
                               atol=1e-6)
    e = jaxconv.explain(loaded.model, (1, 12), dtype="int32")
    assert e.row("layers/conv").kernel_shape == (3, D, F) and e.row("layers/conv").output_shape == (1, 10, F)
    assert jaxconv.feature_map(loaded.model, ids, "layers/conv", 2).shape == (6, 10)
    assert jaxconv.saliency(loaded.model, ids, "layers/conv", 2).grad_norm.shape == (6, 12)


def test_encode_pads_and_cuts_as_keras_pad_sequences(source, tmp_path):
    keras = pytest.importorskip("keras")
    run = import_model("model", vocab=WORDS)
    texts = ["w1 w2 w3", " ".join(f"w{i}" for i in range(1, 20)), "w5 nope w6"]
    tokens, starts, lengths, words = run.encode_rows(texts)
    seqs = [[int(w[1:]) for w in t.split() if w != "nope"] for t in texts]             # the ids, unknown dropped
    np.testing.assert_array_equal(tokens, keras.utils.pad_sequences(seqs, maxlen=12))
    np.testing.assert_array_equal(starts, [9, 0, 10])
    np.testing.assert_array_equal(lengths, [3, 12, 2])
    assert words[2] == ["w5", "w6"] and words[1][0] == "w8"                               # the start was cut
    post = import_model("model", vocab=WORDS, padding="post", truncating="post")
    np.testing.assert_array_equal(post.encode(texts),
                                  keras.utils.pad_sequences(seqs, maxlen=12, padding="post", truncating="post"))


@pytest.mark.slow
def test_the_dump_feeds_what_the_source_saw(source, tmp_path):
    """The dump's predictions and probabilities are the source's on the same texts, encoded as it encoded them."""
    import_model("model", tmp_path / "run", vocab=WORDS)
    rng = np.random.default_rng(3)
    texts = [" ".join(f"w{i}" for i in rng.integers(1, V, rng.integers(1, 20))) for _ in range(37)]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    from jaxconv.dump import dump_activations, load_dump

    dump_activations(tmp_path / "run", input=tmp_path / "texts.txt", batch_size=8)
    d = load_dump(tmp_path / "run", "texts")
    ids = [[int(w[1:]) for w in t.split()] for t in texts]
    padded = np.zeros((len(ids), 12), np.int64)
    for i, x in enumerate(ids):                                                          # pad_sequences by hand
        x = x[-12:]
        padded[i, 12 - len(x):] = x
    ref = source.reference(padded)
    np.testing.assert_array_equal(d.predictions, ref.argmax(-1))
    np.testing.assert_allclose(d.group["probabilities"][...], ref, atol=1e-5)
    # Every n-gram lies inside its example's words, which sit at the end of the row.
    for g in d.top_ngrams("layers/conv", 0, 10):
        first = d.start(g.example)
        assert first == 12 - len(d.words(g.example)) and first <= g.span[0] <= g.span[1] <= 12
        assert list(g.words) == d.words(g.example)[g.span[0] - first:g.span[1] - first]
    assert d.has("class_weights/layers/conv") and d.attrs["imported_from"]["framework"] == "keras 3.test"


def test_dump_of_a_model_in_memory(source, tmp_path):
    from jaxconv.dump import dump_activations, load_dump

    run = import_model("model", vocab=WORDS)
    texts = ["w1 w2 w3 w4", "w9 w8 w7"]
    r = dump_activations(model=run.model, texts=texts, labels=[0, 1], vocab=WORDS, path=tmp_path / "mem.zarr")
    d = load_dump(r.path)
    assert d.num_examples == 2 and list(d.labels) == [0, 1] and d.words(1) == ["w9", "w8", "w7"]
    # With no run, the model's own max_length (12) is the length; its padding is jaxconv's (post).
    assert d.padded_length == 12 and d.start(1) == 0
    with pytest.raises(ValueError, match="give texts= and path="):
        dump_activations(model=run.model, texts=texts, vocab=WORDS)


def test_a_source_that_differs_is_refused_and_nothing_is_written(source, tmp_path):
    source.reference = lambda ids: _numpy_cnn(seed=1)[2](ids)                            # other weights
    with pytest.raises(UnsupportedModel, match=r"differs from its source .* above the tolerance 1e-05; not imported"):
        import_model("model", tmp_path / "run", vocab=WORDS)
    assert not os.listdir(tmp_path)


def test_bad_arguments_name_what_was_expected(source, tmp_path):
    with pytest.raises(ValueError, match=r"has 41 ids \(0..40\) but the model's embedding has 40 rows"):
        import_model("model", tmp_path / "run", vocab=WORDS + ["extra"])
    with pytest.raises(ValueError, match=r"--max-length 2 is shorter than the model's shortest input, 3 tokens: .*"
                                         r"node 'conv' \(conv1d\).* d\*\(k-1\)\+1 = 1\*\(3-1\)\+1 = 3"):
        import_model("model", tmp_path / "run", vocab=WORDS, max_length=2)
    with pytest.raises(ValueError, match=r"--labels names 3 classes \(a, b, c\) but the model has 2 outputs"):
        import_model("model", tmp_path / "run", vocab=WORDS, label_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="--padding 'left' is not known; expected pre or post"):
        import_model("model", tmp_path / "run", vocab=WORDS, padding="left")
    assert not os.listdir(tmp_path)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("keep me")
    with pytest.raises(ValueError, match="already exists and is not empty"):
        import_model("model", tmp_path / "full", vocab=WORDS)
    assert (tmp_path / "full" / "x").read_text() == "keep me"


# ------------------------------------------------------------------------------------------- vocabularies


def test_vocabulary_files(tmp_path):
    (tmp_path / "v.txt").write_text("<pad>\n[UNK]\nthe\nfilm\n")
    v, tok, _ = read_vocab(tmp_path / "v.txt", 4)
    assert v.encode(["the", "zzz", "film"]) == [2, 1, 3] and tok is None
    (tmp_path / "wi.json").write_text(json.dumps({"the": 1, "film": 2, "good": 3}))
    v, _, _ = read_vocab(tmp_path / "wi.json", 4)
    assert v.encode(["good", "zzz", "the"]) == [3, 1] and v.decode([0, 2]) == ["<pad>", "film"]  # unknown: dropped
    with pytest.raises(ValueError, match=r"has 4 ids \(0..3\) but the model's embedding has 500 rows"):
        read_vocab(tmp_path / "wi.json", 500)
    with pytest.raises(ValueError, match=r"has 4 ids .* 3 rows.*pass its to_json\(\) instead of its word_index"):
        read_vocab(tmp_path / "wi.json", 3)
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_vocab(tmp_path / "missing.txt", 3)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="looks like JSON but does not parse"):
        read_vocab(tmp_path / "bad.json", 3)


def test_a_keras_tokenizer_json_brings_its_rules(tmp_path):
    """``Tokenizer(num_words=4, oov_token="<OOV>", filters="!").to_json()`` as keras_preprocessing writes it: the
    word_index is itself JSON text; ids at or above num_words are out of vocabulary."""
    index = {"<OOV>": 1, "the": 2, "film": 3, "good": 4, "bad": 5}
    cfg = {"num_words": 4, "filters": "!", "lower": True, "split": " ", "char_level": False, "oov_token": "<OOV>",
           "document_count": 2, "word_index": json.dumps(index), "index_word": json.dumps({})}
    (tmp_path / "tok.json").write_text(json.dumps({"class_name": "Tokenizer", "config": cfg}))
    v, tok, options = read_vocab(tmp_path / "tok.json", 4)
    assert (tok, options) == ("keras", {"filters": "!", "lower": True, "split": " "})
    words = keras_tokenizer(**options)("The film, GOOD!")
    assert words == ["the", "film,", "good"] and v.encode(words) == [2, 1, 1]
    v.save(tmp_path / "saved.json")
    assert isinstance(jaxconv.data.Vocab.load(tmp_path / "saved.json"), SourceVocab)


def test_the_keras_word_splitting():
    """keras_preprocessing.text.text_to_word_sequence: lower-case, filter characters to spaces, split, drop empties."""
    split = keras_tokenizer()
    assert split("Hello, World!  It's a\ttest.") == ["hello", "world", "it's", "a", "test"]
    assert keras_tokenizer(lower=False, filters="")("A b") == ["A", "b"]


def test_ids_only_reads_texts_of_ids(source):
    run = import_model("model")
    assert run.tokenizer == "whitespace" and run.encode(["3 17 0"])[0, -3:].tolist() == [3, 17, 0]


# ------------------------------------------------------------------------------------------- command line


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "jaxconv", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**os.environ, "JAX_PLATFORMS": "cpu"})


@pytest.mark.slow
def test_import_command_refuses_files_that_are_not_models(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    r = _cli("import", tmp_path / "notes.txt", "--workdir", tmp_path / "run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "is not a model file jaxconv reads; expected a Keras .keras / .h5 file or a torch.export .pt2" in r.stderr
    (tmp_path / "broken.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 100)
    r = _cli("import", tmp_path / "broken.h5", "--workdir", tmp_path / "run")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert "broken.h5" in r.stderr
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()


@pytest.mark.slow
def test_explain_reads_a_run_folder(source, tmp_path):
    import_model("model", tmp_path / "run", vocab=WORDS, label_names=["neg", "pos"])
    r = _cli("explain", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert "imported from keras 3.test model numpy cnn; 2 classes (neg, pos)" in r.stdout
    assert "(width=3, in=8, out=5)" in r.stdout and "(1, 12, 8) -> (1, 10, 5)" in r.stdout


@pytest.mark.slow
def test_a_keras_model_in_memory_and_its_keras_file_import_equal(tmp_path):
    """import_model on a real Keras 3 model, in memory and saved as .keras: checked against Keras on random ids."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    model = keras.Sequential([keras.Input((20,), dtype="int32"), L.Embedding(V, D), L.Conv1D(F, 3, activation="relu"),
                              L.GlobalMaxPooling1D(), L.Dense(3, activation="softmax")])
    model.save(tmp_path / "m.keras")
    for source in (model, tmp_path / "m.keras"):
        run = import_model(source, vocab=WORDS)
        assert run.source["max_difference"] <= 1e-5 and run.fixed_length == 20 and run.padding == "pre"
        assert run.tokenizer == "keras" and run.num_classes == 3


@pytest.mark.slow
def test_import_command_on_keras_files_one_line_errors_and_the_measured_difference(tmp_path):
    """From the shell: a .keras file imports and prints its measured difference from Keras; an unsupported layer, a
    vocabulary of the wrong size and a --max-length below the kernel are one line each, exit 2, nothing written."""
    keras = pytest.importorskip("keras")
    L = keras.layers
    good = keras.Sequential([keras.Input((12,), dtype="int32"), L.Embedding(V, D), L.Conv1D(F, 5, activation="relu"),
                             L.GlobalMaxPooling1D(), L.Dense(2, activation="softmax")])
    good.save(tmp_path / "good.keras")
    lstm = keras.Sequential([keras.Input((12,), dtype="int32"), L.Embedding(V, D), L.LSTM(4), L.Dense(2)])
    lstm.save(tmp_path / "lstm.keras")
    (tmp_path / "vocab.txt").write_text("\n".join(WORDS) + "\n")
    (tmp_path / "small.txt").write_text("\n".join(WORDS[:10]) + "\n")
    bad = {
        ("lstm.keras", "--vocab", "vocab.txt"): "layer 'lstm' (LSTM): not supported",
        ("good.keras", "--vocab", "small.txt"): "has 10 ids (0..9) but the model's embedding has 40 rows",
        ("good.keras", "--vocab", "vocab.txt", "--max-length", "4"):
            "--max-length 4 is shorter than the model's shortest input, 5 tokens",
    }
    for args, message in bad.items():
        r = _cli("import", *args, "--workdir", "run", cwd=tmp_path)
        assert r.returncode == 2 and message in r.stderr, r.stderr
        assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
        assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    r = _cli("import", "good.keras", "--vocab", "vocab.txt", "--workdir", "run", "--labels", "neg,pos", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "largest difference from the source on random ids:" in r.stdout and "(width=5, in=8, out=5)" in r.stdout
    assert "input: token ids padded to 12 (pre-padding, pre-truncating)" in r.stdout
