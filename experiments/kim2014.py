"""Reproduce the CNN-rand column of Kim (2014), Table 2: MR (10-fold CV), SST-1, SST-2, TREC over several seeds.

    .venv/bin/python experiments/kim2014.py --workdir runs/kim2014                       # 3 seeds x (10 MR folds + 3)
    .venv/bin/python experiments/kim2014.py --workdir runs/kim_quick --seeds 1 --folds 1 --epochs 5   # a quick look

Each run is ``train_and_evaluate`` on ``configs/text_cnn.py:<dataset>`` (Kim's hyperparameters) with
``config.seed = k`` (and ``config.data.fold = f`` for MR), in ``<workdir>/<dataset>/seed<k>[/fold<f>]``. Finished runs
(those with a ``final_metrics.json``) are skipped, unfinished ones resume from their checkpoints, so re-running the
command continues where it stopped. After every run ``<workdir>/kim2014.md`` is rewritten: mean +- std of test
accuracy over the runs so far, next to Kim's published numbers, with the gap, the number of runs and the wall time.

Expected on 2 CPU cores (seed 0): ~2.5 min per MR fold (76.3 over the 10 folds), ~2.5 min SST-2 (80.1), ~3 min
SST-1 (41.1), ~1.5 min TREC (89.6); so ~31 min per seed, ~1.5 hours for the default 3 seeds.
``--seeds 1 --folds 2`` gives a first table in about 12 minutes. Measured over 3 seeds (docs/results/kim2014.md):
MR 76.0, SST-1 40.3, SST-2 80.2, TREC 90.4. The SST files are sentences only, while Kim also trained on the
treebank's phrases: expect the SST rows to fall short of his numbers.

Spreading the runs: ``--shard i/n`` takes every n-th run of the plan, starting at run i (0-based), so n processes
(on n machines, or n at a time on one GPU) share the work in one workdir; then ``--report_only`` writes the table::

    for i in 0 1 2 3; do .venv/bin/python experiments/kim2014.py --workdir runs/kim2014 --shard $i/4 & done; wait
    .venv/bin/python experiments/kim2014.py --workdir runs/kim2014 --report_only

Ablations: ``--override model.dropout_scaling=inverted`` (repeatable, or comma-separated) sets any config field of
every run, with the value parsed as a Python literal when it is one; the report's settings line lists them.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import os
import pathlib
import statistics
import sys
import time

_REPO = pathlib.Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

import logging as std_logging  # noqa: E402

from absl import app, flags, logging  # noqa: E402

#: Kim (2014), Table 2, CNN-rand: test accuracy (%); MR is the 10-fold CV average.
KIM_CNN_RAND = {"mr": 76.1, "sst1": 45.0, "sst2": 82.7, "trec": 91.2}
CV_DATASETS = ("mr",)
log = std_logging.getLogger("jaxconv.kim2014")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Root directory of all runs and of kim2014.md.")
flags.DEFINE_integer("seeds", 3, "Seeds per dataset (0 .. seeds-1).", lower_bound=1)
flags.DEFINE_integer("folds", 10, "MR cross-validation folds to run (the first N of the 10 folds).", lower_bound=1,
                     upper_bound=10)
flags.DEFINE_list("datasets", ["mr", "sst1", "sst2", "trec"], "Datasets, from mr, sst1, sst2, trec.")
flags.DEFINE_integer("epochs", 0, "Epochs per run (0: the preset's, Kim's 25).", lower_bound=0)
flags.DEFINE_integer("steps", 0, "Hard cap on steps per run, for smoke tests (0: none).", lower_bound=0)
flags.DEFINE_string("data_path", "", "Directory of the sentence datasets (default: the config's).")
flags.DEFINE_string("config", str(_REPO / "configs" / "text_cnn.py"), "Config file with the dataset presets.")
flags.DEFINE_boolean("progress", True, "Show a progress bar (only on a terminal).")
flags.DEFINE_boolean("report_only", False, "Write kim2014.md from the runs already finished; train nothing.")
flags.DEFINE_string("shard", "0/1", "i/n: run only runs i, i+n, i+2n, ... of the plan (0 <= i < n).")
flags.DEFINE_multi_string("override", [], "key=value set on every run's config (e.g. model.dropout_scaling=inverted).")
flags.mark_flag_as_required("workdir")


def _load_config_module(path: str):
    spec = importlib.util.spec_from_file_location("_kim_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_dir(workdir: pathlib.Path, dataset: str, seed: int, fold: int | None) -> pathlib.Path:
    d = workdir / dataset / f"seed{seed}"
    return d / f"fold{fold}" if fold is not None else d


def plan(datasets, seeds: int, folds: int) -> list[tuple[str, int, int | None]]:
    """``(dataset, seed, fold or None)`` for every run, in order."""
    return [(ds, seed, fold) for ds in datasets for seed in range(seeds)
            for fold in (range(folds) if ds in CV_DATASETS else [None])]


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``."""
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise ValueError(f"--shard={text!r}: expected i/n with integers 0 <= i < n, e.g. 0/4.") from None
    if not 0 <= i < n:
        raise ValueError(f"--shard={text!r}: expected 0 <= i < n; got i={i}, n={n}.")
    return i, n


def parse_overrides(items) -> list[tuple[str, object]]:
    """``["a.b=1", "c=x,d=(1, 2)"]`` -> ``[("a.b", 1), ("c", "x"), ("d", (1, 2))]``; values parsed as Python literals
    when they are one, else kept as strings. Items split at commas that are outside brackets."""
    out = []
    for item in items:
        depth, start, parts = 0, 0, []
        for j, ch in enumerate(item):
            depth += ch in "([{"
            depth -= ch in ")]}"
            if ch == "," and depth == 0:
                parts.append(item[start:j])
                start = j + 1
        parts.append(item[start:])
        for part in (p.strip() for p in parts if p.strip()):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"--override {part!r}: expected key=value, e.g. model.dropout_scaling=inverted.")
            try:
                parsed = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                parsed = value.strip()
            out.append((key.strip(), parsed))
    return out


def apply_overrides(config, overrides) -> None:
    """Set each ``(dotted key, value)`` on ``config``; an unknown key is an error naming it."""
    for key, value in overrides:
        *parents, leaf = key.split(".")
        node = config
        for name in parents:
            if name not in node:
                raise ValueError(f"--override {key}=...: config has no field {name!r} (known: {sorted(node.keys())}).")
            node = node[name]
        if leaf not in node:
            raise ValueError(f"--override {key}=...: config has no field {leaf!r} (known: {sorted(node.keys())}).")
        node[leaf] = value


def read_result(directory: pathlib.Path) -> dict | None:
    path = directory / "final_metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def write_report(workdir: pathlib.Path, runs: list[tuple[str, int, int | None]], settings: str) -> str:
    """Write ``workdir/kim2014.md`` from the finished runs of ``runs``; return its text."""
    lines = ["# Kim (2014) CNN-rand, reproduced with jaxconv", "",
             f"Settings: {settings}", "",
             "| dataset | runs | test accuracy (%) mean ± std | Kim (2014) CNN-rand | gap | mean epochs to best | wall time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    detail = ["", "## Runs", "", "| dataset | seed | fold | test acc (%) | dev acc (%) | best epoch | steps | wall |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for ds in dict.fromkeys(d for d, _, _ in runs):
        results = [(s, f, read_result(run_dir(workdir, ds, s, f))) for d, s, f in runs if d == ds]
        done = [(s, f, r) for s, f, r in results if r is not None]
        accs = [100.0 * r["test_accuracy"] for _, _, r in done]
        kim = KIM_CNN_RAND.get(ds)
        if accs:
            mean = statistics.fmean(accs)
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            gap = f"{mean - kim:+.1f}" if kim is not None else "-"
            best_epochs = [r["best_epoch"] for _, _, r in done if r.get("best_epoch") is not None]
            lines.append(f"| {ds} | {len(accs)}/{len(results)} | {mean:.1f} ± {std:.1f} | "
                         f"{kim if kim is not None else '-'} | {gap} | "
                         f"{statistics.fmean(best_epochs):.1f} | {_fmt_time(sum(r['wall_time_s'] for _, _, r in done))} |")
        else:
            lines.append(f"| {ds} | 0/{len(results)} | - | {kim if kim is not None else '-'} | - | - | - |")
        for s, f, r in done:
            detail.append(f"| {ds} | {s} | {'-' if f is None else f} | {100 * r['test_accuracy']:.1f} | "
                          f"{100 * r['dev_accuracy']:.1f} | {r.get('best_epoch')} | {r['step']} | "
                          f"{_fmt_time(r['wall_time_s'])} |")
    lines += ["", "Kim's numbers: Kim (2014), *Convolutional Neural Networks for Sentence Classification*, Table 2; "
              "MR is the mean over 10 CV folds. Gap = ours - Kim's. Each run's test score is the model of its best "
              "dev epoch (dev: the given split, or 10% held out of train)."]
    text = "\n".join(lines + detail) + "\n"
    tmp = workdir / f".kim2014.md.{os.getpid()}"      # shards write the report too: replace it atomically
    tmp.write_text(text)
    os.replace(tmp, workdir / "kim2014.md")
    return text


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("jaxconv").setLevel(std_logging.INFO)
    from jaxconv.train import train_and_evaluate

    unknown = sorted(set(FLAGS.datasets) - set(KIM_CNN_RAND))
    if unknown:
        raise app.UsageError(f"--datasets: unknown {unknown}; expected some of {sorted(KIM_CNN_RAND)}.")
    workdir = pathlib.Path(FLAGS.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    module = _load_config_module(FLAGS.config)
    try:
        shard, num_shards = parse_shard(FLAGS.shard)
        overrides = parse_overrides(FLAGS.override)
        apply_overrides(module.get_config(FLAGS.datasets[0]), overrides)   # fail before any run on a bad key
    except ValueError as e:
        raise app.UsageError(str(e)) from None
    runs = plan(FLAGS.datasets, FLAGS.seeds, FLAGS.folds)
    settings = (f"seeds {FLAGS.seeds}, MR folds {FLAGS.folds} of 10, epochs {FLAGS.epochs or 'preset (25)'}"
                + (f", steps cap {FLAGS.steps}" if FLAGS.steps else "")
                + (f", overrides {', '.join(f'{k}={v!r}' for k, v in overrides)}" if overrides else "")
                + f"; config {FLAGS.config}")
    t0 = time.time()
    for i, (ds, seed, fold) in enumerate(runs, 1):
        if (i - 1) % num_shards != shard:
            continue
        directory = run_dir(workdir, ds, seed, fold)
        result = read_result(directory)
        if result is None and FLAGS.report_only:
            continue
        if result is None:
            config = module.get_config(ds)
            config.seed = seed
            if fold is not None:
                config.data.fold = fold
            if FLAGS.epochs:
                config.train.epochs = FLAGS.epochs
            if FLAGS.steps:
                config.train.steps = FLAGS.steps
            if FLAGS.data_path:
                config.data.path = FLAGS.data_path
            apply_overrides(config, overrides)
            config.progress = FLAGS.progress
            log.info("run %d/%d: %s seed %d%s -> %s", i, len(runs), ds, seed,
                            "" if fold is None else f" fold {fold}", directory)
            result = train_and_evaluate(config, directory)
        else:
            log.info("run %d/%d: %s seed %d%s already done (test accuracy %.4f)", i, len(runs), ds, seed,
                            "" if fold is None else f" fold {fold}", result["test_accuracy"])
        write_report(workdir, runs, settings)
    print(write_report(workdir, runs, settings))
    print(f"report: {workdir / 'kim2014.md'} ({_fmt_time(time.time() - t0)} in this invocation)")


if __name__ == "__main__":
    app.run(main)
