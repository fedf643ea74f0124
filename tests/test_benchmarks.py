"""The benchmark scripts run end to end and return what they measured (no speed assertions here: the performance
targets live in the benchmarks themselves). Benchmarks are scripts: loaded with runpy, not imported."""

from __future__ import annotations

import os
import runpy
import types

import pytest
from conftest import REPO_ROOT

pytestmark = pytest.mark.slow  # each runs a benchmark script end to end


def _load(name: str):
    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    return types.SimpleNamespace(**runpy.run_path(str(path), run_name=f"_bench_{name}"))


@pytest.mark.slow
def test_text_cnn_train_quick(shared_datasets, capsys):
    bench = _load("text_cnn_train")
    # The fewest steps a row takes (one chunk): the plain per-batch row compiles once per distinct batch length.
    res = bench.main(["--quick", "--steps", str(bench.CHUNK), "--data", str(shared_datasets), "--max-buckets", "2",
                      "--k", "2", "--runs", "2"])
    out = capsys.readouterr().out

    names = [bench.JAXCONV, "jaxconv, K=2 steps per call", "jaxconv, R=2 runs per program", bench.FIXED,
             bench.PER_BATCH]
    if bench.torch is not None:
        names += [bench.TORCH, bench.TORCH_PB] + ([bench.TORCH_1] if (os.cpu_count() or 1) > 1 else [])
    assert sorted(res.rows) == sorted(names)
    for name, row in res.rows.items():
        assert row.median > 0 and len(row.rates) == 1 and row.examples > 0 and row.steps > 0, name
        assert row.compiles == 0, f"{name} compiled during the timed rounds"
        assert name in out                                    # and the table shows it
    runs = res.rows["jaxconv, R=2 runs per program"]
    assert runs.steps >= 2 * bench.CHUNK and runs.examples > res.rows[bench.JAXCONV].examples   # two runs' work
    for name, row in res.rows.items():
        if name != bench.JAXCONV:
            assert res.ratios[f"jaxconv / {name}"] == pytest.approx(res.rows[bench.JAXCONV].median / row.median)
    if bench.torch is not None:
        assert res.vs_torch[bench.TORCH] == 1.0
        assert set(res.targets) == {bench.FIXED, bench.TORCH}              # the CPU targets
        for name, (ratio, goal, met) in res.targets.items():
            assert (goal, met) == (bench.TARGETS["cpu"][name], ratio >= goal)

    # jaxconv compiles each bucket's train program and each evaluation shape once, before the first step.
    c = res.compiles
    assert c["buckets"] == 2 and c["train"] == 2 and 1 <= c["eval"] <= c["eval_shapes"] <= 3
    assert res.info["k"] == 1 and len(res.info["buckets"]) == 2
    assert 0 < runs.active <= 1 and res.rows[bench.JAXCONV].active == 1.0


def test_step_profile_small(shared_datasets):
    prof = _load("step_profile")
    res = prof.main(["--small", "--max-buckets", "1", "--steps", "8", "--data", str(shared_datasets)])
    assert set(res["earlier"]) >= {"batch assembly", "transfer to device", "dispatch", "device wait", "metric fetch"}
    assert set(res["now"]) >= {"plan upload", "dispatch", "device wait", "metric fetch"}
    assert all(v >= 0 for part in ("earlier", "now") for v in res[part].values())
    assert len(res["graph walk"]) == 2 and res["setting"]["steps"] == 8 and res["setting"]["buckets"] == 1


@pytest.mark.slow
def test_dump_quick(demo_run, tmp_path):
    """benchmarks/dump.py --quick on the demo's run: both dtypes dump every sentence, float16 is smaller on disk,
    one filter reads faster than its whole layer, and the ceiling and PyTorch-hooks rows are measured beside it."""
    bench = _load("dump")
    (tmp_path / "run").symlink_to(demo_run, target_is_directory=True)
    results = bench.run(quick=True, workdir=str(tmp_path))
    assert set(results) == {"float32", "float16"}
    for r in results.values():
        assert r["examples"] == 1000 and r["examples_per_s"] > 0 and r["stream_examples_per_s"] > r["examples_per_s"]
        assert r["peak_rss_mb"] > 50 and 0 < r["read_filter_s"] < r["read_layer_s"]
    assert results["float16"]["disk_mb"] < results["float32"]["disk_mb"]
    for r in results.values():   # the side-by-side rows: the ceiling and the PyTorch peer (torch is in the venv)
        assert r["ceiling_examples_per_s"] > 0 and r["ceiling_ratio"] == pytest.approx(
            r["stream_examples_per_s"] / r["ceiling_examples_per_s"])
        assert r["torch_skipped"] is None and r["torch_examples_per_s"] > 0 and r["torch_ratio"] == pytest.approx(
            r["stream_examples_per_s"] / r["torch_examples_per_s"])


@pytest.mark.slow
def test_ablation_quick():
    """benchmarks/ablation.py --quick: the vmapped ablation and the per-filter loop agree (checked inside) and both
    are timed."""
    r = _load("ablation").run(quick=True, reps=2)
    assert r["filters"] == 24 and r["vmapped_s"] > 0 and r["loop_s"] > 0


@pytest.mark.slow
def test_conv_algorithms_quick(tmp_path):
    """benchmarks/conv_algorithms.py --quick on the long case: every algorithm and auto timed, checked against xla
    inside, the numbers written as JSON with auto's choice and the target's ratio."""
    import json

    out = tmp_path / "conv.json"
    assert _load("conv_algorithms").main(["--quick", "--cases", "long", "--rounds", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    case = result["cases"]["long"]
    assert case["auto_choice"] in ("xla", "im2col", "fft")
    assert {"xla", "im2col", "fft", "auto"} <= set(case["rows"])
    assert all(row[part]["ms"] > 0 for row in case["rows"].values() for part in ("fwd", "fwd+bwd"))
    assert result["targets"]["long"]["choice"] == case["auto_choice"] and result["targets"]["long"]["auto_over_xla"] > 0
