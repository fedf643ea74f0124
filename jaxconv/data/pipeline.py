"""From ``config.data`` to fixed-shape batches: load, split, tokenize, build the vocabulary, bucket.

Sources (``config.data.name``):

- ``"synthetic"``, the sentence benchmarks (``mr``, ``sst1``, ``sst2``, ``trec``, ``subj``, ``cr``, ``mpqa``) read
  from ``config.data.path``, ``"hf:..."`` / ``"tfds:..."``;
- ``sst1`` / ``sst2`` with ``config.data.sst_phrases``: every labelled phrase of the treebank's training trees, dev
  and test their root sentences (:func:`jaxconv.data.sst_phrase_dataset`), from ``config.data.sst_trees``;
- ``"file"``: your own ``config.data.train`` (and optional ``dev`` / ``test``) in ``config.data.format``
  (:func:`jaxconv.data.load_files`): string labels become ids in sorted order, their names kept.

Malformed lines follow ``config.data.on_error`` (``raise``: one error naming ``file:line``; ``skip``: counted, the
first few reported). ``config.data.max_length`` (> 0) truncates every text to that many tokens, counted in the log.

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
import logging
import pathlib
import warnings
from typing import Any

import numpy as np

from jaxconv import data as jdata
from jaxconv.data.fingerprint import data_fingerprint

__all__ = ["DataPipeline", "build_data", "data_root", "sst_trees_root", "data_files", "describe", "load_dataset",
           "split_dataset"]

logger = logging.getLogger("jaxconv.data")

#: The longest bucket is "far longer than the rest" when it exceeds this multiple of the 99th-percentile length.
LONG_BUCKET_RATIO = 4


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
      info: extra facts for the log and ``run.json`` (buckets, OOV rates, fold, skipped lines, truncated texts,
        file formats, the SST source).
      fingerprint: ``{split: "sha256:..."}`` of each split's texts and labels as read
        (:func:`jaxconv.data.fingerprint.data_fingerprint`); stored in ``run.json`` so that re-opening the run on
        other data is refused.
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
    fingerprint: dict[str, str] = dataclasses.field(default_factory=dict)


def data_root(config) -> pathlib.Path:
    """``config.data.path`` if set, else :func:`jaxconv.data.default_sentence_root` (``$JAXCONV_DATA`` or
    ``<repo>/../shared/datasets/sentences``)."""
    return pathlib.Path(config.data.path) if config.data.path else jdata.default_sentence_root()


def sst_trees_root(config) -> pathlib.Path:
    """``config.data.sst_trees`` if set, else :func:`jaxconv.data.default_sst_root`."""
    return pathlib.Path(config.data.sst_trees) if config.data.sst_trees else jdata.default_sst_root()


def _sst_key(config) -> str:
    key = jdata.canonical_name(config.data.name)
    if key not in ("sst1", "sst2"):
        raise ValueError(f"config.data.sst_phrases=True trains on the phrases of the sentiment treebank, for "
                         f"config.data.name sst1 or sst2; got config.data.name={config.data.name!r}. Set "
                         f"--config.data.sst_phrases=False.")
    return key


def data_files(config) -> dict[str, pathlib.Path]:
    """The files ``config.data`` reads, ``{split: path}`` (empty for synthetic and ``hf:`` / ``tfds:`` sources).

    For the sentence benchmarks, the files under :func:`data_root`; for ``sst_phrases``, the three tree files;
    for ``"file"``, the files named. Whether they exist is not checked here.
    """
    d = config.data
    if d.sst_phrases:
        _sst_key(config)
        return jdata.sst_tree_files(sst_trees_root(config), check=False)
    if d.name == "file":
        return {split: pathlib.Path(f) for split in ("train", "dev", "test") if (f := d[split])}
    key = jdata.canonical_name(d.name)
    if key in jdata.SENTENCE_DATASETS:
        return {split: data_root(config) / f for split, f in jdata.SENTENCE_DATASETS[key]["files"].items()}
    return {}


def load_dataset(config) -> jdata.TextDataset:
    """The dataset ``config.data`` names, as read (no fold or hold-out applied yet; :func:`split_dataset` does that)."""
    d = config.data
    name = d.name
    if d.sst_phrases:
        return jdata.sst_phrase_dataset(sst_trees_root(config), fine=_sst_key(config) == "sst1")
    if name != "file" and (d.train or d.dev or d.test):
        raise ValueError(f"config.data.train/dev/test name your own files, read with config.data.name='file'; got "
                         f"config.data.name={name!r}. Add --config.data.name=file.")
    if name == "synthetic":
        kw = d.synthetic.to_dict()
        if "length_range" in kw:
            kw["length_range"] = tuple(kw["length_range"])
        return jdata.synthetic_dataset(**kw)
    if name == "file":
        if not d.train:
            raise ValueError("config.data.name='file' reads your own files: name the training file with "
                             "--config.data.train=PATH (and optionally --config.data.dev=PATH, "
                             "--config.data.test=PATH).")
        return jdata.load_files(d.train, d.dev or None, d.test or None, format=d.format, text_field=d.text_field,
                                label_field=d.label_field, on_error=d.on_error)
    if name.startswith(("hf:", "tfds:")):
        try:
            return jdata.load_named_source(name)
        except ImportError as e:   # the optional package is missing: a bad setting for this install, one line
            raise ValueError(f"config.data.name={name!r}: {e}") from None
    return jdata.load_named_source(name, root=data_root(config), on_error=d.on_error)


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
        smallest = min(np.bincount(train.labels, minlength=ds.num_classes))
        if smallest < k:
            raise ValueError(f"{ds.name}: there is no test split, so config.data.num_folds={k}-fold cross-validation "
                             f"makes one, which needs at least {k} examples of every class; the smallest class has "
                             f"{smallest}. Give a test file (--config.data.test=PATH)"
                             + (f" or fewer folds (--config.data.num_folds=N, 2 <= N <= {smallest})." if smallest >= 2
                                else " or more examples."))
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
    max_length = int(d.max_length)
    if max_length < 0:
        raise ValueError(f"config.data.max_length={max_length} must be >= 0 (tokens per text; 0: no limit).")
    loaded = load_dataset(config)
    ds, info = split_dataset(loaded, config)
    info.update(_source_info(loaded))
    tok_name = d.tokenizer or ds.extras.get("tokenizer", "kim")   # "": the dataset's own preprocessing
    tokenize = jdata.get_tokenizer(tok_name)
    tokens = {split: [tokenize(s) for s in getattr(ds, split).texts] if getattr(ds, split) is not None else None
              for split in ("train", "dev", "test")}
    _check_words(tokens["train"], tok_name, config, loaded)
    if max_length:
        cut = {split: sum(len(x) > max_length for x in toks) for split, toks in tokens.items() if toks is not None}
        tokens = {split: [x[:max_length] for x in toks] if toks is not None else None for split, toks in tokens.items()}
        info["max_length_truncated"] = cut
    vocab_from = d.vocab_from
    if vocab_from not in ("train", "all"):
        raise ValueError(f"config.data.vocab_from={vocab_from!r} is not known; expected 'train' (the training part "
                         f"only) or 'all' (the texts of every split, as Kim's code).")
    counted = tokens["train"] if vocab_from == "train" else [t for split in tokens.values() if split for t in split]
    if d.alphabet:   # a fixed vocabulary (the character CNN's alphabet): every other symbol is <unk>
        if d.alphabet not in jdata.ALPHABETS:
            raise ValueError(f"config.data.alphabet={d.alphabet!r} is not known; expected '' (the vocabulary of the "
                             f"training texts) or one of {sorted(jdata.ALPHABETS)}.")
        vocab = jdata.Vocab.from_alphabet(jdata.ALPHABETS[d.alphabet])
    else:
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
        _warn_long_bucket(needed, buckets, floor, int(t.batch_size))
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
    data = DataPipeline(name=ds.name, vocab=vocab, tokenizer=tok_name if isinstance(tok_name, str) else "custom",
                        train=train, dev=evals["dev"], test=evals["test"], num_classes=ds.num_classes,
                        label_names=ds.label_names, sizes=sizes, info=info, fingerprint=data_fingerprint(loaded))
    from jaxconv.train.mesh import is_primary

    if is_primary():
        for line in describe(data):
            logger.info(line)
    return data


def _check_words(train_tokens: list[list[str]], tok_name, config, loaded: jdata.TextDataset) -> None:
    """Refuse training texts that are all empty after tokenizing (the model would see padding alone)."""
    if not train_tokens or any(train_tokens):
        return
    tok = tok_name if isinstance(tok_name, str) else "custom"
    where = (f"config.data.train={config.data.train}" if config.data.name == "file" and config.data.train
             else f"{loaded.name} ({loaded.train.path})")
    raise ValueError(f"{where}: all {len(train_tokens)} training texts are empty after the {tok!r} tokenizer "
                     f"(config.data.tokenizer), so the model would train on padding alone; expected texts with words "
                     f"it keeps. Choose another tokenizer (--config.data.tokenizer=whitespace) or check the file's "
                     f"text column (config.data.format, config.data.text_field).")


def _source_info(ds: jdata.TextDataset) -> dict[str, Any]:
    """What ``run.json`` and the log record about where the examples came from."""
    out: dict[str, Any] = {"source": ds.extras.get("source")}
    skipped = {split: lt.skipped for split, lt in ds.splits().items() if lt.skipped}
    if skipped:
        out["skipped_lines"] = skipped
    for key in ("formats", "encodings", "sst_phrases", "train_sentences", "dedupe"):
        if key in ds.extras:
            out[key] = ds.extras[key]
    if "encodings" not in out:
        out["encodings"] = {split: lt.encoding for split, lt in ds.splits().items()}
    return out


def _warn_long_bucket(needed: list[int], buckets: tuple[int, ...], floor: int, batch_size: int) -> None:
    """Warn when the longest bucket is far longer than the rest of the data (a stray huge line)."""
    p99 = max(int(np.percentile(needed, 99)), floor)
    top = buckets[-1]
    if top > LONG_BUCKET_RATIO * p99:
        over = sum(n > LONG_BUCKET_RATIO * p99 for n in needed)
        warnings.warn(
            f"the longest bucket is {top} positions, {top / p99:.0f}x the 99th-percentile length ({p99}): {over} "
            f"example(s) need more than {LONG_BUCKET_RATIO * p99}, and each batch of that bucket computes "
            f"{batch_size} x {top} positions. Truncate long texts with --config.data.max_length=N (tokens).",
            stacklevel=3)


def describe(data: DataPipeline) -> list[str]:
    """The log lines about a pipeline's data beyond sizes and buckets: labels, source, skipped and cut texts."""
    info, lines = data.info, []
    if data.label_names is not None:
        lines.append(f"data {data.name}: labels {dict(enumerate(data.label_names))}")
    if info.get("sst_phrases"):
        lines.append(f"data {data.name}: training on {data.sizes['train']:,} distinct labelled phrases of "
                     f"{info['train_sentences']:,} training trees in {info['source']} (config.data.sst_phrases); dev "
                     f"and test are the trees' root sentences")
    elif data.name in ("sst1", "sst2"):
        lines.append(f"data {data.name}: training on the sentence files (config.data.sst_phrases=False)")
    if info.get("formats"):
        lines.append(f"data {data.name}: formats {info['formats']}, encodings {info['encodings']}")
    if info.get("skipped_lines"):
        lines.append(f"data {data.name}: skipped malformed lines (config.data.on_error='skip'): "
                     f"{info['skipped_lines']}")
    if info.get("max_length_truncated"):
        lines.append(f"data {data.name}: texts cut to config.data.max_length tokens: {info['max_length_truncated']}")
    return lines
