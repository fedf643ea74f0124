"""From ``config.data`` to fixed-shape batches: load, split, tokenize, build the vocabulary, bucket.

Splits:

- a dataset with train, dev and test (SST-1, SST-2, synthetic) is used as given;
- no test split (MR): stratified ``config.data.num_folds``-fold cross-validation, fold ``config.data.fold`` is the
  test set, then a ``config.data.dev_fraction`` (10%) stratified dev hold-out from the remaining training part;
- no dev split (TREC, and each CV fold): ``dev_fraction`` of train held out as dev (Kim 2014: "For datasets without a
  standard dev set we randomly select 10% of the training data as the dev set").

Folds and hold-outs use ``config.data.split_seed`` (fixed across training seeds, so seeds vary only the model).

The vocabulary is built from the training part only by default (``config.data.vocab_from = "train"``): words seen
only in dev/test map to ``<unk>``. ``vocab_from = "all"`` counts the words of every split (texts only, never labels),
as Kim's ``process_data.py`` does: a word seen only in dev/test gets its own row, which training never updates (for
CNN-rand it stays a random vector). Dev and test batches use the training buckets' lengths (plus any longer ones they need), so
evaluation compiles at most one program per bucket.
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from jaxconv import data as jdata

__all__ = ["DataPipeline", "build_data", "data_root", "load_dataset", "split_dataset"]


@dataclasses.dataclass
class DataPipeline:
    """Everything the trainer needs from the data.

    Attributes:
      name: dataset name.
      vocab: :class:`jaxconv.data.Vocab` built on the training part (or every split's texts; ``vocab_from``).
      tokenizer: tokenizer name used.
      train, dev, test: :class:`jaxconv.data.BucketedBatches` (train shuffled per ``(seed, epoch)``; dev/test in
        fixed order); ``test`` may be ``None`` only if the source has no labelled test data at all.
      num_classes: ``K``.
      label_names: ``K`` names or ``None``.
      sizes: examples per split.
      info: extra facts for the log (buckets, OOV rates, fold).
    """

    name: str
    vocab: Any
    tokenizer: str
    train: jdata.BucketedBatches
    dev: jdata.BucketedBatches
    test: jdata.BucketedBatches | None
    num_classes: int
    label_names: list[str] | None
    sizes: dict[str, int]
    info: dict[str, Any]


def data_root(config) -> pathlib.Path:
    """``config.data.path`` if set, else :func:`jaxconv.data.default_sentence_root` (``$JAXCONV_DATA`` or
    ``<repo>/../shared/datasets/sentences``)."""
    return pathlib.Path(config.data.path) if config.data.path else jdata.default_sentence_root()


def load_dataset(config) -> jdata.TextDataset:
    """The dataset ``config.data`` names, as read (no fold or hold-out applied yet; :func:`split_dataset` does that)."""
    d = config.data
    name = d.name
    if name == "synthetic":
        kw = d.synthetic.to_dict()
        if "length_range" in kw:
            kw["length_range"] = tuple(kw["length_range"])
        return jdata.synthetic_dataset(**kw)
    if name.startswith(("hf:", "tfds:")):
        return jdata.load_named_source(name)
    return jdata.load_named_source(name, root=data_root(config))


def _subset(lt: jdata.LabeledText, idx: np.ndarray, tag: str) -> jdata.LabeledText:
    return jdata.LabeledText(texts=[lt.texts[i] for i in idx], labels=[lt.labels[i] for i in idx],
                             path=f"{lt.path}[{tag}]", encoding=lt.encoding)


def split_dataset(ds: jdata.TextDataset, config) -> tuple[jdata.TextDataset, dict[str, Any]]:
    """Apply the CV fold and dev hold-out rules of this module's docstring; returns the dataset and split info."""
    d = config.data
    seed, frac = int(d.split_seed), float(d.dev_fraction)
    info: dict[str, Any] = {}
    train, dev, test = ds.train, ds.dev, ds.test
    if test is None:
        k, fold = int(d.num_folds), int(d.fold)
        if not 0 <= fold < k:
            raise ValueError(f"config.data.fold={fold} is out of range; expected 0 <= fold < config.data.num_folds={k}.")
        tr_idx, te_idx = jdata.stratified_kfold(train.labels, k, seed=seed)[fold]
        info.update(cv_fold=fold, cv_folds=k)
        test = _subset(train, te_idx, f"fold{fold}/test")
        if dev is None:
            tr_idx, dev_idx = jdata.holdout_dev(tr_idx, train.labels, fraction=frac, seed=seed)
            dev = _subset(train, dev_idx, f"fold{fold}/dev")
            info["dev_holdout"] = frac
        train = _subset(train, tr_idx, f"fold{fold}/train")
    elif dev is None:
        tr_idx, dev_idx = jdata.holdout_dev(len(train), train.labels, fraction=frac, seed=seed)
        dev = _subset(train, dev_idx, "dev")
        train = _subset(train, tr_idx, "train")
        info["dev_holdout"] = frac
    return ds.replace(train=train, dev=dev, test=test), info


def build_data(config, *, min_length: int) -> DataPipeline:
    """Build the pipeline from ``config.data`` and ``config.train.batch_size`` / ``eval_batch_size`` / ``seed``.

    Args:
      config: the experiment config.
      min_length: shortest bucket length (the model's widest filter).
    """
    d, t = config.data, config.train
    ds, info = split_dataset(load_dataset(config), config)
    tok_name = d.tokenizer or ds.extras.get("tokenizer", "kim")   # "": the dataset's own preprocessing
    tokenize = jdata.get_tokenizer(tok_name)
    tokens = {split: [tokenize(s) for s in getattr(ds, split).texts] if getattr(ds, split) is not None else None
              for split in ("train", "dev", "test")}
    vocab_from = d.vocab_from
    if vocab_from not in ("train", "all"):
        raise ValueError(f"config.data.vocab_from={vocab_from!r} is not known; expected 'train' (the training part "
                         f"only) or 'all' (the texts of every split, as Kim's code).")
    counted = tokens["train"] if vocab_from == "train" else [t for split in tokens.values() if split for t in split]
    vocab = jdata.Vocab.build(counted, min_count=int(d.min_count), max_size=int(d.max_vocab) or None)
    ids = {split: [vocab.encode(toks) for toks in toks_list] if toks_list is not None else None
           for split, toks_list in tokens.items()}

    pad_left, pad_right = int(d.pad_left), int(d.pad_right)
    floor = max(min_length, pad_left + pad_right + 1)
    buckets = d.bucket_lengths
    if buckets:
        buckets = tuple(int(b) for b in buckets)
    else:  # one set of lengths for all splits, chosen from all of them, so eval reuses train's programs
        needed = [len(x) + pad_left + pad_right for split in ids.values() if split for x in split]
        buckets = jdata.default_bucket_lengths(needed, min_length=floor,
                                               max_buckets=int(d.max_buckets))
    batch_size = int(t.batch_size)
    eval_batch_size = int(t.eval_batch_size) or batch_size
    common = dict(bucket_lengths=buckets, min_length=min_length, pad_left=pad_left, pad_right=pad_right)
    train = jdata.BucketedBatches(ids["train"], ds.train.labels, batch_size=batch_size, seed=int(config.seed),
                                  shuffle=True, **common)
    evals = {split: jdata.BucketedBatches(ids[split], getattr(ds, split).labels, batch_size=eval_batch_size,
                                          shuffle=False, **common) if ids[split] else None
             for split in ("dev", "test")}
    sizes = {split: len(getattr(ds, split)) for split in ("train", "dev", "test") if getattr(ds, split) is not None}
    info.update(buckets=list(buckets), truncated=train.truncated, vocab_size=len(vocab),
                vocab_from=vocab_from, dev_oov=vocab.oov_rate(tokens["dev"]))
    return DataPipeline(name=ds.name, vocab=vocab, tokenizer=tok_name if isinstance(tok_name, str) else "custom",
                        train=train, dev=evals["dev"], test=evals["test"], num_classes=ds.num_classes,
                        label_names=ds.label_names, sizes=sizes, info=info)
