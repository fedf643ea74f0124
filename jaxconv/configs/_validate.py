"""``validate(config)``: the numeric ranges of a text-model config, checked up front (this module imports no JAX;
the model kinds' rules come from :mod:`jaxconv.models`).

A run with ``train.epochs=-1`` or ``model.widths=(0,)`` would otherwise fail late with a message about something
else, or not fail at all. Every problem is named with its field and value, in one line:

>>> from jaxconv.configs import load_config
>>> validate(load_config("text_cnn", {"train.epochs": -1, "model.dropout": 1.0}))
Traceback (most recent call last):
...
jaxconv.configs.ConfigError: config.model.dropout=1.0: expected a float in [0, 1) (the dropout rate on the pooled \
features); config.train.epochs=-1: expected an int >= 1 (passes over the training data).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jaxconv.configs.rules import int_min, int_range, ints_min, is_int, one_of, real

__all__ = ["validate", "RULES", "LR_SCHEDULES", "MAX_SEED"]

#: ``config.train.lr_schedule`` values (:func:`jaxconv.train.optim.make_schedule`).
LR_SCHEDULES = ("constant", "cosine", "linear_warmup_cosine", "step")


#: The largest seed: seeds become int64 (JAX's keys, numpy's generators); a larger one would overflow.
MAX_SEED = 2**63 - 1

#: ``(dotted key, (check, what it expects), what the field is)``; keys are relative to the config root.
RULES: tuple[tuple[str, tuple[Callable[[Any], bool], str], str], ...] = (
    ("seed", int_range(0, MAX_SEED, "2**63 - 1"), "the run's one source of randomness"),
    ("data.split_seed", int_range(0, MAX_SEED, "2**63 - 1"), "the seed of the folds and hold-outs"),
    ("data.min_count", int_min(1), "the fewest occurrences that give a token its own id"),
    ("data.max_vocab", ((lambda v: is_int(v) and (v == 0 or v >= 2)), "0 (no limit) or an int >= 2"),
     "ids in total, <pad> and <unk> included"),
    ("data.num_folds", int_min(2), "cross-validation folds"),
    ("data.dev_fraction", real(0.0, 1.0, lo_open=True), "the share of train held out as dev"),
    ("data.pad_left", int_min(0), "pad tokens before each sentence"),
    ("data.pad_right", int_min(0), "pad tokens after each sentence"),
    ("data.bucket_lengths", ints_min(1, optional=True), "padded batch lengths"),
    ("data.max_buckets", int_min(1), "the most bucket lengths chosen from the data"),
    ("train.learning_rate", real(0.0, lo_open=True), "the optimizer's step size"),
    ("train.lr_schedule", one_of(LR_SCHEDULES), "how the learning rate changes over the updates"),
    ("train.warmup_steps", int_min(0), "linear warm-up updates of linear_warmup_cosine, 0: 5% of training"),
    ("train.lr_step_every", int_min(0), "updates between the drops of the step schedule, 0: a third of training"),
    ("train.lr_step_factor", real(0.0, 1.0, lo_open=True, hi_open=False), "the step schedule's factor per drop"),
    ("train.rho", real(0.0, 1.0, hi_open=False), "Adadelta's decay"),
    ("train.eps", real(0.0, lo_open=True), "the optimizer's epsilon"),
    ("train.momentum", real(0.0, 1.0), "SGD momentum"),
    ("train.batch_size", int_min(1), "examples per training step"),
    ("train.eval_batch_size", int_min(0), "examples per evaluation step, 0: batch_size"),
    ("train.epochs", int_min(1), "passes over the training data"),
    ("train.steps", int_min(0), "a cap on the total steps, 0: none"),
    ("train.patience", int_min(0), "epochs without dev improvement before stopping, 0: off"),
    ("train.max_norm", real(0.0), "the max-norm bound, 0: off"),
    ("train.log_every_steps", int_min(0), "steps between train records, 0: only at epoch ends"),
    ("train.checkpoint_every_steps", int_min(0), "steps between mid-epoch checkpoints, 0: only at epoch ends"),
    ("train.keep", int_min(1), "latest checkpoints kept"),
)


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _problems(config) -> list[str]:
    from jaxconv.models import model_kinds

    kind = model_kinds().get(config.model.name)
    out = [] if kind is not None else [f"config.model.name={config.model.name!r}: expected one of "
                                       f"{sorted(model_kinds())} (the registered model kinds)"]
    for key, (ok, expected), what in RULES + (kind.rules if kind is not None else ()):
        value = _get(config, key)
        if not ok(value):
            out.append(f"config.{key}={value!r}: expected {expected} ({what})")
    folds, fold = config.data.num_folds, config.data.fold
    if is_int(folds) and folds >= 2 and not (is_int(fold) and 0 <= fold < folds):
        out.append(f"config.data.fold={fold!r}: expected an int with 0 <= fold < config.data.num_folds={folds} (the "
                   f"cross-validation fold used as test set)")
    out += _synthetic_problems(config)
    if kind is not None and kind.check is not None:
        out += kind.check(config)
    return sorted(out)


def _synthetic_problems(config) -> list[str]:
    """``config.data.synthetic.num_examples`` of a synthetic run: enough for an example in each part of the split.
    Each part gets ``round(fraction * N)`` examples, so ``N >= 1 / min(fraction)`` gives each one at least one."""
    if config.data.name != "synthetic" or "synthetic" not in config.data:
        return []
    from jaxconv.data.synthetic import DEFAULT_SPLIT

    least = round(1 / min(DEFAULT_SPLIT))
    n = config.data.synthetic.get("num_examples")
    if is_int(n) and n >= least:
        return []
    return [f"config.data.synthetic.num_examples={n!r}: expected an int >= {least} (the corpus size; its "
            f"train/dev/test split {DEFAULT_SPLIT} needs that many to give each part an example)"]


def validate(config) -> None:
    """Check the numeric fields of a config before anything runs: the run's (:data:`RULES`), then those of its
    model kind (``jaxconv.models.model_kind(config.model.name)``: its ``rules`` and its ``check``).

    Raises:
      ConfigError: one line naming every bad field, its value and the range expected (``config.train.epochs=-1:
        expected an int >= 1 ...``), and every problem the model kind's ``check`` finds (for Kim's CNN: a frozen
        embedding without ``config.model.vectors``); also a ``config.model.name`` no kind has.
    """
    from jaxconv.configs import ConfigError

    problems = _problems(config)
    if problems:
        raise ConfigError("; ".join(problems) + ".")
