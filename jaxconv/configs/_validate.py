"""``validate(config)``: the numeric ranges of a text-model config, checked up front (no JAX import).

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

import math
from collections.abc import Callable
from typing import Any

__all__ = ["validate", "RULES", "MODEL_RULES"]


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int_min(minimum: int) -> tuple[Callable[[Any], bool], str]:
    return (lambda v: _is_int(v) and v >= minimum), f"an int >= {minimum}"


def _ints_min(minimum: int, *, optional: bool = False) -> tuple[Callable[[Any], bool], str]:
    def ok(v):
        if v is None:
            return optional
        return isinstance(v, (tuple, list)) and len(v) > 0 and all(_is_int(x) and x >= minimum for x in v)

    return ok, ("None or " if optional else "") + f"a non-empty tuple of ints >= {minimum}"


def _real(lo: float, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = True):
    def ok(v):
        if not _is_real(v):
            return False
        above = v > lo if lo_open else v >= lo
        below = True if hi is None else (v < hi if hi_open else v <= hi)
        return above and below

    if hi is None:
        text = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"a float in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return ok, text


#: ``(dotted key, (check, what it expects), what the field is)``; keys are relative to the config root.
RULES: tuple[tuple[str, tuple[Callable[[Any], bool], str], str], ...] = (
    ("data.min_count", _int_min(1), "the fewest occurrences that give a token its own id"),
    ("data.max_vocab", ((lambda v: _is_int(v) and (v == 0 or v >= 2)), "0 (no limit) or an int >= 2"),
     "ids in total, <pad> and <unk> included"),
    ("data.num_folds", _int_min(2), "cross-validation folds"),
    ("data.dev_fraction", _real(0.0, 1.0, lo_open=True), "the share of train held out as dev"),
    ("data.pad_left", _int_min(0), "pad tokens before each sentence"),
    ("data.pad_right", _int_min(0), "pad tokens after each sentence"),
    ("data.bucket_lengths", _ints_min(1, optional=True), "padded batch lengths"),
    ("data.max_buckets", _int_min(1), "the most bucket lengths chosen from the data"),
    ("train.learning_rate", _real(0.0, lo_open=True), "the optimizer's step size"),
    ("train.rho", _real(0.0, 1.0, hi_open=False), "Adadelta's decay"),
    ("train.eps", _real(0.0, lo_open=True), "the optimizer's epsilon"),
    ("train.momentum", _real(0.0, 1.0), "SGD momentum"),
    ("train.batch_size", _int_min(1), "examples per training step"),
    ("train.eval_batch_size", _int_min(0), "examples per evaluation step, 0: batch_size"),
    ("train.epochs", _int_min(1), "passes over the training data"),
    ("train.steps", _int_min(0), "a cap on the total steps, 0: none"),
    ("train.patience", _int_min(0), "epochs without dev improvement before stopping, 0: off"),
    ("train.max_norm", _real(0.0), "the max-norm bound, 0: off"),
    ("train.log_every_steps", _int_min(0), "steps between train records, 0: only at epoch ends"),
    ("train.checkpoint_every_steps", _int_min(0), "steps between mid-epoch checkpoints, 0: only at epoch ends"),
    ("train.keep", _int_min(1), "latest checkpoints kept"),
)

#: The model fields of each model (``config.model.name``), checked the same way.
MODEL_RULES: dict[str, tuple] = {
    "text_cnn": (
        ("model.embed_dim", _int_min(1), "the word vector size"),
        ("model.widths", _ints_min(1), "filter widths"),
        ("model.filters", _int_min(1), "feature maps per width"),
        ("model.dropout", _real(0.0, 1.0), "the dropout rate on the pooled features"),
    ),
    "char_cnn": (
        ("model.length", _int_min(1), "characters per input"),
        ("model.kernels", _ints_min(1), "kernel sizes of the convolutions"),
        ("model.pool_size", _int_min(1), "the max-pool window"),
        ("model.features", _int_min(1), "feature maps per convolution"),
        ("model.hidden", _int_min(1), "units of each dense layer"),
        ("model.dropout", _real(0.0, 1.0), "the dropout rate between the dense layers"),
        ("model.embed_dim", _int_min(1), "the learned character vector size"),
    ),
    "conv_lm": (
        ("model.embed_dim", _int_min(1), "the token vector size"),
        ("model.channels", _int_min(1), "the residual width"),
        ("model.kernel_size", _int_min(1), "the kernel size of every block"),
        ("model.dilations", _ints_min(1), "one block per dilation"),
        ("model.stacks", _int_min(1), "repeats of the dilation pattern"),
        ("model.dropout", _real(0.0, 1.0), "the dropout rate on each block's output"),
        ("data.seq_len", _int_min(1), "tokens per training window"),
    ),
}

#: Embedding variants that keep a frozen table: without ``model.vectors`` it would stay random.
FROZEN_EMBEDDINGS = ("static", "multichannel")


def _get(config, dotted: str):
    node = config
    for part in dotted.split("."):
        node = node[part]
    return node


def _problems(config) -> list[str]:
    out = []
    for key, (ok, expected), what in RULES + MODEL_RULES.get(config.model.name, ()):
        value = _get(config, key)
        if not ok(value):
            out.append(f"config.{key}={value!r}: expected {expected} ({what})")
    folds, fold = config.data.num_folds, config.data.fold
    if _is_int(folds) and folds >= 2 and not (_is_int(fold) and 0 <= fold < folds):
        out.append(f"config.data.fold={fold!r}: expected an int with 0 <= fold < config.data.num_folds={folds} (the "
                   f"cross-validation fold used as test set)")
    m = config.model
    if m.name == "text_cnn" and m.embedding in FROZEN_EMBEDDINGS and not m.vectors:
        out.append(f"config.model.embedding={m.embedding!r} keeps the word vectors frozen, but config.model.vectors is "
                   f"empty, so they would stay random and never train: set config.model.vectors to a word2vec/GloVe "
                   f"text file, or use config.model.embedding='rand' (random vectors that train)")
    return sorted(out)


def validate(config) -> None:
    """Check the numeric fields of a config (the run's, and those of its model: :data:`MODEL_RULES`) before anything
    runs.

    Raises:
      ConfigError: one line naming every bad field, its value and the range expected (``config.train.epochs=-1:
        expected an int >= 1 ...``); also a frozen embedding (``"static"``, ``"multichannel"``) without
        ``config.model.vectors``.
    """
    from jaxconv.configs import ConfigError

    problems = _problems(config)
    if problems:
        raise ConfigError("; ".join(problems) + ".")
