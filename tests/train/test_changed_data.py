"""A run and its data: a run re-opened on other data is refused before anything of it is rewritten (the fingerprint
in ``run.json``); data paths are stored absolute in ``config.json``; texts that are all empty after tokenizing are
refused."""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys

import pytest
from conftest import subprocess_env as _env

import jaxconv
from jaxconv.cli import main
from jaxconv.configs import load_config
from jaxconv.data.pipeline import build_data

pytestmark = pytest.mark.slow  # training commands

WORDS = ["fine", "funny", "smart", "moving", "great", "dull", "boring", "awful", "long", "mess"]
RUN_FILES = ("vocab.json", "run.json", "config.json", "metrics.jsonl", "final_metrics.json")
TINY = ["--config.data.name=file", "--config.train.epochs=1", "--config.model.embed_dim=8",
        "--config.model.filters=4", "--config.train.batch_size=8", "--config.data.max_buckets=1",
        "--config.progress=false", "--config.tensorboard=false"]


def _rows(n: int, shuffle_words: bool = False, extra: str = "") -> str:
    """``n`` TSV rows: texts of three words, positive when the first is one of the first five words."""
    out = ["text\tlabel"]
    for i in range(n):
        words = [WORDS[(i + j * 3) % len(WORDS)] for j in range(3)]
        label = "pos" if WORDS.index(words[0]) < 5 else "neg"
        if shuffle_words:
            words = words[::-1]
        out.append(" ".join(words + ([extra] if extra else [])) + f"\t{label}")
    return "\n".join(out) + "\n"


def _train(workdir, train, test, *more) -> int:
    return main(["train", "text_cnn", "--workdir", str(workdir), f"--config.data.train={train}",
                 f"--config.data.test={test}", *TINY, *more])


def _digests(workdir: pathlib.Path) -> dict[str, str]:
    return {name: hashlib.sha256((workdir / name).read_bytes()).hexdigest() for name in RUN_FILES}


@pytest.fixture()
def finished(tmp_path):
    """A finished run on ``d.tsv`` / ``t.tsv``: (workdir, train file, test file)."""
    train, test = tmp_path / "d.tsv", tmp_path / "t.tsv"
    train.write_text(_rows(40))
    test.write_text(_rows(10))
    workdir = tmp_path / "run"
    assert _train(workdir, train, test) == 0
    return workdir, train, test


@pytest.mark.parametrize("change", ["reordered", "new_words", "new_words_no_fingerprint"])
def test_other_data_under_a_finished_run_is_refused_and_nothing_is_rewritten(finished, capsys, change):
    workdir, train, test = finished
    info = json.loads((workdir / "run.json").read_text())
    assert set(info["fingerprint"]) == {"train", "test", "vocab"}
    assert all(v.startswith("sha256:") for v in info["fingerprint"].values())
    if change == "new_words_no_fingerprint":     # a run from before the fingerprint: its vocab.json tells
        del info["fingerprint"]
        (workdir / "run.json").write_text(json.dumps(info, indent=2) + "\n")
    before = _digests(workdir)
    train.write_text(_rows(40, shuffle_words=True) if change == "reordered" else _rows(40, extra="brand new"))
    capsys.readouterr()
    assert _train(workdir, train, test) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{workdir} holds a run trained on other data: " in err[0]
    assert "Use a new --workdir, or restore the data the run was trained on." in err[0]
    if change != "new_words_no_fingerprint":
        assert f"config.data.train={train} reads other texts or labels" in err[0]
    if change != "reordered":
        assert f"the vocabulary built from it differs from {workdir / 'vocab.json'}" in err[0]
    else:
        assert "vocabulary" not in err[0]          # same word set, same counts: only the texts changed
    assert _digests(workdir) == before
    run = jaxconv.load_run(workdir)
    assert len(run.vocab) == info["vocab_size"]


def test_the_same_data_resumes_the_finished_run(finished, capsys):
    workdir, train, test = finished
    vocab = (workdir / "vocab.json").read_bytes()
    fingerprint = json.loads((workdir / "run.json").read_text())["fingerprint"]
    assert _train(workdir, train, test) == 0
    assert (workdir / "vocab.json").read_bytes() == vocab
    assert json.loads((workdir / "run.json").read_text())["fingerprint"] == fingerprint


def test_relative_data_paths_are_stored_absolute_and_dump_works_elsewhere(tmp_path, monkeypatch):
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    (project / "data").mkdir(parents=True)
    elsewhere.mkdir()
    (project / "data" / "reviews.tsv").write_text(_rows(40))
    (project / "data" / "test.tsv").write_text(_rows(10))
    monkeypatch.chdir(project)
    assert _train("run", "data/reviews.tsv", "data/test.tsv") == 0
    saved = json.loads((project / "run" / "config.json").read_text())["data"]
    assert saved["train"] == str(project / "data" / "reviews.tsv")
    assert saved["test"] == str(project / "data" / "test.tsv")
    assert _train("run", "data/reviews.tsv", "data/test.tsv") == 0      # resumes: the same files, named as before
    proc = subprocess.run([sys.executable, "-m", "jaxconv", "dump", "--workdir", str(project / "run")], cwd=elsewhere,
                          capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (project / "run" / "dumps" / "test").is_dir()


def test_texts_all_empty_after_tokenizing_are_refused_naming_the_tokenizer(tmp_path, capsys):
    train, test = tmp_path / "sym.tsv", tmp_path / "t.tsv"
    train.write_text("text\tlabel\n" + "".join(f"@@@ ###\t{'pos' if i % 2 else 'neg'}\n" for i in range(20)))
    test.write_text(_rows(10))
    config = load_config("text_cnn", {"data.name": "file", "data.train": str(train), "data.test": str(test),
                                      "data.tokenizer": "kim"})
    with pytest.raises(ValueError) as e:
        build_data(config, min_length=3)
    assert str(e.value) == (f"config.data.train={train}: all 18 training texts are empty after the 'kim' tokenizer "
                            f"(config.data.tokenizer), so the model would train on padding alone; expected texts with "
                            f"words it keeps. Choose another tokenizer (--config.data.tokenizer=whitespace) or check "
                            f"the file's text column (config.data.format, config.data.text_field).")
    capsys.readouterr()
    assert _train(tmp_path / "run", train, test, "--config.data.tokenizer=kim") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "empty after the 'kim' tokenizer" in err[0]
    assert not (tmp_path / "run" / "vocab.json").exists()
