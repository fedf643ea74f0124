"""Workdir files on a path that is not a local folder: ``s3://`` served by an in-process S3 server (moto), reached
through etils.epath and fsspec's s3fs, offline.

Covered here: every file jaxconv writes and reads through epath (metrics.jsonl, TensorBoard events, vocab.json,
run.json, config and final metrics, the kim-style reports read back by read_metrics). Not covered: orbax checkpoints
on ``s3://``. orbax-checkpoint 0.12 turns ``s3://`` into ``s3:/`` in its tensorstore layer (only ``gs://`` gets a
remote driver) and tensorstore's s3 driver takes its endpoint from the spec only, so no local S3 server can stand in
for it without patching orbax; on Cloud TPU the workdir is ``gs://``, which orbax supports natively.
"""

from __future__ import annotations

import json
import socket

import pytest

from conftest import in_ci

pytestmark = pytest.mark.slow  # runs on an in-process S3 server

if in_ci():   # CI must run these (moto, s3fs and boto3 are test extras): a missing package fails here
    import moto.server as moto_server
else:
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_bucket():
    """``s3://jaxconv-test`` on a moto server on 127.0.0.1; fsspec and etils are pointed at it and reset after."""
    import boto3
    import fsspec.config
    from etils.epath import backend

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved_conf = dict(fsspec.config.conf.get("s3", {}))
    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        mp.setenv(key, value)
    fsspec.config.conf["s3"] = {**saved_conf, "endpoint_url": endpoint, "use_listings_cache": False}
    backend.fsspec_backend._get_filesystem.cache_clear()      # etils caches one filesystem per protocol
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="jaxconv-test")
        yield "s3://jaxconv-test"
    finally:
        fsspec.config.conf["s3"] = saved_conf
        backend.fsspec_backend._get_filesystem.cache_clear()
        mp.undo()
        server.stop()


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
