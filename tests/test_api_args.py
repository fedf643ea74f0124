"""The Python API's argument rule (:mod:`jaxconv._args`), public function by public function.

A count is an int >= 1, an index an int in ``[0, n)`` (no negative indices), and one str where texts are taken is one
text. A float, ``None`` or a bool is a TypeError; a value outside the range a ValueError (an index's is also an
IndexError). Every message names the owner, the argument, the value given and what was expected. Nothing is rounded,
clipped or counted from the end.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv._args import ArgumentIndexError, check_count, check_index, check_texts, shown

WORDS = ["<pad>", "<unk>"] + [f"w{i}" for i in range(18)]


@pytest.fixture(scope="module")
def run():
    """A tiny classifier held in memory: 20 words, widths (2, 3), 4 filters each, 2 classes."""
    from jaxconv.dump.memory import memory_run
    from jaxconv.models import TextCNN

    model = TextCNN(len(WORDS), 2, embed_dim=8, widths=(2, 3), filters=4, rngs=nnx.Rngs(0))
    return memory_run(model, WORDS, "whitespace")


@pytest.fixture(scope="module")
def dump(demo_dump):
    return jaxconv.load_dump(demo_dump, "test")


# ---------------------------------------------------------------------------------------------------------------- rule


def test_the_rule_itself():
    assert check_count("f", "k", np.int64(3)) == 3 and check_index("f", "i", np.int32(0), 1) == 0
    for bad, kind in ((2.7, "a float"), (2.0, "a float"), (None, "None"), (True, "a bool"), ("3", "a str")):
        with pytest.raises(TypeError, match=re.escape(f"f: k={bad!r} is {kind}, not an int; expected an int >= 1.")):
            check_count("f", "k", bad)
    for bad in (0, -1):
        with pytest.raises(ValueError, match=re.escape(f"f: k={bad} is below 1; expected an int >= 1.")):
            check_count("f", "k", bad)
    with pytest.raises(IndexError, match=re.escape("f: i=-1 is out of range; expected an int with 0 <= i < 4 "
                                                   "(negative indices are not accepted).")):
        check_index("f", "i", -1, 4)
    with pytest.raises(ValueError, match=re.escape("f: i=4 is out of range; expected an int with 0 <= i < 4.")):
        check_index("f", "i", 4, 4)
    assert check_texts("f", "texts", "a b") == ["a b"] and check_texts("f", "texts", ("a", "b")) == ["a", "b"]
    assert shown("x" * 500) == repr("x" * 80 + "...")
    assert issubclass(ArgumentIndexError, IndexError) and issubclass(ArgumentIndexError, ValueError)


# ----------------------------------------------------------------------------------------------------------- Dump


def test_top_ngrams_refuses_counts_it_used_to_bend(dump):
    layer = dump.layers[0]
    assert len(dump.top_ngrams(layer, 0, k=np.int64(3))) == 3
    with pytest.raises(ValueError, match=re.escape("Dump.top_ngrams: k=-1 is below 1; expected an int >= 1.")):
        dump.top_ngrams(layer, 0, k=-1)                  # was: every example but one
    with pytest.raises(TypeError, match=re.escape("Dump.top_ngrams: k=2.7 is a float, not an int; expected an "
                                                  "int >= 1.")):
        dump.top_ngrams(layer, 0, k=2.7)                 # was: 2
    with pytest.raises(TypeError, match=re.escape("Dump.top_ngrams: k=None is None, not an int")):
        dump.top_ngrams(layer, 0, k=None)                # was: a raw TypeError from int(None)
    with pytest.raises(ValueError, match=re.escape("Dump.ngram_groups: k=0 is below 1")):
        dump.ngram_groups(layer, 0, k=0)


def test_slot_words_refuses_a_negative_count(dump):
    layer = dump.attrs["embedded_layers"][0]
    assert [len(s) for s in dump.slot_words(layer, 0, k=2)] == [2] * len(dump.slot_words(layer, 0, k=2))
    with pytest.raises(ValueError, match=re.escape("Dump.slot_words: k=-1 is below 1; expected an int >= 1.")):
        dump.slot_words(layer, 0, k=-1)                  # was: the whole vocabulary but one per slot
    with pytest.raises(TypeError, match=re.escape("Dump.slot_words: k=None is None, not an int")):
        dump.slot_words(layer, 0, k=None)


def test_dump_filter_and_example_indices(dump):
    layer = dump.layers[0]
    F = dump.num_filters(layer)
    with pytest.raises(IndexError, match=re.escape(f"Dump.feature_map: filter=-1 is out of range for layer "
                                                   f"{layer!r}; expected an int with 0 <= filter < {F} (negative")):
        dump.feature_map(layer, -1)
    with pytest.raises(TypeError, match=re.escape("Dump.feature_map: filter=1.0 is a float, not an int")):
        dump.feature_map(layer, 1.0)
    N = dump.num_examples
    for method in ("ngram", "token_activations"):
        with pytest.raises(IndexError, match=re.escape(f"Dump.{method}: example=-1 is out of range; expected an int "
                                                       f"with 0 <= example < {N} (negative")):
            getattr(dump, method)(layer, 0, -1)          # was: the last example
    with pytest.raises(IndexError, match=re.escape(f"Dump.words: example={N} is out of range; expected an int with "
                                                   f"0 <= example < {N}.")):
        dump.words(N)
    with pytest.raises(IndexError, match=re.escape("Dump.slot_contributions: examples[1]=-2 is out of range")):
        dump.slot_contributions(dump.attrs["embedded_layers"][0], 0, [0, -2])


def test_rank_filters_iterations(dump):
    with pytest.raises(TypeError, match=re.escape("rank_filters: iterations=2.5 is a float, not an int; expected an "
                                                  "int >= 1.")):
        jaxconv.rank_filters(dump, iterations=2.5)       # was: 2 iterations


def test_class_name_of_a_class_that_is_not_there(dump):
    assert dump.class_name(None) == "-" and dump.class_name(np.int64(1)) == dump.class_name(1)
    with pytest.raises(IndexError, match=re.escape(f"Dump.class_name: c=99 is out of range; expected an int with "
                                                   f"0 <= c < {dump.num_classes}.")):
        dump.class_name(99)                              # was: a raw IndexError from the list
    with pytest.raises(TypeError, match=re.escape("Dump.class_name: c='1' is a str, not an int")):
        dump.class_name("1")


def test_load_dump_of_a_missing_path_or_a_file(tmp_path):
    missing = tmp_path / "nothing-here"
    with pytest.raises(jaxconv.dump.DumpError, match=re.escape(
            f"load_dump: {missing} does not exist; expected a run folder (with dumps/), a dump folder or a .zarr "
            f"store.")):
        jaxconv.load_dump(missing)
    file = tmp_path / "notes.txt"
    file.write_text("not a store\n")
    with pytest.raises(jaxconv.dump.DumpError, match=re.escape(
            f"load_dump: {file} is a file; expected a run folder (with dumps/), a dump folder or a .zarr store.")):
        jaxconv.load_dump(file)
    assert file.read_text() == "not a store\n"
    with pytest.raises(TypeError, match=re.escape("load_dump: name=3 is a int; expected a str (a dump's name in")):
        jaxconv.load_dump(tmp_path, 3)


# ---------------------------------------------------------------------------------------------------------- models


def test_feature_map_and_saliency_refuse_negative_and_float_filters(run):
    tokens = run.encode(["w1 w2 w3 w4"])
    assert jaxconv.feature_map(run.model, tokens, "convs/0", np.int64(3)).shape[0] == 1
    for fn in (jaxconv.feature_map, jaxconv.saliency):
        name = f"jaxconv.{fn.__name__}"
        with pytest.raises(IndexError, match=re.escape(
                f"{name}: filter=-1 is out of range for layer 'convs/0', which has filters=4; expected an int with "
                f"0 <= filter < 4 (negative indices are not accepted).")):
            fn(run.model, tokens, "convs/0", -1)         # was: the last filter
        with pytest.raises(TypeError, match=re.escape(f"{name}: filter=1.0 is a float, not an int")):
            fn(run.model, tokens, "convs/0", 1.0)        # was: "out of range"


def test_explain_of_something_that_is_not_a_model():
    with pytest.raises(TypeError, match=re.escape("jaxconv.explain: model='notamodel' is a str; expected an "
                                                  "nnx.Module called as model(x)")):
        jaxconv.explain("notamodel", (1, 8))


# ----------------------------------------------------------------------------------------------------------- texts


def test_one_str_is_one_text_everywhere(run):
    one = run.encode("w1 w2 w3")
    assert one.shape[0] == 1 and np.array_equal(one, run.encode(["w1 w2 w3"]))    # was: one row per character
    assert len(run.predict("w1 w2")) == 1
    assert run.evidence("w1 w2").words == ["w1", "w2"]
    with pytest.raises(TypeError, match=re.escape("Run.encode: texts=None is None; expected a str (one text) or a "
                                                  "sequence of str.")):
        run.encode(None)                                 # was: a raw TypeError
    with pytest.raises(TypeError, match=re.escape("Run.encode_rows: texts[1]=3 is a int; expected a str")):
        run.encode_rows(["w1", 3])
    with pytest.raises(TypeError, match=re.escape("Run.predict: texts[1]=b'w2' is a bytes; expected a str")):
        run.predict(["w1", b"w2"])
    with pytest.raises(TypeError, match=re.escape("Run.evidence: text=None is None; expected a str (one text)")):
        run.evidence(None)
    with pytest.raises(TypeError, match=re.escape("jaxconv.evidence: texts_or_tokens[0]=1.5 is a float")):
        jaxconv.evidence(run, [1.5])


def test_dump_activations_and_ablate_take_one_str_as_one_text(run, tmp_path):
    from jaxconv.dump import ablate, dump_activations

    result = dump_activations(model=run, texts="w1 w2 w3 w4", path=tmp_path / "one.zarr")
    assert jaxconv.load_dump(result.path).num_examples == 1                        # was: 11 one-character texts
    with pytest.raises(TypeError, match=re.escape("dump_activations: texts[0]=7 is a int; expected a str")):
        dump_activations(model=run, texts=[7], path=tmp_path / "bad.zarr")
    assert not (tmp_path / "bad.zarr").exists()
    assert len(ablate(run, texts="w1 w2 w3", labels=[1], write=False)) == 8
    with pytest.raises(TypeError, match=re.escape("ablate: texts[0]=None is None; expected a str")):
        ablate(run, texts=[None], labels=[1], write=False)


def test_run_counts(run):
    with pytest.raises(TypeError, match=re.escape("Run.predict: batch_size=2.5 is a float, not an int; expected an "
                                                  "int >= 1.")):
        run.predict(["w1"], batch_size=2.5)
    ev = run.evidence("w1 w2 w3")
    with pytest.raises(ValueError, match=re.escape("Evidence.top: k=-1 is below 1; expected an int >= 1.")):
        ev.top(-1)
    with pytest.raises(IndexError, match=re.escape(f"Evidence.filter: j=-1 is out of range; expected an int with "
                                                   f"0 <= j < {len(ev.filters)} (negative")):
        ev.filter(-1)
