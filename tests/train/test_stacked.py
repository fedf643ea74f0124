"""train_many: R runs of one model shape trained by one vmapped program, each as if it ran alone: R=1 equals the
single-run path (losses to 1e-6), R=4 seeds give each seed's single-run metrics (to 1e-5), CV folds of different
sizes are aligned by bucket, each run keeps its own early stopping and files; mismatched runs are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from jaxconv.configs import load_config
from jaxconv.data import synthetic_dataset
from jaxconv.train import load_params, read_metrics, train_and_evaluate, train_many

pytestmark = pytest.mark.slow  # stacked runs trained end to end

TINY = {"data.synthetic.num_examples": 300, "data.max_buckets": 2, "model.embed_dim": 16, "model.filters": 8,
        "train.batch_size": 16, "train.epochs": 2, "train.log_every_steps": 5, "train.optimizer": "adadelta",
        "train.learning_rate": 1.0, "progress": False, "tensorboard": False}
SEEDS = (0, 1, 2, 3)
VARYING = ("time", "examples_per_sec", "epoch_time_s", "train_time_s", "eval_time_s", "checkpoint_time_s",
           "compile_time_s", "compiles", "train_compiles", "eval_compiles")


def tiny(**overrides):
    return load_config("text_cnn", {**TINY, **overrides})


def assert_same_run(ours, theirs, rtol: float) -> None:
    """Two workdirs hold the same run: the same records (losses to rtol) and final metrics, and close parameters."""
    a, b = read_metrics(ours), read_metrics(theirs)
    assert [(r["split"], r["step"], r["epoch"]) for r in a] == [(r["split"], r["step"], r["epoch"]) for r in b]
    for x, y in zip(a, b):
        np.testing.assert_allclose(x["loss"], y["loss"], rtol=rtol, err_msg=str((x, y)))
        assert {k: v for k, v in x.items() if k not in VARYING and k != "loss"} == \
               {k: v for k, v in y.items() if k not in VARYING and k != "loss"}, (x, y)
    fa, fb = (json.loads((d / "final_metrics.json").read_text()) for d in (ours, theirs))
    for key in ("best_step", "best_epoch", "step", "epochs_completed", "stopped_early", "test_accuracy", "sizes"):
        assert fa[key] == fb[key], key
    pa, pb = load_params(ours), load_params(theirs)
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=1e-4, atol=1e-5, err_msg=k)


@pytest.fixture(scope="module")
def singles(tmp_path_factory):
    root = tmp_path_factory.mktemp("singles")
    return {s: (root / f"seed{s}", train_and_evaluate(tiny(seed=s), root / f"seed{s}")) for s in SEEDS}


def test_one_run_through_train_many_equals_the_single_run(singles, tmp_path):
    (result,) = train_many([tiny(seed=0)], [tmp_path / "r1"])
    assert result["runs_in_program"] == 1
    assert_same_run(tmp_path / "r1", singles[0][0], rtol=1e-6)


def test_four_seeds_in_one_program_equal_each_seed_alone(singles, tmp_path):
    workdirs = [tmp_path / f"seed{s}" for s in SEEDS]
    results = train_many([tiny(seed=s) for s in SEEDS], workdirs)
    assert [r["seed"] for r in results] == list(SEEDS) and all(r["runs_in_program"] == 4 for r in results)
    for s, workdir in zip(SEEDS, workdirs):
        for name in ("config.json", "vocab.json", "run.json", "metrics.jsonl", "final_metrics.json"):
            assert (workdir / name).is_file(), name
        assert_same_run(workdir, singles[s][0], rtol=1e-5)
    losses = [read_metrics(w, "train")[0]["loss"] for w in workdirs]
    assert len(set(losses)) == len(SEEDS)                     # four different runs, not one run four times


def _mr_like(tmp_path, n: int = 233):
    """A tiny two-class corpus in MR's file format (rt-polarity.all): 10-fold CV with folds of unequal sizes."""
    ds = synthetic_dataset(n, seed=3, num_classes=2)
    texts, labels = ds.train.texts + ds.dev.texts + ds.test.texts, ds.train.labels + ds.dev.labels + ds.test.labels
    lines = [f"{y} {t}" for y, t in zip(labels, texts)][:n]
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "rt-polarity.all").write_text("\n".join(lines) + "\n")
    return tmp_path


def test_folds_of_different_sizes_and_their_own_early_stopping(tmp_path):
    root = _mr_like(tmp_path / "data")
    common = {"data.path": str(root), "model.embed_dim": 16, "model.filters": 8, "train.batch_size": 8,
              "data.max_buckets": 2, "train.log_every_steps": 7, "progress": False, "tensorboard": False}
    configs = [load_config("text_cnn:mr", {**common, "data.fold": 0, "train.epochs": 4}),
               load_config("text_cnn:mr", {**common, "data.fold": 2, "seed": 1, "train.epochs": 6,
                                           "train.patience": 1})]
    alone = [train_and_evaluate(c, tmp_path / f"alone{i}") for i, c in enumerate(configs)]
    assert alone[0]["sizes"] != alone[1]["sizes"]              # the folds differ in size (train, test) ...
    assert alone[1]["stopped_early"] and alone[1]["epochs_completed"] < 4 and not alone[0]["stopped_early"]
    for c in configs:   # stacked, the latest checkpoints only at the end and each best one kept on the device till then
        c.train.checkpoint_every_epochs = 0
    together = train_many(configs, [tmp_path / "many0", tmp_path / "many1"])
    for i in range(2):
        assert together[i]["sizes"] == alone[i]["sizes"]
        assert_same_run(tmp_path / f"many{i}", tmp_path / f"alone{i}", rtol=1e-5)
    assert together[0]["epochs_completed"] == 4 and together[1]["stopped_early"]
    for i, result in enumerate(together):
        assert [p.name for p in (tmp_path / f"many{i}" / "checkpoints" / "latest").iterdir()] == [str(result["step"])]
        assert [p.name for p in (tmp_path / f"many{i}" / "checkpoints" / "best").iterdir()] == [str(result["best_step"])]


def test_fold_data_alignment_by_bucket(tmp_path):
    """... and per bucket, so their stacked data, plans and dev batches carry weight-0 fillers."""
    from jaxconv.train import build_data
    from jaxconv.train.dispatch import epoch_calls
    from jaxconv.train.stacked_engine import StackedEvalData, StackedTrainData

    root = _mr_like(tmp_path / "data")
    datas = [build_data(load_config("text_cnn:mr", {"data.path": str(root), "data.fold": f, "train.batch_size": 8,
                                                    "data.max_buckets": 2}), min_length=5) for f in (0, 2)]
    train = StackedTrainData([d.train for d in datas], 2, lambda x: x)
    for b, bucket in enumerate(train.buckets):
        sizes = [d.train.bucket_sizes[b] for d in datas]
        assert bucket["tokens"].shape[:2] == (2, max(sizes))
        for r, n in enumerate(sizes):                        # filler rows after a run's own: <pad>, label 0
            assert not bucket["tokens"][r, n:].any() and not bucket["labels"][r, n:].any()
            np.testing.assert_array_equal(bucket["tokens"][r, :n], datas[r].train.bucket_arrays(b)[0])
    plans = train.plans([epoch_calls(d.train, 0, 2) for d in datas])
    assert [p["rows"].shape[1] for p in plans] == train.slots
    dev = StackedEvalData([d.dev for d in datas], lambda x: x)
    weights = np.stack([b["weights"] for b in dev.batches])   # (positions, R, B)
    assert weights.sum(axis=(0, 2)).tolist() == [len(d.dev.lengths) for d in datas]
    assert (weights.sum(axis=2) == 0).any()                  # a weight-0 filler batch where a run has fewer


def test_runs_of_different_shapes_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"train_many: run 1 \(.*b\) cannot share a program with run 0 \(.*a\): their "
                                         r"model config differs: model.filters: 8 vs 4"):
        train_many([tiny(), tiny(**{"model.filters": 4})], [tmp_path / "a", tmp_path / "b"])
    with pytest.raises(ValueError, match=r"train_many: workdirs must differ"):
        train_many([tiny(), tiny(seed=1)], [tmp_path / "a", tmp_path / "a"])
    with pytest.raises(ValueError, match=r"expected as many workdirs as configs \(at least one\); got 2 configs and 1"):
        train_many([tiny(), tiny()], [tmp_path / "a"])
