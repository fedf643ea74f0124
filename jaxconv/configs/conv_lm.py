r"""A gated dilated causal-conv language model (:class:`jaxconv.models.ConvLM`), with named presets.

Run::

    jaxconv train conv_lm:<preset> --workdir runs/<name>
    python experiments/conv_lm.py --config configs/conv_lm.py --workdir runs/lm --sample "the film "

The run and training fields, and their defaults, are those of ``text_cnn`` (this config starts from it); the model,
the corpus (``config.data.name``: ``sentences``, ``file`` with ``config.data.train=PATH``, or ``synthetic``), the
byte tokenizer, the window length (``config.data.seq_len``) and the optimizer differ. A run scores bits per byte on
held-out lines (``test_bits_per_byte`` in ``final_metrics.json``): the dev and test lines are split off by line
(``config.data.dev_fraction`` each, ``config.data.split_seed``), after duplicates are removed. Runtimes were measured
on 2 CPU cores shared with other work.

Presets (``PRESETS``):

%s"""

from __future__ import annotations

import ml_collections

from jaxconv.configs import text_cnn

PRESETS = {
    "sentences": """\
  sentences (default): byte-level, trained on the sentences of the built-in datasets (MR, SST, TREC: ~28,000
    distinct lines, ~2.9 MB), 5% of the lines each for dev and test. 6 blocks of 128 channels, kernel 3,
    dilations 1, 2, 4, 8, 16, 32 (receptive field 127 bytes), windows of 256 bytes, Adam, 4 epochs.
      jaxconv train conv_lm --workdir runs/lm
    Measured: 64 s per epoch on the idle 2 cores (90-125 s shared), 6.9 min in all with the cores shared; held-out
    test lines: 2.07 bits per byte (dev 2.57 after one epoch, 2.08 after four; uniform over bytes: 8).
""",
    "tiny": """\
  tiny: the same model, 32 channels and dilations 1, 2, 4, on the planted-motif corpus: a quick check (tests).
      jaxconv train conv_lm:tiny --workdir runs/lm_tiny
""",
}
__doc__ = __doc__ % "".join(PRESETS.values())


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    """The config of ``preset`` (``None`` or ``""``: ``"sentences"``); see the module docstring."""
    preset = (preset or "sentences").lower()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} of conv_lm; expected one of {sorted(PRESETS)}.")
    config = text_cnn.get_config("synthetic")
    config.preset = preset

    config.model = ml_collections.ConfigDict()
    config.model.name = "conv_lm"
    config.model.embed_dim = 64
    config.model.channels = 128
    config.model.kernel_size = 3
    config.model.dilations = (1, 2, 4, 8, 16, 32)   # one GLU block each; receptive field 1 + 2 * 63 = 127
    config.model.stacks = 1
    config.model.dropout = 0.0
    config.model.conv_impl = "xla"               # xla | im2col | fft | auto (the fastest measured per shape)

    config.data.name = "sentences"                 # sentences | file (config.data.train=PATH) | synthetic
    config.data.tokenizer = "bytes"                # bytes | any word tokenizer (kim, whitespace, ...)
    config.data.seq_len = 256                      # tokens per training window
    config.data.dev_fraction = 0.05                # lines held out for dev, and as many for test
    config.data.max_buckets = 1

    config.train.optimizer = "adam"
    config.train.learning_rate = 2e-3
    config.train.max_norm = 0.0                    # no max-norm (a classifier's constraint)
    config.train.batch_size = 32
    config.train.epochs = 4
    config.train.log_every_steps = 50

    if preset == "tiny":
        config.data.name = "synthetic"
        config.data.seq_len = 64
        config.model.embed_dim, config.model.channels, config.model.dilations = 16, 32, (1, 2, 4)
        config.train.batch_size, config.train.epochs = 16, 2
    return config
