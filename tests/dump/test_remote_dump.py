"""Dumps and reports on an object store: ``s3://`` served by an in-process S3 server (moto; the ``s3_bucket``
fixture of conftest), reached through etils.epath, fsspec's s3fs and zarr's ``FsspecStore``, offline.

What a user does on a Cloud TPU VM: a run folder on ``gs://`` whose dumps (``RUN/dumps/<name>/activations.zarr``)
and reports (``RUN/report/<name>/``) go there too. Covered: a store written to s3 is the local one object for
object (byte for byte, but for the seconds it took); ``load_dump`` and ``jaxconv report`` read it, and the report
goes to the store (or to a local ``--out``), equal to the local report file for file; a write that fails part way
(a server error, a dropped connection) is one line naming the store, and the same call or command resumes from the
last block written and ends equal to an uninterrupted dump.

The model is held in memory (``dump_activations(model=...)``): orbax checkpoints cannot live on the fake s3 (see
tests/test_remote_workdir.py), so the ``jaxconv dump`` test restores its run's model from memory through a patched
``load_run``; everything else of that run (config.json, vocab.json, the lock, the dump) is on s3. Not covered:
gcsfs (``gs://``) itself, which is not installed here.
"""

from __future__ import annotations

import errno
import pathlib

import numpy as np
import pytest
import zarr

from conftest import in_ci

pytestmark = pytest.mark.slow  # dumps on an in-process S3 server

if in_ci():   # CI must run these (moto, s3fs and boto3 are test extras): a missing package fails here
    import moto.server  # noqa: F401
else:
    pytest.importorskip("s3fs")
    pytest.importorskip("moto.server")

VOCAB = ["<pad>", "<unk>"] + [f"w{i}" for i in range(30)]
#: 10 texts of 1 to 8 words (one with a word the vocabulary lacks): 2 whole blocks of 4 rows and a last one of 2.
TEXTS = [" ".join(f"w{(7 * i + 3 * j) % 30}" for j in range(1 + i % 8)) for i in range(9)] + ["w4 zzz w5"]
LABELS = [i % 2 for i in range(len(TEXTS))]
BLOCK = 4
#: The object of the second block of the maps (rows 4..7): the write that fails in the tests below.
FAILING_KEY = "activations.zarr.partial/maps/convs/0/c/1/0/0"
#: The same object's copy to the final name, once every row is in (an object store has no rename).
FAILING_COPY = "activations.zarr/maps/convs/0/c/1/0/0"


@pytest.fixture(scope="module")
def model():
    from flax import nnx

    from jaxconv.models import TextCNN

    return TextCNN(len(VOCAB), 2, embed_dim=8, widths=(3,), filters=4, rngs=nnx.Rngs(0))


def _dump(model, path, **kwargs):
    from jaxconv.dump import dump_activations

    return dump_activations(model=model, texts=TEXTS, labels=LABELS, vocab=VOCAB, path=path, name="test",
                            chunk_rows=BLOCK, batch_size=BLOCK, **kwargs)


@pytest.fixture(scope="module")
def local_dump(model, tmp_path_factory) -> pathlib.Path:
    """The same dump written to a local folder: what every s3 store below must equal."""
    path = tmp_path_factory.mktemp("local") / "run" / "dumps" / "test" / "activations.zarr"
    _dump(model, path)
    return path


def _objects(path) -> dict[str, bytes]:
    """Every object (file) of the store at ``path``, local or remote: ``{key relative to the store: bytes}``."""
    import fsspec

    fs, root = fsspec.core.url_to_fs(str(path))
    fs.invalidate_cache()
    return {key[len(root) + 1:]: fs.cat_file(key) for key in fs.find(root)}


def _arrays(group: zarr.Group, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for name, member in group.members():
        if isinstance(member, zarr.Array):
            out[prefix + name] = member[...]
        else:
            out.update(_arrays(member, prefix + name + "/"))
    return out


def assert_same_store(path, local, *, differ=("seconds",)) -> None:
    """``path`` holds the objects of ``local``, byte for byte (the root metadata but for the attributes ``differ``:
    how long it took), and the same arrays."""
    from jaxconv.dump.store import open_group

    remote, here = _objects(path), _objects(local)
    assert sorted(remote) == sorted(here)
    assert [k for k in here if k != "zarr.json" and remote[k] != here[k]] == []
    got, want = dict(open_group(path).attrs), dict(open_group(local).attrs)
    assert {k: v for k, v in got.items() if k not in differ} == {k: v for k, v in want.items() if k not in differ}
    got, want = _arrays(open_group(path)), _arrays(open_group(local))
    assert sorted(got) == sorted(want) and len(want) >= 14
    for name, array in want.items():
        assert got[name].dtype == array.dtype and got[name].shape == array.shape, name
        np.testing.assert_array_equal(got[name], array, err_msg=name)


def test_dump_on_s3_equals_the_local_dump_and_loads(s3_bucket, model, local_dump):
    from etils import epath

    from jaxconv.dump import load_dump
    from jaxconv.locks import read_lock

    path = f"{s3_bucket}/equal/dumps/test/activations.zarr"
    result = _dump(model, path)
    assert result.path == path and result.num_examples == len(TEXTS) and result.resumed_from == 0
    assert_same_store(path, local_dump)
    assert not epath.Path(f"{path}.partial").exists() and read_lock(f"{path}.lock") is None   # moved, released
    d, here = load_dump(f"{s3_bucket}/equal", "test"), load_dump(local_dump)
    assert d.num_examples == len(TEXTS) and d.layers == ["convs/0"]
    np.testing.assert_array_equal(np.asarray(d.feature_map("convs/0", 2)), np.asarray(here.feature_map("convs/0", 2)))
    assert [(g.text, g.value, g.example) for g in d.top_ngrams("convs/0", 3, k=5)] == \
        [(g.text, g.value, g.example) for g in here.top_ngrams("convs/0", 3, k=5)]
    assert not any(p.name.startswith("s3:") for p in pathlib.Path(".").iterdir())     # nothing made a local "s3:"


def test_report_of_an_s3_dump_goes_to_s3_or_to_a_local_out(s3_bucket, model, local_dump, tmp_path, capsys):
    from etils import epath

    from jaxconv.cli import main
    from jaxconv.dump import load_dump
    from jaxconv.dump.report import write_report

    run = f"{s3_bucket}/run-report"
    _dump(model, f"{run}/dumps/test/activations.zarr")
    here = write_report(load_dump(local_dump), tmp_path / "local", examples=3)
    want = _objects(tmp_path / "local")
    assert "index.html" in want and sum(k.endswith(".png") for k in want) == here.figures == 3
    run_here = str(local_dump.parent.parent.parent).encode()     # the examples page names the run it tried to restore
    assert run_here in want["examples.html"]
    want["examples.html"] = want["examples.html"].replace(run_here, run.encode())

    assert main(["report", "--workdir", run]) == 0                                   # default: RUN/report/test
    assert f"report: {run}/report/test/index.html  (4 filter pages, 3 figures;" in capsys.readouterr().out
    assert _objects(f"{run}/report/test") == want                                     # PNGs and pages, byte for byte
    listing = epath.Path(run, "report", "index.html").read_text()
    assert '<a href="test/index.html">test</a>' in listing

    out = tmp_path / "out"
    assert main(["report", "--workdir", run, "--out", str(out)]) == 0                # read from s3, written here
    assert _objects(out) == want


def _fail(patch: pytest.MonkeyPatch, error: Exception, method: str = "put_object", key: str = FAILING_KEY) -> list:
    """Make the store's request ``method`` (``put_object``, ``copy_object``) of the object whose name ends in ``key``
    raise ``error``, as s3fs raises it once its retries are spent (every other request goes through); returns the
    keys that failed."""
    import s3fs

    original, failed = s3fs.S3FileSystem._call_s3, []

    async def call_s3(self, name, *args, **kwargs):
        if name == method and kwargs.get("Key", "").endswith(key):
            failed.append(kwargs["Key"])
            raise error
        return await original(self, name, *args, **kwargs)

    patch.setattr(s3fs.S3FileSystem, "_call_s3", call_s3)
    return failed


def _assert_resumable(path, rows: int = BLOCK) -> None:
    """The interrupted store: ``rows`` written (whole blocks), not complete, its lock released."""
    from jaxconv.dump.store import is_complete, open_group
    from jaxconv.locks import read_lock

    assert open_group(f"{path}.partial").attrs["rows_written"] == rows
    assert not is_complete(path) and read_lock(f"{path}.lock") is None


@pytest.mark.parametrize("where", ["a block", "the copy into place"])
def test_a_server_error_part_way_is_one_line_and_the_dump_resumes(s3_bucket, model, local_dump, monkeypatch, where):
    """s3fs raises a 500 InternalError (after its retries) as ``OSError(EREMOTEIO, the server's message)``: while a
    block is written (the dump resumes from the block before), or while the complete partial store is copied to its
    final name (the dump resumes with every row written, and copies again)."""
    from botocore.exceptions import ClientError
    from s3fs.errors import translate_boto_error

    from jaxconv.paths import WorkdirError

    path = f"{s3_bucket}/failing-{where.split()[-1]}/dumps/test/activations.zarr"
    server = translate_boto_error(ClientError({"Error": {"Code": "InternalError", "Message": "We encountered an "
                                                         "internal error. Please try again."}}, "PutObject"))
    request, key, rows = (("put_object", FAILING_KEY, BLOCK) if where == "a block" else
                          ("copy_object", FAILING_COPY, len(TEXTS)))
    with monkeypatch.context() as patch, pytest.raises(WorkdirError) as e:
        failed = _fail(patch, server, request, key)
        _dump(model, path)
    assert failed and e.value.errno == errno.EREMOTEIO
    assert str(e.value) == (
        f"cannot write the dump {path}.partial: Remote I/O error (EREMOTEIO; the store said 'We encountered an "
        f"internal error. Please try again.'); what it held before is intact. Check that the store is reachable and "
        f"writable (network, credentials, quota) and run the same command again.")
    _assert_resumable(path, rows)
    assert _dump(model, path).resumed_from == rows
    assert_same_store(path, local_dump)


def test_jaxconv_dump_to_an_s3_run_losing_its_connection_is_one_line_and_resumes(s3_bucket, model, local_dump,
                                                                                 monkeypatch, tmp_path, capsys):
    """``jaxconv dump --workdir s3://...``: a dropped connection (botocore's EndpointConnectionError, no OSError)
    is one line on stderr and exit status 2; the same command resumes. The run's model comes from memory (orbax
    cannot restore from the fake s3); its folder, the lock and the dump are on s3."""
    from botocore.exceptions import EndpointConnectionError
    from etils import epath

    import jaxconv.runs
    from jaxconv.cli import main
    from jaxconv.dump.memory import memory_run

    run = f"{s3_bucket}/run-cli"
    for name in ("config.json", "vocab.json"):            # what marks a run folder; load_run is patched below
        epath.Path(run, name).write_text("{}")
    monkeypatch.setattr(jaxconv.runs, "load_run", lambda workdir, checkpoint="best": memory_run(model, VOCAB))
    texts = tmp_path / "texts.txt"
    texts.write_text("".join(f"{label} {text}\n" for label, text in zip(LABELS, TEXTS)))
    command = ["dump", "--workdir", run, "--input", str(texts), "--name", "test", "--chunk-rows", str(BLOCK),
               "--batch-size", str(BLOCK)]
    path = f"{run}/dumps/test/activations.zarr"
    with monkeypatch.context() as patch:
        failed = _fail(patch, EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
        assert main(command) == 2
    err = capsys.readouterr().err
    assert failed and err.count("\n") == 1 and "Traceback" not in err, err
    assert err == (f"jaxconv dump: error: WorkdirError: cannot write the dump {path}.partial: EndpointConnectionError: "
                   f"Could not connect to the endpoint URL: \"http://127.0.0.1:1\"; what it held before is intact. "
                   f"Check that the store is reachable and writable (network, credentials, quota) and run the same "
                   f"command again.\n")
    _assert_resumable(path)
    assert main(command) == 0
    assert f"resumed at row {BLOCK})\nstore:   {path}\n" in capsys.readouterr().out
    assert_same_store(path, local_dump, differ=("seconds", "source", "fingerprint"))   # texts from a file here
