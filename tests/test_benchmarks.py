"""Smoke tests of the benchmark scripts: they run end to end and print every row (no speed assertions here; the
performance targets live in the benchmarks themselves)."""

from __future__ import annotations

import os
import re
import runpy
import types

import pytest
from conftest import REPO_ROOT


def _load(name: str):
    path = REPO_ROOT / "benchmarks" / f"{name}.py"
    return types.SimpleNamespace(**runpy.run_path(str(path), run_name=f"_bench_{name}"))


@pytest.mark.slow
def test_text_cnn_train_quick(shared_datasets, capsys):
    bench = _load("text_cnn_train")
    assert bench.main(["--quick", "--data", str(shared_datasets)]) == 0  # ~30 s on 2 busy cores
    out = capsys.readouterr().out

    rows = list(bench.ROWS[:3])
    if bench.torch is not None:
        rows += [r for r in bench.ROWS[3:] if r != bench.ROWS[4] or (os.cpu_count() or 1) > 1]
    for row in rows:  # name, then median, min, max examples/s
        assert re.search(rf"^{re.escape(row)}\s+\d+\s+\d+\s+\d+\s", out, re.M), f"no table row {row!r}:\n{out}"
    for row in rows[1:]:  # the two primary rows carry the targets; the others are labelled secondary
        verdict = ({bench.ROWS[1]: r"\(target >= 2x: (met|NOT met)\)", bench.ROWS[3]: r"\(target >= 3x: (met|NOT met)\)"}
                   .get(row, r"\(secondary row, no target[;)]"))
        assert re.search(rf"^jaxconv / {re.escape(row)}: [\d.]+x  {verdict}", out, re.M), f"no ratio for {row!r}:\n{out}"

    # The trainer compiles its steps at most once per bucket (train) and once per eval bucket, and never again.
    m = re.search(r"train (\d+) \+ eval (\d+) = (\d+) <= buckets (\d+) \+ eval buckets (\d+) = (\d+): (ok|EXCEEDED)",
                  out)
    assert m, out
    train, evals, total, buckets, eval_buckets, limit = (int(g) for g in m.groups()[:6])
    assert 1 <= train <= buckets and evals <= eval_buckets and total <= limit and m.group(7) == "ok"
    assert "compiles during the timed rounds: 0" in out


@pytest.mark.slow
def test_dump_quick(demo_run, tmp_path):
    """benchmarks/dump.py --quick on the demo's run: both dtypes dump every sentence, float16 is smaller on disk, and
    one filter reads faster than its whole layer."""
    bench = _load("dump")
    (tmp_path / "run").symlink_to(demo_run, target_is_directory=True)
    results = bench.run(quick=True, workdir=str(tmp_path))
    assert set(results) == {"float32", "float16"}
    for r in results.values():
        assert r["examples"] == 1000 and r["examples_per_s"] > 0 and r["stream_examples_per_s"] > r["examples_per_s"]
        assert r["peak_rss_mb"] > 50 and 0 < r["read_filter_s"] < r["read_layer_s"]
    assert results["float16"]["disk_mb"] < results["float32"]["disk_mb"]
