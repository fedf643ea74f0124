"""Your own files (jaxconv.data.files): label_text / TSV / CSV / JSONL, string labels, on_error, decoding line by line;
Kim's Subj, CR and MPQA by name; and the pipeline's file source, CV, max_length and long-bucket warning."""

from __future__ import annotations

import json
import pathlib
import warnings

import numpy as np
import pytest

from jaxconv.configs import load_config
from jaxconv.data import decode_lines, detect_format, load_files, load_sentence_dataset, read_examples, read_labeled_lines
from jaxconv.data.pipeline import build_data, data_files

SKIP_HINT = "Skip such lines with --config.data.on_error=skip (Python: on_error='skip')."


def _write(path: pathlib.Path, text: str | bytes) -> pathlib.Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


REVIEWS = [("a fine , funny film", "pos"), ("a dull mess", "neg"), ("great acting", "pos"), ("boring and long", "neg"),
           ("moving and smart", "pos"), ("awful script", "neg")]


def _in_format(fmt: str, rows=REVIEWS, text="text", label="label") -> str:
    if fmt == "label_text":
        return "".join(f"{y} {t}\n" for t, y in rows)
    if fmt == "tsv":
        return f"id\t{text}\t{label}\n" + "".join(f"{i}\t{t}\t{y}\n" for i, (t, y) in enumerate(rows))
    if fmt == "csv":
        return f"{label},{text}\n" + "".join(f'{y},"{t}"\n' for t, y in rows)
    return "".join(json.dumps({text: t, label: y, "id": i}) + "\n" for i, (t, y) in enumerate(rows))


EXT = {"label_text": "txt", "tsv": "tsv", "csv": "csv", "jsonl": "jsonl"}


# =================================================================================================
# Formats, with and without dev/test files
# =================================================================================================

@pytest.mark.parametrize("fmt", ["label_text", "tsv", "csv", "jsonl"])
@pytest.mark.parametrize("with_eval", [False, True])
def test_each_format_with_and_without_dev_test(tmp_path, fmt, with_eval):
    train = _write(tmp_path / f"train.{EXT[fmt]}", _in_format(fmt))
    dev = _write(tmp_path / f"dev.{EXT[fmt]}", _in_format(fmt, REVIEWS[:2])) if with_eval else None
    test = _write(tmp_path / f"test.{EXT[fmt]}", _in_format(fmt, REVIEWS[2:5])) if with_eval else None
    ds = load_files(train, dev, test)
    assert ds.train.texts == [t for t, _ in REVIEWS]
    assert ds.label_names == ["neg", "pos"] and ds.num_classes == 2           # string labels, sorted
    assert ds.train.labels == [1, 0, 1, 0, 1, 0]
    assert ds.extras["formats"]["train"] == fmt and ds.name == f"file:train.{EXT[fmt]}"
    if with_eval:
        assert ds.dev.labels == [1, 0] and ds.test.labels == [1, 0, 1] and ds.test.texts[0] == "great acting"
        assert set(ds.extras["formats"]) == {"train", "dev", "test"}
    else:
        assert ds.dev is None and ds.test is None


def test_format_detection_by_extension_then_content(tmp_path):
    assert detect_format("a.TSV", ["x"]) == "tsv" and detect_format("a.ndjson", ["x"]) == "jsonl"
    assert detect_format("a.txt", ["", '  {"text": "hi", "label": 1}']) == "jsonl"
    assert detect_format("a.txt", ["sentence\tlabel", "hi\t1"]) == "tsv"
    assert detect_format("a.txt", ["text,label", "hi,1"]) == "csv"
    assert detect_format("a.txt", ["review,stars"], label_field="stars") == "csv"
    assert detect_format("a.txt", ["1 a text, with a comma"]) == "label_text"
    assert detect_format("a.txt", ["label first\tthen text"]) == "label_text"      # 'label first' is no column
    p = _write(tmp_path / "data.all", _in_format("tsv"))
    assert read_examples(p).format == "tsv"
    with pytest.raises(ValueError, match=r"format='xml' is not known \(config.data.format\); expected one of "
                                         r"\('auto', 'label_text', 'tsv', 'csv', 'jsonl'\)"):
        read_examples(p, format="xml")


def test_auto_refuses_a_table_it_would_misread(tmp_path):
    rows = "".join(f"{i} viewers liked it,{'pos' if i % 2 else 'neg'}\n" for i in range(120))
    p = _write(tmp_path / "reviews.txt", "sentence,sentiment\n" + rows)              # label column not 'label'
    with pytest.raises(ValueError) as e:
        read_examples(p)
    assert str(e.value) == (f"{p}:1: no text after label 'sentence,sentiment' in line 'sentence,sentiment'; expected "
                            f"'<label> <text>' (format 'label_text' guessed from the content; else set "
                            f"--config.data.format). {SKIP_HINT}")
    p = _write(tmp_path / "reviews.txt", "review text,sentiment\n" + rows)
    with pytest.raises(ValueError) as e:
        read_examples(p)
    assert str(e.value) == (f"{p}: read as '<label> <text>' lines (config.data.format='auto'), it has 121 different "
                            f"labels in 121 examples, so the guess is likely wrong: a TSV/CSV file whose label column "
                            f"is not named 'label'? Set --config.data.format (tsv, csv, jsonl, label_text) and "
                            f"--config.data.label_field / --config.data.text_field.")
    ex = read_examples(p, label_field="sentiment", text_field="review text")          # then detected as CSV
    assert ex.format == "csv" and set(ex.labels) == {"pos", "neg"} and len(ex.texts) == 120


def test_fields_default_named_and_missing(tmp_path):
    p = _write(tmp_path / "s.tsv", _in_format("tsv", text="sentence"))
    assert read_examples(p).texts[0] == "a fine , funny film"                       # 'sentence' when no 'text'
    p = _write(tmp_path / "r.csv", _in_format("csv", text="review", label="stars"))
    ex = read_examples(p, text_field="review", label_field="stars")
    assert ex.texts[1] == "a dull mess" and ex.labels[1] == "neg" and ex.lines[1] == 3
    with pytest.raises(ValueError) as e:
        read_examples(p)
    assert str(e.value) == (f"{p}:1: no column named 'label' in the csv header ['stars', 'review']; name the label "
                            f"column with --config.data.label_field=NAME (Python: label_field=).")
    with pytest.raises(ValueError) as e:
        read_examples(p, label_field="stars")
    assert str(e.value) == (f"{p}:1: no text column 'text' or 'sentence' in the csv header ['stars', 'review']; name it "
                            f"with --config.data.text_field=NAME (Python: text_field=).")
    j = _write(tmp_path / "r.jsonl", _in_format("jsonl", text="review"))
    with pytest.raises(ValueError) as e:
        read_examples(j)
    assert str(e.value).startswith(f"{j}:1: no text key 'text' or 'sentence' in '{{\"review\": ")
    assert str(e.value).endswith(f"(name it with --config.data.text_field=NAME); expected one JSON object per line. "
                                 f"{SKIP_HINT}")


def test_csv_quoting_spans_lines_and_reports_record_lines(tmp_path):
    p = _write(tmp_path / "q.csv", 'text,label\n"one, two",a\n"three\nfour",b\n\nfive,a\nsix,b,extra\n')
    with pytest.raises(ValueError) as e:
        read_examples(p)
    assert str(e.value) == (f"{p}:5: blank line; expected comma-separated fields under the header. {SKIP_HINT}")
    with pytest.warns(UserWarning) as w:
        ex = read_examples(p, on_error="skip")
    assert ex.texts == ["one, two", "three\nfour", "five"] and ex.lines == [2, 3, 6] and ex.skipped == 2
    assert str(w[0].message) == (f"{p}: skipped 2 malformed line(s); first: {p}:5: blank line; {p}:7: 3 field(s) "
                                 f"where the header has 2: 'six,b,extra'")


def test_jsonl_labels_and_line_errors(tmp_path):
    p = _write(tmp_path / "d.jsonl", '{"text": "good", "label": 1}\n{"text": "bad", "label": 0}\n'
                                     '{"text": "meh", "label": 1.5}\n[1, 2]\n{"text": "x", "label": 1\n'
                                     '{"text": 3, "label": 1}\n{"text": "y", "label": true}\n')
    with pytest.raises(ValueError) as e:
        read_examples(p)
    assert str(e.value) == (f"{p}:3: label 'label' must be an integer or a string, got '1.5'; expected one JSON object "
                            f"per line. {SKIP_HINT}")
    with pytest.warns(UserWarning, match=r"skipped 5 malformed line\(s\); first: .*d\.jsonl:3: label 'label' must be "
                                         r".*d\.jsonl:4: expected a JSON object, got list: '\[1, 2\]'; .*d\.jsonl:5: "
                                         r"not valid JSON \(Expecting ',' delimiter at column 25\).*; \.\.\. \(2 more\)"):
        ex = read_examples(p, on_error="skip")
    assert ex.labels == [1, 0] and ex.texts == ["good", "bad"] and ex.skipped == 5


# =================================================================================================
# Labels
# =================================================================================================

def test_integer_labels_kept_or_mapped(tmp_path):
    zero_based = load_files(_write(tmp_path / "a.txt", "0 bad\n1 good\n2 great\n"))
    assert zero_based.train.labels == [0, 1, 2] and zero_based.label_names is None and zero_based.num_classes == 3
    stars = load_files(_write(tmp_path / "b.txt", "5 superb\n1 awful\n3 fine\n-1 unrated\n"))
    assert stars.label_names == ["-1", "1", "3", "5"] and stars.train.labels == [3, 1, 2, 0]   # numeric order
    jsonl = load_files(_write(tmp_path / "c.jsonl", '{"text": "a", "label": 10}\n{"text": "b", "label": "2"}\n'))
    assert jsonl.label_names == ["2", "10"] and jsonl.train.labels == [1, 0]                     # 10 and "2" both ints


def test_splits_that_disagree_on_labels(tmp_path):
    train = _write(tmp_path / "train.tsv", _in_format("tsv"))
    dev = _write(tmp_path / "dev.tsv", "text\tlabel\nfine\tpos\nso so\tneutral\n")
    with pytest.raises(ValueError) as e:
        load_files(train, dev)
    assert str(e.value) == (f"{dev}:3: label 'neutral' does not occur in the training file {str(train)!r} (its labels: "
                            f"['neg', 'pos']); every dev label must be a training label.")
    ints = _write(tmp_path / "train.txt", "0 a\n1 b\n")
    test = _write(tmp_path / "test.txt", "1 c\n2 d\n")
    with pytest.raises(ValueError, match=r"test\.txt:2: label '2' does not occur in the training file .* \(its labels: "
                                         r"\[0, 1\]\); every test label must be a training label\."):
        load_files(ints, None, test)
    fewer = load_files(train, _write(tmp_path / "pos_only.tsv", "text\tlabel\nfine\tpos\n"))   # a subset is fine
    assert fewer.dev.labels == [1]
    with pytest.raises(ValueError) as e:
        load_files(_write(tmp_path / "one.txt", "pos a\npos b\n"))
    assert str(e.value) == (f"{tmp_path / 'one.txt'}: every example has the label 'pos'; a classifier needs at least 2 "
                            f"labels in the training file.")


def test_missing_files_are_named(tmp_path):
    train = _write(tmp_path / "train.tsv", _in_format("tsv"))
    with pytest.raises(FileNotFoundError) as e:
        load_files(train, None, tmp_path / "nope.tsv")
    assert str(e.value) == f"test file not found: {str(tmp_path / 'nope.tsv')!r} (config.data.test)."
    with pytest.raises(FileNotFoundError, match=r"train file not found: '.*absent\.txt' \(config\.data\.train\)\."):
        load_files(tmp_path / "absent.txt")


# =================================================================================================
# on_error, blank lines, decoding line by line
# =================================================================================================

def test_on_error_skip_counts_and_reports_the_first_reasons(tmp_path):
    p = _write(tmp_path / "m.txt", "pos good\n\nneg\nneg bad\n   \npos fine\n\t\n")
    with pytest.raises(ValueError) as e:
        load_files(p)
    assert str(e.value) == (f"{p}:2: blank line; expected '<label> <text>' (format 'label_text' guessed from the "
                            f"content; else set --config.data.format). {SKIP_HINT}")
    with pytest.warns(UserWarning) as w:
        ds = load_files(p, on_error="skip")
    assert ds.train.texts == ["good", "bad", "fine"] and ds.train.skipped == 4 and ds.extras["skipped"] == {"train": 4}
    assert str(w[0].message) == (f"{p}: skipped 4 malformed line(s); first: {p}:2: blank line; {p}:3: no text after "
                                 f"label 'neg' in line 'neg'; {p}:5: blank line; ... (1 more)")
    with pytest.raises(ValueError, match=r"on_error must be one of \('raise', 'skip'\); got on_error='ignore' "
                                         r"\(config.data.on_error\)\."):
        load_files(p, on_error="ignore")


def test_blank_line_message_names_the_config_field(tmp_path):
    p = _write(tmp_path / "rt.all", "1 good\n\n0 bad\n")
    with pytest.raises(ValueError) as e:
        read_labeled_lines(p)
    assert str(e.value) == f"{p}:2: blank line; expected '<integer label> <sentence>'. {SKIP_HINT}"


def test_one_bad_byte_keeps_the_utf8_text(tmp_path):
    """A UTF-8 file with one undecodable line: every valid line keeps its text; a warning names the Latin-1 line."""
    p = _write(tmp_path / "u.txt", "1 café naïve\n0 crème brûlée\n".encode() + b"1 caf\xe9 \xff\n" + "0 déjà vu\n".encode())
    with pytest.warns(UserWarning) as w:
        lt = read_labeled_lines(p)
    assert lt.texts == ["café naïve", "crème brûlée", "café ÿ", "déjà vu"] and lt.encoding == "utf-8+latin-1"
    assert str(w[0].message) == (f"{p}: 1 line(s) are not valid UTF-8 and were decoded as Latin-1 ({p}:3); the other 3 "
                                 f"line(s) are UTF-8. Pass an explicit encoding to decode the whole file one way.")
    with pytest.warns(UserWarning, match=r"u\.txt: 1 line\(s\) are not valid UTF-8"):
        assert load_files(p).train.texts[0] == "café naïve"                      # the same rule for your own files


def test_latin1_and_ascii_files_decode_as_before(tmp_path):
    latin = _write(tmp_path / "l.txt", "0 plain\n1 caf\xe9 cr\xe8me\n0 a\x85b\n".encode("latin-1"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                           # a Latin-1 file: no warning
        assert decode_lines(latin) == (["0 plain", "1 café crème", "0 a\x85b"], "latin-1")
        assert decode_lines(_write(tmp_path / "a.txt", b"1 ok\r\n0 fine")) == (["1 ok", "0 fine"], "utf-8")
        assert decode_lines(_write(tmp_path / "b.txt", b"\xef\xbb\xbf1 bom\n")) == (["1 bom"], "utf-8-sig")
    with pytest.raises(ValueError, match=r"l\.txt:2: cannot decode byte b'\\xe9' as encoding='utf-8'"):
        decode_lines(latin, "utf-8")


# =================================================================================================
# Subj, CR, MPQA by name
# =================================================================================================

KIM_FILES = {"subj": "subj.all", "cr": "custrev.all", "mpqa": "mpqa.all"}


def _kim_file(root: pathlib.Path, name: str, n: int = 40, blank: bool = False) -> pathlib.Path:
    lines = [f"{i % 2} sentence {i} is {'good' if i % 2 else 'bad'} , isn't it ?" for i in range(n)]
    if blank:
        lines.insert(3, "")
    return _write(root / KIM_FILES[name], "\n".join(lines) + "\n")


@pytest.mark.parametrize("name", sorted(KIM_FILES))
def test_subj_cr_mpqa_by_name(tmp_path, name):
    _kim_file(tmp_path, name)
    ds = load_sentence_dataset(name, tmp_path)
    assert ds.name == name and len(ds.train) == 40 and ds.dev is None and ds.test is None
    assert ds.train.label_counts() == {0: 20, 1: 20} and ds.extras["tokenizer"] == "kim"
    assert ds.label_names == (["subjective", "objective"] if name == "subj" else ["negative", "positive"])
    config = load_config(f"text_cnn:{name}", {"data.path": str(tmp_path), "train.batch_size": 4})
    assert config.data.name == name and config.train.epochs == 25 and config.model.filters == 100
    assert data_files(config) == {"train": tmp_path / KIM_FILES[name]}
    data = build_data(config, min_length=5)                                      # 10-fold CV, 10% dev hold-out
    assert data.sizes == {"train": 32, "dev": 4, "test": 4} and data.info["cv_fold"] == 0
    assert data.tokenizer == "kim" and "n't" in data.vocab


def test_kim_files_missing_name_path_and_file(tmp_path):
    with pytest.raises(FileNotFoundError) as e:
        load_sentence_dataset("cr", tmp_path)
    assert str(e.value) == (f"cr: train file not found: {str(tmp_path / 'custrev.all')!r} (cr expects custrev.all in "
                            f"{str(tmp_path)!r}); set the data directory with --config.data.path=DIR or the "
                            f"JAXCONV_DATA environment variable.")
    with pytest.raises(FileNotFoundError, match=r"mpqa: data directory not found: '.*nowhere' \(expected mpqa\.all "
                                                r"there\); set the data directory"):
        load_sentence_dataset("mpqa", tmp_path / "nowhere")


def test_cr_preset_skips_blank_lines_and_counts_them(tmp_path):
    _kim_file(tmp_path, "cr", blank=True)
    config = load_config("text_cnn:cr", {"data.path": str(tmp_path), "train.batch_size": 4})
    assert config.data.on_error == load_config("text_cnn:mpqa").data.on_error == "skip"
    assert load_config("text_cnn:subj").data.on_error == load_config("text_cnn:mr").data.on_error == "raise"
    with pytest.warns(UserWarning, match=r"custrev\.all: skipped 1 malformed line\(s\); first: .*custrev\.all:4: blank"):
        data = build_data(config, min_length=5)
    assert sum(data.sizes.values()) == 40 and data.info["skipped_lines"] == {"train": 1}
    mr = load_config("text_cnn:mr", {"data.path": str(tmp_path)})
    _write(tmp_path / "rt-polarity.all", (tmp_path / "custrev.all").read_bytes())
    with pytest.raises(ValueError, match=r"rt-polarity\.all:4: blank line; .*--config\.data\.on_error=skip"):
        build_data(mr, min_length=5)


# =================================================================================================
# The pipeline's file source: CV on a single file, string label names, config errors
# =================================================================================================

def _file_config(**overrides):
    base = {"data.name": "file", "train.batch_size": 4, "data.max_buckets": 2}
    return load_config("text_cnn", {**base, **overrides})


def test_cv_on_a_single_file_with_string_labels(tmp_path):
    rows = [(f"review {i} {'fine' if i % 3 else 'dull'}", "pos" if i % 3 else "neg") for i in range(60)]
    train = _write(tmp_path / "all.jsonl", _in_format("jsonl", rows))
    folds = []
    for fold in range(3):
        data = build_data(_file_config(**{"data.train": str(train), "data.num_folds": 3, "data.fold": fold,
                                          "data.vocab_from": "all"}), min_length=3)
        assert data.sizes == {"train": 36, "dev": 4, "test": 20} and data.label_names == ["neg", "pos"]
        assert data.info["cv_fold"] == fold and data.info["dev_holdout"] == 0.1 and data.num_classes == 2
        labels = [int(y) for b in data.test.epoch(0) for y, w in zip(b.labels, b.weights) if w]
        assert sorted(np.bincount(labels)) == [6, 14] or sorted(np.bincount(labels)) == [7, 13]   # stratified
        folds.append({tuple(b.tokens[j]) for b in data.test.epoch(0) for j in range(4) if b.weights[j]})
    assert not (folds[0] & folds[1]) and not (folds[1] & folds[2])            # each review in one test fold
    given = build_data(_file_config(**{"data.train": str(train), "data.test": str(train)}), min_length=3)
    assert given.sizes == {"train": 54, "dev": 6, "test": 60} and "cv_fold" not in given.info


def test_file_source_config_errors(tmp_path):
    with pytest.raises(ValueError) as e:
        build_data(_file_config(), min_length=3)
    assert str(e.value) == ("config.data.name='file' reads your own files: name the training file with "
                            "--config.data.train=PATH (and optionally --config.data.dev=PATH, --config.data.test=PATH).")
    with pytest.raises(ValueError, match=r"config.data.train/dev/test name your own files, read with "
                                         r"config.data.name='file'; got config.data.name='synthetic'\. Add "
                                         r"--config.data.name=file\."):
        build_data(load_config("text_cnn", {"data.train": "x.tsv"}), min_length=3)
    tiny = _write(tmp_path / "tiny.tsv", "text\tlabel\na fine film\tpos\nslow\tneg\nfun\tpos\n")
    with pytest.raises(ValueError) as e:
        build_data(_file_config(**{"data.train": str(tiny)}), min_length=3)
    assert str(e.value) == ("file:tiny.tsv: there is no test split, so config.data.num_folds=10-fold cross-validation "
                            "makes one, which needs at least 10 examples of every class; the smallest class has 1. "
                            "Give a test file (--config.data.test=PATH) or more examples.")
    with pytest.raises(ValueError, match=r"the smallest class has 3\. Give a test file \(--config.data.test=PATH\) or "
                                         r"fewer folds \(--config.data.num_folds=N, 2 <= N <= 3\)\.$"):
        build_data(_file_config(**{"data.train": str(_write(tmp_path / "t3.txt", "a x\nb y\n" * 3))}), min_length=3)
    with pytest.raises(ValueError, match=r"config.data.max_length=-1 must be >= 0"):
        build_data(_file_config(**{"data.max_length": -1}), min_length=3)


# =================================================================================================
# max_length and the long-bucket warning
# =================================================================================================

def test_one_huge_line_warns_and_max_length_truncates(tmp_path):
    rows = [(" ".join(["word"] * (5 + i % 20)), "ab"[i % 2]) for i in range(200)] + [(" ".join(["w"] * 20000), "a")]
    train = _write(tmp_path / "long.tsv", _in_format("tsv", rows))
    config = _file_config(**{"data.train": str(train), "data.max_buckets": 5})
    with pytest.warns(UserWarning) as w:
        data = build_data(config, min_length=3)                                   # the bucket search stays fast
    assert data.train.bucket_lengths[-1] == 20000
    message = [str(x.message) for x in w if "longest bucket" in str(x.message)]
    assert message == ["the longest bucket is 20000 positions, 833x the 99th-percentile length (24): 1 example(s) "
                       "need more than 96, and each batch of that bucket computes 4 x 20000 positions. Truncate long "
                       "texts with --config.data.max_length=N (tokens)."]
    config.data.max_length = 20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = build_data(config, min_length=3)
    assert data.train.bucket_lengths[-1] == 24                                   # 20 tokens, rounded up to 8
    assert sum(data.info["max_length_truncated"].values()) == 1 + sum(5 + i % 20 > 20 for i in range(200))
