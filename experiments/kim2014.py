"""Reproduce the CNN-rand column of Kim (2014), Table 2, over several seeds: MR, SST-1, SST-2, Subj, TREC, CR, MPQA.

    .venv/bin/python experiments/kim2014.py --workdir runs/kim2014                       # 3 seeds, every dataset present
    .venv/bin/python experiments/kim2014.py --workdir runs/kim_quick --seeds 1 --folds 1 --epochs 5   # a quick look
    .venv/bin/python experiments/kim2014.py --workdir runs/kim_cr --datasets cr,mpqa --data_path DIR  # a subset

Datasets without splits (MR, Subj, CR, MPQA) run 10-fold CV. By default the script runs every dataset whose files are
present (MR, SST and TREC are in the shared folder; subj.all, custrev.all and mpqa.all are public files you bring,
in the data directory) and says which it skipped and why; ``--datasets`` names a subset, and a missing file of a
named dataset is an error. SST-1 and SST-2 train on every labelled phrase of the treebank's trees when those are
present (``config.data.sst_phrases``, decided by the presets).

Each run is ``train_and_evaluate`` on ``configs/text_cnn.py:<dataset>`` (Kim's hyperparameters) with
``config.seed = k`` (and ``config.data.fold = f`` for the CV datasets), in ``<workdir>/<dataset>/seed<k>[/fold<f>]``. Finished runs
(those with a ``final_metrics.json``) are skipped, unfinished ones resume from their checkpoints, so re-running the
command continues where it stopped. After every run ``<workdir>/kim2014.md`` is rewritten: mean +- std of test
accuracy over the runs so far, next to Kim's published numbers, with the gap, the number of runs and the wall time.

Expected on 2 CPU cores (seed 0): ~2.5 min per MR fold (76.3 over the 10 folds), ~1.5 min TREC (89.6); with the
SST phrases (77,201 and 157,401 training examples), 20-40 min per SST-2 run and 30-50 min per SST-1 run on shared
cores. Measured (docs/results/kim2014.md): MR 76.0 and TREC 90.4 (3 seeds, GPU); SST-2 84.0 and SST-1 44.2
(3 seeds each), on CPU, trained on the phrases as Kim did (80.2 and 40.3 on sentences only).

Spreading the runs: ``--shard i/n`` takes every n-th run of the plan, starting at run i (0-based), so n processes
(on n machines, or n at a time on one GPU) share the work in one workdir; then ``--report_only`` writes the table::

    for i in 0 1 2 3; do .venv/bin/python experiments/kim2014.py --workdir runs/kim2014 --shard $i/4 & done; wait
    .venv/bin/python experiments/kim2014.py --workdir runs/kim2014 --report_only

Many runs in one program: ``--parallel_runs R`` trains up to ``R`` runs of one dataset at a time as one
``jax.vmap`` ped program (``jaxconv.train.train_many``: seeds and MR folds stacked on a leading axis); each run still
writes its own workdir, checkpoints and ``final_metrics.json``, as if it had run alone, and the report reads them as
before. On a GPU, ``--parallel_runs 30`` puts all 30 MR runs (3 seeds x 10 folds) in one program::

    .venv/bin/python experiments/kim2014.py --workdir runs/kim2014 --parallel_runs 30

Ablations: ``--config.model.dropout_scaling=inverted`` (repeatable; the syntax of ``jaxconv train``) sets any config
field of every run; the report's settings line lists them. ``--config`` names another config file with the same
dataset presets (default: the built-in ``text_cnn``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import pathlib
import statistics
import sys
import time

from jaxconv.configs import ConfigError, load_config, split_override_args

#: Kim (2014), Table 2, CNN-rand: test accuracy (%), in the table's order; MR, Subj, CR, MPQA are 10-fold CV averages.
KIM_CNN_RAND = {"mr": 76.1, "sst1": 45.0, "sst2": 82.7, "subj": 89.6, "trec": 91.2, "cr": 79.8, "mpqa": 83.4}
CV_DATASETS = ("mr", "subj", "cr", "mpqa")
log = logging.getLogger("jaxconv.kim2014")


def parse_args(argv):
    """``(args, overrides)`` from the command line; ``--config.KEY=VALUE`` items become the overrides."""
    argv, overrides = split_override_args(argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="Root directory of all runs and of kim2014.md.")
    p.add_argument("--seeds", type=int, default=3, help="Seeds per dataset (0 .. seeds-1).")
    p.add_argument("--folds", type=int, default=10,
                   help="Cross-validation folds to run for MR, Subj, CR, MPQA (the first N of 10).")
    p.add_argument("--datasets", default="", help=f"Comma-separated, from {', '.join(KIM_CNN_RAND)} (default: every "
                                                  f"one whose files are present).")
    p.add_argument("--epochs", type=int, default=0, help="Epochs per run (0: the preset's, Kim's 25).")
    p.add_argument("--steps", type=int, default=0, help="Hard cap on steps per run, for smoke tests (0: none).")
    p.add_argument("--data_path", default="", help="Directory of the sentence datasets (default: the config's).")
    p.add_argument("--config", default="text_cnn", help="Config (name or file) with the dataset presets.")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                   help="Show a progress bar (only on a terminal or in a notebook).")
    p.add_argument("--noprogress", dest="progress", action="store_false", help=argparse.SUPPRESS)
    p.add_argument("--report_only", action="store_true", help="Write kim2014.md from finished runs; train nothing.")
    p.add_argument("--shard", default="0/1", help="i/n: run only runs i, i+n, i+2n, ... of the plan (0 <= i < n).")
    p.add_argument("--parallel_runs", type=int, default=1,
                   help="Train up to R runs of one dataset as one program (jaxconv.train.train_many); 1: one by one.")
    args = p.parse_args(argv)
    args.named = bool(args.datasets.strip())
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()] or list(KIM_CNN_RAND)
    unknown = sorted(set(args.datasets) - set(KIM_CNN_RAND))
    if unknown:
        p.error(f"--datasets: unknown {unknown}; expected some of {sorted(KIM_CNN_RAND)}.")
    for name, lo, hi in (("seeds", 1, None), ("folds", 1, 10), ("epochs", 0, None), ("steps", 0, None),
                         ("parallel_runs", 1, None)):
        value = getattr(args, name)
        if value < lo or (hi is not None and value > hi):
            p.error(f"--{name}={value}: expected {lo} <= {name}" + (f" <= {hi}." if hi else "."))
    return args, overrides


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


def groups(runs: list[tuple[int, str, int, int | None]], size: int) -> list[list[tuple[int, str, int, int | None]]]:
    """``(index, dataset, seed, fold)`` runs -> groups of at most ``size`` runs of one dataset (one model shape), in
    plan order: what one ``train_many`` program trains."""
    by_dataset: dict[str, list] = {}
    for run in runs:
        by_dataset.setdefault(run[1], []).append(run)
    return [rs[i: i + size] for rs in by_dataset.values() for i in range(0, len(rs), size)]


def read_result(directory: pathlib.Path) -> dict | None:
    path = directory / "final_metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def _fmt_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _wall_share(result: dict) -> float:
    """A run's part of the wall time: its own, or its program's divided by the runs the program trained."""
    return result["wall_time_s"] / result.get("runs_in_program", 1)


def available(args, overrides) -> tuple[list[str], dict[str, str]]:
    """The datasets of ``args.datasets`` whose files are present, and ``{dataset: why skipped}`` for the others.

    Raises:
      FileNotFoundError: a dataset named with ``--datasets`` lacks a file (the message names the path).
    """
    from jaxconv.data.pipeline import data_files

    present, skipped = [], {}
    for ds in args.datasets:
        config = run_config(args, overrides, ds, 0, 0 if ds in CV_DATASETS else None)
        missing = [str(f) for f in data_files(config).values() if not f.is_file()]
        if not missing:
            present.append(ds)
        elif args.named:
            raise FileNotFoundError(f"{ds}: missing {', '.join(missing)} (set the data directory with --data_path, or "
                                    f"leave {ds} out of --datasets)")
        else:
            skipped[ds] = f"missing {', '.join(missing)}"
    return present, skipped


def sst_source(args, overrides, datasets) -> str:
    """What the SST runs train on, for the report's settings line ("" without SST)."""
    phrases = {ds: bool(run_config(args, overrides, ds, 0, None).data.sst_phrases) for ds in datasets
               if ds in ("sst1", "sst2")}
    if not phrases:
        return ""
    return "; SST trained on " + ", ".join(f"{ds}: {'every labelled phrase of the trees' if p else 'sentences only'}"
                                           for ds, p in phrases.items())


def write_report(workdir: pathlib.Path, runs: list[tuple[str, int, int | None]], settings: str,
                 skipped: dict[str, str] | None = None) -> str:
    """Write ``workdir/kim2014.md`` from the finished runs of ``runs``; return its text."""
    lines = ["# Kim (2014) CNN-rand, reproduced with jaxconv", "",
             f"Settings: {settings}", "",
             "| dataset | runs | test accuracy (%) mean ± std | Kim (2014) CNN-rand | gap | mean epochs to best | wall time |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    detail = ["", "## Runs", "", "| dataset | seed | fold | test acc (%) | dev acc (%) | best epoch | steps | wall |",
              "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    skipped = skipped or {}
    order = list(KIM_CNN_RAND)
    for ds in sorted({d for d, _, _ in runs} | set(skipped), key=lambda d: order.index(d) if d in order else len(order)):
        if ds in skipped:
            lines.append(f"| {ds} | skipped: {skipped[ds]} | - | {KIM_CNN_RAND[ds]} | - | - | - |")
            continue
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
                         f"{statistics.fmean(best_epochs):.1f} | {_fmt_time(sum(_wall_share(r) for _, _, r in done))} |")
        else:
            lines.append(f"| {ds} | 0/{len(results)} | - | {kim if kim is not None else '-'} | - | - | - |")
        for s, f, r in done:
            detail.append(f"| {ds} | {s} | {'-' if f is None else f} | {100 * r['test_accuracy']:.1f} | "
                          f"{100 * r['dev_accuracy']:.1f} | {r.get('best_epoch')} | {r['step']} | "
                          f"{_fmt_time(r['wall_time_s'])} |")
    lines += ["", "Kim's numbers: Kim (2014), *Convolutional Neural Networks for Sentence Classification*, Table 2; "
              "MR, Subj, CR and MPQA are means over 10 CV folds. Gap = ours - Kim's. Wall time: the sum over the runs, "
              "where runs trained together in one program (--parallel_runs) count their program's time once. Each "
              "run's test score is the model of its best dev epoch (dev: the given split, or 10% held out of train)."]
    text = "\n".join(lines + detail) + "\n"
    tmp = workdir / f".kim2014.md.{os.getpid()}"      # shards write the report too: replace it atomically
    tmp.write_text(text)
    os.replace(tmp, workdir / "kim2014.md")
    return text


def run_config(args, overrides, dataset: str, seed: int, fold: int | None):
    """The config of one run: the dataset's preset, the run's seed and fold, the command's settings."""
    fields = {"seed": seed, "progress": args.progress, **({"data.fold": fold} if fold is not None else {}),
              **({"train.epochs": args.epochs} if args.epochs else {}),
              **({"train.steps": args.steps} if args.steps else {}),
              **({"data.path": args.data_path} if args.data_path else {})}
    return load_config(f"{args.config}:{dataset}", [*fields.items(), *overrides], prefix="--config.")


def main(argv=None) -> int:
    try:
        args, overrides = parse_args(sys.argv[1:] if argv is None else argv)
        shard, num_shards = parse_shard(args.shard)
        datasets, skipped = available(args, overrides)                  # fail early: configs and files
    except (ConfigError, ValueError, OSError) as e:
        print(f"kim2014: error: {e}", file=sys.stderr)
        return 2
    for ds, why in skipped.items():
        print(f"kim2014: skipping {ds}: {why}", file=sys.stderr)
    if not datasets:
        print(f"kim2014: error: none of {', '.join(args.datasets)} has its files; set the data directory with "
              f"--data_path.", file=sys.stderr)
        return 2
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jaxconv").setLevel(logging.INFO)
    from jaxconv.train import train_and_evaluate, train_many

    workdir = pathlib.Path(args.workdir).absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    runs = plan(datasets, args.seeds, args.folds)
    settings = (f"seeds {args.seeds}, CV folds {args.folds} of 10, epochs {args.epochs or 'preset (25)'}"
                + (f", steps cap {args.steps}" if args.steps else "")
                + (f", overrides {', '.join(f'{k}={v}' for k, v in overrides)}" if overrides else "")
                + f"; config {args.config}" + sst_source(args, overrides, datasets))
    t0 = time.time()
    todo = []
    for i, (ds, seed, fold) in enumerate(runs, 1):
        if (i - 1) % num_shards != shard:
            continue
        result = read_result(run_dir(workdir, ds, seed, fold))
        if result is not None:
            log.info("run %d/%d: %s seed %d%s already done (test accuracy %.4f)", i, len(runs), ds, seed,
                     "" if fold is None else f" fold {fold}", result["test_accuracy"])
        elif not args.report_only:
            todo.append((i, ds, seed, fold))
    for group in groups(todo, args.parallel_runs):
        for i, ds, seed, fold in group:
            log.info("run %d/%d: %s seed %d%s -> %s", i, len(runs), ds, seed, "" if fold is None else f" fold {fold}",
                     run_dir(workdir, ds, seed, fold))
        configs = [run_config(args, overrides, ds, seed, fold) for _, ds, seed, fold in group]
        dirs = [run_dir(workdir, ds, seed, fold) for _, ds, seed, fold in group]
        try:
            if len(group) == 1:
                train_and_evaluate(configs[0], dirs[0])
            else:
                train_many(configs, dirs)
        except (ValueError, OSError, FloatingPointError) as e:  # named failures: one line, no traceback
            what = ", ".join(f"{ds} seed {seed}" + ("" if fold is None else f" fold {fold}") for _, ds, seed, fold in group)
            print(f"kim2014: error: {what}: {type(e).__name__}: {e}", file=sys.stderr)
            return 2
        write_report(workdir, runs, settings, skipped)
    print(write_report(workdir, runs, settings, skipped))
    print(f"report: {workdir / 'kim2014.md'} ({_fmt_time(time.time() - t0)} in this invocation)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
