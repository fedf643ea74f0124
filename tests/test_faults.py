"""Faults of the file system under a training run: corrupt checkpoints and a full disk.

- A checkpoint is corrupted by truncating its largest data file (or emptying its ``_METADATA``): the run warns,
  naming the step directory, resumes from the older step beside it, and ends exactly where an uninterrupted run
  ends; when no step can be read, ``jaxconv train`` says so in one line naming each directory.
- A disk is filled for real: an 8 MiB tmpfs is mounted as the workdir, a first epoch is trained into it, the rest of
  the space is taken by a file, and the run goes on. It stops with one line naming the checkpoint directory and
  ENOSPC, leaves the complete checkpoints written before untouched (and no partial ones), and after space is freed
  the same command resumes and ends where an uninterrupted run ends. Mounting needs root: elsewhere these tests
  skip, saying why; under ``CI=true`` (CI runs as root) they fail instead, so CI always runs them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import in_ci
from jaxconv.configs import load_config
from jaxconv.train import MetricsWriter, load_params, read_metrics, train_and_evaluate
from jaxconv.train.checkpoint import Checkpoints
from jaxconv.train.metrics import TIMING_FIELDS
from jaxconv.paths import WorkdirError, append_bytes, write_text

pytestmark = pytest.mark.slow  # training, checkpoint and full-disk faults, end to end

#: 400 sentences: 320 train (20 steps of 16 per epoch), 40 dev, 40 test; one bucket.
TINY = {"data.synthetic.num_examples": 400, "data.max_buckets": 1, "model.embed_dim": 16, "model.filters": 8,
        "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 10, "progress": False}
STEPS_PER_EPOCH = 20


def tiny_config(**overrides):
    return load_config("text_cnn", {**TINY, **overrides})


def _env() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    return env


def _cli(workdir, **overrides) -> subprocess.CompletedProcess:
    args = [f"--config.{k}={v}" for k, v in {**TINY, **overrides}.items()]
    return subprocess.run([sys.executable, "-m", "jaxconv", "train", "text_cnn", "--workdir", str(workdir), *args],
                          capture_output=True, text=True, timeout=300, env=_env())


def _not_logs(stderr: str) -> list[str]:
    """The stderr lines that are not jaxconv's INFO logs (progress, what the data holds)."""
    return [line for line in stderr.splitlines() if not re.match(r"INFO:jaxconv\.\w+:", line)]


def _digests(directory: pathlib.Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _same_params(workdir, ref_dir) -> None:
    for what in ("model", "optimizer"):
        ours, theirs = load_params(workdir, what=what), load_params(ref_dir, what=what)
        assert sorted(ours) == sorted(theirs)
        for k in ours:
            assert np.array_equal(ours[k], theirs[k]), f"{what}/{k} differs from the uninterrupted run"


def _comparable(workdir) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_FIELDS and "compiles" not in k}
            for r in read_metrics(workdir)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run of TINY, in process: (workdir, result)."""
    workdir = tmp_path_factory.mktemp("reference")
    return workdir, train_and_evaluate(tiny_config(), workdir)


def _truncate_largest_data_file(step_dir: pathlib.Path) -> pathlib.Path:
    data = max((p for p in (step_dir / "state").rglob("*") if p.is_file() and p.parent.name == "d"),
               key=lambda p: p.stat().st_size)
    with open(data, "r+b") as f:
        f.truncate(1000)
    return data


# ------------------------------------------------------------------------------------------------- corrupt checkpoints

@pytest.mark.parametrize("corruption", ["truncated data file", "empty _METADATA"])
def test_a_corrupt_newest_checkpoint_falls_back_to_the_older_one(reference, tmp_path, caplog, corruption):
    ref_dir, ref_result = reference
    workdir = tmp_path / "run"
    shutil.copytree(ref_dir, workdir)
    newest = workdir / "checkpoints" / "latest" / str(2 * STEPS_PER_EPOCH)
    older = workdir / "checkpoints" / "latest" / str(STEPS_PER_EPOCH)
    if corruption == "truncated data file":
        _truncate_largest_data_file(newest)
        why = r"ValueError: OUT_OF_RANGE: Error reading .*"
    else:
        (newest / "state" / "_METADATA").write_text("")
        why = r"JSONDecodeError: Expecting value: line 1 column 1 \(char 0\)"
    with caplog.at_level(logging.INFO, logger="jaxconv.train"):
        result = train_and_evaluate(tiny_config(), workdir)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and re.fullmatch(
        rf"checkpoint {re.escape(str(newest))} cannot be read \({why}\); using {re.escape(str(older))}, the newest "
        rf"latest checkpoint that can \(the unreadable one is replaced when its step is saved again\)",
        warnings[0]), warnings
    assert any(f"resumed from {workdir / 'checkpoints' / 'latest'}/{STEPS_PER_EPOCH} (epoch 2" in r.getMessage()
               for r in caplog.records)
    # The second epoch was trained again from the older step, exactly as the uninterrupted run trained it.
    for key in ("test_accuracy", "test_loss", "dev_accuracy", "best_step", "step"):
        assert result[key] == ref_result[key], key
    _same_params(workdir, ref_dir)
    assert _comparable(workdir) == _comparable(ref_dir)
    # The unreadable step was replaced by a good one.
    ckpts = Checkpoints(workdir / "checkpoints")
    try:
        assert ckpts.restore_meta("latest")["step"] == 2 * STEPS_PER_EPOCH and not ckpts.unreadable["latest"]
    finally:
        ckpts.close()


def test_no_readable_checkpoint_is_one_line_naming_each_directory(reference, tmp_path):
    ref_dir, _ = reference
    workdir = tmp_path / "run"
    shutil.copytree(ref_dir, workdir)
    latest = workdir / "checkpoints" / "latest"
    _truncate_largest_data_file(latest / str(2 * STEPS_PER_EPOCH))
    (latest / str(STEPS_PER_EPOCH) / "state" / "_METADATA").write_text("")
    before = _digests(workdir / "checkpoints")
    proc = _cli(workdir)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = _not_logs(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]
    assert re.fullmatch(
        rf"jaxconv train: error: CheckpointError: no latest checkpoint can be read: "
        rf"{re.escape(str(latest))}/{2 * STEPS_PER_EPOCH} \(ValueError: OUT_OF_RANGE: Error reading .*\); "
        rf"{re.escape(str(latest))}/{STEPS_PER_EPOCH} \(JSONDecodeError: Expecting value: line 1 column 1 \(char 0\)\)\. "
        rf"Restore the directory from a copy, or delete {re.escape(str(workdir / 'checkpoints'))} to start the run "
        rf"over\.", lines[0]), lines[0]
    assert _digests(workdir / "checkpoints") == before     # nothing deleted, nothing rewritten


def test_a_failed_restore_drops_tensorstore_futures_nobody_reads_and_nothing_else(caplog):
    """tensorstore sets its read errors on asyncio futures from its own threads: no traceback says they came from
    orbax. After a failed orbax call, asyncio's "never retrieved" record of such a future is an echo and is dropped;
    other records still show."""
    import asyncio
    import gc

    from jaxconv import _orbax_calls

    _orbax_calls.drop_orbax_echoes()

    def orphan(error: BaseException) -> None:
        loop = asyncio.new_event_loop()
        future = loop.create_future()
        future.set_exception(error)
        del future
        gc.collect()
        loop.close()

    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(ValueError), _orbax_calls.orbax_call():
            raise ValueError("OUT_OF_RANGE: Error reading x in OCDBT database")
        orphan(ValueError('OUT_OF_RANGE: Error reading "model.w/0.0" in OCDBT database'))
        assert not [r for r in caplog.records if r.name == "asyncio"]
        orphan(ValueError("a bug of the caller's own"))
    assert [str(r.exc_info[1]) for r in caplog.records if r.name == "asyncio"] == ["a bug of the caller's own"]


# ------------------------------------------------------------------------------------------------- a full disk

@pytest.fixture
def small_disk(tmp_path):
    """An 8 MiB tmpfs mounted at ``tmp_path / "disk"`` for the test, unmounted after it."""
    target = tmp_path / "disk"
    target.mkdir()
    if os.geteuid() != 0:
        reason = "mounting a tmpfs needs root"
    elif shutil.which("mount") is None:
        reason = "no mount command"
    else:
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(target)], capture_output=True,
                              text=True)
        reason = None if proc.returncode == 0 else f"mount -t tmpfs failed: {proc.stderr.strip()}"
    if reason:
        if in_ci():
            pytest.fail(f"CI runs as root and must run the full-disk tests, but {reason}")
        pytest.skip(f"full-disk test skipped: {reason}")
    try:
        yield target
    finally:
        if subprocess.run(["umount", str(target)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(target)], capture_output=True)


def _fill(disk: pathlib.Path, leave: int) -> pathlib.Path:
    """Take all the free space of ``disk`` but ``leave`` bytes with one file; returns it."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with open(filler, "wb") as f:
        f.truncate(0)
        block = b"\0" * (1 << 20)
        todo = free - leave
        while todo > 0:
            f.write(block[:min(todo, len(block))])
            todo -= len(block)
    return filler


def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_checkpoints(reference, small_disk):
    ref_dir, ref_result = reference
    workdir = small_disk / "run"
    train_and_evaluate(tiny_config(**{"train.epochs": 1}), workdir)
    checkpoints = workdir / "checkpoints"
    kept = _digests(checkpoints / "latest" / str(STEPS_PER_EPOCH))
    best_before = _digests(checkpoints / "best" / str(STEPS_PER_EPOCH))
    metrics_before = (workdir / "metrics.jsonl").read_text()
    filler = _fill(small_disk, leave=64 * 1024)

    proc = _cli(workdir)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = _not_logs(proc.stderr)
    assert len(lines) == 1, proc.stderr[-3000:]        # no orbax logs, no "Event loop is closed" tracebacks
    assert re.fullmatch(
        rf"jaxconv train: error: CheckpointError: cannot write checkpoint {re.escape(str(checkpoints))}/"
        rf"(best|latest)/{2 * STEPS_PER_EPOCH}: No space left on device \(ENOSPC\); the complete checkpoints written "
        rf"before are intact \(latest step {STEPS_PER_EPOCH}, best step \d+\) in {re.escape(str(checkpoints))}\. Free "
        rf"space there \(or fix the file system\) and run the same command again to resume from step "
        rf"{STEPS_PER_EPOCH}\.", lines[0]), lines[0]
    # The complete checkpoint is untouched, no partial one is left, the metrics still parse and start as before.
    assert _digests(checkpoints / "latest" / str(STEPS_PER_EPOCH)) == kept
    assert sorted(p.name for p in (checkpoints / "latest").iterdir()) == [str(STEPS_PER_EPOCH)]
    best = sorted(p.name for p in (checkpoints / "best").iterdir())
    assert best in ([str(STEPS_PER_EPOCH)], [str(2 * STEPS_PER_EPOCH)])
    if best == [str(STEPS_PER_EPOCH)]:
        assert _digests(checkpoints / "best" / str(STEPS_PER_EPOCH)) == best_before
    assert not list(checkpoints.rglob("*orbax-checkpoint-tmp*"))
    # The metrics parse, and hold the first run's records (a resumed run drops the old test record) and the
    # second epoch's.
    records = read_metrics(workdir)
    first = [json.loads(line) for line in metrics_before.splitlines() if '"split": "test"' not in line]
    assert records[:len(first)] == first and records[-1]["step"] == 2 * STEPS_PER_EPOCH

    filler.unlink()
    proc = _cli(workdir)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((workdir / "final_metrics.json").read_text())
    for key in ("test_accuracy", "test_loss", "dev_accuracy", "best_step", "step"):
        assert result[key] == ref_result[key], key
    _same_params(workdir, ref_dir)


def test_writes_on_a_full_disk_name_the_file_and_keep_what_it_held(small_disk, tmp_path):
    run = small_disk / "run"
    run.mkdir()
    info = run / "run.json"
    info.write_text('{"old": true}\n')
    metrics = MetricsWriter(run, tensorboard=False)
    metrics.write("train", 1, 1, loss=0.5)
    before = (run / "metrics.jsonl").read_bytes()
    _fill(small_disk, leave=0)
    with pytest.raises(WorkdirError, match=re.escape(
            f"cannot write the run's description {info}: No space left on device (ENOSPC); what it held before is "
            f"intact. Free space (or fix the file system) and run the same command again.")) as err:
        write_text(info, "x" * 100_000, what="the run's description")
    assert err.value.errno == 28 and info.read_text() == '{"old": true}\n'
    assert not list(run.glob("run.json.tmp-*"))
    with pytest.raises(WorkdirError, match=re.escape(f"cannot write the metrics {run / 'metrics.jsonl'}: No space left "
                                                     f"on device (ENOSPC)")):
        metrics.write("train", 2, 1, loss=0.25, note="y" * 100_000)
    with pytest.raises(WorkdirError, match=re.escape(f"cannot write the metrics {run / 'metrics.jsonl'}: No space")):
        append_bytes(run / "metrics.jsonl", b"z" * 100_000, what="the metrics")
    assert (run / "metrics.jsonl").read_bytes() == before          # no torn record at the end
    assert [r["step"] for r in read_metrics(run)] == [1]
