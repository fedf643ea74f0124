"""Tests of jaxconv.data: readers, tokenizer, vocabulary, splits, buckets, synthetic corpus, sources."""

from __future__ import annotations

import itertools
import os
import pathlib
import sys
import types
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from conftest import require_shared

from jaxconv.data import (
    Batch,
    BucketedBatches,
    LabeledText,
    TextDataset,
    Vocab,
    clean_str_kim,
    clean_str_sst,
    default_bucket_lengths,
    encode_texts,
    get_tokenizer,
    holdout_dev,
    kim_tokenize,
    load_hf_dataset,
    load_named_source,
    load_sentence_dataset,
    load_text_splits,
    load_tfds_dataset,
    make_planted_motif_corpus,
    read_labeled_lines,
    stratified_kfold,
    stratified_split,
    synthetic_dataset,
    whitespace_tokenize,
)



def _write(path: pathlib.Path, text: str, encoding: str = "utf-8") -> pathlib.Path:
    path.write_bytes(text.encode(encoding))
    return path


# =================================================================================================
# Readers
# =================================================================================================

def test_read_utf8_detected_and_stripped(tmp_path):
    p = _write(tmp_path / "u.txt", "1 naïve café  \r\n0 plain text\t\n")
    lt = read_labeled_lines(p)
    assert lt.encoding == "utf-8"
    assert lt.texts == ["naïve café", "plain text"]
    assert lt.labels == [1, 0]
    assert lt.skipped == 0 and lt.path == str(p)


def test_read_latin1_fallback_whole_file(tmp_path):
    # First line is pure ASCII; the é on line 2 is not valid UTF-8, so the WHOLE file is Latin-1.
    p = _write(tmp_path / "l.txt", "0 plain\n1 caf\xe9 cr\xe8me\n0 a\x85b\n", encoding="latin-1")
    lt = read_labeled_lines(p)
    assert lt.encoding == "latin-1"
    assert lt.texts == ["plain", "café crème", "a\x85b"]  # \x85 (NEL) is text, not a line break
    assert len(lt) == 3


def test_read_explicit_encoding_honoured(tmp_path):
    utf8 = _write(tmp_path / "u.txt", "1 café\n")
    lt = read_labeled_lines(utf8, encoding="latin-1")  # mojibake, but what was asked for
    assert lt.encoding == "latin-1" and lt.texts == ["cafÃ©"]
    latin = _write(tmp_path / "l.txt", "1 caf\xe9\n", encoding="latin-1")
    with pytest.raises(ValueError, match=r"l\.txt:1: cannot decode .*encoding='utf-8'"):
        read_labeled_lines(latin, encoding="utf-8")


def test_read_utf8_bom(tmp_path):
    p = tmp_path / "bom.txt"
    p.write_bytes(b"\xef\xbb\xbf1 hello\n")
    lt = read_labeled_lines(p)
    assert lt.encoding == "utf-8-sig" and lt.labels == [1] and lt.texts == ["hello"]


@pytest.mark.parametrize("content, line, fragment", [
    ("0 ok\n\n1 fine\n", 2, "blank line"),
    ("0 ok\n1 fine\n2\n", 3, "no text after label '2'"),
    ("0 ok\n1   \n", 2, "no text after label '1'"),
    ("x hello\n", 1, "cannot parse label 'x' as an integer in line 'x hello'"),
    ("0 ok\n1.5 half\n", 2, "cannot parse label '1.5'"),
])
def test_read_errors_name_file_line_and_text(tmp_path, content, line, fragment):
    p = _write(tmp_path / "bad.txt", content)
    with pytest.raises(ValueError) as ei:
        read_labeled_lines(p)
    msg = str(ei.value)
    assert f"bad.txt:{line}:" in msg
    assert fragment in msg
    assert "expected '<integer label> <sentence>'" in msg
    assert "on_error='skip'" in msg


def test_read_error_truncates_long_lines(tmp_path):
    p = _write(tmp_path / "long.txt", "abc " + "word " * 100 + "\n")
    with pytest.raises(ValueError, match=r"long\.txt:1: cannot parse label 'abc'") as ei:
        read_labeled_lines(p)
    assert "..." in str(ei.value) and len(str(ei.value)) - len(str(p)) < 260  # the 500-character line is cut


def test_read_on_error_skip_counts_and_warns(tmp_path):
    p = _write(tmp_path / "mixed.txt", "0 ok\n\nx bad label\n1\n1 fine\n")
    with pytest.warns(UserWarning, match=r"skipped 3 malformed line\(s\); first: .*mixed\.txt:2: blank line"):
        lt = read_labeled_lines(p, on_error="skip")
    assert lt.skipped == 3
    assert lt.texts == ["ok", "fine"] and lt.labels == [0, 1]


def test_read_clean_file_does_not_warn(tmp_path):
    p = _write(tmp_path / "ok.txt", "0 a\n1 b")  # no final newline
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lt = read_labeled_lines(p, on_error="skip")
    assert lt.texts == ["a", "b"] and lt.skipped == 0


def test_read_empty_file_and_bad_arguments(tmp_path):
    empty = _write(tmp_path / "empty.txt", "")
    with pytest.raises(ValueError, match=r"empty\.txt: no examples found"):
        read_labeled_lines(empty)
    only_bad = _write(tmp_path / "only_bad.txt", "x y\n")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match=r"only_bad\.txt: no examples found .*1 skipped"):
        read_labeled_lines(only_bad, on_error="skip")
    with pytest.raises(ValueError, match=r"on_error must be one of \('raise', 'skip'\); got on_error='ignore'"):
        read_labeled_lines(empty, on_error="ignore")
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        read_labeled_lines(tmp_path / "nope.txt")


def test_label_sets_differing_between_splits(tmp_path):
    train = _write(tmp_path / "a.train", "0 x\n1 y\n2 z\n")
    test = _write(tmp_path / "a.test", "0 x\n1 y\n")
    with pytest.raises(ValueError) as ei:
        load_text_splits("toy", {"train": train, "test": test})
    msg = str(ei.value)
    assert "label sets differ between splits" in msg
    assert str(train) in msg and str(test) in msg
    assert "[0, 1, 2]" in msg and "[0, 1]" in msg


def test_labels_must_be_zero_to_c_minus_one(tmp_path):
    train = _write(tmp_path / "b.train", "1 x\n2 y\n")
    with pytest.raises(ValueError, match=r"labels must be 0\.\.2 .*missing \[0\]"):
        load_text_splits("toy", {"train": train})
    neg = _write(tmp_path / "c.train", "-1 x\n0 y\n")
    with pytest.raises(ValueError, match=r"labels must be 0\.\.0 \(num_classes=1\); train file .*c\.train. has label\(s\) \[-1\]"):
        load_text_splits("toy", {"train": neg})
    ok = load_text_splits("toy", {"train": _write(tmp_path / "d.train", "1 x\n0 y\n")}, label_names=["n", "p"])
    assert ok.num_classes == 2 and ok.dev is None and ok.test is None and ok.label_names == ["n", "p"]


def test_load_sentence_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match=r"Unknown sentence dataset name='imdb'; known: \['cr', 'mpqa', 'mr', 'sst1', 'sst2', 'subj', "
                                         r"'trec'\]"):
        load_sentence_dataset("imdb", tmp_path)
    with pytest.raises(FileNotFoundError) as ei:
        load_sentence_dataset("sst2", tmp_path)
    assert "stsa.binary.train" in str(ei.value)
    assert "--config.data.path" in str(ei.value) and "JAXCONV_DATA" in str(ei.value)
    with pytest.raises(FileNotFoundError, match="data directory not found"):
        load_sentence_dataset("mr", tmp_path / "missing")


# =================================================================================================
# Real benchmark files
# =================================================================================================

# name -> {split: (examples, {label: count}, encoding)}: README counts; class counts and encodings as found.
REAL = {
    "mr": {"train": (10662, {0: 5331, 1: 5331}, "latin-1")},
    "sst2": {"train": (6920, {0: 3310, 1: 3610}, "utf-8"), "dev": (872, {0: 428, 1: 444}, "utf-8"),
             "test": (1821, {0: 912, 1: 909}, "utf-8")},
    "sst1": {"train": (8544, {0: 1092, 1: 2218, 2: 1624, 3: 2322, 4: 1288}, "utf-8"),
             "dev": (1101, {0: 139, 1: 289, 2: 229, 3: 279, 4: 165}, "utf-8"),
             "test": (2210, {0: 279, 1: 633, 2: 389, 3: 510, 4: 399}, "utf-8")},
    "trec": {"train": (5452, {0: 1162, 1: 1250, 2: 86, 3: 1223, 4: 835, 5: 896}, "latin-1"),
             "test": (500, {0: 138, 1: 94, 2: 9, 3: 65, 4: 81, 5: 113}, "utf-8")},
}
# Kim (2014) Table 1 reports max lengths 56 / 53 / 53 / 37 and |V| 18765 / 17836 / 16185 / 9592.
MAX_TOKENS = {"mr": 56, "sst1": 53, "sst2": 53, "trec": 37}


@pytest.fixture(scope="module")
def real_datasets():
    root = require_shared()
    return {name: load_sentence_dataset(name, root) for name in REAL}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_dataset_counts_and_encodings(real_datasets, name):
    ds = real_datasets[name]
    assert isinstance(ds, TextDataset) and ds.name == name
    expected = REAL[name]
    assert set(ds.splits()) == set(expected)
    for split, (n, counts, encoding) in expected.items():
        lt = ds.splits()[split]
        assert len(lt) == n, split
        assert lt.label_counts() == counts, split
        assert lt.encoding == encoding, split
        assert lt.skipped == 0
        assert all(t == t.strip(" \t\r\n") and t for t in lt.texts)  # "\x85" (Latin-1 ellipsis) is kept
    assert ds.num_classes == len(expected["train"][1]) == len(ds.label_names)
    if name == "mr":
        assert ds.dev is None and ds.test is None
    if name == "trec":
        assert ds.dev is None and ds.label_names[2] == "ABBR"


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_dataset_max_tokens(real_datasets, name):
    ds = real_datasets[name]
    tok = get_tokenizer(ds.extras["tokenizer"])
    longest = max(len(tok(t)) for lt in ds.splits().values() for t in lt.texts)
    assert longest == MAX_TOKENS[name]


def test_real_mr_text_decoded_as_latin1(real_datasets):
    texts = real_datasets["mr"].train.texts
    assert any("é" in t for t in texts)
    assert not any("\n" in t or "\r" in t for t in texts)


def test_load_named_source_builtin(real_datasets):
    ds = load_named_source("sst-2", root=require_shared())
    assert ds.name == "sst2" and len(ds.dev) == 872


# =================================================================================================
# Tokenizer
# =================================================================================================

@pytest.mark.parametrize("raw, cleaned", [
    ("It's a test, isn't it?", "it 's a test , is n't it ?"),
    ("We'll see: they've gone (for now)!", "we 'll see they 've gone ( for now ) !"),
    ("I'd say you're right", "i 'd say you 're right"),
    ("the film's   \"best\"   scene -- really", "the film 's best scene really"),
    ("caf\xe9 au lait", "caf au lait"),
])
def test_clean_str_kim(raw, cleaned):
    assert clean_str_kim(raw) == cleaned
    assert kim_tokenize(raw) == cleaned.split()


def test_clean_str_kim_cased_and_sst():
    assert clean_str_kim("What's NASA?", lower=False) == "What 's NASA ?"
    assert get_tokenizer("kim_cased")("Who is Galileo ?") == ["Who", "is", "Galileo", "?"]
    # The SST variant does not split clitics or punctuation (the SST files are pre-tokenised).
    assert clean_str_sst("It's A well-made film,ok") == "it's a well made film,ok"
    assert get_tokenizer("sst")("a b-c") == ["a", "b", "c"]
    assert whitespace_tokenize(" A  b\tc\n") == ["A", "b", "c"] == get_tokenizer("whitespace")(" A  b\tc\n")
    with pytest.raises(ValueError, match=r"Unknown tokenizer name='bpe'; known: \['bytes', 'chars', 'chars_cased', 'keras', 'kim', 'kim_cased', 'lower', 'sst', 'whitespace'\]"):
        get_tokenizer("bpe")


# =================================================================================================
# Vocabulary
# =================================================================================================

SENTS = [["the", "cat", "sat"], ["the", "dog", "sat"], ["a", "cat"], ["the", "end"]]


def test_vocab_order_min_count_and_specials():
    v = Vocab.build(SENTS)
    assert v.tokens[:2] == ["<pad>", "<unk>"] and v.pad_id == 0 and v.unk_id == 1
    # count desc, then token asc: the(3), cat(2), sat(2), a, dog, end
    assert v.tokens[2:] == ["the", "cat", "sat", "a", "dog", "end"]
    v2 = Vocab.build(SENTS, min_count=2)
    assert v2.tokens == ["<pad>", "<unk>", "the", "cat", "sat"] and len(v2) == 5
    assert v2.encode(["the", "dog", "cat"]) == [2, 1, 3]
    assert v2.decode([2, 0, 1]) == ["the", "<pad>", "<unk>"]
    assert "cat" in v2 and "dog" not in v2
    assert v2.token_to_id("dog") == 1 and v2.id_to_token(4) == "sat"
    assert Vocab.build(SENTS, max_size=4).tokens == ["<pad>", "<unk>", "the", "cat"]
    assert Vocab.build(reversed(SENTS)) == v  # order of sentences does not matter
    with pytest.raises(IndexError, match="id 9 out of range for a vocabulary of size 5"):
        v2.id_to_token(9)
    with pytest.raises(ValueError, match="min_count must be an int >= 1; got min_count=0"):
        Vocab.build(SENTS, min_count=0)
    with pytest.raises(TypeError, match="tokenise first"):
        Vocab.build(["the cat"])


def test_vocab_save_load_round_trip(tmp_path):
    v = Vocab.build(SENTS + [["naïve", "é"]], min_count=1)
    v.save(tmp_path / "vocab.json")
    w = Vocab.load(tmp_path / "vocab.json")
    assert w == v and w.tokens == v.tokens and w.counts == v.counts and w.min_count == 1
    assert w.encode(["naïve", "zzz"]) == v.encode(["naïve", "zzz"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a vocabulary file"):
        Vocab.load(tmp_path / "bad.json")


def test_encode_texts():
    v = Vocab.build(kim_tokenize(s) for s in ["It's good", "good film"])
    assert encode_texts(["A good film!"], v, "kim") == [[1, v.token_to_id("good"), v.token_to_id("film"), 1]]


# =================================================================================================
# Splits
# =================================================================================================

MR_LIKE = np.array([0] * 5331 + [1] * 5331)


def test_stratified_kfold_mr_like():
    folds = stratified_kfold(MR_LIKE, 10, seed=0)
    assert len(folds) == 10
    seen = np.concatenate([test for _, test in folds])
    assert np.array_equal(np.sort(seen), np.arange(len(MR_LIKE)))  # each index in exactly one test fold
    global_frac = np.bincount(MR_LIKE) / len(MR_LIKE)
    for train, test in folds:
        assert len(np.intersect1d(train, test)) == 0 and len(train) + len(test) == len(MR_LIKE)
        counts = np.bincount(MR_LIKE[test], minlength=2)
        assert np.all(np.abs(counts - global_frac * len(test)) <= 1)
        assert len(test) in (1066, 1067)
    again = stratified_kfold(MR_LIKE, 10, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = stratified_kfold(MR_LIKE, 10, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(folds, other))
    # Different membership, not just renumbered folds.
    assert {frozenset(t.tolist()) for _, t in folds}.isdisjoint({frozenset(t.tolist()) for _, t in other})


def test_stratified_kfold_imbalanced_and_errors():
    y = np.array([0] * 50 + [1] * 7 + [2] * 23)
    for _, test in stratified_kfold(y, 5, seed=3):
        counts = np.bincount(y[test], minlength=3)
        assert np.all(np.abs(counts - np.bincount(y) / 5) < 1)
    with pytest.raises(ValueError, match=r"k=8 folds need at least k examples of every class; class 1 has 7"):
        stratified_kfold(y, 8, seed=0)
    with pytest.raises(ValueError, match="k must be an int >= 2; got k=1"):
        stratified_kfold(y, 1, seed=0)


def test_holdout_dev_stratified():
    y = np.array([0] * 1162 + [1] * 1250 + [2] * 86 + [3] * 1223 + [4] * 835 + [5] * 896)  # TREC-like
    train, dev = holdout_dev(len(y), y, fraction=0.1, seed=0)
    assert len(dev) == round(0.1 * len(y)) and len(train) + len(dev) == len(y)
    assert len(np.intersect1d(train, dev)) == 0
    assert np.all(np.abs(np.bincount(y[dev], minlength=6) - 0.1 * np.bincount(y)) <= 1)
    again = holdout_dev(len(y), y, fraction=0.1, seed=0)
    assert np.array_equal(again[1], dev)
    assert not np.array_equal(holdout_dev(len(y), y, fraction=0.1, seed=1)[1], dev)
    # From a subset (a CV fold's training part): results are values from the subset.
    subset = np.arange(0, len(y), 2)
    tr2, dev2 = holdout_dev(subset, y, fraction=0.1, seed=0)
    assert set(tr2) | set(dev2) == set(subset) and len(dev2) == round(0.1 * len(subset))
    with pytest.raises(ValueError, match=r"n must equal len\(labels\); got n=5"):
        holdout_dev(5, y, seed=0)
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\); got fraction=1.5"):
        holdout_dev(len(y), y, fraction=1.5, seed=0)


def test_stratified_split_three_way():
    y = np.array([0] * 700 + [1] * 300)
    parts = stratified_split(y, (0.8, 0.1, 0.1), seed=0)
    assert [len(p) for p in parts] == [800, 100, 100]
    assert np.array_equal(np.sort(np.concatenate(parts)), np.arange(1000))
    assert [int((y[p] == 1).sum()) for p in parts] == [240, 30, 30]


# =================================================================================================
# Buckets
# =================================================================================================

def _toy_ids(n=103, seed=0, max_len=30):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, max_len + 1, size=n)
    return [list(rng.integers(2, 50, size=int(k))) for k in lengths], rng.integers(0, 3, size=n)


def test_buckets_shapes_padding_and_coverage():
    ids, y = _toy_ids()
    bb = BucketedBatches(ids, y, batch_size=8, bucket_lengths=(8, 16, 24), seed=0, pad_left=2, min_length=5)
    batches = list(bb.epoch(0))
    assert len(batches) == bb.steps_per_epoch == len(bb)
    shapes = {b.tokens.shape for b in batches}
    used = sum(1 for s in bb.bucket_sizes if s > 0)
    assert len(shapes) == used == len(bb.bucket_lengths)
    assert all(s[0] == 8 and s[1] in bb.bucket_lengths for s in shapes)
    real = Counter()
    for b in batches:
        assert b.tokens.dtype == np.int32 and b.labels.dtype == np.int32 and b.lengths.dtype == np.int32
        assert b.weights.dtype == np.float32 and set(np.unique(b.weights)) <= {0.0, 1.0}
        assert b.weights[: b.num_real].all() and not b.weights[b.num_real:].any()  # filler rows last, weight 0
        L = b.tokens.shape[1]
        for row in range(8):
            i = b.indices[row]
            n = b.lengths[row]
            assert n == min(len(ids[i]), 24 - 2)
            assert np.all(b.tokens[row, :2] == 0)
            assert np.array_equal(b.tokens[row, 2: 2 + n], ids[i][:n])
            assert np.all(b.tokens[row, 2 + n:] == 0)
            assert b.labels[row] == y[i]
            # smallest bucket that holds it
            assert L == min(bl for bl in bb.bucket_lengths if bl >= min(len(ids[i]) + 2, 24))
            if b.weights[row]:
                real[int(i)] += 1
    assert real == Counter(range(len(ids)))  # every example exactly once per epoch, by weights
    assert bb.truncated == sum(len(t) > 22 for t in ids) > 0


def test_buckets_order_deterministic_and_resumable():
    ids, y = _toy_ids(n=200, seed=1)
    bb = BucketedBatches(ids, y, batch_size=16, seed=7)
    e0 = [b.indices.tolist() for b in bb.epoch(0)]
    assert e0 == [b.indices.tolist() for b in BucketedBatches(ids, y, batch_size=16, seed=7).epoch(0)]
    assert e0 != [b.indices.tolist() for b in bb.epoch(1)]
    assert e0 != [b.indices.tolist() for b in BucketedBatches(ids, y, batch_size=16, seed=8).epoch(0)]
    full = list(bb.epoch(3))
    for s in (0, 1, 5, len(full) - 1, len(full)):
        tail = list(bb.epoch(3, start_step=s))
        assert len(tail) == len(full) - s
        for a, b in zip(tail, full[s:]):
            for f in ("tokens", "labels", "weights", "lengths", "indices"):
                assert np.array_equal(getattr(a, f), getattr(b, f))
    with pytest.raises(ValueError, match=r"start_step must be an int in \[0, steps_per_epoch=\d+\]; got start_step=-1"):
        next(bb.epoch(0, start_step=-1))
    fixed = BucketedBatches(ids, y, batch_size=16, shuffle=False)
    f0 = [b.indices.tolist() for b in fixed.epoch(0)]
    assert f0 == [b.indices.tolist() for b in fixed.epoch(5)]
    lengths = [b.tokens.shape[1] for b in fixed.epoch(0)]
    assert lengths == sorted(lengths)


def _padded_total(buckets, needed):
    b = np.asarray(sorted(buckets))
    return int(b[np.searchsorted(b, np.minimum(needed, b[-1]), side="left")].sum())


@settings(max_examples=150, deadline=None)
@given(needed=st.lists(st.integers(1, 70), min_size=1, max_size=40), min_length=st.integers(1, 20),
       max_buckets=st.integers(1, 5), multiple=st.sampled_from([1, 4, 8]))
def test_default_bucket_lengths_pad_the_least(needed, min_length, max_buckets, multiple):
    """The chosen set is the exact minimum of padded positions over every admissible set (brute force), with the
    fewest buckets among equals; each bucket is used, a multiple of ``multiple``, >= min_length, and the top holds
    the longest example."""
    got = default_bucket_lengths(needed, min_length=min_length, max_buckets=max_buckets, multiple=multiple)
    top = -(-max(max(needed), min_length) // multiple) * multiple
    cands = [c for c in range(multiple, top, multiple) if c >= min_length]
    assert got[-1] == top and len(got) <= max_buckets and list(got) == sorted(set(got))
    assert all(g % multiple == 0 and g >= min_length for g in got)
    which = np.searchsorted(np.asarray(got), np.minimum(needed, top), side="left")
    assert set(which.tolist()) == set(range(len(got)))                                # no empty bucket
    if len(cands) <= 14:
        best = min((_padded_total(c + (top,), needed), len(c) + 1)
                   for r in range(max_buckets) for c in itertools.combinations(cands, r))
        assert (_padded_total(got, needed), len(got)) == best


def test_default_bucket_lengths_mr_and_errors():
    # MR's training part with Kim's 4 pads each side: needed lengths 9..64, most around 20-40.
    rng = np.random.default_rng(0)
    needed = np.clip(np.round(rng.normal(28, 10, 8000)), 9, 64).astype(int)
    five, three = default_bucket_lengths(needed, min_length=9), default_bucket_lengths(needed, min_length=9,
                                                                                        max_buckets=3)
    assert len(five) == 5 and len(three) == 3
    halvings = (16, 32, 64)                                                           # the older halving rule
    assert _padded_total(five, needed) < _padded_total(three, needed) < _padded_total(halvings, needed)
    for kwargs, msg in (({"needed": []}, "needed must be non-empty"),
                        ({"needed": [3], "max_buckets": 0}, "max_buckets must be an int >= 1; got max_buckets=0"),
                        ({"needed": [3], "multiple": 0}, "multiple must be an int >= 1; got multiple=0")):
        with pytest.raises(ValueError, match=msg):
            default_bucket_lengths(**kwargs)


def test_buckets_default_lengths_and_errors():
    ids, y = _toy_ids(n=300, seed=2, max_len=56)
    bb = BucketedBatches(ids, y, batch_size=50, pad_left=4, pad_right=4, min_length=5)
    assert bb.bucket_lengths == default_bucket_lengths([len(t) + 8 for t in ids], min_length=9)
    assert 1 <= len(bb.bucket_lengths) <= 5 and all(b % 8 == 0 for b in bb.bucket_lengths)
    assert bb.bucket_lengths[-1] >= max(len(t) for t in ids) + 8 and bb.truncated == 0
    assert all(b > 0 for b in bb.bucket_sizes)
    with pytest.raises(ValueError, match=r"bucket_lengths must all be >= max\(min_length, pad_left \+ pad_right \+ 1\) "
                                         r"= max\(5, 2 \+ 2 \+ 1\) = 5; got \(4, 8\)"):
        BucketedBatches(ids, y, batch_size=4, bucket_lengths=(8, 4), min_length=5, pad_left=2, pad_right=2)
    with pytest.raises(ValueError, match=r"labels must have shape \(300,\)"):
        BucketedBatches(ids, y[:10], batch_size=4)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1; got batch_size=0"):
        BucketedBatches(ids, y, batch_size=0)
    b = Batch(tokens=np.zeros((2, 8), np.int32), labels=np.zeros(2, np.int32), weights=np.ones(2, np.float32),
              lengths=np.ones(2, np.int32))
    assert b.indices is None and b.batch_size == 2


# =================================================================================================
# Synthetic corpus
# =================================================================================================

def test_synthetic_corpus_deterministic_balanced_and_planted():
    c = make_planted_motif_corpus(600, num_classes=3, seed=5, motifs_per_example=2)
    assert c == make_planted_motif_corpus(600, num_classes=3, seed=5, motifs_per_example=2)
    assert c.texts != make_planted_motif_corpus(600, num_classes=3, seed=6, motifs_per_example=2).texts
    assert Counter(c.labels) == {0: 200, 1: 200, 2: 200}
    # Every class uses the same motif words, in a different order.
    for j in range(3):
        assert len({frozenset(c.motifs[k][j]) for k in range(3)}) == 1
        assert len({c.motifs[k][j] for k in range(3)}) == 3
    motif_class = c.motif_class()
    for text, y, pos in zip(c.texts, c.labels, c.positions):
        toks = text.split()
        assert 8 <= len(toks) <= 40 and len(pos) == 2
        for p, m in pos:
            assert tuple(toks[p: p + 3]) == m and motif_class[m] == y
        # The planted motif determines the class: every window of 3 motif words is a class-y motif.
        found = {motif_class[tuple(toks[i: i + 3])] for i in range(len(toks) - 2) if tuple(toks[i: i + 3]) in motif_class}
        assert found == {y}
        assert sum(t.startswith("m") for t in toks) == 6  # motif words only where planted


def test_synthetic_bag_of_words_is_uninformative():
    c = make_planted_motif_corpus(2000, seed=0)
    # Per class, the motif-word unigram counts are identical in distribution: the class-conditional
    # frequency of each motif word differs only by sampling noise.
    counts = {y: Counter() for y in range(2)}
    for text, y in zip(c.texts, c.labels):
        counts[y].update(t for t in text.split() if t.startswith("m"))
    words = set(counts[0]) | set(counts[1])
    for w in words:
        a, b = counts[0][w], counts[1][w]
        assert abs(a - b) < 0.25 * (a + b), w


def test_synthetic_decoys_and_errors():
    c = make_planted_motif_corpus(200, noise_motif_rate=0.5, seed=1)
    motif_class = c.motif_class()
    n_decoys = sum(len(d) for d in c.decoys)
    assert 50 < n_decoys < 150
    for text, y, dec in zip(c.texts, c.labels, c.decoys):
        toks = text.split()
        for p, m in dec:
            assert tuple(toks[p: p + 3]) == m and m not in motif_class and sorted(m) == sorted(c.motifs[0][int(m[0][1:3])])
    with pytest.raises(ValueError, match=r"motif_length=2 allows 2 word orders; num_classes=3 need 3"):
        make_planted_motif_corpus(30, num_classes=3, motif_length=2)
    with pytest.raises(ValueError, match=r"length_range must be \(lo, hi\) with 7 <= lo <= hi"):
        make_planted_motif_corpus(30, motifs_per_example=2, length_range=(5, 10))


def test_synthetic_dataset_splits():
    ds = synthetic_dataset(1000, seed=0)
    assert ds.name == "synthetic" and ds.num_classes == 2
    assert (len(ds.train), len(ds.dev), len(ds.test)) == (800, 100, 100)
    for lt in ds.splits().values():
        assert Counter(lt.labels)[0] == len(lt) // 2
    assert ds.extras["motifs"] == ds.extras["corpus"].motifs
    idx = ds.extras["indices"]["test"]
    assert [ds.extras["corpus"].texts[i] for i in idx] == ds.test.texts
    assert load_named_source("synthetic", num_examples=1000, seed=0).test.texts == ds.test.texts


# =================================================================================================
# Sources
# =================================================================================================

def test_hf_source_from_save_to_disk(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"sentence": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=["neg", "pos"])})
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"sentence": ["good film", "bad film", "fine"], "label": [1, 0, 1]},
                                            features=features),
        "test": datasets.Dataset.from_dict({"sentence": ["awful", "great"], "label": [0, 1]}, features=features),
    })
    dd.save_to_disk(str(tmp_path / "tiny"))
    offline_before = os.environ.get("HF_DATASETS_OFFLINE")
    ds = load_hf_dataset(str(tmp_path / "tiny"))
    assert os.environ.get("HF_DATASETS_OFFLINE") == offline_before  # the offline switch is restored
    assert ds.train.texts == ["good film", "bad film", "fine"] and ds.train.labels == [1, 0, 1]
    assert ds.test.labels == [0, 1] and ds.dev is None
    assert ds.num_classes == 2 and ds.label_names == ["neg", "pos"]
    again = load_named_source(f"hf:{tmp_path / 'tiny'}")
    assert again.train.texts == ds.train.texts and again.name == f"hf:{tmp_path / 'tiny'}"
    single = datasets.Dataset.from_dict({"text": ["a", "b"], "label": [0, 1]})
    single.save_to_disk(str(tmp_path / "single"))
    s = load_hf_dataset(str(tmp_path / "single"))
    assert s.train.texts == ["a", "b"] and s.test is None and s.label_names is None
    with pytest.raises(ValueError, match=r"text_field='review' is not a column; columns: \['sentence', 'label'\]"):
        load_hf_dataset(str(tmp_path / "tiny"), text_field="review")


def test_hf_source_not_cached_is_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("datasets")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))
    with pytest.raises(FileNotFoundError, match=r"hf:surely-not-a-cached-dataset-xyz: not found locally"):
        load_hf_dataset("surely-not-a-cached-dataset-xyz", cache_dir=str(tmp_path / "hf_cache"))


class _FakeLabel:
    def __init__(self, names):
        self.names = names
        self.num_classes = len(names)


def _fake_tfds_module(calls):
    """A FAKE ``tensorflow_datasets`` (TensorFlow is not installed here): ``load`` and ``as_numpy`` with
    the real call signatures, over a tiny in-memory dataset of byte strings, like TFDS yields."""
    mod = types.ModuleType("tensorflow_datasets")
    data = {"train": [{"sentence": b"a fine film", "label": 1, "idx": 0}, {"sentence": b"dull", "label": 0, "idx": 1}],
            "validation": [{"sentence": "caf\xe9".encode(), "label": 1, "idx": 0},
                           {"sentence": b"meh", "label": 0, "idx": 1}]}

    def load(name, *, split=None, data_dir=None, download=True, with_info=False, **kw):
        calls.append(dict(name=name, data_dir=data_dir, download=download, with_info=with_info))
        if name != "glue/sst2":
            raise AssertionError(f"Dataset {name} not found in data_dir {data_dir}")
        info = types.SimpleNamespace(features={"label": _FakeLabel(["negative", "positive"])})
        return (dict(data), info) if with_info else dict(data)

    def as_numpy(ds):
        return iter([{k: (np.int64(v) if isinstance(v, int) else v) for k, v in row.items()} for row in ds])

    mod.load = load
    mod.as_numpy = as_numpy
    return mod


def test_tfds_source_with_fake_module(monkeypatch):
    """Uses a FAKE tensorflow_datasets module injected into sys.modules (TF is not installed)."""
    calls = []
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds_module(calls))
    ds = load_tfds_dataset("glue/sst2", data_dir="/data/tfds")
    assert calls == [dict(name="glue/sst2", data_dir="/data/tfds", download=False, with_info=True)]
    assert ds.train.texts == ["a fine film", "dull"] and ds.dev.texts == ["café", "meh"]
    assert ds.dev.labels == [1, 0] and ds.test is None and ds.label_names == ["negative", "positive"]
    assert load_named_source("tfds:glue/sst2").name == "tfds:glue/sst2"
    with pytest.raises(FileNotFoundError, match=r"tfds:imdb: not prepared under data_dir=None .*download=False"):
        load_tfds_dataset("imdb")


def test_tfds_missing_is_import_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # makes `import tensorflow_datasets` fail
    with pytest.raises(ImportError, match="pip install tensorflow-datasets"):
        load_tfds_dataset("glue/sst2")


def test_named_source_unknown():
    with pytest.raises(ValueError, match=r"Unknown data source spec='imdb'; expected one of \['mr', 'sst1', 'sst2', 'trec', 'subj', "
                                         r"'cr', 'mpqa', 'synthetic'\]"):
        load_named_source("imdb")


def test_labeled_text_length_mismatch():
    with pytest.raises(ValueError, match=r"len\(texts\)=2, len\(labels\)=1"):
        LabeledText(texts=["a", "b"], labels=[0], path="x", encoding="utf-8")
