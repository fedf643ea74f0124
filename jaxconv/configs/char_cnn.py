r"""Zhang, Zhao and LeCun (2015)'s character-level CNN (:class:`jaxconv.models.CharCNN`), with named presets.

Run::

    jaxconv train char_cnn:<preset> --workdir runs/<name>
    jaxconv explain char_cnn:zhang2015          # the paper's full-size model: 1014 -> 336 -> 110 -> ... -> 34

The run, data and training fields, and their defaults, are those of ``text_cnn`` (this config starts from it);
only the model, the tokenizer (characters, lower-cased, over Zhang's alphabet: ``config.data.alphabet = "zhang"``),
the fixed input length (``config.model.length``: every text padded or cut to it) and the optimizer differ. The
paper trained on hundreds of thousands of documents; the presets for the sentence files scale the model down so it
trains on 2 CPU cores in minutes. Runtimes and accuracies below were measured on 2 CPU cores shared with other
work.

Presets (``PRESETS``):

%s"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from jaxconv.configs import text_cnn

PRESETS = {
    "synthetic": """\
  synthetic (default): the planted-motif corpus of text_cnn:synthetic, a small character CNN over its words
    (length 160), 3 epochs of Adam: a quick check that the pipeline trains.
      jaxconv train char_cnn --workdir runs/char_synthetic
""",
    "mr": """\
  mr: movie-review polarity (10-fold CV, fold config.data.fold), length 256 (99% of the sentences fit).
      jaxconv train char_cnn:mr --workdir runs/char_mr/fold0
    Measured: 4 s per epoch, 46 s in all; fold 0 stays at the majority class (test accuracy 0.50, also at learning
    rates 3e-3 and 3e-4): 8,636 training sentences are too few for a character model, as for sst2's sentences.
""",
    "sst2": """\
  sst2: SST-2 binary, length 256 (99% of the sentences fit). With the treebank's trees present (as for
    text_cnn:sst2), trained on its 77,201 labelled phrases, dev and test the root sentences (872 / 1,821); 10 epochs.
      jaxconv train char_cnn:sst2 --workdir runs/char_sst2
    Measured: 36-41 s per epoch, 6.5 min in all; seed 0: test accuracy 0.751 (best dev 0.758 at epoch 7; majority
    class 0.50). On the 6,920 training sentences alone (--config.data.sst_phrases=False) the model stays at the
    majority class for 20 epochs: too few examples for a character model.
""",
    "trec": """\
  trec: TREC question type, 6 classes, length 128 (99% of the questions fit); case kept, as for text_cnn:trec.
    Adam at 3e-3 for 20 epochs (at 1e-3 it is still climbing after 15).
      jaxconv train char_cnn:trec --workdir runs/char_trec
    Measured: 1.2 s per epoch, 40 s in all; seed 0: test accuracy 0.788 (majority class 0.28; Kim's word
    CNN: 0.90).
""",
    "zhang2015": """\
  zhang2015: the paper's large model (input 1014, 1024 maps, dense 2048, N(0, 0.02) weights, SGD with momentum 0.9
    and learning rate 0.01): 96 million parameters, for `jaxconv explain`; training it needs a large corpus and an
    accelerator (data: your own file, --config.data.name=file --config.data.train=PATH).
      jaxconv explain char_cnn:zhang2015
""",
}
__doc__ = __doc__ % "".join(PRESETS.values())

#: Fixed input length per preset (characters).
LENGTHS = {"synthetic": 160, "mr": 256, "sst2": 256, "trec": 128, "zhang2015": 1014}


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    """The config of ``preset`` (``None`` or ``""``: ``"synthetic"``); see the module docstring."""
    preset = (preset or "synthetic").lower()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} of char_cnn; expected one of {sorted(PRESETS)}.")
    config = text_cnn.get_config("synthetic" if preset in ("synthetic", "zhang2015") else preset)
    config.preset = preset

    config.model = ml_collections.ConfigDict()
    config.model.name = "char_cnn"
    config.model.length = LENGTHS[preset]         # every text padded or cut to this many characters
    config.model.kernels = (7, 7, 3, 3, 3, 3)     # Zhang et al., Table 1
    config.model.pool_after = (0, 1, 5)           # max-pool 3 after convolutions 1, 2 and 6
    config.model.pool_size = 3
    config.model.features = 64                    # the paper: 1024 (large) or 256 (small)
    config.model.hidden = 256                     # the paper: 2048 (large) or 1024 (small)
    config.model.dropout = 0.5
    config.model.embedding = "onehot"             # onehot (the paper's quantization) | learned
    config.model.embed_dim = 16                   # learned only
    config.model.init_std = config_dict.placeholder(float)  # None: LeCun-normal; the paper: 0.02 (large), 0.05 (small)
    config.model.conv_impl = "xla"               # xla | im2col | fft | auto (the fastest measured per shape)

    config.data.tokenizer = "chars" if preset != "trec" else "chars_cased"
    config.data.alphabet = "zhang" if preset != "trec" else ""   # trec keeps case: its characters, from the data
    config.data.pad_left = config.data.pad_right = 0
    config.data.max_buckets = 1

    config.train.optimizer = "adam"
    config.train.learning_rate = 1e-3
    config.train.max_norm = 0.0                   # no max-norm (Zhang et al. used none)
    config.train.batch_size = 32
    config.train.epochs = {"synthetic": 3, "mr": 10, "sst2": 10, "trec": 20, "zhang2015": 10}[preset]
    config.train.patience = 0
    if preset == "trec":
        config.train.learning_rate = 3e-3

    if preset == "zhang2015":
        config.model.features, config.model.hidden, config.model.init_std = 1024, 2048, 0.02
        config.train.optimizer, config.train.learning_rate, config.train.momentum = "sgd", 0.01, 0.9
        config.train.batch_size = 128
    return config
