"""A dump's store against damage and a second writer: missing and truncated shards and chunks, other format
versions, the store's lock (two ``jaxconv dump`` into one name)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest
import zarr
from helpers import second_writer_while_first_holds

from jaxconv.cli import main
from jaxconv.dump import dump_activations, dump_path, load_dump
from jaxconv.dump.integrity import DumpDamagedError

pytestmark = pytest.mark.slow  # trained runs dumped end to end


def _lines(path, n: int = 40):
    words = ["good", "bad", "fine", "awful", "movie", "plot", "the", "a"]
    path.write_text("".join(f"{' '.join(words[(i + j) % 8] for j in range(3 + i % 5))}\n" for i in range(n)))
    return path


def _dump(run, tmp_path, name: str):
    r = dump_activations(run, input=_lines(tmp_path / f"{name}.txt"), name=name, chunk_rows=16)
    return pathlib.Path(r.path)


@pytest.fixture(scope="module")
def clean(demo_run, tmp_path_factory):
    """A whole dump of 40 lines in blocks (shards) of 16 rows, written once: :func:`_copy` hands out copies to
    damage."""
    return _dump(demo_run, tmp_path_factory.mktemp("intact"), "intact")


def _copy(clean, name: str) -> pathlib.Path:
    """A copy of the ``clean`` dump as the run's dump ``name``; returns its store."""
    shutil.copytree(clean.parent, clean.parent.parent / name)
    return clean.parent.parent / name / clean.name


def _report_error(run, name, capsys) -> str:
    capsys.readouterr()
    assert main(["report", "--workdir", str(run), "--dump", name, "--out", os.devnull + "_no"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_missing_shard_is_refused_naming_array_rows_and_fix(demo_run, clean, capsys):
    store = _copy(clean, "holes")
    assert load_dump(demo_run, "holes").feature_map("convs/0", 3)[:].shape[0] == 40
    (store / "maps" / "convs" / "0" / "c" / "1" / "0" / "0").unlink()     # rows 16..31, every filter
    with pytest.raises(DumpDamagedError) as e:
        load_dump(demo_run, "holes")
    message = str(e.value)
    for part in ("shard file maps/convs/0/c/1/0/0 of maps/convs/0 (rows 16..31) is missing", "--overwrite",
                 "--name holes"):
        assert part in message, message
    assert "maps/convs/0/c/1/0/0" in _report_error(demo_run, "holes", capsys)


def test_missing_chunk_of_an_unsharded_array_is_refused(demo_run, clean):
    store = _copy(clean, "holes2")
    (store / "pooled" / "convs" / "1" / "c" / "2" / "0").unlink()
    with pytest.raises(DumpDamagedError, match=r"chunk file pooled/convs/1/c/2/0 of pooled/convs/1 \(rows 32\.\.39\)"):
        load_dump(demo_run, "holes2")


def test_truncated_shard_is_one_line_without_a_codec_traceback(demo_run, clean, capsys):
    store = _copy(clean, "cut")
    shard = store / "maps" / "convs" / "0" / "c" / "0" / "0" / "0"           # rows 0..15, every filter
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    d = load_dump(demo_run, "cut")                     # nothing missing: found on reading
    np.asarray(d.feature_map("convs/0", 2)[16:])       # the other shards read fine
    with pytest.raises(DumpDamagedError) as e:
        d.feature_map("convs/0", 2)[:]
    message = str(e.value)
    assert "\n" not in message and "maps/convs/0" in message and "rows 0..39" in message and "--overwrite" in message
    err = _report_error(demo_run, "cut", capsys)
    assert "maps/convs/0" in err and "--overwrite" in err


@pytest.mark.parametrize("damage", ["no layer_info", "no filters", "no array metadata"])
def test_store_without_an_attribute_or_array_the_loader_needs(demo_run, clean, capsys, damage):
    name = "lacks" + str(["no layer_info", "no filters", "no array metadata"].index(damage))
    store = _copy(clean, name)
    group = zarr.open_group(str(store), mode="r+")
    if damage == "no layer_info":
        del group.attrs["layer_info"]
        missing = "attribute layer_info is missing"
    elif damage == "no filters":
        info = dict(group.attrs["layer_info"])
        info["convs/1"] = {k: v for k, v in info["convs/1"].items() if k != "filters"}
        group.attrs["layer_info"] = info
        missing = "attribute layer_info['convs/1']['filters'] is missing"
    else:
        (store / "pooled" / "convs" / "2" / "zarr.json").unlink()
        missing = "file pooled/convs/2/zarr.json of pooled/convs/2 (the whole array) is missing"
    with pytest.raises(DumpDamagedError) as e:
        load_dump(demo_run, name)
    message = str(e.value)
    assert "\n" not in message and str(store) in message and missing in message, message
    assert f"--name {name} --overwrite" in message, message
    err = _report_error(demo_run, name, capsys)
    assert str(store) in err and missing in err, err


def test_unreadable_array_metadata_is_one_line(demo_run, clean, capsys):
    store = _copy(clean, "badmeta")
    meta = store / "pooled" / "convs" / "0" / "zarr.json"
    meta.write_bytes(meta.read_bytes()[: meta.stat().st_size // 2])
    err = _report_error(demo_run, "badmeta", capsys)
    assert f"{store}: the metadata of pooled/convs/0 (pooled/convs/0/zarr.json) cannot be read" in err, err
    assert "--name badmeta --overwrite" in err


def test_truncated_per_example_chunk_names_all_rows(demo_run, clean, capsys):
    store = _copy(clean, "cutwords")
    chunk = store / "words" / "c" / "0"
    chunk.write_bytes(chunk.read_bytes()[: chunk.stat().st_size // 2])
    err = _report_error(demo_run, "cutwords", capsys)
    assert f"{store}: a chunk of words (all rows) cannot be read" in err and "--overwrite" in err, err


@pytest.mark.parametrize("format", ["jaxconv.dump/1", "jaxconv.dump/2", None])
def test_store_of_another_format_or_none_is_refused(clean, format):
    store = _copy(clean, "old" + str(format)[-1])
    group = zarr.open_group(str(store), mode="r+")
    if format is None:
        del group.attrs["format"]
    else:
        group.attrs["format"] = format
    with pytest.raises(DumpDamagedError, match="without a format" if format is None else f"'{format}'.*--overwrite"):
        load_dump(store)


def test_two_dumps_into_one_name_one_refuses(demo_run, tmp_path):
    """The first writer is held in the middle of its store; a second ``jaxconv dump`` of the same name refuses in
    one line naming the first (host, pid) and the lock file; the first completes the store a lone dump writes."""
    path = _lines(tmp_path / "both.txt")
    pid, second = second_writer_while_first_holds(f"""
        import jaxconv.dump.store as store
        original = store.StoreWriter.write
        def write(self, start, block):
            if start == 16:
                hold()
            return original(self, start, block)
        store.StoreWriter.write = write
        from jaxconv.dump import dump_activations
        dump_activations({str(demo_run)!r}, input={str(path)!r}, chunk_rows=16, name="both")
    """, ["dump", "--workdir", str(demo_run), "--input", str(path), "--chunk-rows", "16", "--name", "both"])
    err = second.stderr.strip().splitlines()
    assert second.returncode == 2 and len(err) == 1, second.stderr
    lock = f"{dump_path(demo_run, 'both')}.lock"
    assert f"pid {pid} on host {socket.gethostname()}" in err[0] and lock in err[0], err[0]
    assert not os.path.exists(lock)
    assert not any(p.name.endswith(".partial") for p in dump_path(demo_run, "both").parent.iterdir())
    clean = dump_activations(demo_run, input=path, chunk_rows=16, name="alone")
    a, b = load_dump(demo_run, "both"), load_dump(demo_run, "alone")
    names = [n for n in b.attrs["object_counts"]]
    assert sorted(a.attrs["object_counts"]) == sorted(names) and clean.num_examples == 40
    for name in names:
        np.testing.assert_array_equal(a.group[name][...], b.group[name][...], err_msg=name)


def test_stale_dump_lock_is_taken_over(demo_run, tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock = pathlib.Path(f"{dump_path(demo_run, 'stale')}.lock")
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"host": socket.gethostname(), "pid": dead.pid, "since": "2020-01-01T00:00:00+00:00",
                                "what": "dump", "token": "x"}))
    with caplog.at_level("WARNING", logger="jaxconv"):
        dump_activations(demo_run, input=_lines(tmp_path / "stale.txt"), name="stale", chunk_rows=16)
    assert "taking over the stale lock" in caplog.text and not lock.exists()
    assert load_dump(demo_run, "stale").num_examples == 40


def test_a_partial_dump_of_other_weights_is_written_again_not_resumed(demo_run, tmp_path, monkeypatch, caplog):
    """A model in memory whose weights change between two calls with one ``path``: the partial store of the first
    weights is never resumed into (rows of two models in one store); the second call starts again and equals a
    clean dump of the new weights."""
    import jaxconv
    from flax import nnx

    from jaxconv.dump import store as dstore

    run = jaxconv.load_run(demo_run)
    texts = _lines(tmp_path / "t.txt").read_text().splitlines()
    real_write, calls = dstore.StoreWriter.write, []

    def failing(self, start, block):
        calls.append(start)
        if len(calls) == 2:
            raise OSError("the disk went away")
        return real_write(self, start, block)

    monkeypatch.setattr(dstore.StoreWriter, "write", failing)
    with pytest.raises(OSError):
        dump_activations(model=run, texts=texts, path=tmp_path / "m.zarr", chunk_rows=16)
    monkeypatch.undo()
    kernel = nnx.state(run.model, nnx.Param)
    leaf = nnx.to_flat_state(kernel)[0][1]
    leaf[...] = leaf[...] * 2.0
    with caplog.at_level("INFO", logger="jaxconv"):
        again = dump_activations(model=run, texts=texts, path=tmp_path / "m.zarr", chunk_rows=16)
    assert again.resumed_from == 0 and "starting again" in caplog.text
    clean = dump_activations(model=run, texts=texts, path=tmp_path / "clean.zarr", chunk_rows=16)
    a, b = zarr.open_group(again.path, mode="r"), zarr.open_group(clean.path, mode="r")
    for name in ("maps/convs/0", "predictions", "probabilities"):
        np.testing.assert_array_equal(a[name][...], b[name][...], err_msg=name)
