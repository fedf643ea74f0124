"""Data from the command line: ``experiments/text_cnn.py`` (= ``jaxconv train``) on your own files, and
``experiments/kim2014.py`` over the seven datasets; every data error is one line with ``file:line``, exit 2, no
traceback (run as subprocesses, as a user runs them)."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow  # training commands on data files

REPO = pathlib.Path(__file__).resolve().parents[2]
TEXT_CNN = REPO / "experiments" / "text_cnn.py"
KIM = REPO / "experiments" / "kim2014.py"
SMALL = ["--config.model.embed_dim=8", "--config.model.filters=4", "--config.train.batch_size=4",
         "--config.progress=False", "--config.tensorboard=False"]


def _run(args, tmp_path, timeout=300, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    full_env.pop("XLA_FLAGS", None)
    return subprocess.run([sys.executable, *map(str, args)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=timeout, env=full_env)


def _one_line_error(proc: subprocess.CompletedProcess, prefix: str) -> str:
    """The single error line of a failed run (INFO logs may precede it on stderr)."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith(prefix)]
    assert len(errors) == 1 and proc.stderr.rstrip("\n").endswith(errors[0]), proc.stderr
    return errors[0]


def test_train_on_your_own_tsv_with_string_labels(tmp_path):
    rows = [("a fine , funny film", "pos"), ("a dull mess", "neg"), ("great acting", "pos"), ("boring , long", "neg")]
    (tmp_path / "reviews.tsv").write_text("text\tlabel\n" + "".join(f"{t} {i}\t{y}\n" for i in range(10)
                                                                   for t, y in rows))
    proc = _run([TEXT_CNN, "--config", "text_cnn:file", "--workdir", "run", "--config.data.train=reviews.tsv",
                 "--config.train.epochs=1", *SMALL], tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "labels:       0 = neg, 1 = pos" in proc.stdout
    assert "data file:reviews.tsv: labels {0: 'neg', 1: 'pos'}" in proc.stderr
    final = json.loads((tmp_path / "run" / "final_metrics.json").read_text())
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert final["label_names"] == run["label_names"] == ["neg", "pos"] and final["fold"] == 0
    assert final["sizes"] == {"train": 32, "dev": 4, "test": 4}                     # 10-fold CV, 10% dev hold-out
    assert run["data"]["formats"] == {"train": "tsv"} and run["data"]["cv_folds"] == 10


def test_text_cnn_data_errors_are_one_line(tmp_path):
    (tmp_path / "train.txt").write_text("pos good\n\nneg bad\n")
    (tmp_path / "ok.txt").write_text("pos good\nneg bad\n")
    (tmp_path / "dev.txt").write_text("pos fine\nmeh so so\n")
    base = [TEXT_CNN, "--config", "text_cnn:file", "--workdir", "w", *SMALL]
    cases = [
        (["--config.data.train=train.txt"],
         "train.txt:2: blank line; expected '<label> <text>' (format 'label_text' guessed from the content; else set "
         "--config.data.format). Skip such lines with "
         "--config.data.on_error=skip (Python: on_error='skip')."),
        (["--config.data.train=ok.txt", "--config.data.dev=dev.txt"],
         "dev.txt:2: label 'meh' does not occur in the training file 'ok.txt' (its labels: ['neg', 'pos']); every "
         "dev label must be a training label."),
        (["--config.data.train=ok.txt", "--config.data.test=missing.txt"],
         "FileNotFoundError: test file not found: 'missing.txt' (config.data.test)."),
    ]
    for extra, message in cases:
        line = _one_line_error(_run([*base, *extra], tmp_path), "jaxconv train: error: ")
        assert line == f"jaxconv train: error: {message}"


def test_kim2014_missing_file_and_bad_line_are_one_line(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    line = _one_line_error(_run([KIM, "--workdir", "k", "--datasets", "cr", "--data_path", data], tmp_path),
                           "kim2014: error: ")
    assert line == (f"kim2014: error: cr: missing {data / 'custrev.all'} (set the data directory with --data_path, "
                    f"or leave cr out of --datasets)")
    (data / "subj.all").write_text("".join(f"{i % 2} sentence {i}\n" for i in range(30)) + "1\n")
    line = _one_line_error(_run([KIM, "--workdir", "k", "--datasets", "subj", "--data_path", data, "--seeds", "1",
                                 "--folds", "1", "--steps", "1", "--noprogress"], tmp_path), "kim2014: error: ")
    assert line == (f"kim2014: error: subj seed 0 fold 0: ValueError: {data / 'subj.all'}:31: no text after label '1' "
                    f"in line '1'; expected '<integer label> <sentence>'. Skip such lines with "
                    f"--config.data.on_error=skip (Python: on_error='skip').")


def test_kim2014_runs_what_is_present_and_says_what_it_skipped(tmp_path):
    sentences = tmp_path / "sentences"
    sentences.mkdir()
    for name in ("TREC.train.all", "TREC.test.all"):
        (sentences / name).write_text("".join(f"{i % 6} what is {i} ?\n" for i in range(24)))
    proc = _run([KIM, "--workdir", "k", "--report_only"], tmp_path, JAXCONV_DATA=str(sentences))
    assert proc.returncode == 0, proc.stderr
    for name, files in (("mr", "rt-polarity.all"), ("sst1", "stsa.fine.train, "), ("subj", "subj.all"),
                        ("cr", "custrev.all"), ("mpqa", "mpqa.all")):
        assert f"kim2014: skipping {name}: missing {sentences / files}" in proc.stderr
    rows = [line.split(" | ")[0][2:] for line in proc.stdout.splitlines()
            if line.startswith("| ") and (" | skipped: " in line or "/3 | " in line)]
    assert rows == ["mr", "sst1", "sst2", "subj", "trec", "cr", "mpqa"]               # Kim's Table 2 order
    assert "| trec | 0/3 | - | 91.2 |" in proc.stdout
    assert f"| cr | skipped: missing {sentences / 'custrev.all'} | - | 79.8 |" in proc.stdout
