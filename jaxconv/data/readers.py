"""Readers for one-example-per-line labelled text files and the sentence benchmarks built on them.

File format (Kim 2014 and many text-CNN projects)::

    <integer label> <space> <sentence>

The benchmark files are not all UTF-8 (MR and TREC-train are Latin-1): without an explicit
``encoding`` a file is decoded as UTF-8, and lines that are not valid UTF-8 as Latin-1
(:func:`jaxconv.data.decode_lines`); :class:`LabeledText` records which was used. Lines are split on
``"\\n"`` only: Latin-1 text may contain ``"\\x85"`` (NEL), which :meth:`str.splitlines` would wrongly
treat as a line break.

>>> import os, tempfile
>>> d = tempfile.mkdtemp()
>>> p = os.path.join(d, "tiny.txt")
>>> _ = open(p, "wb").write("1 caf\\xe9 au lait  \\r\\n0 bad\\n".encode("latin-1"))
>>> lt = read_labeled_lines(p)
>>> lt.texts, lt.labels, lt.encoding
(['café au lait', 'bad'], [1, 0], 'latin-1')
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from jaxconv.data.lines import ON_ERROR_CHOICES, STRIP, LineProblems, check_on_error, decode_lines, snippet

__all__ = [
    "LabeledText",
    "TextDataset",
    "read_labeled_lines",
    "load_text_splits",
    "load_sentence_dataset",
    "default_sentence_root",
    "SENTENCE_DATASETS",
    "ON_ERROR_CHOICES",
    "canonical_name",
]

PathLike = Union[str, "os.PathLike[str]"]

#: An integer label, as the ``<label> <text>`` files and the other formats write it.
INT_LABEL = re.compile(r"[+-]?[0-9]+")
_EXPECTED = "expected '<integer label> <sentence>'"


@dataclass(frozen=True)
class LabeledText:
    """One split of a labelled text dataset.

    Attributes:
      texts: ``N`` sentences, stripped of surrounding whitespace, otherwise as in the file.
      labels: ``N`` integer labels, ``labels[i]`` belongs to ``texts[i]``.
      path: where the examples came from (a file path, or a tag such as ``"<synthetic>"``).
      encoding: the encoding used to decode the file (``"utf-8"``, ``"utf-8-sig"``, ``"latin-1"``
        or the one passed explicitly).
      skipped: malformed lines skipped with ``on_error="skip"`` (0 otherwise).
    """

    texts: list[str]
    labels: list[int]
    path: str
    encoding: str
    skipped: int = 0

    def __post_init__(self):
        if len(self.texts) != len(self.labels):
            raise ValueError(
                f"LabeledText({self.path!r}): texts and labels must have the same length; "
                f"got len(texts)={len(self.texts)}, len(labels)={len(self.labels)}.")

    def __len__(self) -> int:
        return len(self.texts)

    def label_counts(self) -> dict[int, int]:
        """``{label: number of examples}``, sorted by label."""
        return dict(sorted(Counter(self.labels).items()))


@dataclass(frozen=True)
class TextDataset:
    """A named dataset: a training split, optional dev/test splits and label metadata.

    Attributes:
      name: e.g. ``"mr"``, ``"sst2"``, ``"synthetic"``, ``"hf:glue/sst2"``.
      train: the training split.
      dev: the validation split, or ``None`` (MR: use cross-validation; TREC: hold out 10% of train,
        see :func:`jaxconv.data.holdout_dev`).
      test: the test split, or ``None`` (MR).
      num_classes: ``C``; labels are ``0 .. C-1``.
      label_names: ``C`` names, or ``None`` when unknown.
      extras: anything else. Keys used here: ``"tokenizer"`` (the tokenizer name that reproduces
        the usual preprocessing of this dataset, for :func:`jaxconv.data.get_tokenizer`),
        ``"motifs"`` / ``"corpus"`` / ``"indices"`` (synthetic corpus ground truth),
        ``"source"`` (where it was loaded from).
    """

    name: str
    train: LabeledText
    dev: LabeledText | None
    test: LabeledText | None
    num_classes: int
    label_names: list[str] | None = None
    extras: dict[str, Any] = field(default_factory=dict)

    def splits(self) -> dict[str, LabeledText]:
        """The splits that exist, in the order train, dev, test."""
        out = {"train": self.train}
        if self.dev is not None:
            out["dev"] = self.dev
        if self.test is not None:
            out["test"] = self.test
        return out

    def replace(self, **changes) -> "TextDataset":
        """A copy with some fields replaced (e.g. ``dev=`` after a hold-out)."""
        return dataclasses.replace(self, **changes)


def read_labeled_lines(path: PathLike, *, encoding: str | None = None, on_error: str = "raise") -> LabeledText:
    """Read ``<integer label> <sentence>`` lines, one example per line.

    Args:
      path: the file.
      encoding: decode with this codec; ``None``: UTF-8, and Latin-1 for the lines that are not valid UTF-8
        (:func:`jaxconv.data.decode_lines`: a Latin-1 file reads as Latin-1, a UTF-8 file with a few bad lines
        keeps its UTF-8 text and warns naming them).
      on_error: ``"raise"`` (default): a blank line, a label that is not an integer, or a label with
        no sentence after it raises ``ValueError`` naming ``file:line``, the offending text and the
        expected form. ``"skip"``: such lines are skipped, counted in ``skipped`` and reported in one
        warning (the count and the first few ``file:line`` reasons). A final line break does not count as a
        blank line.

    Returns:
      :class:`LabeledText` with ``N`` texts (surrounding spaces, tabs and ``\\r`` stripped) and labels.

    Raises:
      FileNotFoundError: no such file.
      ValueError: malformed lines (``on_error="raise"``), no examples at all, undecodable bytes
        with an explicit ``encoding``, or an unknown ``on_error``.
    """
    check_on_error(on_error)
    p = Path(path)
    lines, used = decode_lines(p, encoding)
    texts: list[str] = []
    labels: list[int] = []
    problems = LineProblems(p, on_error, _EXPECTED)
    for lineno, raw in enumerate(lines, start=1):
        parsed = split_label_text(raw)
        if isinstance(parsed, str):
            problems.add(lineno, parsed)
        elif not INT_LABEL.fullmatch(parsed[0]):
            problems.add(lineno, f"cannot parse label {snippet(parsed[0], 20)} as an integer in line "
                                 f"{snippet(raw.strip(STRIP))}")
        else:
            labels.append(int(parsed[0]))
            texts.append(parsed[1])
    problems.warn()
    if not texts:
        raise ValueError(f"{p}: no examples found ({len(lines)} line(s), {problems.count} skipped); {_EXPECTED} "
                         f"per line.")
    return LabeledText(texts=texts, labels=labels, path=str(p), encoding=used, skipped=problems.count)


def split_label_text(raw: str) -> tuple[str, str] | str:
    """``"<label> <text>"`` -> ``(label, text)`` (both stripped of :data:`STRIP`, as every reader strips), or the problem with the line as a string (quoting
    at most 60 characters of it).

    >>> split_label_text("pos  a fine film \\r")
    ('pos', 'a fine film')
    >>> split_label_text("1")
    "no text after label '1' in line '1'"
    """
    line = raw.strip(STRIP)
    if not line:
        return "blank line"
    parts = re.split(r"[ \t]+", line, maxsplit=1)
    if len(parts) < 2 or not parts[1].strip(STRIP):
        return f"no text after label {snippet(parts[0], 20)} in line {snippet(line)}"
    return parts[0], parts[1].strip(STRIP)


# ---------------------------------------------------------------------------------------------------
# Named sentence benchmarks
# ---------------------------------------------------------------------------------------------------

#: Built-in sentence benchmarks: file names under the data root, classes, label names, and the
#: tokenizer that reproduces Kim (2014)'s preprocessing (``jaxconv.data.get_tokenizer``).
SENTENCE_DATASETS: dict[str, dict[str, Any]] = {
    "mr": dict(files={"train": "rt-polarity.all"}, num_classes=2,
               label_names=["negative", "positive"], tokenizer="kim"),
    "sst1": dict(files={"train": "stsa.fine.train", "dev": "stsa.fine.dev", "test": "stsa.fine.test"},
                 num_classes=5,
                 label_names=["very negative", "negative", "neutral", "positive", "very positive"],
                 tokenizer="sst"),
    "sst2": dict(files={"train": "stsa.binary.train", "dev": "stsa.binary.dev", "test": "stsa.binary.test"},
                 num_classes=2, label_names=["negative", "positive"], tokenizer="sst"),
    # The label order of TREC.*.all, checked against Li & Roth's class counts (ABBR: 86 train, 9 test).
    "trec": dict(files={"train": "TREC.train.all", "test": "TREC.test.all"}, num_classes=6,
                 label_names=["DESC", "ENTY", "ABBR", "HUM", "LOC", "NUM"], tokenizer="kim_cased"),
    # Public, not in the shared folder (a user brings them); the file names and label order of Kim's
    # and harvardnlp/sent-conv-torch's copies (subj.all: 0 = the subjective review snippets).
    "subj": dict(files={"train": "subj.all"}, num_classes=2, label_names=["subjective", "objective"],
                 tokenizer="kim"),
    "cr": dict(files={"train": "custrev.all"}, num_classes=2, label_names=["negative", "positive"],
               tokenizer="kim"),
    "mpqa": dict(files={"train": "mpqa.all"}, num_classes=2, label_names=["negative", "positive"],
                 tokenizer="kim"),
}

_ALIASES = {"sst-1": "sst1", "sst-2": "sst2", "sst_1": "sst1", "sst_2": "sst2", "rt-polarity": "mr",
            "custrev": "cr"}

_PATH_HINT = ("set the data directory with --config.data.path=DIR or the JAXCONV_DATA environment "
              "variable")


def default_sentence_root() -> Path:
    """Where the sentence benchmark files are looked for by default.

    ``$JAXCONV_DATA`` when set, else ``<repository>/../shared/datasets/sentences``. The path is
    returned whether or not it exists.
    """
    env = os.environ.get("JAXCONV_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "sentences"


def canonical_name(name: str) -> str:
    """A sentence benchmark's name as :data:`SENTENCE_DATASETS` spells it (``"SST-2"`` -> ``"sst2"``); other names
    lower-cased."""
    key = name.lower()
    return _ALIASES.get(key, key)


def _check_labels(name: str, splits: Mapping[str, LabeledText], num_classes: int | None) -> int:
    """Check labels are ``0..C-1`` and every split has the same label set; return ``C``."""
    train = splits["train"]
    train_set = set(train.labels)
    C = num_classes if num_classes is not None else max(train_set) + 1
    expected = set(range(C))
    for split, lt in splits.items():
        bad = sorted(set(lt.labels) - expected)
        if bad:
            raise ValueError(
                f"{name}: labels must be 0..{C - 1} (num_classes={C}); {split} file {lt.path!r} has "
                f"label(s) {bad}.")
    if train_set != expected:
        raise ValueError(
            f"{name}: labels must be 0..{C - 1} (num_classes={C}) and all present in train; "
            f"train file {train.path!r} has labels {sorted(train_set)} (missing {sorted(expected - train_set)}).")
    for split, lt in splits.items():
        s = set(lt.labels)
        if s != train_set:
            raise ValueError(
                f"{name}: label sets differ between splits: train file {train.path!r} has labels "
                f"{sorted(train_set)}, {split} file {lt.path!r} has labels {sorted(s)}.")
    return C


def load_text_splits(name: str, files: Mapping[str, PathLike], *, num_classes: int | None = None,
                     label_names: Sequence[str] | None = None, encoding: str | None = None,
                     on_error: str = "raise", extras: Mapping[str, Any] | None = None) -> TextDataset:
    """Load a dataset from ``{"train": path, "dev": path, "test": path}`` (dev and test optional).

    Every file is read with :func:`read_labeled_lines`. Labels must be ``0 .. C-1`` with every label
    present in train, and every split must have the same label set as train.

    Args:
      name: the dataset's name.
      files: split name -> file; ``"train"`` is required; other keys must be ``"dev"`` / ``"test"``.
      num_classes: ``C``; default ``max(train labels) + 1``.
      label_names: ``C`` names, optional.
      encoding, on_error: passed to :func:`read_labeled_lines`.
      extras: stored in :attr:`TextDataset.extras`.

    Raises:
      FileNotFoundError: a file is missing (the message names it).
      ValueError: bad labels, different label sets between splits, unknown split names.
    """
    unknown = sorted(set(files) - {"train", "dev", "test"})
    if "train" not in files or unknown:
        raise ValueError(f"files must have a 'train' key and only 'train', 'dev', 'test'; got keys "
                         f"{sorted(files)}.")
    splits: dict[str, LabeledText] = {}
    for split in ("train", "dev", "test"):
        if split in files:
            path = Path(files[split])
            if not path.is_file():
                raise FileNotFoundError(
                    f"{name}: {split} file not found: {str(path)!r} ({name} expects {path.name} in "
                    f"{str(path.parent)!r}); {_PATH_HINT}.")
            splits[split] = read_labeled_lines(path, encoding=encoding, on_error=on_error)
    C = _check_labels(name, splits, num_classes)
    if label_names is not None and len(label_names) != C:
        raise ValueError(f"{name}: label_names must have num_classes={C} entries; got {len(label_names)}.")
    return TextDataset(name=name, train=splits["train"], dev=splits.get("dev"), test=splits.get("test"),
                       num_classes=C, label_names=list(label_names) if label_names is not None else None,
                       extras=dict(extras or {}))


def load_sentence_dataset(name: str, root: PathLike | None = None, *, encoding: str | None = None,
                          on_error: str = "raise") -> TextDataset:
    """Load one of the sentence benchmarks by name from ``root``.

    ===========  ================================  =======  ===========================
    name         files under ``root``              classes  splits
    ===========  ================================  =======  ===========================
    ``"mr"``     ``rt-polarity.all``               2        train only (use 10-fold CV)
    ``"sst1"``   ``stsa.fine.{train,dev,test}``    5        train / dev / test
    ``"sst2"``   ``stsa.binary.{train,dev,test}``  2        train / dev / test
    ``"trec"``   ``TREC.{train,test}.all``         6        train / test (hold out dev)
    ``"subj"``   ``subj.all``                      2        train only (use 10-fold CV)
    ``"cr"``     ``custrev.all``                   2        train only (use 10-fold CV)
    ``"mpqa"``   ``mpqa.all``                      2        train only (use 10-fold CV)
    ===========  ================================  =======  ===========================

    ``extras["tokenizer"]`` names Kim (2014)'s preprocessing for the dataset: ``"kim"`` (MR),
    ``"sst"`` (SST, already tokenised and lower-cased), ``"kim_cased"`` (TREC keeps case); ``"kim"`` for Subj,
    CR and MPQA. Those three files are public but not in the shared folder: bring them.

    Args:
      name: one of ``"mr"``, ``"sst1"``, ``"sst2"``, ``"trec"``, ``"subj"``, ``"cr"``, ``"mpqa"``
        (case-insensitive; ``"sst-2"`` etc. accepted).
      root: the directory holding the files; default :func:`default_sentence_root`.
      encoding, on_error: passed to :func:`read_labeled_lines`.

    Raises:
      ValueError: unknown name (the message lists the known ones), bad labels.
      FileNotFoundError: a missing file, naming the path.
    """
    key = canonical_name(name)
    if key not in SENTENCE_DATASETS:
        raise ValueError(f"Unknown sentence dataset name={name!r}; known: {sorted(SENTENCE_DATASETS)}.")
    spec = SENTENCE_DATASETS[key]
    root = Path(root) if root is not None else default_sentence_root()
    if not root.is_dir():
        raise FileNotFoundError(f"{key}: data directory not found: {str(root)!r} (expected "
                                f"{', '.join(spec['files'].values())} there); {_PATH_HINT}.")
    files = {split: root / fname for split, fname in spec["files"].items()}
    return load_text_splits(key, files, num_classes=spec["num_classes"], label_names=spec["label_names"],
                            encoding=encoding, on_error=on_error,
                            extras={"tokenizer": spec["tokenizer"], "source": str(root)})
