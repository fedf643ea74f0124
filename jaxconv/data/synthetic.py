"""A planted-motif corpus: text classification whose answer is known, and needs word ORDER.

Design (all from one seed):

- Background words ``w0000 .. w{V-1}`` drawn from a Zipf-like distribution
  (``p(rank r) ~ 1 / (r + 1)``), independently of the class.
- ``motifs_per_class`` motif groups; group ``j`` owns ``motif_length`` reserved words
  ``m{j:02d}a, m{j:02d}b, ...`` that never occur as background. Class ``c``'s motif ``j`` is a
  permutation of group ``j``'s words, distinct per class (so ``num_classes <= motif_length!``).
  All classes use the SAME words, only in a different order: a bag-of-words model sees identical
  motif-word statistics in every class and stays near chance, while a convolution of width
  ``>= motif_length`` (or a bigram detector) reads the order and reaches ~100%.
- Each example of class ``c`` gets ``motifs_per_example`` motifs of class ``c`` (groups drawn at
  random) at random positions, never overlapping or adjacent (at least one background word
  between), so any window of ``motif_length`` consecutive motif words lies inside one planted motif
  and identifies its class exactly.
- With probability ``noise_motif_rate`` an example also gets a decoy: a group's words in an order
  that belongs to no class (needs ``num_classes < motif_length!``). Decoys defeat detectors of
  single motif words or of the unordered motif set, but not an order-aware width-``motif_length``
  filter.
- Labels are balanced (``num_examples // num_classes`` per class, the remainder spread over the
  first classes), in shuffled order. Words are lower-case alphanumerics, so the Kim tokenizer and
  whitespace splitting give the same tokens.

>>> corpus = make_planted_motif_corpus(4, vocab_size=20, length_range=(6, 8), motifs_per_class=1, seed=1)
>>> sorted(corpus.motifs[0][0]) == sorted(corpus.motifs[1][0]) and corpus.motifs[0] != corpus.motifs[1]
True
>>> pos, motif = corpus.positions[0][0]
>>> tuple(corpus.texts[0].split()[pos:pos + 3]) == motif == corpus.motifs[corpus.labels[0]][0]
True
"""

from __future__ import annotations

import itertools
import math
import string
from dataclasses import dataclass, field

import numpy as np

from jaxconv.data.readers import LabeledText, TextDataset

__all__ = ["SyntheticCorpus", "make_planted_motif_corpus", "synthetic_dataset"]

Motif = tuple[str, ...]


@dataclass(frozen=True)
class SyntheticCorpus:
    """A planted-motif corpus and its ground truth.

    Attributes:
      texts: ``N`` space-separated sentences.
      labels: ``N`` labels in ``0 .. num_classes-1``.
      motifs: class -> its ``motifs_per_class`` motifs (tuples of ``motif_length`` words); motif ``j``
        of every class is a permutation of the same words.
      num_classes: ``C``.
      positions: per example, ``(token position, motif)`` of each planted class motif.
      decoys: per example, ``(token position, decoy)`` of each planted decoy (empty unless
        ``noise_motif_rate > 0``).
      config: the arguments that made it.
    """

    texts: list[str]
    labels: list[int]
    motifs: dict[int, list[Motif]]
    num_classes: int
    positions: list[list[tuple[int, Motif]]]
    decoys: list[list[tuple[int, Motif]]] = field(default_factory=list)
    config: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.texts)

    def motif_class(self) -> dict[Motif, int]:
        """motif -> its class."""
        return {m: c for c, ms in self.motifs.items() for m in ms}


def _check(name, value, lo):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name} must be an int >= {lo}; got {name}={value!r}.")


def _check_corpus_args(num_examples, num_classes, vocab_size, length_range, motifs_per_class, motif_length,
                       motifs_per_example, noise_motif_rate) -> tuple[int, int, int, int]:
    """The arguments of :func:`make_planted_motif_corpus` checked: ``(lo, hi, word orders of a motif, orders
    needed)``."""
    _check("num_examples", num_examples, 1)
    _check("num_classes", num_classes, 2)
    _check("vocab_size", vocab_size, 1)
    _check("motifs_per_class", motifs_per_class, 1)
    _check("motif_length", motif_length, 2)
    _check("motifs_per_example", motifs_per_example, 1)
    if motif_length > len(string.ascii_lowercase):
        raise ValueError(f"motif_length must be <= 26; got motif_length={motif_length}.")
    if num_examples < num_classes:
        raise ValueError(f"num_examples must be >= num_classes={num_classes}; got num_examples={num_examples}.")
    if not 0.0 <= noise_motif_rate <= 1.0:
        raise ValueError(f"noise_motif_rate must be in [0, 1]; got noise_motif_rate={noise_motif_rate!r}.")
    n_orders = math.factorial(motif_length)
    need_orders = num_classes + (1 if noise_motif_rate > 0 else 0)
    if need_orders > n_orders:
        raise ValueError(
            f"motif_length={motif_length} allows {n_orders} word orders; num_classes={num_classes}"
            f"{' + 1 decoy order' if noise_motif_rate > 0 else ''} need {need_orders}: raise motif_length.")
    lo, hi = (int(x) for x in length_range)
    max_blocks = motifs_per_example + (1 if noise_motif_rate > 0 else 0)
    min_len = max_blocks * motif_length + (max_blocks - 1)
    if not min_len <= lo <= hi:
        raise ValueError(f"length_range must be (lo, hi) with {min_len} <= lo <= hi "
                         f"({max_blocks} block(s) of {motif_length} words + gaps); got length_range={length_range!r}.")

    return lo, hi, n_orders, need_orders


def _draw_motifs(rng, num_classes: int, motifs_per_class: int, motif_length: int, n_orders: int,
                 need_orders: int) -> tuple[dict[int, list[Motif]], list[list[Motif]]]:
    """Each class's motifs (group ``j``'s words in a per-class order) and each group's decoy orders (the unused
    permutations)."""
    motifs: dict[int, list[Motif]] = {c: [] for c in range(num_classes)}
    decoy_orders: list[list[Motif]] = []
    for j in range(motifs_per_class):
        words = [f"m{j:02d}{string.ascii_lowercase[i]}" for i in range(motif_length)]
        if n_orders <= 5040:
            perms = list(itertools.permutations(range(motif_length)))
            chosen = [perms[i] for i in rng.permutation(len(perms))[:need_orders + 3]]
        else:  # sample distinct random permutations
            seen: set[tuple[int, ...]] = set()
            chosen = []
            while len(chosen) < need_orders + 3:
                p = tuple(int(x) for x in rng.permutation(motif_length))
                if p not in seen:
                    seen.add(p)
                    chosen.append(p)
        for c in range(num_classes):
            motifs[c].append(tuple(words[i] for i in chosen[c]))
        decoy_orders.append([tuple(words[i] for i in p) for p in chosen[num_classes:]])

    return motifs, decoy_orders


def make_planted_motif_corpus(num_examples: int = 2000, *, num_classes: int = 2, vocab_size: int = 500,
                              length_range: tuple[int, int] = (8, 40), motifs_per_class: int = 3,
                              motif_length: int = 3, motifs_per_example: int = 1,
                              noise_motif_rate: float = 0.0, seed: int = 0) -> SyntheticCorpus:
    """Make a planted-motif corpus (see the module docstring for the design).

    Args:
      num_examples: ``N`` (>= ``num_classes``).
      num_classes: ``C`` (>= 2, <= ``motif_length!``; ``<`` when ``noise_motif_rate > 0``).
      vocab_size: number of background words ``V`` (>= 1).
      length_range: ``(lo, hi)``: sentence lengths in tokens, uniform in ``lo..hi`` inclusive;
        ``lo`` must fit the planted blocks: ``lo >= K*motif_length + (K-1)`` where ``K`` is
        ``motifs_per_example`` (+1 with decoys).
      motifs_per_class: motif groups (each class has one motif per group).
      motif_length: words per motif (>= 2).
      motifs_per_example: class motifs planted per example (>= 1).
      noise_motif_rate: probability that an example also carries one decoy, in ``[0, 1]``.
      seed: everything is drawn from ``np.random.default_rng(seed)``.

    Returns:
      :class:`SyntheticCorpus`.
    """
    lo, hi, n_orders, need_orders = _check_corpus_args(num_examples, num_classes, vocab_size, length_range,
                                                       motifs_per_class, motif_length, motifs_per_example,
                                                       noise_motif_rate)
    rng = np.random.default_rng(seed)
    motifs, decoy_orders = _draw_motifs(rng, num_classes, motifs_per_class, motif_length, n_orders, need_orders)
    background = np.array([f"w{i:04d}" for i in range(vocab_size)])
    zipf = 1.0 / np.arange(1, vocab_size + 1)
    zipf /= zipf.sum()

    labels = np.arange(num_examples) % num_classes
    labels = rng.permutation(labels)
    texts: list[str] = []
    positions: list[list[tuple[int, Motif]]] = []
    decoys: list[list[tuple[int, Motif]]] = []
    for y in labels:
        length = int(rng.integers(lo, hi + 1))
        blocks: list[tuple[str, Motif]] = [("motif", motifs[int(y)][int(rng.integers(motifs_per_class))])
                                           for _ in range(motifs_per_example)]
        if noise_motif_rate > 0 and rng.random() < noise_motif_rate:
            g = int(rng.integers(motifs_per_class))
            opts = decoy_orders[g]
            blocks.append(("decoy", opts[int(rng.integers(len(opts)))]))
        order = rng.permutation(len(blocks))
        blocks = [blocks[i] for i in order]
        k = len(blocks)
        # Stars and bars: `free` extra background words over k+1 gaps, one mandatory word between blocks.
        free = length - k * motif_length - (k - 1)
        cuts = np.sort(rng.choice(free + k, size=k, replace=False))
        starts = [int(cuts[i] - i + i * (motif_length + 1)) for i in range(k)]
        tokens = list(rng.choice(background, size=length, p=zipf))
        pos_m: list[tuple[int, Motif]] = []
        pos_d: list[tuple[int, Motif]] = []
        for (kind, words), s in zip(blocks, starts):
            tokens[s: s + motif_length] = words
            (pos_m if kind == "motif" else pos_d).append((s, words))
        texts.append(" ".join(str(t) for t in tokens))
        positions.append(sorted(pos_m))
        decoys.append(sorted(pos_d))

    config = dict(num_examples=num_examples, num_classes=num_classes, vocab_size=vocab_size,
                  length_range=(lo, hi), motifs_per_class=motifs_per_class, motif_length=motif_length,
                  motifs_per_example=motifs_per_example, noise_motif_rate=noise_motif_rate, seed=seed)
    return SyntheticCorpus(texts=texts, labels=[int(v) for v in labels], motifs=motifs,
                           num_classes=num_classes, positions=positions, decoys=decoys, config=config)


#: The train/dev/test fractions of :func:`synthetic_dataset` (and so of ``config.data.name="synthetic"``).
DEFAULT_SPLIT = (0.8, 0.1, 0.1)


def synthetic_dataset(num_examples: int = 2000, *, split: tuple[float, float, float] = DEFAULT_SPLIT,
                      split_seed: int | None = None, **corpus_kwargs) -> TextDataset:
    """A :class:`TextDataset` named ``"synthetic"``: train/dev/test of a planted-motif corpus.

    Args:
      num_examples: corpus size.
      split: train/dev/test fractions (stratified, :func:`jaxconv.data.stratified_split`).
      split_seed: seed of the split; default the corpus ``seed``.
      **corpus_kwargs: passed to :func:`make_planted_motif_corpus` (``seed``, ``num_classes``, ...).

    Returns:
      a dataset with ``extras = {"motifs": corpus.motifs, "corpus": corpus, "indices": {split:
      corpus indices}, "tokenizer": "whitespace"}``.

    >>> ds = synthetic_dataset(200, seed=0)
    >>> ds.name, len(ds.train), len(ds.dev), len(ds.test), ds.num_classes
    ('synthetic', 160, 20, 20, 2)
    """
    from jaxconv.data.splits import stratified_split

    corpus = make_planted_motif_corpus(num_examples, **corpus_kwargs)
    seed = corpus.config["seed"] if split_seed is None else split_seed
    parts = stratified_split(corpus.labels, split, seed=seed)
    names = ("train", "dev", "test")
    lts = {name: LabeledText(texts=[corpus.texts[i] for i in idx], labels=[corpus.labels[i] for i in idx],
                             path=f"<synthetic:{name}>", encoding="utf-8", skipped=0)
           for name, idx in zip(names, parts)}
    return TextDataset(
        name="synthetic", train=lts["train"], dev=lts["dev"], test=lts["test"], num_classes=corpus.num_classes,
        label_names=[f"class{c}" for c in range(corpus.num_classes)],
        extras={"motifs": corpus.motifs, "corpus": corpus,
                "indices": {name: idx for name, idx in zip(names, parts)}, "tokenizer": "whitespace"})
