"""The Stanford Sentiment Treebank from its parse trees: sentences and every labelled phrase.

The treebank ships one tree per line in Penn-Treebank brackets, a sentiment label 0-4 on every node::

    (3 (2 (2 The) (2 Rock)) (4 (2 is) ...) (2 .))

:func:`read_sst_trees` returns, for each tree file, the root sentences with their labels and every labelled node
(leaves, inner phrases and the root) with its label. :func:`sst_phrase_dataset` turns the three files
``train.txt`` / ``dev.txt`` / ``test.txt`` into the training set Kim (2014) used: every labelled phrase of the
training trees (the sentences are among them: a root is a phrase), scored on the root sentences of dev and test.

Preprocessing, so that the texts match Kim's sentence files (``stsa.fine.*`` / ``stsa.binary.*``, the trees'
root sentences): the leaves of a node joined by single spaces, then lower-cased. Nothing else: the PTB escapes
stay (``-LRB-`` -> ``-lrb-``, ``\\/``), as in those files; the ``"sst"`` tokenizer then treats phrases and sentence
files alike. Leaves are separated by ASCII spaces only (a few leaves hold a no-break space, ``"8\\xa01\\/2"``).

Duplicates: the same phrase occurs in many trees (``the``, ``,``, ``the film``); the training set keeps each distinct
``(label, text)`` pair once, in order of first occurrence (a pre-order walk of the trees, file order), as the
published phrase files do. The sentence files are not deduplicated either way: the dev and test sets are the root
sentences, one per tree.

SST-2 (``fine=False``) drops neutral (2) nodes and sentences and maps 0-1 to 0 (negative), 3-4 to 1 (positive).

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "t.txt")
>>> _ = open(p, "w").write("(3 (2 The) (4 (3 good) (2 film)))\\n")
>>> t = read_sst_trees(p)
>>> t.sentences, t.labels
(['The good film'], [3])
>>> list(zip(t.phrases, t.phrase_labels))
[('The good film', 3), ('The', 2), ('good film', 4), ('good', 3), ('film', 2)]
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Union

from jaxconv.data.readers import SENTENCE_DATASETS, LabeledText, TextDataset, default_sentence_root

__all__ = ["SSTTrees", "read_sst_trees", "sst_phrase_dataset", "default_sst_root", "sst_tree_files",
           "sst_trees_present", "sst_text", "SST_TREE_FILES"]

PathLike = Union[str, "os.PathLike[str]"]

#: The tree files of a treebank directory, one per split.
SST_TREE_FILES = {"train": "train.txt", "dev": "dev.txt", "test": "test.txt"}

_TOKEN = re.compile(r"\(|\)|[^ ()]+")


@dataclass(frozen=True)
class SSTTrees:
    """The trees of one file.

    Attributes:
      sentences: ``T`` root sentences (leaves joined by single spaces; case and PTB escapes as in the file).
      labels: ``T`` root labels, 0-4.
      phrases: ``P`` texts, one per labelled node (leaves, inner nodes, roots), tree by tree in pre-order (a node
        before its children, left to right), so ``phrases[tree_start[i]] == sentences[i]``.
      phrase_labels: ``P`` labels, 0-4.
      tree_start: ``T`` indices into ``phrases``: where each tree's nodes begin.
      path: the file read.
    """

    sentences: list[str]
    labels: list[int]
    phrases: list[str]
    phrase_labels: list[int]
    tree_start: list[int]
    path: str

    def __len__(self) -> int:
        return len(self.sentences)


def _parse_tree(line: str, where: str) -> tuple[list[str], list[int]]:
    """One bracketed tree -> (node texts, node labels) in pre-order; ValueError naming ``where`` (file:line)."""
    tokens = _TOKEN.findall(line)
    leaves: list[str] = []
    # per open node: its index in the output, and where its leaves start
    stack: list[tuple[int, int]] = []
    texts: list[str | None] = []
    labels: list[int] = []
    i, n, closed_root = 0, len(tokens), False
    while i < n:
        tok = tokens[i]
        if closed_root:
            raise ValueError(f"{where}: text after the end of the tree: {' '.join(tokens[i:i + 5])!r}.")
        if tok == "(":
            label = tokens[i + 1] if i + 1 < n else ""
            if label not in ("0", "1", "2", "3", "4"):
                raise ValueError(f"{where}: expected a label 0-4 after '(', got {label!r}; expected trees like "
                                 f"'(3 (2 The) (4 film))'.")
            stack.append((len(texts), len(leaves)))
            texts.append(None)
            labels.append(int(label))
            i += 2
        elif tok == ")":
            if not stack:
                raise ValueError(f"{where}: unbalanced ')' (more closing than opening brackets).")
            node, start = stack.pop()
            if start == len(leaves):
                raise ValueError(f"{where}: a node with no words: '({labels[node]})'.")
            texts[node] = " ".join(leaves[start:])
            closed_root = not stack
            i += 1
        else:
            if not stack:
                raise ValueError(f"{where}: text outside the brackets: {tok!r}.")
            leaves.append(tok)
            i += 1
    if stack or not texts:
        raise ValueError(f"{where}: unbalanced brackets ({len(stack)} not closed)." if stack
                         else f"{where}: blank line; expected one tree per line.")
    return texts, labels  # type: ignore[return-value]


def _read_tree_file(path: Path) -> SSTTrees:
    if not path.is_file():
        raise FileNotFoundError(f"SST tree file not found: {str(path)!r}.")
    data = path.read_bytes()
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError as e:
        lineno = data.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}:{lineno}: byte {data[e.start:e.start + 1]!r} is not valid UTF-8 ({e.reason}); "
                         f"the treebank's files are UTF-8.") from None
    if lines and lines[-1] == "":
        lines.pop()
    sentences, labels, phrases, phrase_labels, starts = [], [], [], [], []
    for lineno, line in enumerate(lines, start=1):
        texts, node_labels = _parse_tree(line.strip(" \t\r"), f"{path}:{lineno}")
        starts.append(len(phrases))
        sentences.append(texts[0])
        labels.append(node_labels[0])
        phrases.extend(texts)
        phrase_labels.extend(node_labels)
    if not sentences:
        raise ValueError(f"{path}: no trees found; expected one bracketed tree per line.")
    return SSTTrees(sentences=sentences, labels=labels, phrases=phrases, phrase_labels=phrase_labels,
                    tree_start=starts, path=str(path))


def read_sst_trees(path: PathLike) -> SSTTrees | dict[str, SSTTrees]:
    """Read PTB-bracket sentiment trees.

    Args:
      path: one tree file, or a directory holding ``train.txt``, ``dev.txt`` and ``test.txt``.

    Returns:
      :class:`SSTTrees` for a file; ``{"train": ..., "dev": ..., "test": ...}`` for a directory.

    Raises:
      FileNotFoundError: no such file or directory, or a directory without the three files (the message names the
        path and the files expected).
      ValueError: a malformed tree (``file:line`` and what was expected), invalid UTF-8.
    """
    p = Path(path)
    if p.is_dir():
        return {split: _read_tree_file(f) for split, f in sst_tree_files(p).items()}
    return _read_tree_file(p)


def default_sst_root() -> Path:
    """Where the treebank's tree files are looked for by default: ``sst-trees`` beside the sentence directory
    (:func:`jaxconv.data.default_sentence_root`), i.e. ``$JAXCONV_DATA/../sst-trees`` or
    ``<repository>/../shared/datasets/sst-trees``. Returned whether or not it exists."""
    return default_sentence_root().parent / "sst-trees"


def sst_tree_files(root: PathLike, *, check: bool = True) -> dict[str, Path]:
    """``{"train": root/train.txt, "dev": root/dev.txt, "test": root/test.txt}``.

    Raises:
      FileNotFoundError: with ``check``, when any of them is missing (naming the directory and the files).
    """
    root = Path(root)
    files = {split: root / name for split, name in SST_TREE_FILES.items()}
    missing = [f.name for f in files.values() if not f.is_file()]
    if check and missing:
        raise FileNotFoundError(
            f"SST trees not found in {str(root)!r}: missing {', '.join(missing)} (expected "
            f"{', '.join(SST_TREE_FILES.values())}); set the directory with --config.data.sst_trees=DIR, or train "
            f"on the sentence files with --config.data.sst_phrases=False.")
    return files


def sst_trees_present(root: PathLike | None = None) -> bool:
    """Whether ``root`` (default :func:`default_sst_root`) holds all three tree files."""
    return all(f.is_file() for f in sst_tree_files(root if root is not None else default_sst_root(),
                                                   check=False).values())


def sst_text(text: str) -> str:
    """A tree's text as in Kim's SST sentence files: lower-cased (PTB escapes kept).

    >>> sst_text("A -LRB- very -RRB- Good film")
    'a -lrb- very -rrb- good film'
    """
    return text.lower()


def _binary(label: int) -> int | None:
    return None if label == 2 else int(label > 2)


def sst_phrase_dataset(root: PathLike | None = None, *, fine: bool = True, dedupe: bool = True) -> TextDataset:
    """SST-1 (``fine``) or SST-2 trained on every labelled phrase of the training trees; dev/test: root sentences.

    Args:
      root: the directory of ``train.txt`` / ``dev.txt`` / ``test.txt``; default :func:`default_sst_root`.
      fine: five classes (SST-1); ``False``: SST-2 (neutral dropped, 0-1 -> 0, 3-4 -> 1).
      dedupe: keep each distinct ``(label, text)`` training pair once (the module docstring); ``False`` keeps
        every labelled node (318,582 for SST-1).

    Returns:
      :class:`jaxconv.data.TextDataset` named ``"sst1"`` / ``"sst2"`` with texts preprocessed by :func:`sst_text`,
      ``extras["tokenizer"] = "sst"``, ``extras["sst_phrases"] = True``, ``extras["source"]`` the directory and
      ``extras["train_sentences"]`` the number of training trees kept.
    """
    root = Path(root) if root is not None else default_sst_root()
    trees = {split: _read_tree_file(f) for split, f in sst_tree_files(root).items()}
    name = "sst1" if fine else "sst2"
    spec = SENTENCE_DATASETS[name]
    convert = (lambda y: y) if fine else _binary

    def pairs(texts, labels):
        for text, label in zip(texts, labels):
            y = convert(label)
            if y is not None:
                yield sst_text(text), y

    train_pairs = list(pairs(trees["train"].phrases, trees["train"].phrase_labels))
    if dedupe:
        train_pairs = list(dict.fromkeys(train_pairs))
    splits = {"train": train_pairs}
    for split in ("dev", "test"):
        splits[split] = list(pairs(trees[split].sentences, trees[split].labels))
    lts = {split: LabeledText(texts=[t for t, _ in ps], labels=[y for _, y in ps],
                              path=str(trees[split].path) + ("[phrases]" if split == "train" else ""),
                              encoding="utf-8")
           for split, ps in splits.items()}
    kept_sentences = sum(convert(y) is not None for y in trees["train"].labels)
    return TextDataset(name=name, train=lts["train"], dev=lts["dev"], test=lts["test"],
                       num_classes=spec["num_classes"], label_names=list(spec["label_names"]),
                       extras={"tokenizer": "sst", "source": str(root), "sst_phrases": True,
                               "train_sentences": kept_sentences, "dedupe": bool(dedupe)})
