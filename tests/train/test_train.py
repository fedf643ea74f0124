"""train_and_evaluate end to end on tiny synthetic configs: learning, determinism, compile counts, exact resume after
SIGKILL, non-finite loss, config errors, 1 vs 8 devices, and tiny real-data runs (skipped without ../shared)."""

from __future__ import annotations

import json
import pathlib
import re
import signal
import subprocess
import sys
import runpy
import time
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import subprocess_env as _env
from helpers import free_port
from flax import nnx

from jaxconv.configs import ConfigError, load_config
from jaxconv.configs import text_cnn as config_module
from jaxconv.models import build_model
from jaxconv.train import NonFiniteLossError, load_params, read_metrics, train_and_evaluate
from jaxconv.train import mesh as mesh_lib
from jaxconv.train.metrics import TIMING_FIELDS
from jaxconv.train.trainer import make_optimizer, make_steps

pytestmark = pytest.mark.slow  # end-to-end training runs

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = REPO / "experiments" / "text_cnn.py"
CONFIG = REPO / "configs" / "text_cnn.py"


def _script(path: pathlib.Path) -> types.SimpleNamespace:
    """A script's functions, loaded without running its ``__main__`` block."""
    return types.SimpleNamespace(**runpy.run_path(str(path), run_name=f"_{path.stem}_under_test"))


#: The tiny synthetic run shared by most tests, as command-line overrides (the in-process runs apply the same).
TINY = {
    "data.synthetic.num_examples": 600, "data.max_buckets": 2, "model.embed_dim": 16, "model.filters": 8,
    "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 10, "train.checkpoint_every_steps": 3,
    "progress": False,
}
NOT_COMPARED = set(TIMING_FIELDS) | {"compiles", "train_compiles", "eval_compiles"}


def tiny_config(**overrides):
    return load_config("text_cnn", {**TINY, **overrides})


def cli_args(workdir, **overrides) -> list[str]:
    args = [sys.executable, str(SCRIPT), f"--config={CONFIG}", f"--workdir={workdir}"]
    return args + [f"--config.{k}={v}" for k, v in {**TINY, **overrides}.items()]


@pytest.fixture(scope="module")
def compile_cache(tmp_path_factory) -> dict:
    """Env for subprocesses sharing one persistent XLA cache: a resumed run reuses the killed run's programs
    (the same executables, so the same numbers, without compiling again)."""
    return {"JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.mktemp("xla_cache")),
            "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}


def comparable(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in NOT_COMPARED} for r in records]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Two in-process runs of the tiny config (same seed): the reference for several tests."""
    runs = []
    for name in ("a", "b"):
        workdir = tmp_path_factory.mktemp(f"tiny_{name}")
        result = train_and_evaluate(tiny_config(), workdir)
        runs.append((workdir, result))
    return runs


# ------------------------------------------------------------------------------------------------- one step

def test_one_train_step_changes_every_parameter():
    config = tiny_config(**{"train.optimizer": "adadelta", "train.learning_rate": 1.0})   # Kim's optimizer
    model = build_model(config, 30, 2, rngs=nnx.Rngs(params=0))
    optimizer = nnx.Optimizer(model, make_optimizer(config.train), wrt=nnx.Param)
    before = jax.tree.map(np.asarray, nnx.state(model, nnx.Param))
    tokens = np.random.default_rng(0).integers(2, 30, size=(16, 12)).astype(np.int32)
    tokens[:, 9:] = 0
    batch = {"tokens": jnp.asarray(tokens), "labels": jnp.asarray(np.arange(16) % 2, jnp.int32),
             "weights": jnp.ones((16,), jnp.float32)}
    train_step, _ = make_steps(config)
    out = train_step(model, optimizer, batch, jax.random.key(0), jnp.asarray(0, jnp.uint32))
    assert np.isfinite(float(out["loss"])) and float(out["count"]) == 16.0
    after = nnx.state(model, nnx.Param)
    changed = {"/".join(map(str, p)): not np.array_equal(np.asarray(a), np.asarray(b))
               for (p, a), (_, b) in zip(nnx.to_flat_state(before), nnx.to_flat_state(after))}
    assert changed and all(changed.values()), changed
    np.testing.assert_array_equal(np.asarray(model.embedding[...][0]), 0.0)   # the pad row stays zero
    norms = np.linalg.norm(np.asarray(model.classifier.kernel[...]), axis=0)
    assert (norms <= 3.0 + 1e-5).all()                                          # max-norm applied after the update


# ------------------------------------------------------------------------------------------------- end to end

def test_tiny_run_learns_and_writes_its_outputs(reference):
    workdir, result = reference[0]
    assert result["test_accuracy"] > 0.9, result
    for name in ("config.json", "vocab.json", "metrics.jsonl", "final_metrics.json"):
        assert (workdir / name).is_file(), name
    assert list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert [p.name for p in (workdir / "checkpoints" / "best").iterdir()] == [str(result["best_step"])]
    assert json.loads((workdir / "final_metrics.json").read_text())["test_accuracy"] == result["test_accuracy"]
    splits = [r["split"] for r in read_metrics(workdir)]
    assert splits.count("dev") == 2 and splits.count("test") == 1 and "train" in splits
    rec = read_metrics(workdir, "train")[0]
    assert set(rec) >= {"step", "epoch", "split", "loss", "accuracy", "examples_per_sec", "time"}


def test_same_seed_same_metrics_bit_for_bit(reference):
    (wa, ra), (wb, rb) = reference
    a, b = comparable(read_metrics(wa)), comparable(read_metrics(wb))
    assert len(a) > 4 and a == b
    assert ra["test_loss"] == rb["test_loss"]


def test_compiles_per_epoch_at_most_one_per_bucket(reference):
    workdir, result = reference[0]
    buckets = len(result["buckets"])
    assert buckets == 2
    first, second = read_metrics(workdir, "dev")
    assert 1 <= first["train_compiles"] <= buckets and 1 <= first["eval_compiles"] <= buckets
    assert first["compiles"] == first["train_compiles"] + first["eval_compiles"]
    assert second["compiles"] == 0


def test_kill_and_resume_gives_identical_parameters(reference, compile_cache, tmp_path):
    ref_dir, ref_result = reference[0]
    workdir = tmp_path / "run"
    cmd = cli_args(workdir)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=_env(**compile_cache))
    latest = workdir / "checkpoints" / "latest"
    deadline = time.monotonic() + 120
    try:
        while not (latest.is_dir() and any(p.name.isdigit() for p in latest.iterdir())):
            if proc.poll() is not None:
                pytest.fail(f"the run ended before its first checkpoint: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no checkpoint appeared within 120 s")
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (workdir / "final_metrics.json").exists(), "the run finished before it was killed"
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(**compile_cache), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stderr
    for what in ("model", "optimizer"):
        ours, theirs = load_params(workdir, what=what), load_params(ref_dir, what=what)
        assert sorted(ours) == sorted(theirs)
        for k in ours:
            assert np.array_equal(ours[k], theirs[k]), f"{what}/{k} differs after resume"
    assert comparable(read_metrics(workdir)) == comparable(read_metrics(ref_dir))
    assert json.loads((workdir / "final_metrics.json").read_text())["test_accuracy"] == ref_result["test_accuracy"]
    assert f"workdir:      {workdir}" in done.stdout and "tensorboard --logdir" in done.stdout


def test_nonfinite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = tiny_config(**{"train.learning_rate": 1e30, "train.checkpoint_every_steps": 1, "train.steps": 12,
                            "data.max_buckets": 1})
    with pytest.raises(NonFiniteLossError) as info:
        train_and_evaluate(config, tmp_path)
    err = info.value
    m = re.match(r"loss is (nan|inf|-inf) at step (\d+) \(epoch 1\); the last good checkpoint is step (\d+) in (.*)\. ",
                 str(err))
    assert m, str(err)
    bad, good = int(m.group(2)), int(m.group(3))
    assert (bad, good) == (err.step, err.checkpoint_step) and good == bad - 1
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints" / "latest").iterdir() if p.name.isdigit())
    assert saved and max(saved) == good and pathlib.Path(m.group(4)) == tmp_path / "checkpoints" / "latest"
    params = load_params(tmp_path)
    assert all(np.isfinite(v).all() for v in params.values())
    assert not (tmp_path / "final_metrics.json").exists()


# ------------------------------------------------------------------------------------------------- config errors

def test_unknown_config_key_fails_with_its_name(tmp_path):
    proc = subprocess.run(cli_args(tmp_path, **{"train.nope": 1}), capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert proc.returncode != 0
    assert "--config.train.nope: config.train has no field 'nope'; its fields are: batch_size" in proc.stderr
    assert not (tmp_path / "checkpoints").exists()


def test_resuming_with_a_different_model_is_refused(reference):
    workdir, _ = reference[0]
    before = {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}
    with pytest.raises(ValueError, match=r"holds checkpoints of a run with a different config \(model.filters: 8 -> 4\)"
                                         r"; resuming it would mix two experiments"):
        train_and_evaluate(tiny_config(**{"model.filters": 4}), workdir)
    assert before == {p: p.stat().st_mtime_ns for p in workdir.rglob("*") if p.is_file()}   # nothing touched


def test_batch_size_must_divide_over_devices():
    fake_mesh = types.SimpleNamespace(devices=np.empty(8))
    with pytest.raises(ValueError, match=r"config.train.batch_size=50 is not divisible by the number of devices \(8\)"
                                         r": each device takes config.train.batch_size / 8 rows. Use a multiple of 8, "
                                         r"e.g. 48 or 56."):
        mesh_lib.check_batch_size(50, fake_mesh)
    mesh_lib.check_batch_size(48, fake_mesh)


def test_presets_and_unknown_preset():
    for preset in config_module.PRESETS:
        config = config_module.get_config(preset)
        assert config.train.epochs >= 1 and config.train.steps == 0 and config.preset == preset
        assert preset in config_module.__doc__
    assert config_module.get_config("mr").train.batch_size == 50
    with pytest.raises(ValueError, match=r"unknown preset 'bogus' of text_cnn; expected one of \['cr', 'file', 'mpqa', "
                                         r"'mr', 'sst1', 'sst2', 'subj'"):
        config_module.get_config("bogus")
    with pytest.raises(ConfigError, match=r"config 'text_cnn:bogus': get_config\('bogus'\) failed: unknown preset"):
        load_config("text_cnn:bogus")


# ------------------------------------------------------------------------------------------------- devices

def test_one_vs_eight_devices_same_metrics(reference, tmp_path):
    ref_dir, ref_result = reference[0]
    proc = subprocess.run(cli_args(tmp_path), capture_output=True, text=True, timeout=300,
                          env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=8"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "final_metrics.json").read_text())
    assert result["devices"] == 8 and ref_result["devices"] == 1
    ours, theirs = read_metrics(tmp_path), read_metrics(ref_dir)
    assert [(r["split"], r["step"]) for r in ours] == [(r["split"], r["step"]) for r in theirs]
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-4, err_msg=str((a, b)))
        assert abs(a["accuracy"] - b["accuracy"]) <= 0.02, (a, b)


def test_two_processes_match_one(tmp_path):
    """Multi-host for real: two processes (2 CPU devices each) joined by jax.distributed on localhost train the same
    run as one process with 4 devices; only process 0 writes metrics."""
    small = {"data.max_buckets": 1, "train.epochs": 1}                  # one program each: what is compared is the same
    port = free_port()
    procs = [subprocess.Popen(cli_args(tmp_path / "two", **small), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True,
                              env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=2", JAXCONV_DISTRIBUTED="1",
                                       JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
                                       JAX_PROCESS_ID=str(i)))
             for i in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    assert "4 device(s) on 2 process(es)" in outs[0]
    one = subprocess.run(cli_args(tmp_path / "one", **small), capture_output=True, text=True, timeout=300,
                         env=_env(XLA_FLAGS="--xla_force_host_platform_device_count=4"))
    assert one.returncode == 0, one.stderr[-3000:]
    ours, theirs = read_metrics(tmp_path / "two"), read_metrics(tmp_path / "one")
    assert [(r["split"], r["step"]) for r in ours] == [(r["split"], r["step"]) for r in theirs]  # written once
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a["loss"], b["loss"], rtol=1e-5, err_msg=str((a, b)))
        assert a["accuracy"] == b["accuracy"], (a, b)


# ------------------------------------------------------------------------------------------------- real data

def test_trec_tiny_run_on_real_files(shared_datasets, tmp_path):
    config = config_module.get_config("trec")
    config.data.path = str(shared_datasets)
    config.progress = False
    config.model.embed_dim, config.model.filters = 16, 8
    config.data.max_buckets = 1
    config.train.steps = 5
    result = train_and_evaluate(config, tmp_path)
    assert result["sizes"] == {"train": 4907, "dev": 545, "test": 500}   # 10% of TREC's 5,452 held out as dev
    assert result["step"] == 5 and 0.0 <= result["test_accuracy"] <= 1.0
    assert result["vocab_size"] == len(json.loads((tmp_path / "vocab.json").read_text())["tokens"])


def test_mr_folds_and_dev_holdout_on_real_files(shared_datasets):
    from jaxconv import data as jdata
    from jaxconv.data.pipeline import split_dataset

    config = config_module.get_config("mr")
    ds = jdata.load_sentence_dataset("mr", shared_datasets)
    seen_test = set()
    for fold in (0, 9):
        config.data.fold = fold
        split, info = split_dataset(ds, config)
        sizes = (len(split.train), len(split.dev), len(split.test))
        assert sum(sizes) == 10662 and split.test is not None and info["cv_fold"] == fold
        assert abs(len(split.test) - 1066) <= 1 and abs(len(split.dev) - 960) <= 1
        texts = [set(s.texts) for s in (split.train, split.dev, split.test)]
        assert not (texts[2] & seen_test)
        seen_test |= texts[2]
    config.data.fold = 10
    with pytest.raises(ValueError, match=r"config.data.fold=10 is out of range; expected 0 <= fold < "
                                         r"config.data.num_folds=10"):
        split_dataset(ds, config)


def test_vocab_from_train_or_all_splits(tmp_path):
    """vocab_from="train" maps test-only words to <unk>; "all" gives them rows (Kim's code); labels never count."""
    from jaxconv.data.pipeline import build_data

    words = ["cat", "bob", "dog", "ann", "tea", "eve", "pen", "max", "ink", "sam", "sun", "sky"]
    train = [f"{i % 6} what is a {w} ?" for i, w in enumerate(words)]       # TREC's 6 labels, 2 lines each
    (tmp_path / "TREC.train.all").write_text("\n".join(train) + "\n", encoding="latin-1")
    test = ["0 what is zebra ?", "1 who is zed ?"] + [f"{c} what is a cat ?" for c in range(2, 6)]
    (tmp_path / "TREC.test.all").write_text("\n".join(test) + "\n", encoding="latin-1")
    config = config_module.get_config("trec")
    config.data.path, config.train.batch_size = str(tmp_path), 2
    config.data.vocab_from = "train"
    only_train = build_data(config, min_length=5)
    assert "zebra" not in only_train.vocab and "cat" in only_train.vocab
    assert only_train.info["vocab_from"] == "train"
    config.data.vocab_from = "all"
    every = build_data(config, min_length=5)
    extra = set(every.vocab.decode(range(len(every.vocab)))) - set(only_train.vocab.decode(range(len(only_train.vocab))))
    held_out = [w for w in words if w not in only_train.vocab]                   # the dev hold-out's word
    assert len(held_out) == 1 and extra == {"zebra", "who", "zed", *held_out}
    test_ids = np.concatenate([b.tokens[b.weights > 0] for b in every.test.epoch(0)])
    assert every.vocab.encode(["zebra"])[0] in test_ids and 1 not in test_ids      # no <unk> left in test
    only_ids = np.concatenate([b.tokens[b.weights > 0] for b in only_train.test.epoch(0)])
    assert np.sum(only_ids == 1) == 3                                              # zebra, who, zed -> <unk>
    config.data.vocab_from = "test"
    with pytest.raises(ValueError, match=r"config.data.vocab_from='test' is not known; expected 'train'"):
        build_data(config, min_length=5)


def test_kim2014_report_from_finished_runs(tmp_path):
    kim = _script(REPO / "experiments" / "kim2014.py")
    runs = kim.plan(["mr", "trec"], 2, 2)
    assert runs == [("mr", 0, 0), ("mr", 0, 1), ("mr", 1, 0), ("mr", 1, 1), ("trec", 0, None), ("trec", 1, None)]
    for (ds, seed, fold), acc in zip(runs[:4] + runs[4:5], (0.75, 0.77, 0.76, 0.78, 0.9)):
        d = kim.run_dir(tmp_path, ds, seed, fold)
        d.mkdir(parents=True)
        (d / "final_metrics.json").write_text(json.dumps({"test_accuracy": acc, "dev_accuracy": acc, "best_epoch": 3,
                                                          "step": 100, "wall_time_s": 60.0}))
    text = kim.write_report(tmp_path, runs, "test")
    assert "| mr | 4/4 | 76.5 ± 1.3 | 76.1 | +0.4 | 3.0 | 4m00s |" in text
    assert "| trec | 1/2 | 90.0 ± 0.0 | 91.2 | -1.2 | 3.0 | 1m00s |" in text
    assert (tmp_path / "kim2014.md").read_text() == text


def test_kim2014_shards_and_overrides():
    kim = _script(REPO / "experiments" / "kim2014.py")
    assert kim.parse_shard("1/4") == (1, 4) and kim.parse_shard("0/1") == (0, 1)
    for bad in ("4/4", "x", "1/0", "-1/2"):
        with pytest.raises(ValueError, match=r"--shard="):
            kim.parse_shard(bad)
    args, overrides = kim.parse_args(["--workdir", "w", "--datasets", "trec", "--config.model.dropout_scaling=inverted",
                                      "--config.train.epochs", "3", "--config.model.widths=(2, 3)"])
    assert overrides == [("model.dropout_scaling", "inverted"), ("train.epochs", "3"), ("model.widths", "(2, 3)")]
    config = kim.run_config(args, overrides, "trec", 1, None)
    assert config.model.dropout_scaling == "inverted" and config.train.epochs == 3 and config.model.widths == (2, 3)
    assert config.seed == 1 and config.preset == "trec"
    with pytest.raises(ConfigError, match=r"--config.model.dropuot: config.model has no field 'dropuot'"):
        kim.run_config(args, [("model.dropuot", "0.1")], "trec", 0, None)
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "kim2014.py"), "--workdir", "w",
                           "--config.data.file=x"], capture_output=True, text=True, timeout=120, env=_env())
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith("kim2014: error: --config.data.file: config.data has no field 'file'")


def test_kim2014_report_only_trains_nothing(tmp_path):
    """--report_only summarises the finished runs and leaves the unfinished ones untouched."""
    d = tmp_path / "trec" / "seed0"
    d.mkdir(parents=True)
    (d / "final_metrics.json").write_text(json.dumps({"test_accuracy": 0.9, "dev_accuracy": 0.9, "best_epoch": 3,
                                                      "step": 100, "wall_time_s": 60.0}))
    data = tmp_path / "data"                                     # the files must exist: the script checks them first
    data.mkdir()
    for name in ("TREC.train.all", "TREC.test.all"):
        (data / name).write_text("0 what ?\n")
    proc = subprocess.run([sys.executable, str(REPO / "experiments" / "kim2014.py"), "--workdir", str(tmp_path),
                           "--datasets", "trec", "--seeds", "2", "--report_only", "--data_path", str(data)],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| trec | 1/2 | 90.0 ± 0.0 | 91.2 | -1.2 | 3.0 | 1m00s |" in proc.stdout
    assert not (tmp_path / "trec" / "seed1").exists()


def test_kim2014_parallel_runs_groups_and_wall_time(tmp_path):
    """--parallel_runs R: runs of one dataset go to one program, R at a time; the report counts a program's wall time
    once for the runs it trained."""
    kim = _script(REPO / "experiments" / "kim2014.py")
    todo = [(1, "mr", 0, 0), (2, "mr", 0, 1), (3, "mr", 1, 0), (4, "trec", 0, None), (5, "trec", 1, None)]
    assert kim.groups(todo, 2) == [todo[0:2], todo[2:3], todo[3:5]]
    assert kim.groups(todo, 1) == [[run] for run in todo]
    runs = [("trec", 0, None), ("trec", 1, None)]
    for ds, seed, fold in runs:
        d = kim.run_dir(tmp_path, ds, seed, fold)
        d.mkdir(parents=True)
        (d / "final_metrics.json").write_text(json.dumps({"test_accuracy": 0.9, "dev_accuracy": 0.9, "best_epoch": 3,
                                                          "step": 100, "wall_time_s": 60.0, "runs_in_program": 2}))
    assert "| trec | 2/2 | 90.0 ± 0.0 | 91.2 | -1.2 | 3.0 | 1m00s |" in kim.write_report(tmp_path, runs, "test")
    with pytest.raises(SystemExit):
        kim.parse_args(["--workdir", "w", "--parallel_runs", "0"])
