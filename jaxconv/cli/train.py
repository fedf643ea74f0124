"""``jaxconv train CONFIG[:PRESET] --workdir DIR [--config.KEY=VALUE ...]``: train and evaluate one config.

``CONFIG`` is a built-in name (:data:`jaxconv.configs.BUILTIN_CONFIGS`, shipped in the package) or a config file;
``--config CONFIG`` is the same (the form the scripts in ``experiments/`` take). Re-running the command resumes from the workdir's latest
checkpoint. What the run leaves in the workdir: see :mod:`jaxconv.train.trainer`.
"""

from __future__ import annotations

import argparse
import json
import logging

from jaxconv._format import quote
from jaxconv.cli._common import CliError

from jaxconv.configs import DEFAULT_CONFIG

__all__ = ["add_parser", "run", "DEFAULT_CONFIG"]


def run(config, workdir: str) -> dict:
    """Train ``config`` into ``workdir`` as the command does; process 0 prints the summary. Returns the result."""
    from jaxconv.train import train_and_evaluate
    from jaxconv.train.mesh import is_primary, maybe_initialize_distributed
    from jaxconv.paths import WorkdirError, os_error_text

    maybe_initialize_distributed(config)  # before anything touches the devices
    # jaxconv's progress lines at INFO; the libraries' (orbax logs every checkpoint step in detail) at WARNING.
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jaxconv").setLevel(logging.INFO)
    try:
        result = train_and_evaluate(config, workdir)
    except OSError as e:
        if e.errno is None or e.filename is not None or isinstance(e, WorkdirError):
            raise
        # A write that failed without naming its file (a full disk under a plain write): name the workdir.
        raise WorkdirError(f"cannot write to --workdir {workdir}: {os_error_text(e.errno)}; the files and "
                           f"checkpoints written before are kept. Free space (or fix the file system) and run the same "
                           f"command again to resume.") from e
    if is_primary():
        w = result["workdir"].rstrip("/")
        print(json.dumps({k: result[k] for k in ("dataset", "test_accuracy", "test_bits_per_byte", "dev_accuracy",
                                                  "best_epoch", "step", "wall_time_s") if k in result}))
        if result.get("label_names"):
            print("labels:       " + ", ".join(f"{i} = {n}" for i, n in enumerate(result["label_names"])))
        print(f"workdir:      {w}\n"
              f"checkpoints:  {w}/checkpoints (latest/, best/)\n"
              f"metrics:      {w}/metrics.jsonl  (final: {w}/final_metrics.json)\n"
              + (f"tensorboard:  tensorboard --logdir {w}/tensorboard\n" if result.get("tensorboard") else "")
              + f"vocabulary:   {w}/vocab.json")
    return result


def _cmd_train(args) -> int:
    from jaxconv.configs import load_config

    if args.config_arg and args.config and args.config_arg != args.config:
        raise CliError(f"two configs given: {quote(args.config_arg)} and --config {quote(args.config)}; give one.")
    spec = args.config_arg or args.config or DEFAULT_CONFIG
    config = load_config(spec, args.overrides, prefix="--config.")
    run(config, args.workdir)
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv train`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "train", help="train and evaluate a config (a built-in name or a config file)",
        description="Train a config's model, keep the best dev epoch, score it on test. Re-running the same command "
                    "resumes from the workdir's latest checkpoint.",
        epilog=f"examples:\n  jaxconv train {DEFAULT_CONFIG} --workdir runs/demo                 # synthetic corpus, ~10 s\n"
               f"  jaxconv train {DEFAULT_CONFIG}:mr --workdir runs/mr --config.data.fold=3\n"
               "  jaxconv train my_config.py:small --workdir runs/x --config.train.epochs=5\n"
               "Override any field with --config.KEY=VALUE (an unknown key is an error naming the fields there).",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config_arg", nargs="?", metavar="CONFIG[:PRESET]",
                   help=f"a built-in config name or a .py config file (default {DEFAULT_CONFIG})")
    p.add_argument("--config", metavar="CONFIG[:PRESET]", help="the same as CONFIG (for scripts that name it)")
    p.add_argument("--workdir", required=True, help="directory (or gs:// path) for checkpoints, metrics, vocabulary")
    p.set_defaults(func=_cmd_train)
