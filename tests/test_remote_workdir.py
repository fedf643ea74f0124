"""Workdir files on a path that is not a local folder: ``s3://`` served by an in-process S3 server (moto), reached
through etils.epath and fsspec's s3fs, offline.

Covered here: every file jaxconv writes and reads through epath (metrics.jsonl, TensorBoard events, vocab.json,
run.json, config and final metrics, the kim-style reports read back by read_metrics). Not covered: orbax checkpoints
on ``s3://``. orbax-checkpoint 0.12 turns ``s3://`` into ``s3:/`` in its tensorstore layer (only ``gs://`` gets a
remote driver) and tensorstore's s3 driver takes its endpoint from the spec only, so no local S3 server can stand in
for it without patching orbax; on Cloud TPU the workdir is ``gs://``, which orbax supports natively.

Also here: the one-writer locks (:mod:`jaxconv.locks`) of a training workdir and of a dump on ``s3://``: a second
writer refuses naming the holder, a writer that arrives between another's check and write still loses (the lock is
created by a conditional write), a stale lock of a dead process is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import in_ci

pytestmark = pytest.mark.slow  # runs on an in-process S3 server

if in_ci():   # CI must run these (moto, s3fs and boto3 are test extras): a missing package fails here
    import moto.server  # noqa: F401
else:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")


def test_metrics_and_tensorboard_on_s3(s3_bucket):
    from etils import epath

    from jaxconv.train.metrics import MetricsWriter, read_metrics
    from jaxconv.train.tensorboard import read_records

    workdir = f"{s3_bucket}/run-metrics"
    writer = MetricsWriter(workdir, tensorboard=True)
    for step in (10, 20, 30):
        writer.write("train", step, 1, loss=1.0 / step, accuracy=0.5)
    writer.write("dev", 30, 1, loss=0.2, accuracy=0.75)
    writer.close()
    records = read_metrics(workdir)
    assert [(r["split"], r["step"]) for r in records] == [("train", 10), ("train", 20), ("train", 30), ("dev", 30)]
    assert read_metrics(workdir, "dev")[0]["accuracy"] == 0.75
    events = list(epath.Path(workdir, "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1 and len(read_records(events[0].read_bytes())) == 1 + 4 * 2   # version + 2 scalars each
    # A resumed run keeps the records up to its checkpoint, on the remote file too.
    MetricsWriter(workdir, resume_step=20, tensorboard=False).close()
    assert [r["step"] for r in read_metrics(workdir)] == [10, 20]
    assert not any(p.name.startswith("s3:") for p in epath.Path(".").iterdir())


def test_vocab_run_info_and_workdir_on_s3(s3_bucket):
    from jaxconv.data import Vocab
    from jaxconv.paths import as_path, prepare_workdir
    from jaxconv.runs import read_run_info

    workdir = prepare_workdir(f"{s3_bucket}/run-files")
    assert str(workdir) == f"{s3_bucket}/run-files"                   # a URI stays a URI, never made "absolute"
    vocab = Vocab.build([["le", "film", "film"], ["naïve", "café"]])
    vocab.save(workdir / "vocab.json")
    back = Vocab.load(workdir / "vocab.json")
    assert back.decode(range(len(back))) == vocab.decode(range(len(vocab)))
    info = {"num_classes": 3, "label_names": ["a", "b", "c"], "tokenizer": "kim"}
    (as_path(workdir) / "run.json").write_text(json.dumps(info))
    assert read_run_info(workdir) == info
    assert read_run_info(f"{s3_bucket}/no-such-run") is None


def _lock_paths(workdir):
    """The two lock files, as ``jaxconv train`` and ``jaxconv dump`` name them: ``W/.lock``,
    ``W/dumps/test/activations.zarr.lock``; each with the call that holds it there."""
    from jaxconv import locks
    from jaxconv.dump import dump_path
    from jaxconv.dump.runner import _lock
    from jaxconv.paths import prepare_workdir

    train = prepare_workdir(workdir) / locks.WORKDIR_LOCK
    dump = dump_path(workdir, "test")
    return [(train, lambda: locks.hold(train, "train")), (f"{dump}{locks.LOCK_SUFFIX}", lambda: _lock(dump))]


def test_workdir_and_dump_locks_on_s3_refuse_a_second_writer(s3_bucket):
    from etils import epath

    from jaxconv.locks import LockedError, read_lock

    workdir = f"{s3_bucket}/run-locks"
    (epath.Path(workdir) / "metrics.jsonl").write_text('{"step": 1}\n')
    for lock, hold in _lock_paths(workdir):
        with hold():
            holder = read_lock(lock)
            assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
            with pytest.raises(LockedError) as e:
                with hold():
                    pass
            message = str(e.value)
            assert "\n" not in message and f"pid {os.getpid()} on host {socket.gethostname()}" in message, message
            assert str(lock) in message and read_lock(lock) == holder          # the holder's lock is left alone
        assert read_lock(lock) is None                                        # released
    assert (epath.Path(workdir) / "metrics.jsonl").read_text() == '{"step": 1}\n'


def test_a_writer_between_check_and_write_on_s3_loses(s3_bucket, monkeypatch):
    """A rival's lock lands just before this writer's PUT (after any check it made): the PUT must not overwrite it
    (the store's conditional write refuses), and the refusal names the rival."""
    import boto3
    import fsspec.config
    import s3fs

    from jaxconv.locks import LockedError, read_lock

    workdir = f"{s3_bucket}/run-race"
    rival = {"host": "rival-host", "pid": 4242, "since": "2026-01-01T00:00:00+00:00", "what": "train", "token": "r"}
    client = boto3.client("s3", endpoint_url=fsspec.config.conf["s3"]["endpoint_url"], region_name="us-east-1")
    original = s3fs.S3FileSystem._call_s3
    for lock, hold in _lock_paths(workdir):
        key = str(lock).removeprefix(f"{s3_bucket}/")
        raced = []

        async def call_s3(self, method, *args, _key=key, _raced=raced, **kwargs):
            if method == "put_object" and kwargs.get("Key") == _key and not _raced:
                _raced.append(1)
                client.put_object(Bucket="jaxconv-test", Key=_key, Body=json.dumps(rival).encode())
            return await original(self, method, *args, **kwargs)

        monkeypatch.setattr(s3fs.S3FileSystem, "_call_s3", call_s3)
        with pytest.raises(LockedError, match="pid 4242 on host rival-host since 2026-01-01"):
            with hold():
                pass
        assert raced and read_lock(lock) == rival                          # the rival's lock is intact
        monkeypatch.undo()


def test_stale_lock_on_s3_is_taken_over(s3_bucket, caplog):
    from etils import epath

    from jaxconv.locks import read_lock

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for lock, hold in _lock_paths(f"{s3_bucket}/run-stale"):
        epath.Path(lock).write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "what": "dump",
                                                "since": "2020-01-01T00:00:00+00:00", "token": "old"}))
        with caplog.at_level("WARNING", logger="jaxconv"):
            with hold():
                assert read_lock(lock)["pid"] == os.getpid()
        assert f"stale lock {lock} of pid {dead.pid}" in caplog.text
        assert read_lock(lock) is None
