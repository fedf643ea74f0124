"""The Stanford Sentiment Treebank's trees (jaxconv.data.sst): the reader against the treebank's counts, errors,
the phrase training sets of SST-1 and SST-2, the match with Kim's sentence files, and how the presets decide."""

from __future__ import annotations

import collections
import pathlib

import pytest
from conftest import shared_datasets_dir

from jaxconv import data as jdata
from jaxconv.configs import load_config
from jaxconv.data import read_sst_trees, sst_phrase_dataset, sst_text
from jaxconv.data.pipeline import build_data, data_files, describe


def require_trees() -> pathlib.Path:
    """The shared tree directory (beside the sentences); skip when absent, fail under CI (conftest's rule)."""
    from conftest import require_shared

    return require_shared("../sst-trees/train.txt").parent.resolve()


TINY = [  # (tree, root label); the middle one is neutral at the root
    "(3 (2 The) (4 (3 good) (2 film)))",
    "(2 (1 (1 dull) (2 -LRB-again-RRB-)) (3 good))",
    "(0 (0 (1 dull) (2 film)) (2 .))",
]


def _treebank(root: pathlib.Path, train=TINY, dev=TINY[:2], test=TINY[2:]) -> pathlib.Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, trees in (("train.txt", train), ("dev.txt", dev), ("test.txt", test)):
        (root / name).write_text("\n".join(trees) + "\n", encoding="utf-8")
    return root


# =================================================================================================
# The reader
# =================================================================================================

def test_read_trees_counts_of_the_treebank():
    root = require_trees()
    trees = read_sst_trees(root)
    assert {s: len(t) for s, t in trees.items()} == {"train": 8544, "dev": 1101, "test": 2210}
    train = trees["train"]
    assert len(train.phrases) == len(train.phrase_labels) == 318_582                # the README's labelled nodes
    assert len(set(zip(train.phrase_labels, train.phrases))) == 159_274             # distinct (label, phrase) pairs
    assert all(train.phrases[i] == s for i, s in zip(train.tree_start, train.sentences))
    assert [train.phrase_labels[i] for i in train.tree_start] == train.labels
    assert train.sentences[0].startswith("The Rock is destined to be the 21st Century 's new `` Conan ''")
    assert any("\xa0" in s for s in train.sentences)                                 # "8\xa01\/2" is one leaf
    assert collections.Counter(train.labels) == {0: 1092, 1: 2218, 2: 1624, 3: 2322, 4: 1288}


def test_read_one_file_and_its_nodes_in_preorder(tmp_path):
    t = read_sst_trees(_treebank(tmp_path / "tb") / "train.txt")
    assert t.sentences == ["The good film", "dull -LRB-again-RRB- good", "dull film ."] and t.labels == [3, 2, 0]
    assert t.tree_start == [0, 5, 10]
    assert list(zip(t.phrases[5:10], t.phrase_labels[5:10])) == [
        ("dull -LRB-again-RRB- good", 2), ("dull -LRB-again-RRB-", 1), ("dull", 1), ("-LRB-again-RRB-", 2), ("good", 3)]


@pytest.mark.parametrize("line, message", [
    ("(3 (2 a) (2 b)", "unbalanced brackets (1 not closed)."),
    ("(3 (2 a) (2 b)))", "text after the end of the tree: ')'."),
    (") (2 a)", "unbalanced ')' (more closing than opening brackets)."),
    ("(5 (2 a))", "expected a label 0-4 after '(', got '5'; expected trees like '(3 (2 The) (4 film))'."),
    ("(3 (2 a)) (2 b)", "text after the end of the tree: '( 2 b )'."),
    ("(3 (2))", "a node with no words: '(2)'."),
    ("oops (2 a)", "text outside the brackets: 'oops'."),
    ("", "blank line; expected one tree per line."),
])
def test_malformed_trees_name_file_and_line(tmp_path, line, message):
    p = tmp_path / "bad.txt"
    p.write_text(TINY[0] + "\n" + line + "\n", encoding="utf-8")
    with pytest.raises(ValueError) as e:
        read_sst_trees(p)
    assert str(e.value) == f"{p}:2: {message}"


def test_tree_file_that_is_not_utf8(tmp_path):
    p = tmp_path / "latin.txt"
    p.write_bytes(TINY[0].encode() + b"\n(2 caf\xe9)\n")
    with pytest.raises(ValueError) as e:
        read_sst_trees(p)
    assert str(e.value) == (f"{p}:2: byte b'\\xe9' is not valid UTF-8 (invalid continuation byte); the treebank's "
                            f"files are UTF-8.")


def test_missing_tree_files_are_named(tmp_path):
    (tmp_path / "train.txt").write_text(TINY[0] + "\n")
    with pytest.raises(FileNotFoundError) as e:
        read_sst_trees(tmp_path)
    assert str(e.value) == (f"SST trees not found in {str(tmp_path)!r}: missing dev.txt, test.txt (expected train.txt, "
                            f"dev.txt, test.txt); set the directory with --config.data.sst_trees=DIR, or train on the "
                            f"sentence files with --config.data.sst_phrases=False.")


# =================================================================================================
# Phrase training sets
# =================================================================================================

def test_sst2_drops_neutral_and_maps_labels(tmp_path):
    root = _treebank(tmp_path / "tb")
    ds = sst_phrase_dataset(root, fine=False)
    # every non-neutral node of the training trees, lower-cased, each (label, text) once
    assert list(zip(ds.train.texts, ds.train.labels)) == [
        ("the good film", 1), ("good film", 1), ("good", 1), ("dull -lrb-again-rrb-", 0), ("dull", 0),
        ("dull film .", 0), ("dull film", 0)]
    assert ds.dev.texts == ["the good film"] and ds.dev.labels == [1]                # the neutral root is dropped
    assert ds.test.texts == ["dull film ."] and ds.test.labels == [0]
    assert ds.num_classes == 2 and ds.label_names == ["negative", "positive"] and ds.extras["train_sentences"] == 2
    every = sst_phrase_dataset(root, fine=False, dedupe=False)
    assert len(every.train) == 9 and every.train.texts.count("dull") == 2 and every.train.texts.count("good") == 2


def test_sst1_keeps_five_labels_and_dev_test_are_roots(tmp_path):
    ds = sst_phrase_dataset(_treebank(tmp_path / "tb"), fine=True)
    assert ds.name == "sst1" and ds.num_classes == 5 and len(ds.train) == 12          # 15 nodes, 3 repeats
    assert ds.dev.texts == ["the good film", "dull -lrb-again-rrb- good"] and ds.dev.labels == [3, 2]
    assert ds.extras["sst_phrases"] is True and ds.extras["tokenizer"] == "sst"


def test_root_sentences_match_kims_sentence_files():
    """After sst_text (lower-casing), the trees' root sentences are Kim's stsa.* files, as multisets of (text, label):
    all 8,544 / 1,101 / 2,210 (SST-1) and 6,920 / 872 / 1,821 (SST-2) match."""
    trees = read_sst_trees(require_trees())
    sentences = shared_datasets_dir()
    for fine, files in ((True, "stsa.fine"), (False, "stsa.binary")):
        for split in ("train", "dev", "test"):
            lt = jdata.read_labeled_lines(sentences / f"{files}.{split}")
            kim = collections.Counter(zip(lt.texts, lt.labels))
            ours = collections.Counter((sst_text(s), y if fine else int(y > 2))
                                       for s, y in zip(trees[split].sentences, trees[split].labels) if fine or y != 2)
            assert sum(ours.values()) == sum(kim.values())
            match = sum((ours & kim).values()) / sum(kim.values())
            assert match == 1.0, (files, split, match)


def test_sst2_phrase_pipeline_on_the_treebank():
    root = require_trees()
    config = load_config("text_cnn:sst2", {"data.sst_phrases": True, "data.sst_trees": str(root)})
    data = build_data(config, min_length=5)
    assert data.sizes == {"train": 77_201, "dev": 872, "test": 1_821}
    assert data.tokenizer == "sst" and data.info["sst_phrases"] and data.info["train_sentences"] == 6_920
    assert "lrb" in data.vocab and "LRB" not in data.vocab


# =================================================================================================
# How the presets decide, and config errors
# =================================================================================================

def test_presets_use_phrases_when_the_trees_are_present(tmp_path, monkeypatch):
    sentences = tmp_path / "sentences"
    sentences.mkdir()
    monkeypatch.setenv("JAXCONV_DATA", str(sentences))
    assert jdata.default_sst_root() == tmp_path / "sst-trees"
    without = load_config("text_cnn:sst1")
    assert without.data.sst_phrases is False
    assert data_files(without) == {s: sentences / f"stsa.fine.{s}" for s in ("train", "dev", "test")}
    _treebank(tmp_path / "sst-trees")
    with_trees = load_config("text_cnn:sst2", {"train.batch_size": 2})
    assert with_trees.data.sst_phrases is True and load_config("text_cnn:mr").data.sst_phrases is False
    assert data_files(with_trees) == {s: tmp_path / "sst-trees" / f"{s}.txt" for s in ("train", "dev", "test")}
    data = build_data(with_trees, min_length=3)                                      # no stsa.* file needed
    assert data.sizes == {"train": 7, "dev": 1, "test": 1} and data.info["source"] == str(tmp_path / "sst-trees")
    assert describe(data)[1] == (f"data sst2: training on 7 distinct labelled phrases of 2 training trees in "
                                 f"{tmp_path / 'sst-trees'} (config.data.sst_phrases); dev and test are the trees' "
                                 f"root sentences")
    (sentences / "stsa.binary.train").write_text("0 bad\n1 good\n")
    for split in ("dev", "test"):
        (sentences / f"stsa.binary.{split}").write_text("1 fine\n0 dull\n")
    sentence_run = build_data(load_config("text_cnn:sst2", {"data.sst_phrases": False}), min_length=3)
    assert sentence_run.sizes == {"train": 2, "dev": 2, "test": 2}
    assert describe(sentence_run)[1] == "data sst2: training on the sentence files (config.data.sst_phrases=False)"


def test_sst_phrases_config_errors(tmp_path):
    config = load_config("text_cnn:mr", {"data.sst_phrases": True})
    with pytest.raises(ValueError) as e:
        build_data(config, min_length=5)
    assert str(e.value) == ("config.data.sst_phrases=True trains on the phrases of the sentiment treebank, for "
                            "config.data.name sst1 or sst2; got config.data.name='mr'. Set "
                            "--config.data.sst_phrases=False.")
    config = load_config("text_cnn:sst2", {"data.sst_phrases": True, "data.sst_trees": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match=r"SST trees not found in .*: missing train\.txt, dev\.txt, test\.txt"):
        build_data(config, min_length=5)
