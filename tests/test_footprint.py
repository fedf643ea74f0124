"""Sizes beyond memory are refused up front, in one line naming the field, the estimate and the memory
(:mod:`jaxconv.footprint`); the memory is fixed here (1 GiB), so the tests do not depend on the machine."""

from __future__ import annotations

import re

import pytest

import jaxconv.footprint as footprint
from jaxconv.cli import main
from jaxconv.configs import BUILTIN_CONFIGS, load_config
from helpers import copy_run

GIB = 2**30


@pytest.fixture()
def one_gib(monkeypatch):
    monkeypatch.setattr(footprint, "available_memory", lambda: (GIB, "available host RAM"))


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if not re.match(r"INFO:jaxconv\.\w+:", line)]


def _rows(path, long_words: int = 0):
    words = ["fine", "funny", "smart", "dull", "boring", "awful"]
    lines = ["text\tlabel"] + [f"{words[i % 6]} {words[(i + 1) % 6]}\t{'pos' if i % 6 < 3 else 'neg'}"
                               for i in range(40)]
    if long_words:
        lines.append(" ".join(words[i % 6] for i in range(long_words)) + "\tpos")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("arg, words, head", [
    ("--config.train.batch_size=1000000000000", 0,
     "--config.train.batch_size: a batch of 1,000,000,000,000 rows would need about "),
    ("--config.model.filters=1000000000", 0, "--config.model.filters: 777,000,000,"),
    ("--config.progress=false", 50_000, "--config.data.max_length: texts 50,00"),
])
def test_training_sizes_beyond_memory_name_the_field(capsys, tmp_path, one_gib, arg, words, head):
    data = _rows(tmp_path / "d.tsv", words)
    rc = main(["train", "text_cnn", "--workdir", str(tmp_path / "w"), "--config.data.name=file",
               f"--config.data.train={data}", "--config.train.epochs=1", "--config.progress=false", arg])
    lines = [line for line in _error_lines(capsys.readouterr().err) if "UserWarning" not in line
             and not line.startswith("  warnings.warn")]
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith(f"jaxconv train: error: {head}"), lines
    assert ", more than the 1.0 GiB available host RAM; " in lines[0]
    field = head.split(":")[0]
    fix = f"cut the texts with {field}=N (tokens)." if "max_length" in field else f"lower {field}."
    assert lines[0].endswith(fix), lines[0]
    assert not (tmp_path / "w" / "config.json").exists()


@pytest.mark.slow  # loads a run
def test_dump_batch_beyond_memory_names_batch_size(capsys, tmp_path, demo_run, one_gib):
    run = tmp_path / "run"
    copy_run(demo_run, run)
    assert main(["dump", "--workdir", str(run), "--batch-size", "1000000000", "--name", "big"]) == 2
    lines = _error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and lines[0].startswith("jaxconv dump: error: --batch-size: a batch of 1,000,000,000 rows "
                                                   "would need about "), lines
    assert lines[0].endswith("more than the 1.0 GiB available host RAM; lower --batch-size."), lines
    assert not (run / "dumps" / "big" / "activations.zarr.partial").exists()


@pytest.mark.parametrize("name", sorted(BUILTIN_CONFIGS))
def test_builtin_configs_fit_in_a_gib(name, one_gib):
    """Every built-in config's default preset, and Kim's CNN on MR (batch 50), fit: the estimate refuses none."""
    for spec in (name, "text_cnn:mr") if name == "text_cnn" else (name,):
        config = load_config(spec)
        length = int(config.model.get("length", 0) or 0) or 128
        fp = footprint.model_footprint(config, 21_000, 5)
        footprint.check_fits(fp, batch=int(config.train.batch_size), length=length, batch_field="train.batch_size",
                             length_field="data.max_length", training=True)
