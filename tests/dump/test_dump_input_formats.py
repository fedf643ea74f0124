"""``jaxconv dump --input`` / ``jaxconv ablate --input`` read the formats training reads, through the same readers:
a TSV's header is no example, its string labels are the dump's labels (the run's class names), never words."""

from __future__ import annotations

import json

import pytest

import jaxconv
from jaxconv.cli import main
from jaxconv.data.pipeline import load_dataset, split_dataset
from helpers import copy_run


@pytest.fixture
def run_copy(demo_run, tmp_path):
    """A copy of the demo run without its dumps (other tests add theirs), so this file's dumps start from none."""
    workdir = tmp_path / "run"
    return copy_run(demo_run, workdir)


def _test_rows(workdir, n):
    run = jaxconv.load_run(workdir)
    test = split_dataset(load_dataset(run.config), run.config)[0].test
    return run.label_names, [(test.texts[i], test.labels[i]) for i in range(n)]


@pytest.mark.slow
def test_dump_input_tsv_with_header_and_string_labels(run_copy, tmp_path, capsys):
    names, rows = _test_rows(run_copy, 12)
    assert names is not None                                    # the demo's classes are named (class0, ...)
    path = tmp_path / "mine.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{names[y]}\n" for t, y in rows))
    assert main(["dump", "--workdir", str(run_copy), "--input", str(path), "--chunk-rows", "8"]) == 0
    d = jaxconv.load_dump(run_copy, "mine")
    assert d.num_examples == 12 and d.labels.tolist() == [y for _, y in rows]
    assert list(d.column("texts")) == [t for t, _ in rows]       # the header is not example 0
    assert d.words(0) == rows[0][0].split()                      # no label among the words
    assert main(["ablate", "--workdir", str(run_copy), "--input", str(path), "--top", "1"]) == 0
    record = json.loads((run_copy / "dumps" / "mine" / "ablation.json").read_text())
    assert record["examples"] == 12
    capsys.readouterr()


def test_dump_input_unknown_label_is_one_line_and_writes_nothing(run_copy, tmp_path, capsys):
    names, rows = _test_rows(run_copy, 3)
    path = tmp_path / "odd.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{names[y]}\n" for t, y in rows) + "so so\tclassX\n")
    assert main(["dump", "--workdir", str(run_copy), "--input", str(path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"jaxconv dump: error: --input {path}:5: label 'classX' is not one of the model's classes "
                   f"({names!r}); fix the line, or read the file without labels with --format text.\n")
    assert not (run_copy / "dumps" / "odd").exists()
    assert main(["dump", "--workdir", str(run_copy), "--format", "tsv"]) == 2
    assert capsys.readouterr().err == ("jaxconv dump: error: --format 'tsv' reads an --input file; give --input FILE, "
                                       "or leave --format out.\n")
