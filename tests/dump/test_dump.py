"""``jaxconv dump``: the Zarr store against the model, chunking, bad input, memory, SIGKILL and several devices."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import zarr
from conftest import subprocess_env

import jaxconv
from jaxconv.cli import main
from jaxconv.dump import DumpError, dump_activations, dump_path, load_dump
from jaxconv.dump.loader import FilterMap
from jaxconv.data.pipeline import load_dataset, split_dataset

pytestmark = pytest.mark.slow  # trained runs dumped end to end

LAYERS = ["convs/0", "convs/1", "convs/2"]


def _group(workdir, name="test") -> zarr.Group:
    return zarr.open_group(str(dump_path(workdir, name)), mode="r")


def _child(code: str, **env) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=600,
                          env=subprocess_env(**env))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def _input_file(path, workdir, n: int, *, labels: bool = True, first: str | None = None):
    """``n`` lines cycling over the run's test sentences (with their labels), ``first`` prepended."""
    run_config = jaxconv.load_run(workdir).config
    test = split_dataset(load_dataset(run_config), run_config)[0].test
    lines = [first] if first else []
    lines += [f"{test.labels[i % len(test)]} {test.texts[i % len(test)]}" if labels else test.texts[i % len(test)]
              for i in range(n - len(lines))]
    path.write_text("\n".join(lines) + "\n")
    return path


# ------------------------------------------------------------------------------------------------- the store


def test_store_holds_what_the_model_computes(demo_dump):
    """Every array of the test-split dump, recomputed independently from the restored model."""
    run = jaxconv.load_run(demo_dump)
    g = _group(demo_dump)
    attrs = dict(g.attrs)
    assert attrs["complete"] is True and attrs["layers"] == LAYERS and attrs["checkpoint_step"] == run.step
    assert attrs["dtype"] == "float32" and attrs["jaxconv_version"] == jaxconv.__version__
    assert attrs["vocabulary"] == str(demo_dump / "vocab.json") and attrs["config"]["model"]["filters"] == 32
    assert attrs["layer_info"]["convs/2"]["kernel_shape"] == [5, 64, 32] and "rf_size" in attrs["span_rule"]
    assert attrs["layer_info"]["convs/1"]["kernel_axes"] == ["width", "in", "out"]

    test = split_dataset(load_dataset(run.config), run.config)[0].test
    assert list(g["texts"][:]) == test.texts and g["labels"][:].tolist() == test.labels
    L = attrs["padded_length"]
    tokens = run.encode(test.texts, length=L)                                            # (N, L)
    np.testing.assert_array_equal(g["tokens"][:], tokens)
    lengths = g["lengths"][:]
    assert lengths.tolist() == [len(t.split()) for t in test.texts]
    logits = np.asarray(run.model(tokens))                                               # (N, K)
    np.testing.assert_array_equal(g["predictions"][:], logits.argmax(-1))
    np.testing.assert_allclose(g["probabilities"][:], jax.nn.softmax(logits), atol=1e-6)
    final = json.loads((demo_dump / "final_metrics.json").read_text())
    assert np.mean(g["predictions"][:] == g["labels"][:]) == pytest.approx(final["test_accuracy"])

    maps = jaxconv.feature_maps(run.model, tokens)
    for i, layer in enumerate(LAYERS):
        stored = g[f"maps/{layer}"]
        P = L - (3 + i) + 1
        assert stored.shape == (len(tokens), P, 32) and stored.chunks == (attrs["chunk_rows"], P, 1)
        assert stored.shards == (attrs["chunk_rows"], P, 32)                          # one object: every filter
        np.testing.assert_allclose(stored[:], maps[layer], atol=1e-5)
        spans = jaxconv.receptive_spans(run.model, layer, L)
        np.testing.assert_array_equal(g[f"spans/{layer}"][:], spans)
        np.testing.assert_array_equal(g[f"kernels/{layer}"][:], run.model.convs[i].kernel[...])
        # pooled / argmax: over the positions that see at least one word
        valid = (spans[None, :, 1] > run.pad_left) & (spans[None, :, 0] < run.pad_left + lengths[:, None])
        masked = np.where(valid[..., None], np.asarray(maps[layer]), -np.inf)             # (N, P, F)
        np.testing.assert_allclose(g[f"pooled/{layer}"][:], masked.max(1), atol=1e-5)
        np.testing.assert_array_equal(g[f"argmax/{layer}"][:], masked.argmax(1))


def test_pooling_skips_windows_of_padding_alone(demo_dump):
    """A filter that fires most on padding (all-positive word vectors, all-negative kernel, bias 1: a window of
    padding gives relu(1) = 1, any window with a word less): pooled/argmax still come from windows with words."""
    from jaxconv.dump import layout, runner
    from jaxconv.models import TextCNNAdapter
    from jaxconv.train import mesh as jmesh

    run = jaxconv.load_run(demo_dump)
    m = run.model
    m.embedding[...] = np.abs(np.asarray(m.embedding[...]))                              # pad row stays 0
    m.convs[0].kernel[...] = -np.abs(np.asarray(m.convs[0].kernel[...]))
    m.convs[0].bias[...] = np.ones(32, np.float32)
    _, spans = layout.layer_facts(m, ["convs/0"], 40)
    step, state = runner._make_step(m, TextCNNAdapter(), ["convs/0"], spans, "float32", jmesh.make_mesh())
    tokens = run.encode(["w0001 w0002 w0003 w0004 w0005", "m00a m00b m00c w0007"], length=40)
    out = step(state, tokens, np.array([0, 0], np.int32), np.array([5, 4], np.int32))
    maps = np.asarray(out["maps/convs/0"])                                               # (2, 38, 32)
    assert np.allclose(maps[:, 10:], 1.0)                                                # padding alone: relu(1)
    pooled, argmax = np.asarray(out["pooled/convs/0"]), np.asarray(out["argmax/convs/0"])
    assert (pooled < 1.0).all() and (argmax[0] <= 4).all() and (argmax[1] <= 3).all()
    np.testing.assert_array_equal(pooled, np.take_along_axis(maps, argmax[:, None, :], axis=1)[:, 0])


def test_one_filter_reads_only_its_own_chunks(demo_dump, tmp_path):
    """Reading filter 5 of convs/1 over every example reads each shard's index and, from each shard, the byte range
    the index gives filter 5's inner chunks: no other filter's bytes. Several shards (blocks of 48 rows, inner
    chunks of 16 rows) so that the ranges differ from shard to shard."""
    from zarr.abc.store import RangeByteRequest, SuffixByteRequest

    dump_activations(demo_dump, input=_input_file(tmp_path / "ranges.txt", demo_dump, 100), chunk_rows=48)
    reads = []

    class Recorder(zarr.storage.WrapperStore):
        async def get(self, key, prototype, byte_range=None):
            reads.append((key, byte_range))
            return await super().get(key, prototype, byte_range)

    path = pathlib.Path(os.fspath(dump_path(demo_dump, "ranges")))
    group = zarr.open_group(str(path), mode="r")
    array = group["maps/convs/1"]
    assert array.chunks[0] == 48 and array.shards[0] == 48 and array.shape[0] == 100
    store = Recorder(zarr.storage.LocalStore(str(path), read_only=True))
    array = zarr.open_group(store, mode="r")["maps/convs/1"]
    reads.clear()
    values = FilterMap(array, 5)[:]
    np.testing.assert_array_equal(values, group["maps/convs/1"][:, :, 5])
    per_shard = (array.shards[0] // array.chunks[0], 1, array.shape[2])               # inner chunks in a shard
    index_bytes = int(np.prod(per_shard)) * 16 + 4                                    # (start, length) uint64s, crc32c
    expected = set()
    for r in range(3):                                                                # 100 rows in shards of 48
        shard = (path / "maps" / "convs" / "1" / "c" / str(r) / "0" / "0").read_bytes()
        index = np.frombuffer(shard[-index_bytes:-4], "<u8").reshape(*per_shard, 2)
        expected |= {(f"maps/convs/1/c/{r}/0/0", ("suffix", index_bytes))}
        expected |= {(f"maps/convs/1/c/{r}/0/0", (int(a), int(a + n))) for a, n in index[:, 0, 5]}
        assert len(shard) > 20 * sum(int(n) for n in index[:, 0, 5][:, 1])                 # filter 5: a small part
    got = {(k, ("suffix", b.suffix) if isinstance(b, SuffixByteRequest) else (b.start, b.end))
           for k, b in reads if "/c/" in k and isinstance(b, (RangeByteRequest, SuffixByteRequest))}
    whole = [k for k, b in reads if "/c/" in k and b is None]
    assert not whole and got == expected, (whole, sorted(got ^ expected))


def test_a_dump_is_a_few_dozen_files_readable_by_plain_zarr_and_xarray(demo_dump):
    """The test split's store: one object per array (200 rows, one block) beside the metadata (a zarr.json per
    array and group), where a file per filter would be 96 for the maps alone; plain zarr and xarray read filter 5
    of convs/1 as the loader does."""
    path = pathlib.Path(os.fspath(dump_path(demo_dump, "test")))
    files = [p for p in path.rglob("*") if p.is_file()]
    counts = _group(demo_dump).attrs["object_counts"]
    metadata = [p for p in files if p.name == "zarr.json"]
    assert len(files) == len(metadata) + sum(counts.values()) and len(files) <= 80, len(files)
    assert set(counts.values()) == {1} and len(metadata) == len(counts) + 15            # 15 groups: maps/convs...
    assert all(counts[f"maps/{la}"] == 1 for la in LAYERS)                    # 32 filters in one shard
    plain = zarr.open(str(path), mode="r")["maps/convs/1"][:, :, 5]
    np.testing.assert_array_equal(plain, np.asarray(load_dump(demo_dump, "test").feature_map("convs/1", 5)))
    xr = pytest.importorskip("xarray")
    maps = xr.open_zarr(str(path), group="maps/convs", consolidated=False, zarr_format=3)["1"]
    np.testing.assert_array_equal(maps.isel({"filter[convs/1]": 5}).values, plain)


def test_cli_dump_of_chosen_layers_in_float16(demo_dump, capsys):
    assert main(["dump", "--workdir", str(demo_dump), "--layers", "convs/0,convs/2", "--dtype", "float16",
                 "--name", "half", "--batch-size", "64"]) == 0
    out = capsys.readouterr().out
    assert f"store:   {dump_path(demo_dump, 'half')}" in out and "200 examples x layers convs/0, convs/2" in out
    half, full = _group(demo_dump, "half"), _group(demo_dump)
    assert sorted(half["maps"]["convs"].keys()) == ["0", "2"] and half.attrs["dtype"] == "float16"
    assert half["maps/convs/2"].dtype == np.float16 and half["pooled/convs/2"].dtype == np.float32
    np.testing.assert_allclose(half["maps/convs/2"][:].astype(np.float32), full["maps/convs/2"][:], rtol=1e-3,
                               atol=1e-3)
    np.testing.assert_array_equal(half["pooled/convs/0"][:], full["pooled/convs/0"][:])


def test_input_file_with_and_without_labels(demo_dump, tmp_path):
    labelled = _input_file(tmp_path / "mine.txt", demo_dump, 20)
    text = labelled.read_text().replace("\n", "\n\n", 3)                                 # blank lines are skipped
    labelled.write_text(text)
    r = dump_activations(demo_dump, input=labelled)
    assert r.name == "mine" and r.num_examples == 20
    d = load_dump(demo_dump, "mine")
    test = _group(demo_dump)
    assert d.labels.tolist() == test["labels"][:20].tolist()
    np.testing.assert_allclose(d.pooled("convs/1"), test["pooled/convs/1"][:20], atol=1e-6)
    plain = _input_file(tmp_path / "plain.txt", demo_dump, 5, labels=False, first="3 little words here")
    d = load_dump(demo_dump, dump_activations(demo_dump, input=plain).name)
    assert d.labels is None and d.words(0) == ["3", "little", "words", "here"] and d.num_examples == 5
    latin = tmp_path / "latin.txt"                     # Latin-1, as MR: "\x85" (NEL) is text, not a line break
    latin.write_bytes("0 \x85the m00b m00a\n1 caf\xe9 au lait m00c\n".encode("latin-1"))
    d = load_dump(demo_dump, dump_activations(demo_dump, input=latin).name)
    assert d.labels.tolist() == [0, 1] and list(d.column("texts")) == ["\x85the m00b m00a", "caf\xe9 au lait m00c"]


# ------------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("case", ["no_checkpoint", "unknown_layer", "unknown_split", "empty_input", "exists",
                                  "split_and_input"])
def test_bad_input_is_one_line_and_loses_nothing(case, demo_dump, tmp_path, capsys):
    store = pathlib.Path(os.fspath(dump_path(demo_dump, "test")))
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file()}
    workdir = demo_dump
    args = []
    if case == "no_checkpoint":
        workdir = tmp_path / "bare"
        workdir.mkdir()
        for name in ("config.json", "vocab.json", "run.json"):
            (workdir / name).write_bytes((demo_dump / name).read_bytes())
        expected = f"jaxconv dump: error: FileNotFoundError: no best checkpoint in {workdir}/checkpoints/best"
    elif case == "unknown_layer":
        args = ["--layers", "convs/0,convs/9", "--name", "empty"]
        expected = ("jaxconv dump: error: --layers: 'convs/9' is not a convolution of this TextCNN; its layers are "
                    "convs/0, convs/1, convs/2.")
    elif case == "unknown_split":
        args = ["--split", "validation"]
        expected = "jaxconv dump: error: --split 'validation' is not known; expected one of test, dev, train."
    elif case == "empty_input":
        empty = tmp_path / "empty.txt"
        empty.write_text("\n  \n")
        args = ["--input", str(empty)]
        expected = (f"jaxconv dump: error: --input {empty} has no sentences (2 line(s), all blank); expected one "
                    f"sentence per line, optionally after an integer label.")
    elif case == "split_and_input":
        args = ["--split", "dev", "--input", "x.txt"]
        expected = ("jaxconv dump: error: --split 'dev' and --input x.txt: give one (a split of the run's dataset, "
                    "or a file).")
    else:
        expected = (f"jaxconv dump: error: dump 'test' already exists and is complete at {store}; read it (jaxconv "
                    f"report, jaxconv.load_dump) or pass --overwrite (overwrite=True) to write it again.")
    assert main(["dump", "--workdir", str(workdir), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and err.startswith(expected), err
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file()} == before
    if case != "exists":
        assert not (workdir / "dumps" / "empty").exists() and not (workdir / "dumps" / "validation").exists()


# ------------------------------------------------------------------------------------------------- robustness


def test_peak_memory_does_not_grow_with_the_examples(demo_dump, tmp_path):
    """Two fresh processes dump 1,000 and 10,000 sentences; the second's peak RSS is within 20% of the first's.

    Memory is bounded by one write block of rows (``layout.BLOCK_BYTES`` of maps, ~256 MB, which the demo's 10,000
    sentences would not fill: tests/dump/test_layout.py checks the bound); here the block is cut to 8 MB, so that
    both dumps run at the cap and what is measured is whether anything else grows with the examples."""
    peaks = {}
    for n in (1000, 10000):
        path = _input_file(tmp_path / f"n{n}.txt", demo_dump, n)
        proc = _child(f"""
            from jaxconv.dump import dump_activations, layout
            layout.BLOCK_BYTES = 8 * 2**20
            r = dump_activations({str(demo_dump)!r}, input={str(path)!r}, layers="convs/0,convs/2", batch_size=100)
            assert r.num_examples == {n}
            print(next(l.split()[1] for l in open("/proc/self/status") if l.startswith("VmHWM")))
        """)
        peaks[n] = int(proc.stdout.split()[-1])
    assert _group(demo_dump, "n10000")["pooled/convs/2"].shape == (10000, 32)
    assert peaks[10000] <= 1.2 * peaks[1000], peaks


def test_sigkill_then_resume_gives_the_clean_store(demo_dump, tmp_path):
    """A dump killed (SIGKILL) in the middle of its third chunk block: readers refuse the half store, and the next
    run resumes from the last complete block and writes exactly the store an uninterrupted run writes."""
    path = _input_file(tmp_path / "killed.txt", demo_dump, 100)
    code = textwrap.dedent(f"""
        import sys
        import jaxconv.dump.store as store
        original, calls = store.StoreWriter.write, []
        def write(self, start, block):
            calls.append(start)
            if len(calls) == 3:  # half of the third block's arrays are written, then we wait to be killed
                for name in list(self.arrays)[: len(self.arrays) // 2]:
                    self.arrays[name][start:start + len(block[name])] = block[name]
                print("KILL", flush=True)
                sys.stdin.read()
            return original(self, start, block)
        store.StoreWriter.write = write
        from jaxconv.dump import dump_activations
        dump_activations({str(demo_dump)!r}, input={str(path)!r}, chunk_rows=16, batch_size=10)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=subprocess_env())
    try:
        line = proc.stdout.readline()
        assert line == "KILL\n", proc.stderr.read()[-3000:]
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    final = pathlib.Path(os.fspath(dump_path(demo_dump, "killed")))
    partial = final.parent / (final.name + ".partial")
    assert not final.exists() and partial.is_dir()
    attrs = dict(zarr.open_group(str(partial), mode="r").attrs)
    assert attrs["complete"] is False and attrs["rows_written"] == 32
    with pytest.raises(DumpError, match="no dump 'killed'|is not a complete dump"):
        load_dump(demo_dump, "killed")
    with pytest.raises(DumpError, match="is not a complete dump"):
        load_dump(partial)

    resumed = dump_activations(demo_dump, input=path, chunk_rows=16, batch_size=10)
    assert resumed.resumed_from == 32 and not partial.exists()
    clean = dump_activations(demo_dump, input=path, chunk_rows=16, batch_size=10, name="clean")
    assert clean.resumed_from == 0
    a, b = _group(demo_dump, "killed"), _group(demo_dump, "clean")
    names = sorted(n for n, _ in a.arrays()) + [f"{k}/{la}" for k in ("maps", "pooled", "argmax") for la in LAYERS]
    for name in names:
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    assert a.attrs["complete"] is True and a.attrs["rows_written"] == 100


def test_a_partial_store_of_other_settings_restarts_cleanly(demo_dump, tmp_path, monkeypatch):
    """An interrupted dump, run again with another dtype, starts from row 0 (never mixing the two)."""
    import jaxconv.dump.store as store

    path = _input_file(tmp_path / "restart.txt", demo_dump, 40)
    original = store.StoreWriter.write

    def crash(self, start, block):
        if start >= 16:
            raise KeyboardInterrupt
        return original(self, start, block)

    monkeypatch.setattr(store.StoreWriter, "write", crash)
    with pytest.raises(KeyboardInterrupt):
        dump_activations(demo_dump, input=path, chunk_rows=16)
    monkeypatch.setattr(store.StoreWriter, "write", original)
    r = dump_activations(demo_dump, input=path, chunk_rows=16, dtype="float16")
    assert r.resumed_from == 0
    assert load_dump(demo_dump, "restart").group["maps/convs/0"].dtype == np.float16


def test_eight_devices_write_the_one_device_store(demo_dump):
    """The same dump on 8 (fake CPU) devices, batches sharded over them: the store equals the 1-device one."""
    _child(f"""
        import jax
        assert jax.device_count() == 8
        from jaxconv.dump import dump_activations
        r = dump_activations({str(demo_dump)!r}, name="eight")
        assert r.num_examples == 200
    """, XLA_FLAGS="--xla_force_host_platform_device_count=8")
    a, b = _group(demo_dump, "eight"), _group(demo_dump)
    assert a.attrs["devices"] == 8 and a.attrs["batch_size"] == 56 and b.attrs["devices"] == 1
    for name in ["tokens", "lengths", "labels", "predictions", "texts"] + [f"argmax/{la}" for la in LAYERS]:
        np.testing.assert_array_equal(a[name][:], b[name][:], err_msg=name)
    for name in ["probabilities"] + [f"{k}/{la}" for k in ("maps", "pooled") for la in LAYERS]:
        np.testing.assert_allclose(a[name][:], b[name][:], atol=1e-6, err_msg=name)
