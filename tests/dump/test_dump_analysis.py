"""``jaxconv.load_dump``: n-grams, slot words, the purity threshold, the planted-motif ground truth, xarray, and
the example notebook run against the demo's dump."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from conftest import REPO_ROOT

import jaxconv
from jaxconv.dump import DumpAdapter, dump_activations, dump_path, load_dump
from jaxconv.dump.analysis import class_association, purity_threshold
from jaxconv.dump.motifs import planted_motifs, recover_motifs

pytestmark = pytest.mark.slow  # a trained run's dump analysed, the example notebook


@pytest.fixture(scope="module")
def dump(demo_dump):
    return load_dump(demo_dump, "test")


def test_top_ngrams_are_the_strongest_windows_without_padding(dump):
    layer, f = "convs/2", 3
    pooled = dump.pooled(layer)[:, f]
    tops = dump.top_ngrams(layer, f, k=8)
    assert [g.value for g in tops] == sorted(pooled, reverse=True)[:8]
    assert len({g.example for g in tops}) == 8
    tokens, lengths = dump.column("tokens"), dump.column("lengths")
    for g in tops:
        row = dump.feature_map(layer, f)[g.example]                                      # (P,)
        assert row[g.position] == pytest.approx(g.value)
        start, end = g.span
        assert dump.pad_left <= start < end <= dump.pad_left + lengths[g.example]        # never padding
        assert end - start <= 5 and tuple(dump.vocab[t] for t in tokens[g.example, start:end]) == g.words
        assert g.text == " ".join(g.words) and g.label == dump.labels[g.example]

def test_a_window_past_the_last_word_is_cut_at_it(dump, tmp_path):
    """Point an argmax at the window that starts on the last word of the shortest example (its other 4 tokens are
    padding): the n-gram is that word alone."""
    import zarr

    copy = tmp_path / "cut.zarr"
    shutil.copytree(os.fspath(dump.path), copy)
    i = int(np.argmin(dump.column("lengths")))
    last = dump.pad_left + int(dump.column("lengths")[i]) - 1
    g = zarr.open_group(str(copy), mode="r+")
    g["argmax/convs/2"][i, 3] = last                                                     # span [last, last + 5)
    ngram = load_dump(copy).ngram("convs/2", 3, i)
    assert ngram.span == (last, last + 1) and ngram.words == (dump.words(i)[-1],)


def test_slot_words_are_the_best_dot_products(dump):
    layer, f = "convs/1", 7
    kernel = dump.group[f"kernels/{layer}"][:, :, f]                                     # (4, 64)
    table = dump.group["embedding"][...]                                                 # (V, 64)
    run = jaxconv.load_run(dump.attrs["workdir"])
    np.testing.assert_allclose(table, np.asarray(run.model.embed(np.arange(len(run.vocab))[None]))[0], atol=1e-6)
    slots = dump.slot_words(layer, f, k=4)
    assert len(slots) == 4 and all(len(s) == 4 for s in slots)
    for j, slot in enumerate(slots):
        scores = table @ kernel[j]
        scores[:2] = -np.inf                                                             # <pad>, <unk> left out
        best = np.argsort(-scores)[:4]
        assert [w.id for w in slot] == best.tolist() and [w.word for w in slot] == [dump.vocab[i] for i in best]
        np.testing.assert_allclose([w.score for w in slot], scores[best], rtol=1e-5)


def test_purity_threshold_rule():
    v = np.array([5., 4., 4., 3., 2., 1.])
    pred = np.array([1, 1, 0, 0, 0, 0])
    # t=1, 2 pure; a cut between the two 4s is not allowed; t=3 has purity 2/3
    t = purity_threshold(v, pred, identity_class=1, minimum_purity=0.6)
    assert (t.value, t.passing, t.purity) == (3.0, 3, pytest.approx(2 / 3))
    t = purity_threshold(v, pred, identity_class=1, minimum_purity=0.9)
    assert (t.value, t.passing, t.purity) == (4.0, 1, 1.0)
    none = purity_threshold(v, pred, identity_class=1, minimum_purity=1.0)
    assert none.passing == 1 and none.value == 4.0
    nothing = purity_threshold(v, np.zeros(6, int), identity_class=1)
    assert (nothing.passing, nothing.value, nothing.purity) == (0, 5.0, 0.0)
    every = purity_threshold(v, np.ones(6, int), identity_class=1)
    assert every.passing == 6 and every.value < 1.0 and every.coverage == 1.0
    with pytest.raises(ValueError, match=r"minimum_purity=1.5 must be in \(0, 1\]"):
        purity_threshold(v, pred, identity_class=1, minimum_purity=1.5)


def test_dump_threshold_and_class_association(dump):
    layer = "convs/0"
    preds = dump.predictions
    weights = dump.group[f"class_weights/{layer}"][...]                                  # (F, K)
    for f in range(0, 32, 5):
        t = dump.threshold(layer, f)
        values = dump.pooled(layer)[:, f]
        above = values > t.value
        assert t.identity_class == int(np.argmax(weights[f])) and above.sum() == t.passing
        if t.passing:
            assert np.mean(preds[above] == t.identity_class) == pytest.approx(t.purity) and t.purity >= 0.75
    classes, effect = dump.class_association(layer)
    assert classes.shape == effect.shape == (32,)
    pooled, y = dump.pooled(layer), dump.labels
    f = int(np.argmax(effect))
    c = classes[f]
    expected = (pooled[y == c, f].mean() - pooled[y != c, f].mean()) / pooled[:, f].std()
    assert effect[f] == pytest.approx(expected) and effect[f] > 1.0
    assert class_association(np.ones((4, 2)), np.array([0, 1, 0, 1]), 2)[1].tolist() == [0.0, 0.0]


def test_planted_motifs_are_recovered(dump, capsys):
    """The ground truth: >= 90% of the planted motifs are some filter's top n-gram (make demo prints this)."""
    from runpy import run_path

    recovery = recover_motifs(dump, planted_motifs(dump.attrs["config"]))
    assert recovery.total == 6 and recovery.fraction >= 0.9, recovery.table()
    for row in recovery.rows:
        for layer, f, value in row.filters:
            assert dump.top_ngrams(layer, f, k=1)[0].words == row.motif and value > 0
    script = run_path(str(REPO_ROOT / "experiments" / "planted_motifs.py"), run_name="planted")
    assert script["main"](["--workdir", dump.attrs["workdir"]]) == 0
    assert "are the top n-gram of at least one filter" in capsys.readouterr().out


def test_motif_check_fails_for_shuffled_spans_and_an_untrained_model(dump, tmp_path):
    """The check can fail: with the spans shuffled, or for a model trained one step, few motifs are found."""
    import zarr

    from jaxconv.cli import main

    copy = tmp_path / "shuffled.zarr"
    shutil.copytree(os.fspath(dump.path), copy)
    g = zarr.open_group(str(copy), mode="r+")
    for layer in dump.layers:
        spans = g[f"spans/{layer}"][...]
        g[f"spans/{layer}"][...] = spans[np.random.default_rng(0).permutation(len(spans))]
    motifs = planted_motifs(dump.attrs["config"])
    assert recover_motifs(load_dump(copy), motifs).fraction < 0.5

    run = tmp_path / "untrained"
    assert main(["train", "text_cnn", "--workdir", str(run), "--config.train.steps=1", "--config.progress=false"]) == 0
    dump_activations(run)
    assert recover_motifs(load_dump(run), motifs).fraction < 0.5


def test_to_xarray_is_lazy_and_complete(dump):
    xr = pytest.importorskip("xarray", reason="xarray is an optional reader (the test extras install it)")
    ds = dump.to_xarray()
    assert isinstance(ds, xr.Dataset)
    assert ds["maps/convs/2"].dims == ("example", "position[convs/2]", "filter[convs/2]")
    assert ds.sizes["example"] == 200 and ds.sizes["filter[convs/0]"] == 32 and ds.attrs["name"] == "test"
    np.testing.assert_array_equal(ds["maps/convs/2"].isel({"filter[convs/2]": 4}).values,
                                  np.asarray(dump.feature_map("convs/2", 4)))
    assert list(ds["texts"].values[:3]) == list(dump.column("texts")[:3])


def test_default_adapter_finds_the_embedding_of_any_token_model():
    from flax import nnx

    class Stack(nnx.Module):
        def __init__(self):
            self.table = nnx.Embed(10, 4, rngs=nnx.Rngs(0))
            self.convs = nnx.List([jaxconv.Conv1D(4, 3, 2, rngs=nnx.Rngs(0)),
                                   jaxconv.Conv1D(3, 3, 2, rngs=nnx.Rngs(1))])

        def embed(self, tokens):
            return self.table(tokens)

        def __call__(self, tokens):
            x = self.embed(tokens)
            for conv in self.convs:
                x = conv(x)
            return x.max(axis=1)

    m = Stack()
    adapter = DumpAdapter()
    assert adapter.embedded_layers(m) == ["convs/0"] and adapter.class_weights(m, "convs/0") is None
    np.testing.assert_allclose(adapter.embedding_table(m, 10), m.table.embedding[...])


def test_load_dump_errors_name_what_is_there(demo_dump, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no dump 'nope' in .*dumps; the dumps there: .*test"):
        load_dump(demo_dump, "nope")
    with pytest.raises(FileNotFoundError, match=r"name the dump; found 0 in"):
        load_dump(tmp_path)
    d = load_dump(dump_path(demo_dump, "test"))
    with pytest.raises(ValueError, match=r"layer 'convs/7' is not in this dump; its layers are convs/0, convs/1"):
        d.feature_map("convs/7", 0)
    with pytest.raises(IndexError, match=r"filter=32 is out of range for layer 'convs/0'; expected 0 <= filter < 32"):
        d.top_ngrams("convs/0", 32)


def test_example_notebook_runs_against_the_demo_dump(demo_dump, monkeypatch):
    """experiments/notebooks/explore_filters.ipynb in a real kernel, on the demo's dump: it cannot rot."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = REPO_ROOT / "experiments" / "notebooks" / "explore_filters.ipynb"
    nb = nbformat.read(path, as_version=4)
    monkeypatch.setenv("JAXCONV_RUN", str(demo_dump))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}}).execute()
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "(5, 300, 111) ('width', 'in', 'out')" in text and "output (2, 46, 111)" in text
    assert "Keras 1 kernel (5, 1, 300, 111) = (width=5, 1=1, in=300, out=111)" in text
    assert "Dump(" in text and "200 examples" in text and "Threshold(value=" in text
    images = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1
    d = load_dump(demo_dump, "test")
    f = int(d.pooled("convs/0").max(axis=0).argmax())
    assert d.top_ngrams("convs/0", f, k=1)[0].text in text
