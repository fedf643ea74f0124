r"""Kim (2014)'s CNN for sentence classification (CNN-rand by default), with named presets.

Run, from an installed jaxconv or a checkout::

    jaxconv train text_cnn:<preset> --workdir runs/<name>
    python experiments/text_cnn.py --config configs/text_cnn.py:<preset> --workdir runs/<name>   # the same

In Python: ``jaxconv.load_config("text_cnn:mr", {"train.epochs": 5})``. Any field can be overridden:
``--config.train.epochs=5``, ``--config.model.embedding=static``, ``--config.data.fold=3``; an unknown key is an
error. Real datasets are read from ``--config.data.path``, else ``$JAXCONV_DATA``, else
``<repo>/../shared/datasets/sentences`` (:func:`jaxconv.data.default_sentence_root`). Runtimes below were measured on 2 CPU cores
(one device), jax import and compilation included. Accuracies are the test accuracy of the model from the best dev
epoch: one CPU run, and the mean +- std over 3 seeds from ``experiments/kim2014.py`` (docs/results/kim2014.md).

Presets (``PRESETS`` holds the same text; ``experiments/text_cnn.py --help`` prints it):

%s
Kim's hyperparameters in every real-data preset: batch 50, 25 epochs, Adadelta (rho 0.95, eps 1e-6, learning
rate 1.0), dropout 0.5 on the pooled features, max-norm 3 on each class's weight vector, filter widths 3,4,5 with
100 maps each, 300-d random word vectors (uniform[-0.25, 0.25]), min_count 1, 4 zero pads each side; and, as
Kim's code does, dropout scaled at test time (so max-norm 3 bounds the same weights as his), a classifier that
starts at zero, and a vocabulary over the texts of every split.
``config.train.steps=N`` caps the total number of steps (smoke runs); ``config.train.patience=N`` stops after N
epochs without dev improvement (0: run all epochs; the best dev epoch is scored either way).
"""

from __future__ import annotations

import ml_collections
from ml_collections import config_dict

PRESETS = {
    "synthetic": """\
  synthetic (default): planted-motif corpus (jaxconv.data.synthetic_dataset, 2,000 sentences, 2 classes whose
    motifs use the same words in different orders, so word order is needed). A small CNN (64-d embeddings,
    32 filters per width 3,4,5), 3 epochs of Adam, one bucket (one compilation of each step).
      jaxconv train text_cnn --workdir runs/synthetic
    Expected: 7-13 s wall (mostly start-up and compilation); test accuracy 1.00 (>= 0.95).
""",
    "mr": """\
  mr: movie-review polarity (10,662 sentences; 10-fold CV, config.data.fold in 0..9, 10% of the training
    folds held out as dev). Kim's CNN-rand.
      jaxconv train text_cnn:mr --workdir runs/mr/fold0
    Expected: 5-7 s per epoch, ~2.5 min for 25 epochs; fold 0, seed 0: test accuracy 0.776. Over 3 seeds x 10
    folds: 76.0 +- 1.0 (Kim: 76.1, the mean over 10 folds; docs/results/kim2014.md).
""",
    "sst2": """\
  sst2: SST-2 binary, Kim's CNN-rand. When the treebank's trees are in sst-trees beside the sentence directory
    (config.data.sst_phrases, decided as the config is built): trained on every labelled phrase of the training
    trees, neutral dropped, each distinct (label, text) once, as Kim did (77,201 / 872 / 1,821).
      jaxconv train text_cnn:sst2 --workdir runs/sst2
    Expected: 33 s per epoch on an idle 2-core CPU (47-135 s shared), 20-40 min for 25 epochs; 3 seeds on CPU:
    84.0 +- 0.3 (Kim: 82.7). Sentences only (--config.data.sst_phrases=False; 6,920 / 872 / 1,821): 4-6 s per
    epoch, ~2.5 min; seed 0: 0.801; 3 seeds on GPU: 80.2 +- 0.5.
""",
    "sst1": """\
  sst1: SST-1 five classes, Kim's CNN-rand; with the trees (see sst2), trained on every labelled phrase of the
    training trees (157,401 / 1,101 / 2,210).
      jaxconv train text_cnn:sst1 --workdir runs/sst1
    Expected: 60-146 s per epoch on 2 shared CPU cores, 30-50 min for 25 epochs; 3 seeds on CPU: 44.2 +- 0.4 (Kim: 45.0).
    Sentences only (--config.data.sst_phrases=False; 8,544 / 1,101 / 2,210): 5-7 s per epoch, ~3 min; seed 0:
    0.411; 3 seeds on GPU: 40.3 +- 1.1.
""",
    "trec": """\
  trec: TREC question type, 6 classes (5,452 train with 10% held out as dev / 500 test); case kept. Kim's CNN-rand.
      jaxconv train text_cnn:trec --workdir runs/trec
    Expected: 3-4 s per epoch, ~1.5 min for 25 epochs; seed 0: test accuracy 0.896; 3 seeds: 90.4 +- 0.3
    (Kim: 91.2).
""",
    "subj": """\
  subj: subjectivity, 2 classes (subj.all, 10,000 sentences, 5,000 each, which you bring: Kim's file is public but
    not in the shared folder; 0 = subjective, 1 = objective). 10-fold CV as for mr. Kim's CNN-rand.
      jaxconv train text_cnn:subj --workdir runs/subj/fold0 --config.data.path=DIR_WITH_subj.all
    Expected: accuracy not measured here; Kim: 89.6.
""",
    "cr": """\
  cr: customer-review polarity, 2 classes (custrev.all, which you bring: 3,775 lines, 1 = positive). 10-fold CV as
    for mr. Kim's CNN-rand; config.data.on_error = skip: the public file has 4 lines with a label and no text,
    skipped and counted in the log (3,771 examples: 1,366 negative, 2,405 positive).
      jaxconv train text_cnn:cr --workdir runs/cr/fold0 --config.data.path=DIR_WITH_custrev.all
    Expected: accuracy not measured here; Kim: 79.8.
""",
    "mpqa": """\
  mpqa: MPQA opinion polarity, 2 classes (mpqa.all, which you bring: 10,606 lines of a few words, 1 = positive).
    10-fold CV as for mr. Kim's CNN-rand; config.data.on_error = skip: the public file has 3 lines with a label and
    no text, skipped and counted in the log (10,603 examples: 7,292 negative, 3,311 positive).
      jaxconv train text_cnn:mpqa --workdir runs/mpqa/fold0 --config.data.path=DIR_WITH_mpqa.all
    Expected: accuracy not measured here; Kim: 83.4.
""",
    "file": """\
  file: your own labelled file(s) with Kim's CNN-rand settings: --config.data.train=PATH, optional --config.data.dev
    and --config.data.test (no test file: 10-fold CV, fold config.data.fold; no dev file: 10% of train held out).
    Formats: <label> <text> lines, TSV/CSV with a header, JSON lines (config.data.format, text_field, label_field);
    integer or string labels (string labels become ids in sorted order, their names kept in run.json and the log).
      jaxconv train text_cnn:file --workdir runs/mine --config.data.train=train.tsv --config.data.test=test.tsv
    Expected: depends on your data; about the cost of mr for 10,000 sentences of 20 words.
""",
}
__doc__ = __doc__ % "".join(PRESETS.values())

def _kim(config: ml_collections.ConfigDict, name: str) -> ml_collections.ConfigDict:
    config.data.name = name
    config.data.tokenizer = ""          # "": the dataset's own (sst for SST, kim_cased for TREC, kim for the others)
    config.data.pad_left = 4            # Kim: max(widths) - 1 zero vectors before and after each sentence
    config.data.pad_right = 4
    config.model.embed_dim = 300
    config.model.widths = (3, 4, 5)
    config.model.filters = 100
    config.train.optimizer = "adadelta"
    config.train.learning_rate = 1.0
    config.train.batch_size = 50
    config.train.epochs = 25
    # Kim's code (conv_net_sentence.py, conv_net_classes.py, process_data.py), not only the paper:
    config.model.dropout_scaling = "test-time"  # mask in training, x 0.5 at test: max-norm 3 bounds Kim's W
    config.model.classifier_init = "zeros"      # LogisticRegression starts from W = 0
    config.data.vocab_from = "all"              # vocabulary over every split's texts (test-only words: random rows)
    if name in ("sst1", "sst2"):
        # Kim trained on every labelled phrase of the training trees. On when the three tree files are in
        # jaxconv.data.default_sst_root() as this config is built, so config.json records which data a run used.
        from jaxconv.data.sst import sst_trees_present

        config.data.sst_phrases = sst_trees_present()
    return config


def get_config(preset: str | None = None) -> ml_collections.ConfigDict:
    """The config of ``preset`` (``None`` or ``""``: ``"synthetic"``); see the module docstring."""
    preset = (preset or "synthetic").lower()
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} of text_cnn; expected one of {sorted(PRESETS)}.")
    config = ml_collections.ConfigDict()
    config.preset = preset
    config.seed = 0
    config.progress = True              # rich progress bar, only when stderr is a terminal
    config.tensorboard = True
    config.distributed = False          # True (or env JAXCONV_DISTRIBUTED=1): jax.distributed.initialize()

    config.data = ml_collections.ConfigDict()
    config.data.name = "synthetic"      # synthetic | mr | sst1 | sst2 | trec | subj | cr | mpqa | file | hf:<name>
    config.data.path = ""                # "": $JAXCONV_DATA, else <repo>/../shared/datasets/sentences
    config.data.train = ""              # name=file: the training file (required), and the optional
    config.data.dev = ""                #   dev file (none: dev_fraction of train held out) and
    config.data.test = ""               #   test file (none: num_folds-fold CV, fold `fold` is the test set)
    config.data.format = "auto"         # auto (by extension, then content) | label_text | tsv | csv | jsonl
    config.data.text_field = ""         # tsv/csv/jsonl text column; "": `text`, else `sentence`
    config.data.label_field = "label"   # tsv/csv/jsonl label column (integers or strings)
    config.data.on_error = "raise"      # malformed lines: raise (file:line) | skip (counted and reported)
    config.data.max_length = 0          # truncate each text to this many tokens (0: no limit)
    config.data.sst_phrases = False     # sst1/sst2: train on every labelled phrase of the treebank's trees
    config.data.sst_trees = ""          # the trees' directory; "": sst-trees beside the sentence directory
    config.data.tokenizer = "whitespace"
    config.data.min_count = 1
    config.data.max_vocab = 0           # 0: no limit
    config.data.alphabet = ""           # "": the vocabulary of the texts | zhang | bytes: a fixed one (char models)
    config.data.vocab_from = "train"    # train: the training part only | all: every split's texts (Kim's code)
    config.data.fold = 0                # CV fold used as test set when the data has no test split (MR)
    config.data.num_folds = 10
    config.data.dev_fraction = 0.1      # held out of train when the data has no dev split (TREC, CV folds)
    config.data.split_seed = 0          # folds and hold-outs (fixed across training seeds)
    config.data.pad_left = 0
    config.data.pad_right = 0
    config.data.bucket_lengths = config_dict.placeholder(tuple)  # None: chosen from the data (<= max_buckets)
    config.data.max_buckets = 5
    config.data.synthetic = ml_collections.ConfigDict(dict(
        num_examples=2000, num_classes=2, vocab_size=500, length_range=(8, 40), motifs_per_class=3,
        motif_length=3, motifs_per_example=1, noise_motif_rate=0.0, seed=0))

    config.model = ml_collections.ConfigDict()
    config.model.name = "text_cnn"
    config.model.embed_dim = 64
    config.model.widths = (3, 4, 5)
    config.model.filters = 32
    config.model.dropout = 0.5
    config.model.embedding = "rand"     # rand | static | non-static | multichannel
    config.model.vectors = ""           # word2vec/GloVe text file for static / non-static / multichannel
    config.model.dropout_scaling = "inverted"  # inverted | test-time (Kim's code: mask in training, x (1-p) at test)
    config.model.classifier_init = "glorot"    # glorot | zeros (Kim's code)
    config.model.compute_dtype = "float32"     # float32 | bfloat16 (activations, convolutions; params stay float32)
    config.model.conv_impl = "xla"      # xla | im2col | fft | fused (all widths, one GEMM) | auto (fastest measured)

    config.train = ml_collections.ConfigDict()
    config.train.optimizer = "adam"     # adadelta (Kim) | adam | sgd
    config.train.learning_rate = 0.003
    config.train.lr_schedule = "constant"  # constant (Kim) | cosine | linear_warmup_cosine | step
    config.train.warmup_steps = 0       # linear_warmup_cosine: steps from 0 to learning_rate (0: 5% of training)
    config.train.lr_step_every = 0      # step: steps between drops (0: a third of training)
    config.train.lr_step_factor = 0.1   # step: the rate is multiplied by this at every drop
    config.train.rho = 0.95             # Adadelta
    config.train.eps = 1e-6             # Adadelta / Adam epsilon
    config.train.sparse_embedding = True  # Adadelta: lazy row-sparse update of the trained embedding table (exact)
    config.train.momentum = 0.0         # SGD
    config.train.batch_size = 50
    config.train.eval_batch_size = 0    # 0: batch_size
    config.train.epochs = 3
    config.train.steps = 0              # hard cap on total steps (0: none)
    config.train.patience = 0           # early stopping: epochs without dev improvement (0: off)
    config.train.max_norm = 3.0         # Kim: L2 norm of each class's weight vector <= 3 (0: off)
    config.train.max_norm_params = "classifier/kernel"
    config.train.log_every_steps = 50
    config.train.checkpoint_every_steps = 0  # also save mid-epoch every N steps (0: only at epoch ends)
    config.train.checkpoint_every_epochs = 1  # latest checkpoint every N epochs (0: only when training ends)
    config.train.steps_per_call = 0     # K train steps per dispatch (lax.scan); 0: auto, 1 on CPU, 8 on GPU/TPU
    config.train.keep = 2               # latest checkpoints kept (the best one is kept separately)

    if preset == "synthetic":
        config.data.max_buckets = 1     # one padded length (40): one train and one eval compilation
    else:
        _kim(config, preset)
    if preset in ("cr", "mpqa"):
        config.data.on_error = "skip"   # the public custrev.all / mpqa.all have lines with a label and no text
    return config
