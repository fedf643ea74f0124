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
from jaxconv.dump.analysis import ClassAssociation, class_association, firing_slots, purity_threshold
from jaxconv.dump.ngrams import NGram, group_by_slots
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
        assert g.text == " ".join(g.words) and g.label == dump.labels[g.example] and g.count == 1
        assert g.label_name == dump.label_names[g.label] and g.prediction_name == dump.label_names[g.prediction]
        assert isinstance(g.label, int) and g.label_name.startswith("class")


def test_distinct_top_ngrams_count_the_examples_that_had_them(dump):
    """distinct=True: one record per text, in order of first appearance, count = how many of the k had it."""
    layer, k = "convs/0", 50
    for f in range(0, 32, 3):
        tops = dump.top_ngrams(layer, f, k=k)
        merged = dump.top_ngrams(layer, f, k=k, distinct=True)
        texts = [g.text for g in tops]
        assert [g.text for g in merged] == list(dict.fromkeys(texts))                     # distinct, first seen first
        assert [g.count for g in merged] == [texts.count(g.text) for g in merged]
        assert sum(g.count for g in merged) == k
        first = {g.text: g for g in reversed(tops)}
        assert all(g.example == first[g.text].example and g.value == first[g.text].value for g in merged)
    # the planted motif's filter: its 10 strongest examples are one n-gram
    f = int(dump.pooled(layer).max(axis=0).argmax())
    assert [g.count for g in dump.top_ngrams(layer, f, k=10, distinct=True)] == [10]


def test_slot_contributions_sum_to_the_activation(dump):
    """kernel row . word vector per slot, plus the bias, is the pooled value (ReLU, where it is positive), for
    every example and a few filters of each layer: the slots are aligned with the words the window read."""
    for layer in dump.layers:
        bias = dump.group[f"biases/{layer}"][...]
        W = dump.attrs["layer_info"][layer]["kernel_shape"][0]
        for f in (0, 13, 31):
            c = dump.slot_contributions(layer, f, np.arange(dump.num_examples))         # (N, W)
            pooled = dump.pooled(layer)[:, f]
            assert c.shape == (dump.num_examples, W)
            positive = pooled > 1e-3
            assert positive.sum() > 100
            np.testing.assert_allclose(c.sum(1)[positive] + bias[f], pooled[positive], atol=2e-5)
    with pytest.raises(IndexError, match="filter=32 is out of range"):
        dump.slot_contributions("convs/0", 32, [0])


def test_ngram_groups_partition_the_top_examples_by_firing_slots(dump):
    layer, k = "convs/0", 50
    for f in range(32):
        groups = dump.ngram_groups(layer, f, k=k)
        tops = dump.top_ngrams(layer, f, k=k)
        members = sorted(i for g in groups for ex in g.examples for i in ex)
        assert members == sorted(g.example for g in tops) and sum(g.count for g in groups) == k
        assert [g.count for g in groups] == sorted((g.count for g in groups), reverse=True)
        for group in groups:
            assert group.contributions.shape == (len(group.ngrams), 3)
            assert len({g.text for g in group.ngrams}) == len(group.ngrams)
            for g, c, ex in zip(group.ngrams, group.contributions, group.examples):
                assert firing_slots(c) == group.slots and g.count == len(ex) and g.example == ex[0]
                np.testing.assert_allclose(c, dump.slot_contributions(layer, f, [g.example])[0])
    # two families told apart: an n-gram that fires on its first word only, another on its last two
    gs = [NGram(2.0, 0, 0, (0, 3), ("x", "b", "c"), "x b c"), NGram(1.9, 1, 0, (0, 3), ("a", "y", "z"), "a y z"),
          NGram(1.8, 2, 0, (0, 3), ("w", "b", "c"), "w b c")]
    slots = np.array([[0.1, 1.0, 0.9], [1.5, 0.2, -0.1], [0.0, 1.1, 0.7]])
    assert [(g.slots, g.count, [n.text for n in g.ngrams]) for g in group_by_slots(gs, slots)] == [
        ((1, 2), 2, ["x b c", "w b c"]), ((0,), 1, ["a y z"])]
    assert firing_slots(np.array([-1.0, -0.5])) == () and firing_slots(np.array([1.0, 0.49])) == (0,)

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
    assert none.passing == 1 and none.value == 4.0 and none.found
    nothing = purity_threshold(v, np.zeros(6, int), identity_class=1)
    assert (nothing.passing, nothing.value, nothing.purity, nothing.found) == (0, None, 0.0, False)
    assert nothing.describe() == "no threshold reaches 75% purity" and nothing.coverage == 0.0
    assert none.describe() == "threshold 4.000: 1 of 6 examples (17%) above it, 100% pure"
    every = purity_threshold(v, np.ones(6, int), identity_class=1)
    assert every.passing == 6 and every.value < 1.0 and every.coverage == 1.0
    with pytest.raises(ValueError, match=r"minimum_purity=1.5 must be in \(0, 1\]"):
        purity_threshold(v, pred, identity_class=1, minimum_purity=1.5)


def test_dump_threshold_and_class_association(dump):
    layer = "convs/0"
    preds = dump.predictions
    weights = dump.group[f"class_weights/{layer}"][...]                                  # (F, K)
    for f in range(32):
        t = dump.threshold(layer, f)
        values = dump.pooled(layer)[:, f]
        assert t.identity_class == int(np.argmax(weights[f]))
        if t.found:
            above = values > t.value
            assert above.sum() == t.passing > 0
            assert np.mean(preds[above] == t.identity_class) == pytest.approx(t.purity) and t.purity >= 0.75
        else:                                        # no cut reaches 75%: even the strongest example is not pure
            assert t.value is None and t.passing == 0 and t.purity == 0.0
            order = np.argsort(-values, kind="stable")
            hits = np.cumsum(preds[order] == t.identity_class) / np.arange(1, 201)
            assert hits.max() < 0.75 or not np.any(np.append(np.diff(values[order]) < 0, True) & (hits >= 0.75))
    association = dump.class_association(layer)
    assert isinstance(association, ClassAssociation) and association.classes is association[0]
    classes, effect = association                                                        # still unpacks
    assert classes.shape == effect.shape == (32,) and association.effect is effect
    pooled, y = dump.pooled(layer), dump.labels
    f = int(np.argmax(effect))
    c = classes[f]
    expected = (pooled[y == c, f].mean() - pooled[y != c, f].mean()) / pooled[:, f].std()
    assert effect[f] == pytest.approx(expected) and effect[f] > 1.0
    assert class_association(np.ones((4, 2)), np.array([0, 1, 0, 1]), 2)[1].tolist() == [0.0, 0.0]


def test_dump_threshold_says_when_there_is_none(dump, tmp_path):
    """A filter whose class the model never predicts: no value reaches the purity, and the threshold says so."""
    import zarr

    copy = tmp_path / "never.zarr"
    shutil.copytree(os.fspath(dump.path), copy)
    g = zarr.open_group(str(copy), mode="r+")
    weights = g["class_weights/convs/0"][...]
    weights[4] = [0.0, 1.0]                                                              # filter 4's class: 1
    g["class_weights/convs/0"][...] = weights
    with zarr.config.set({"array.write_empty_chunks": True}):     # an all-zero chunk is still a file, as dumps write
        g["predictions"][...] = np.zeros(dump.num_examples, np.int32)                    # nothing predicted 1
    t = load_dump(copy).threshold("convs/0", 4)
    assert (t.found, t.value, t.passing, t.identity_class) == (False, None, 0, 1)
    assert t.describe() == "no threshold reaches 75% purity"
    assert load_dump(copy).threshold("convs/0", 4, minimum_purity=0.5).describe() == "no threshold reaches 50% purity"


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


def test_to_xarray_of_one_layer_has_plain_names_and_coordinates(dump):
    xr = pytest.importorskip("xarray", reason="xarray is an optional reader (the test extras install it)")
    ds = dump.to_xarray("convs/2")
    assert isinstance(ds, xr.Dataset)
    assert ds.maps.dims == ("example", "position", "filter") and ds.pooled.dims == ("example", "filter")
    assert ds.kernel.dims == ("slot", "in", "filter") and ds["argmax"].dims == ("example", "filter")
    assert not ds.maps.variable._in_memory                                               # lazy until used
    np.testing.assert_array_equal(ds.pooled.sel(filter=3).values, dump.pooled("convs/2")[:, 3])
    np.testing.assert_array_equal(ds.maps.sel(filter=4).values, np.asarray(dump.feature_map("convs/2", 4)))
    assert ds.filter.values.tolist() == list(range(32)) and ds.sizes["position"] == 36
    assert ds["class"].values.tolist() == ["class0", "class1"]
    assert ds.label.values.tolist() == dump.labels.tolist() and ds.prediction.values.tolist() == \
        dump.predictions.tolist()
    assert list(ds.label_name.values[:4]) == [dump.class_name(c) for c in dump.labels[:4]]
    assert list(ds.prediction_name.values[:4]) == [dump.class_name(c) for c in dump.predictions[:4]]
    assert list(ds.text.values[:3]) == list(dump.column("texts")[:3])
    assert float(ds.class_weights.sel(filter=3, **{"class": "class1"})) == dump.group["class_weights/convs/2"][3, 1]
    strong = ds.pooled.sel(filter=3).where(ds.label_name == "class1", drop=True)     # by coordinate
    assert strong.sizes["example"] == int((dump.labels == 1).sum())
    assert ds.attrs["layer"] == "convs/2" and ds.attrs["name"] == "test"
    with pytest.raises(ValueError, match=r"layer 'convs/9' is not in this dump"):
        dump.to_xarray("convs/9")


def test_to_xarray_of_every_layer_keeps_the_store_names(dump):
    pytest.importorskip("xarray", reason="xarray is an optional reader (the test extras install it)")
    ds = dump.to_xarray()
    assert ds["maps/convs/2"].dims == ("example", "position[convs/2]", "filter[convs/2]")
    assert ds.sizes["example"] == 200 and ds.sizes["filter[convs/0]"] == 32 and ds.attrs["name"] == "test"
    np.testing.assert_array_equal(ds["maps/convs/2"].sel({"filter[convs/2]": 4}).values,
                                  np.asarray(dump.feature_map("convs/2", 4)))
    np.testing.assert_array_equal(ds["pooled/convs/0"].sel({"filter[convs/0]": 3}).values, dump.pooled("convs/0")[:, 3])
    assert list(ds.text.values[:3]) == list(dump.column("texts")[:3]) and "texts" not in ds.data_vars
    assert ds["class"].values.tolist() == ["class0", "class1"] and ds.label_name.dims == ("example",)


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
    with pytest.raises(IndexError, match=r"filter=32 is out of range for layer 'convs/0'; expected an int with "
                                         r"0 <= filter < 32"):
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
