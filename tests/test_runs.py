"""Runs from an installed package: ``jaxconv train``, ``jaxconv.load_run``, workdirs through etils.epath (and the
errors of paths that are not reachable), the TensorBoard event files, logs and the progress bar in a notebook."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import subprocess_env as _env

import jaxconv
from jaxconv import data as jdata
from jaxconv.configs import load_config
from jaxconv.train import read_metrics
from jaxconv.data.pipeline import build_data, split_dataset
from jaxconv.paths import WorkdirError, prepare_workdir

pytestmark = pytest.mark.slow  # training commands, notebooks and subprocesses

TINY = {"data.synthetic.num_examples": 300, "data.max_buckets": 1, "model.embed_dim": 16, "model.filters": 8,
        "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 5, "progress": False}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run through the ``jaxconv train`` command, in process: (workdir, its final metrics)."""
    from jaxconv.cli import main

    workdir = tmp_path_factory.mktemp("run")
    argv = ["train", "text_cnn", "--workdir", str(workdir), *(f"--config.{k}={v}" for k, v in TINY.items())]
    assert main(argv) == 0
    return workdir, json.loads((workdir / "final_metrics.json").read_text())


def test_jaxconv_train_writes_a_complete_workdir(trained, capsys):
    workdir, result = trained
    for name in ("config.json", "vocab.json", "run.json", "metrics.jsonl", "final_metrics.json"):
        assert (workdir / name).is_file(), name
    info = json.loads((workdir / "run.json").read_text())
    assert info["num_classes"] == 2 and info["tokenizer"] == "whitespace" and info["jaxconv_version"] == \
        jaxconv.__version__
    assert result["step"] == 2 * 15 and result["test_accuracy"] > 0.5
    expected = json.loads(load_config("text_cnn", TINY).to_json_best_effort())
    assert json.loads((workdir / "config.json").read_text()) == expected


def test_load_run_restores_the_scored_model(trained):
    """The best checkpoint's model, restored by load_run, scores the test split exactly as the run reported."""
    workdir, result = trained
    run = jaxconv.load_run(workdir)
    assert run.checkpoint == "best" and run.step == result["best_step"] and run.num_classes == 2
    assert run.tokenizer == "whitespace" and len(run.vocab) == result["vocab_size"]
    data = build_data(run.config, min_length=run.min_length)
    correct = count = 0.0
    for b in data.test.epoch(0):
        pred = np.asarray(run.model(b.tokens)).argmax(-1)
        correct += float(((pred == b.labels) * b.weights).sum())
        count += float(b.weights.sum())
    assert correct / count == pytest.approx(result["test_accuracy"], abs=1e-9)
    # encode() pads a text as training did: the same ids as the batcher's row, then zeros.
    ds, _ = split_dataset(jdata.synthetic_dataset(**run.config.data.synthetic.to_dict()), run.config)
    batch = next(iter(data.test.epoch(0)))
    text = ds.test.texts[int(batch.indices[0])]
    row = run.encode([text])[0]
    np.testing.assert_array_equal(row, batch.tokens[0][:len(row)])
    assert not batch.tokens[0][len(row):].any()
    fmap = jaxconv.feature_map(run.model, run.encode([text]), "convs/2", 3)
    assert fmap.shape == (1, len(row) - 4)


def test_load_run_other_checkpoints_and_errors(trained, tmp_path):
    workdir, result = trained
    latest = jaxconv.load_run(workdir, checkpoint="latest")
    assert latest.step == result["step"]
    by_step = jaxconv.load_run(workdir, checkpoint=result["step"])
    leaves = lambda run: [np.asarray(x) for x in __import__("jax").tree.leaves(__import__("flax").nnx.state(run.model))]
    assert all(np.array_equal(a, b) for a, b in zip(leaves(latest), leaves(by_step)))
    with pytest.raises(FileNotFoundError, match=r"no step 7 in .*checkpoints/latest \(saved steps: \["):
        jaxconv.load_run(workdir, checkpoint=7)
    with pytest.raises(ValueError, match=r"checkpoint='newest' is not known; expected 'best', 'latest' or a step"):
        jaxconv.load_run(workdir, checkpoint="newest")
    with pytest.raises(FileNotFoundError, match=r"workdir .*missing does not exist"):
        jaxconv.load_run(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no config.json; it is not a finished or started jaxconv run"):
        jaxconv.load_run(tmp_path / "empty")


def test_tensorboard_events_decode_with_tensorboardX_protos(trained):
    """jaxconv writes the event files itself; tensorboardX's compiled protos read every scalar back."""
    from tensorboardX.proto import event_pb2

    from jaxconv.train.tensorboard import read_records

    workdir, _ = trained
    files = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert len(files) == 1
    events = [event_pb2.Event.FromString(r) for r in read_records(files[0].read_bytes())]
    assert events[0].file_version == "brain.Event:2"
    scalars = {(e.summary.value[0].tag, e.step): e.summary.value[0].simple_value for e in events[1:]}
    for rec in read_metrics(workdir):
        for key in ("loss", "accuracy"):
            assert scalars[(f"{rec['split']}/{key}", rec["step"])] == pytest.approx(rec[key], rel=1e-6)
    corrupt = bytearray(files[0].read_bytes())
    corrupt[20] ^= 0xFF
    with pytest.raises(ValueError, match=r"bad (length|data) CRC"):
        read_records(bytes(corrupt))


def test_tensorboard_import_leaves_torch_alone():
    """Writing events never imports torch nor touches sys.modules (tensorboardX is not used)."""
    code = ("import sys, tempfile; from jaxconv.train.tensorboard import ScalarWriter; "
            "w = ScalarWriter(tempfile.mkdtemp()); w.add_scalar('a', 1.0, 1); w.close(); "
            "print('torch' in sys.modules, 'tensorboardX' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=_env())
    assert out.stdout.split() == ["False", "False"], out.stderr


# ------------------------------------------------------------------------------------------------- workdirs


def test_workdir_that_is_a_file_is_one_clear_line(tmp_path):
    target = tmp_path / "some_file"
    target.write_text("precious\n")
    proc = subprocess.run([sys.executable, "-m", "jaxconv", "train", "--workdir", str(target)],
                          capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr == (f"jaxconv train: error: WorkdirError: --workdir {target} is an existing file, not a "
                           f"directory; give a directory path (it is created when missing).\n")
    assert target.read_text() == "precious\n"


def test_unreachable_gs_workdir_never_becomes_a_local_folder(tmp_path):
    """Without a GCS file system installed (or reachable), a gs:// workdir fails with one line naming it; nothing
    named 'gs:' appears in the current directory."""
    proc = subprocess.run([sys.executable, "-m", "jaxconv", "train", "--workdir", "gs://jaxconv-no-such-bucket/run",
                           "--config.train.steps=1"], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=_env())
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("jaxconv train: error: WorkdirError: --workdir gs://jaxconv-no-such-bucket/run "
                                  "cannot be created or reached: ")
    assert "pip install gcsfs" in proc.stderr
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(WorkdirError):
        prepare_workdir("gs://jaxconv-no-such-bucket/run")


def test_workdir_paths_are_absolute_epaths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = prepare_workdir("rel/run")
    assert str(path) == str(tmp_path / "rel" / "run") and path.is_dir()
    assert str(prepare_workdir(tmp_path / "a" / ".." / "b")) == str(tmp_path / "b")


# ------------------------------------------------------------------------------------------------- visibility


def test_training_from_python_shows_info_logs():
    """A script that calls train_and_evaluate with no logging set up sees jaxconv's progress lines on stderr."""
    code = textwrap.dedent(f"""
        import tempfile, jaxconv
        config = jaxconv.load_config("text_cnn", {TINY!r})
        jaxconv.train_and_evaluate(config, tempfile.mkdtemp())
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=_env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "jaxconv.train" in proc.stderr and "data synthetic:" in proc.stderr and "test accuracy" in proc.stderr


def test_a_logger_level_set_by_the_user_is_kept():
    from jaxconv._logging import show_info_logs

    logger = logging.getLogger("jaxconv_test_quiet")
    logger.setLevel(logging.WARNING)
    assert show_info_logs("jaxconv_test_quiet").level == logging.WARNING
    fresh = show_info_logs("jaxconv_test_fresh")
    assert fresh.level == logging.INFO and fresh.hasHandlers()


@pytest.mark.slow
def test_notebook_shows_progress_and_logs(tmp_path):
    """In a real Jupyter kernel: the INFO lines reach the cell's stderr, and the progress line updates in place."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    workdir = tmp_path / "nb_run"
    cells = [
        "import jaxconv",
        f"config = jaxconv.load_config('text_cnn', {{**{TINY!r}, 'progress': True}})\n"
        f"result = jaxconv.train_and_evaluate(config, {str(workdir)!r})",
        f"run = jaxconv.load_run({str(workdir)!r})\nprint(run.step, run.model.convs[0].kernel.shape)",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = nb.cells[1].outputs
    stderr = "".join(o.get("text", "") for o in outputs if o.get("name") == "stderr")
    assert "data synthetic:" in stderr and "test accuracy" in stderr, outputs
    shown = [o for o in outputs if o.output_type == "display_data"]
    assert len(shown) == 1, outputs          # one line, updated in place (nbclient applies the updates to it)
    last = shown[0]["data"]["text/plain"]
    assert last.startswith("train [##############################] 30/30") and "ex/s" in last, last
    assert nb.cells[2].outputs[0]["text"].strip().endswith("(3, 16, 8)")
