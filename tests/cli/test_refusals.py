"""Bad settings refused by ``jaxconv train`` in one line naming the field, the value and what is expected: seeds out
of range, a synthetic corpus too small to split, an ``hf:`` source without its package, a user's config file whose
``get_config`` raises. All are refused before any training, in-process."""

from __future__ import annotations

import errno
import os
import re
import sys
import textwrap

import pytest

from jaxconv.cli import main
from helpers import copy_run


def _error_lines(err: str) -> list[str]:
    """The stderr lines that are not jaxconv's INFO logs."""
    return [line for line in err.splitlines() if not re.match(r"INFO:jaxconv\.\w+:", line)]


def _train(capsys, workdir, *args) -> tuple[int, list[str]]:
    rc = main(["train", "text_cnn", "--workdir", str(workdir), "--config.progress=false", *args])
    return rc, _error_lines(capsys.readouterr().err)


@pytest.mark.parametrize("arg, message", [
    ("--config.seed=99999999999999999999999", "config.seed=99999999999999999999999: expected an int in "
                                              "[0, 2**63 - 1] (the run's one source of randomness)."),
    ("--config.seed=-1", "config.seed=-1: expected an int in [0, 2**63 - 1] (the run's one source of randomness)."),
    ("--config.data.split_seed=-3", "config.data.split_seed=-3: expected an int in [0, 2**63 - 1]"),
    ("--config.data.synthetic.num_examples=5", "config.data.synthetic.num_examples=5: expected an int >= 10 (the "
                                               "corpus size; its train/dev/test split (0.8, 0.1, 0.1) needs that many "
                                               "to give each part an example)."),
])
def test_bad_seed_and_corpus_size_name_their_field(capsys, tmp_path, arg, message):
    rc, lines = _train(capsys, tmp_path / "w", arg)
    assert rc == 2
    assert len(lines) == 1 and lines[0].startswith(f"jaxconv train: error: {message}"), lines
    assert not (tmp_path / "w").exists()


def test_hf_source_without_datasets_is_one_line(capsys, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)   # `import datasets` raises ImportError
    rc, lines = _train(capsys, tmp_path / "w", "--config.data.name=hf:imdb")
    assert rc == 2
    assert lines == ["jaxconv train: error: config.data.name='hf:imdb': load_hf_dataset needs the Hugging Face "
                     "`datasets` package: pip install datasets"]


@pytest.mark.parametrize("body, kind", [
    ("raise RuntimeError('no GPU here')", "RuntimeError: no GPU here"),
    ("return config.model.no_such_field", "AttributeError: \"'no_such_field'\""),
])
def test_config_file_whose_get_config_raises_names_file_and_line(capsys, tmp_path, body, kind):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent(f"""\
        from jaxconv.configs import text_cnn

        def get_config(preset=None):
            config = text_cnn.get_config("synthetic")
            {body}
    """))
    rc = main(["train", str(path), "--workdir", str(tmp_path / "w")])
    lines = _error_lines(capsys.readouterr().err)
    assert rc == 2
    assert lines == [f"jaxconv train: error: config {str(path)!r}: get_config(None) failed: {kind} "
                     f"(at {path} line 5)"]


# ---------------------------------------------------------------------------------------------------------------
# A run's corrupt JSON files: named, with whether and how the run goes on
# ---------------------------------------------------------------------------------------------------------------

REWRITE = ("the checkpoints are intact: run the jaxconv train command that made the run again (it rewrites the file "
           "and resumes or re-scores) or restore the file.")


@pytest.mark.parametrize("name, what, fix", [
    ("config.json", "run's config", REWRITE),
    ("vocab.json", "run's vocabulary", REWRITE),
    ("run.json", "run's description", "it holds the classes, tokenizer and data fingerprint the run needs, so the run "
                                      "can be neither loaded nor resumed without it: restore the file, or train anew "
                                      "in a new --workdir."),
])
def test_corrupt_run_file_is_named_with_what_to_do(capsys, tmp_path, demo_run, name, what, fix):
    run = tmp_path / "run"
    copy_run(demo_run, run)
    (run / name).write_text('{"a": 1}\n{bad\n')
    rc = main(["predict", "--workdir", str(run), "fine"])
    lines = _error_lines(capsys.readouterr().err)
    assert rc == 2
    assert lines == [f"jaxconv predict: error: cannot read the {what} {run / name} (JSONDecodeError: Extra data: "
                     f"line 2 column 1 (char 9)); {fix}"]


def test_corrupt_metrics_line_is_named_and_the_run_resumes_once_it_is_removed(capsys, tmp_path, demo_run):
    run = tmp_path / "run"
    copy_run(demo_run, run)
    lines = (run / "metrics.jsonl").read_text().splitlines(keepends=True)
    (run / "metrics.jsonl").write_text("".join(lines[:1] + ["{bad\n"] + lines[1:]))
    before = (run / "final_metrics.json").read_text()
    argv = ["train", "text_cnn", "--workdir", str(run), "--config.progress=false"]
    assert main(argv) == 2
    assert _error_lines(capsys.readouterr().err) == [
        f"jaxconv train: error: cannot read line 2 of the metrics {run / 'metrics.jsonl'} (JSONDecodeError: Expecting "
        f"property name enclosed in double quotes: line 1 column 2 (char 1)); the checkpoints do not depend on it, so "
        f"the run can resume: delete that line (or fix it) and run the same command again."]
    assert (run / "final_metrics.json").read_text() == before   # nothing rewritten
    (run / "metrics.jsonl").write_text("".join(lines))
    assert main(argv) == 0


# ---------------------------------------------------------------------------------------------------------------
# A full disk under a dump or a report: the target is named, and the same command goes on once there is room
# ---------------------------------------------------------------------------------------------------------------

NO_SPACE = "No space left on device (ENOSPC); what it held before is intact. Free space (or fix the file system) and " \
           "run the same command again."


@pytest.mark.slow  # two dumps
def test_full_disk_during_a_dump_names_the_store_and_the_dump_resumes(capsys, tmp_path, demo_run, monkeypatch):
    import zarr.storage._local as zarr_local

    run = tmp_path / "run"
    copy_run(demo_run, run)
    real_put = zarr_local._put

    def put(path, value, exclusive=False):   # the disk fills as the third block of rows is written
        if "/c/2" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_put(path, value, exclusive)

    monkeypatch.setattr(zarr_local, "_put", put)
    argv = ["dump", "--workdir", str(run), "--name", "full", "--chunk-rows", "50", "--layers", "convs/0"]
    assert main(argv) == 2
    partial = run / "dumps" / "full" / "activations.zarr.partial"
    assert _error_lines(capsys.readouterr().err) == [f"jaxconv dump: error: WorkdirError: cannot write the dump "
                                                     f"{partial}: {NO_SPACE}"]
    monkeypatch.setattr(zarr_local, "_put", real_put)
    assert main(argv) == 0
    assert "resumed at row 100" in capsys.readouterr().out


def test_full_disk_during_a_report_names_the_report(capsys, tmp_path, demo_dump, monkeypatch):
    import matplotlib.figure

    run = tmp_path / "run"
    copy_run(demo_dump, run, dumps=["test"])

    def savefig(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", savefig)
    assert main(["report", "--workdir", str(run)]) == 2
    assert _error_lines(capsys.readouterr().err) == [f"jaxconv report: error: WorkdirError: cannot write the report "
                                                     f"{run / 'report' / 'test'}: {NO_SPACE}"]
