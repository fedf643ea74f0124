"""Train and evaluate Kim (2014)'s sentence CNN.

    .venv/bin/python experiments/text_cnn.py --config configs/text_cnn.py[:<preset>] --workdir runs/<name>
        [--config.train.epochs=5 ...]

Re-running the same command resumes from the workdir's latest checkpoint. Outputs: see jaxconv.train.trainer.
"""

from __future__ import annotations

import importlib.util
import json
import logging as std_logging
import pathlib
import sys

_REPO = pathlib.Path(__file__).resolve().parents[1]
if str(_REPO) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(_REPO))

from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402


def _preset_help() -> str:
    try:
        spec = importlib.util.spec_from_file_location("_text_cnn_config", _REPO / "configs" / "text_cnn.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return "Presets of configs/text_cnn.py:\n" + "".join(module.PRESETS.values())
    except Exception:  # noqa: BLE001 - help text only
        return ""


__doc__ = __doc__ + "\n" + _preset_help()

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
    "config", str(_REPO / "configs" / "text_cnn.py"),
    "Config file, optionally with a preset: configs/text_cnn.py:mr. Override fields with --config.<key>=<value>.",
    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and TensorBoard events.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    from jaxconv.train import NonFiniteLossError, train_and_evaluate
    from jaxconv.train.mesh import is_primary, maybe_initialize_distributed

    maybe_initialize_distributed(FLAGS.config)  # before anything touches the devices
    # jaxconv's progress lines at INFO; the libraries' (orbax logs every checkpoint step in detail) at WARNING.
    logging.set_verbosity(logging.WARNING)
    std_logging.getLogger("jaxconv").setLevel(std_logging.INFO)
    try:
        result = train_and_evaluate(FLAGS.config, FLAGS.workdir)
    except (NonFiniteLossError, ValueError, FileNotFoundError) as e:  # named failures: the message, no traceback
        raise SystemExit(f"error: {type(e).__name__}: {e}") from None
    if is_primary():
        workdir = pathlib.Path(result["workdir"])
        print(json.dumps({k: result[k] for k in ("dataset", "test_accuracy", "dev_accuracy", "best_epoch", "step",
                                                  "wall_time_s")}))
        print(f"workdir:      {workdir}\n"
              f"checkpoints:  {workdir / 'checkpoints'} (latest/, best/)\n"
              f"metrics:      {workdir / 'metrics.jsonl'}  (final: {workdir / 'final_metrics.json'})\n"
              f"tensorboard:  tensorboard --logdir {workdir / 'tensorboard'}\n"
              f"vocabulary:   {workdir / 'vocab.json'}")


def _config_file_and_arg(argv) -> tuple[str, str | None]:
    value = str(_REPO / "configs" / "text_cnn.py")
    for i, a in enumerate(argv):
        if a.startswith("--config="):
            value = a.split("=", 1)[1]
        elif a == "--config" and i + 1 < len(argv):
            value = argv[i + 1]
    path, _, arg = value.partition(":")
    return path, (arg or None)


def unknown_config_keys(argv) -> list[str]:
    """Messages for the ``--config.<a.b.c>=...`` overrides of ``argv`` that name no field of the config."""
    overrides = [a[2:].split("=", 1)[0] for a in argv if a.startswith("--config.")]
    if not overrides:
        return []
    path, arg = _config_file_and_arg(argv)
    spec = importlib.util.spec_from_file_location("_config_module", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    config = module.get_config(arg) if arg is not None else module.get_config()
    problems = []
    for key in overrides:
        node, parts = config, key.split(".")[1:]
        for depth, part in enumerate(parts):
            fields = node.keys() if hasattr(node, "keys") else []
            if part not in fields:
                where = ".".join(["config", *parts[:depth]])
                problems.append(f"--{key}: {where} has no field {part!r}; its fields are: {', '.join(sorted(fields))}")
                break
            node = node[part]
    return problems


def parse_flags(argv):
    """absl flag parsing, with unknown ``--config.*`` keys reported by name instead of a traceback."""
    try:
        return FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e}\nPass --help for usage.", file=sys.stderr)
        sys.exit(2)
    except (AttributeError, KeyError) as e:
        problems = unknown_config_keys(argv)
        print("error: " + ("\nerror: ".join(problems) if problems else f"bad --config override: {e}"), file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    app.run(main, flags_parser=parse_flags)
