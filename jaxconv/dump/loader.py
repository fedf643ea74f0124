"""Read a dump back: ``jaxconv.load_dump(path)`` or ``jaxconv.load_dump(workdir, name)`` -> :class:`Dump`::

    d = jaxconv.load_dump("runs/demo", "test")
    d.layers, d.num_examples, d.num_filters("convs/2")
    fmap = d.feature_map("convs/2", 7)          # lazy (examples, positions); fmap[:10] reads 10 rows
    for g in d.top_ngrams("convs/2", 7, k=5):   # the 5 examples where filter 7 fired most, one n-gram each
        print(f"{g.value:.2f}  {g.text}  {g.label_name}")
    d.top_ngrams("convs/2", 7, k=50, distinct=True)   # one per distinct text, with .count
    d.ngram_groups("convs/2", 7, k=50)          # those grouped by the slots that fire (SlotGroup)
    d.slot_words("convs/2", 7, k=3)             # per kernel position, the 3 words it matches best
    d.threshold("convs/2", 7).value             # the pooled value above which its n-grams are class-pure (or None)
    d.to_xarray("convs/2").pooled.sel(filter=7) # an xarray view with coordinates

The same store opens with plain zarr: ``zarr.open_group("runs/demo/dumps/test/activations.zarr", mode="r")``.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import numpy as np
import zarr
from jaxtyping import Float, Int

from jaxconv._args import check_count, check_index, shown
from jaxconv.data.tokenize import detokenize
from jaxconv.dump import analysis
from jaxconv.dump import store as dstore
from jaxconv.dump.integrity import DumpDamagedError, DumpError, check_store, checked_group
from jaxconv.dump.ngrams import NGram, SlotGroup, group_by_slots
from jaxconv.dump.ngrams import distinct as distinct_ngrams

__all__ = ["load_dump", "Dump", "NGram", "SlotGroup", "SlotWord", "FilterMap", "DumpError", "DumpDamagedError"]


@dataclasses.dataclass(frozen=True)
class SlotWord:
    """A word for one kernel position: the word, its id and the slot's dot product with its vector."""

    word: str
    id: int
    score: float


class FilterMap:
    """One filter's feature map over the dump, ``(examples, positions)``, read only when indexed.

    ``fm[rows]`` / ``fm[rows, positions]`` read those entries from the store; ``np.asarray(fm)`` reads all of it.
    Only this filter's inner chunks are read (byte ranges of the map's shards, found through the shards' indexes).
    """

    def __init__(self, array: zarr.Array, filter: int):
        self._array, self.filter = array, int(filter)
        self.shape = tuple(array.shape[:2])
        self.dtype = array.dtype

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) > 2:
            raise IndexError(f"a filter map has 2 axes (examples, positions); got {len(key)} indices.")
        key = key + (slice(None),) * (2 - len(key)) + (self.filter,)
        if any(isinstance(k, (list, np.ndarray)) for k in key):  # a list of rows: zarr's orthogonal indexing
            return self._array.oindex[key]
        return self._array[key]

    def __array__(self, dtype=None, copy=None):
        out = self[:, :]
        return out.astype(dtype) if dtype is not None else out

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"FilterMap(filter={self.filter}, shape={self.shape}, dtype={self.dtype})"


def load_dump(path_or_workdir, name: str | None = None) -> Dump:
    """Open a complete dump.

    Args:
      path_or_workdir: the store (``.../activations.zarr``), its folder ``RUN/dumps/<name>``, or a run's workdir
        with ``name``.
      name: the dump's name when the first argument is a workdir (default: its only dump).

    Checks (one listing of the store, no chunk read): the store's format version is this jaxconv's, it has every
    attribute a reader needs (``layer_info`` and the others of :data:`jaxconv.dump.integrity.REQUIRED_ATTRS`), and
    every array, shard and chunk the writer recorded (``object_counts``) is on disk. A shard or chunk that is there
    but cannot be decoded (truncated), or an array metadata file that cannot be read, is found when it is read:
    that read raises :class:`DumpDamagedError`.

    Raises:
      DumpError: no such path, a file that is not a store, nothing complete there (an interrupted dump, a missing
        name: the message lists the dumps).
      TypeError: a ``name`` that is not a str.
      DumpDamagedError: a store of another format version (or of none), a missing attribute, or a recorded array,
        shard or chunk file missing; the message names the store, the attribute or the array and its rows, and says to
        write the dump again (``--overwrite``).
    """
    from jaxconv.paths import as_path

    base = as_path(path_or_workdir)
    expected = "expected a run folder (with dumps/), a dump folder or a .zarr store."
    if not base.exists() and not (base.parent / (base.name + dstore.PARTIAL)).exists():   # (partial: below)
        raise DumpError(f"load_dump: {base} does not exist; {expected}")
    if base.exists() and not base.is_dir():
        raise DumpError(f"load_dump: {base} is a file; {expected}")
    if name is not None and not isinstance(name, str):
        raise TypeError(f"load_dump: name={shown(name)} is a {type(name).__name__}; expected a str (a dump's name "
                        f"in {base / 'dumps'}).")
    if name is None and (base.name == dstore.STORE_NAME or (base / "zarr.json").exists()):
        path = base
    elif name is None and (base / dstore.STORE_NAME).exists():
        path = base / dstore.STORE_NAME
    else:
        dumps = sorted(p.name for p in (base / "dumps").iterdir()) if (base / "dumps").is_dir() else []
        if name is None:
            if len(dumps) != 1:
                raise DumpError(f"{base}: name the dump; found {len(dumps)} in {base / 'dumps'}: "
                                f"{', '.join(dumps) or '(none)'} (jaxconv dump --workdir {base} writes one).")
            name = dumps[0]
        path = dstore.dump_dir(base, name) / dstore.STORE_NAME
        if not path.exists() and not (path.parent / (path.name + dstore.PARTIAL)).exists():
            raise DumpError(f"no dump {name!r} in {base / 'dumps'}; the dumps there: {', '.join(dumps) or '(none)'}.")
    if not dstore.is_complete(path):
        raise DumpError(f"{path} is not a complete dump (it is being written, was interrupted, or is not a dump); "
                        f"run jaxconv dump again to resume it.")
    check_store(path, dstore.open_group(path))
    return Dump(path)


class Dump:
    """A complete dump (see :mod:`jaxconv.dump` for the store's arrays). Reads lazily from the zarr group.

    Arguments follow the API's rule (:mod:`jaxconv._args`): ``k`` is an int >= 1; ``filter``, ``example`` and a
    class ``c`` are ints in ``[0, n)``, never negative; a float, None or a bool is a TypeError, a value out of range
    a ValueError (an index's is also an IndexError), naming the method, the argument and the value.

    Attributes:
      path: the store; group: the ``zarr.Group``; attrs: its attributes (a dict); layers; num_examples;
      num_classes; label_names (or None); padded_length; pad_left.
    """

    def __init__(self, path):
        self.path = path
        self.group = checked_group(dstore.open_group(path), path)   # a chunk that cannot be decoded: DumpDamagedError
        self.attrs = dict(self.group.attrs)
        self.layers: list[str] = list(self.attrs["layers"])
        self.num_examples = int(self.attrs["num_examples"])
        self.num_classes = int(self.attrs["num_classes"])
        self.label_names = self.attrs.get("label_names")
        self.padded_length, self.pad_left = int(self.attrs["padded_length"]), int(self.attrs["pad_left"])
        self._cache: dict[str, np.ndarray | None] = {}

    def _read(self, name: str) -> np.ndarray | None:
        """The whole array ``name`` (None when absent), read once."""
        if name not in self._cache:
            self._cache[name] = self.group[name][...] if self.has(name) else None
        return self._cache[name]

    def __repr__(self) -> str:
        return (f"Dump({os.fspath(self.path)!r}: {self.num_examples} examples, layers "
                f"{', '.join(f'{la} ({self.num_filters(la)} filters)' for la in self.layers)})")

    # ------------------------------------------------------------------ arrays

    def _check(self, layer: str, filter: int | None = None, owner: str = "Dump") -> int | None:
        """Check ``layer`` (and ``filter``, an index of its filters); returns ``filter`` as an int."""
        if layer not in self.layers:
            raise ValueError(f"layer {layer!r} is not in this dump; its layers are {', '.join(self.layers)}.")
        if filter is None:
            return None
        return check_index(owner, "filter", filter, self.num_filters(layer), what=f"layer {layer!r}")

    def _example(self, example, owner: str) -> int:
        return check_index(owner, "example", example, self.num_examples)

    def num_filters(self, layer: str) -> int:
        self._check(layer)
        return int(self.attrs["layer_info"][layer]["filters"])

    def has(self, name: str) -> bool:
        """Whether the store holds the array ``name`` (e.g. ``"labels"``, ``"embedding"``)."""
        try:
            self.group[name]
            return True
        except KeyError:
            return False

    def feature_map(self, layer: str, filter: int) -> FilterMap:
        """Filter ``filter`` of ``layer`` over every example: a lazy :class:`FilterMap` ``(examples, positions)``."""
        filter = self._check(layer, filter, "Dump.feature_map")
        return FilterMap(self.group[f"maps/{layer}"], filter)

    def pooled(self, layer: str) -> Float[np.ndarray, " examples filters"]:
        """``pooled/<layer>``: ``(examples, filters)`` float32 (read once, cached)."""
        self._check(layer)
        return self._read(f"pooled/{layer}")

    @property
    def labels(self) -> Int[np.ndarray, " examples"] | None:
        """``(examples,)`` gold labels, or None."""
        return self._read("labels")

    @property
    def predictions(self) -> Int[np.ndarray, " examples"] | None:
        """``(examples,)`` the model's predicted classes, or None."""
        return self._read("predictions")

    @functools.cached_property
    def vocab(self) -> list[str]:
        return [str(w) for w in self.group["vocab"][...]]

    def column(self, name: str) -> np.ndarray:
        """The whole per-example array ``name`` (``"texts"``, ``"words"``, ``"lengths"``, ...), read once and kept
        (later :meth:`words` calls use it)."""
        out = self._read(name)
        if out is None:
            raise KeyError(f"this dump has no array {name!r}.")
        return out

    def start(self, example: int) -> int:
        """The token position of the example's first word: ``starts[i]`` (a left-padded imported model's rows
        start at different positions), or ``pad_left`` in a store without ``starts``."""
        example = self._example(example, "Dump.start")
        starts = self._read("starts")
        return int(starts[example]) if starts is not None else self.pad_left

    def words(self, example: int) -> list[str]:
        """The example's tokens as words (padding excluded); ``words(i)[j]`` is at token position
        ``start(i) + j``."""
        example = self._example(example, "Dump.words")
        cached = self._cache.get("words")
        text = str(cached[example] if cached is not None else self.group["words"][example])
        return [w.replace("\u00a0", " ") for w in text.split(" ")] if text else []

    def class_name(self, c: int | None) -> str:
        """Class ``c``'s name (``label_names[c]``; the number as a string when the dump has no names); ``"-"`` for
        None. ``c`` is an int in ``[0, num_classes)``."""
        if c is None:
            return "-"
        c = check_index("Dump.class_name", "c", c, len(self.label_names) if self.label_names else self.num_classes)
        return str(self.label_names[c]) if self.label_names else str(c)

    # ------------------------------------------------------------------ analysis

    def ngram(self, layer: str, filter: int, example: int) -> NGram:
        """Example ``example``'s strongest n-gram for the filter (its argmax position's span)."""
        filter, example = self._check(layer, filter, "Dump.ngram"), self._example(example, "Dump.ngram")
        value = float(self.pooled(layer)[example, filter])
        pos = int(self._read(f"argmax/{layer}")[example, filter])
        start, end = (int(x) for x in self._read(f"spans/{layer}")[pos])
        words, first = self.words(example), self.start(example)
        lo, hi = max(start, first), min(end, first + len(words))
        span = (lo, hi) if hi > lo else (lo, lo)
        chosen = tuple(words[span[0] - first:span[1] - first])
        labels, preds = self.labels, self.predictions
        label = int(labels[example]) if labels is not None else None
        prediction = int(preds[example]) if preds is not None else None
        return NGram(value=value, example=int(example), position=pos, span=span, words=chosen,
                     text=detokenize(self.attrs["tokenizer"], chosen), label=label, prediction=prediction,
                     label_name=self.class_name(label) if label is not None else None,
                     prediction_name=self.class_name(prediction) if prediction is not None else None)

    def top_ngrams(self, layer: str, filter: int, k: int = 10, distinct: bool = False) -> list[NGram]:
        """The ``k`` examples on which the filter's max-pooled value is highest, each with the n-gram it pooled
        (one per example; ties by example order). Spans come from ``spans/<layer>`` (:func:`jaxconv.receptive_spans`)
        with padding cut off, so padding tokens are never shown.

        With ``distinct=True``: those ``k`` merged into one record per distinct ``text`` (strongest first), each
        with ``count``, how many of the ``k`` had it (:func:`jaxconv.dump.ngrams.distinct`)."""
        filter, k = self._check(layer, filter, "Dump.top_ngrams"), check_count("Dump.top_ngrams", "k", k)
        order = np.argsort(-self.pooled(layer)[:, filter], kind="stable")[:k]
        out = [self.ngram(layer, filter, int(i)) for i in order]
        return distinct_ngrams(out) if distinct else out

    def slot_contributions(self, layer: str, filter: int,
                           examples) -> Float[np.ndarray, "examples width"]:
        """For each of ``examples``, the slot contributions of the window the filter pooled (its argmax):
        ``kernel[j] . embedding[word]`` per kernel position ``j`` (:func:`jaxconv.dump.analysis.slot_contributions`);
        with the bias they sum to the filter's value there before its nonlinearity. ``(len(examples), width)``.

        Raises:
          ValueError: the layer does not read the embedding directly, or the dump holds no embedding.
        """
        filter = self._check(layer, filter, "Dump.slot_contributions")
        self._need_embedding(layer, "slot contributions")
        rows = np.asarray(examples).reshape(-1)                                        # (n,) example indices
        integral = np.issubdtype(rows.dtype, np.integer)
        for i in np.flatnonzero((rows < 0) | (rows >= self.num_examples)) if integral else range(len(rows)):
            check_index("Dump.slot_contributions", f"examples[{i}]", rows[i].item(), self.num_examples)
        rows = rows.astype(np.int64)
        info = self.attrs["layer_info"][layer]
        return analysis.slot_contributions(
            self.group[f"kernels/{layer}"][:, :, filter], self._read("embedding"), self.column("tokens")[rows],
            self._read(f"argmax/{layer}")[rows, filter], stride=int(info["stride"]),
            padding=int(info["padding"][0]), dilation=int(info["dilation"]))

    def ngram_groups(self, layer: str, filter: int, k: int = 50) -> list[SlotGroup]:
        """The distinct n-grams of the ``k`` strongest examples grouped by the slots that fire, after Jacovi et al.
        (2018): :func:`jaxconv.dump.ngrams.group_by_slots`, largest group first. For a layer that does not read
        the word vectors: one group (``slots=None``) of the distinct n-grams."""
        k = check_count("Dump.ngram_groups", "k", k)
        tops = self.top_ngrams(layer, filter, k)
        embedded = layer in (self.attrs.get("embedded_layers") or []) and self.has("embedding")
        contributions = self.slot_contributions(layer, filter, [g.example for g in tops]) if embedded and tops else None
        return group_by_slots(tops, contributions)

    def token_activations(self, layer: str, filter: int, example: int,
                          row: Float[np.ndarray, " positions"] | None = None) -> Float[np.ndarray, " words"]:
        """Per word of the example, the filter's strongest activation among the windows that contain it
        (:func:`jaxconv.dump.analysis.token_scores`): ``(len(words(example)),)``. ``row``: the example's feature
        map ``(positions,)`` when already read (``feature_map(layer, filter)[examples]`` reads many at once);
        default: read it."""
        owner = "Dump.token_activations"
        filter, example = self._check(layer, filter, owner), self._example(example, owner)
        if row is None:
            row = self.feature_map(layer, filter)[example]                                   # (P,)
        return analysis.token_scores(row, self._read(f"spans/{layer}"), self.start(example), len(self.words(example)))

    def slot_words(self, layer: str, filter: int, k: int = 10) -> list[list[SlotWord]]:
        """For each kernel position (slot) of the filter, the ``k`` vocabulary words whose embedding has the
        largest dot product with that kernel row (Jacovi et al., 2018); padding and ``<unk>`` are left out.

        Returns:
          ``width`` lists of ``k`` :class:`SlotWord`, best first.

        Raises:
          ValueError: the layer does not read the embedding directly, or the dump holds no embedding.
        """
        filter, k = self._check(layer, filter, "Dump.slot_words"), check_count("Dump.slot_words", "k", k)
        self._need_embedding(layer, "slot words")
        scores = analysis.slot_scores(self.group[f"kernels/{layer}"][:, :, filter], self._read("embedding"))   # (W, V)
        scores[:, :2] = -np.inf                                                          # <pad>, <unk>
        vocab = self.vocab
        out = []
        for row in scores:
            top = np.argsort(-row, kind="stable")[:k]
            out.append([SlotWord(vocab[i], int(i), float(row[i])) for i in top])
        return out

    def _need_embedding(self, layer: str, what: str) -> None:
        embedded = self.attrs.get("embedded_layers") or []
        if layer not in embedded or not self.has("embedding"):
            raise ValueError(f"{what} need a conv that reads the word vectors directly; layer {layer!r} does "
                             f"not in this dump (layers that do: {', '.join(embedded) or 'none'}).")

    def _class_weights(self, layer: str) -> np.ndarray | None:
        return self._read(f"class_weights/{layer}")

    def threshold(self, layer: str, filter: int, *,
                  minimum_purity: float = analysis.MINIMUM_PURITY) -> analysis.Threshold:
        """The pooled value above which the filter's n-grams carry class information: the purity rule of
        Jacovi et al. (2018), :func:`jaxconv.dump.analysis.purity_threshold`, over this dump's examples and the
        model's predictions (gold labels when the dump has no predictions).

        When no cut reaches ``minimum_purity`` there is no threshold: the :class:`jaxconv.dump.analysis.Threshold`
        has ``value=None`` and ``found`` False (``describe()`` says "no threshold reaches 75% purity")."""
        filter = self._check(layer, filter, "Dump.threshold")
        predicted = self.predictions if self.predictions is not None else self.labels
        if predicted is None:
            raise ValueError("threshold: this dump has neither predictions nor labels to measure purity with.")
        values = self.pooled(layer)[:, filter]
        weights = self._class_weights(layer)
        c = analysis.identity_class(weights[filter] if weights is not None else None, values, predicted,
                                    self.num_classes)
        return analysis.purity_threshold(values, predicted, identity_class=c, minimum_purity=minimum_purity)

    def class_association(self, layer: str) -> analysis.ClassAssociation:
        """Per filter of ``layer``: a :class:`jaxconv.dump.analysis.ClassAssociation` ``(classes (F,), effect
        (F,))`` (a named tuple), the class its pooled value separates best from the others and the standardized
        mean difference (:func:`jaxconv.dump.analysis.class_association`), by
        gold label (the predictions when there are no labels)."""
        y = self.labels if self.labels is not None else self.predictions
        if y is None:
            raise ValueError("class_association: this dump has neither labels nor predictions.")
        return analysis.class_association(self.pooled(layer), y, self.num_classes)

    # ------------------------------------------------------------------ xarray

    def to_xarray(self, layer: str | None = None):
        """An ``xarray.Dataset`` view of the store (lazy: nothing is read until used), with coordinates.

        ``to_xarray("convs/0")``: dimensions ``example``, ``position``, ``filter`` (and ``token``, ``class``,
        ``slot``, ``in``, ``channel``, ``bound``, ``vocab``); variables ``maps`` ``(example, position, filter)``,
        ``pooled`` and ``argmax`` ``(example, filter)`` (read it as ``ds["argmax"]``: ``ds.argmax`` is a Dataset
        method), ``spans``, ``kernel`` ``(slot, in, filter)``, ``bias``, ``class_weights`` and the per-example
        arrays; coordinates ``filter`` (ids), ``position``, ``example``, ``class`` (names), ``label``,
        ``label_name``, ``prediction``, ``prediction_name``, ``text``. So ``ds.pooled.sel(filter=3)``.

        ``to_xarray()``: every layer at once, variables named ``<name>/<layer>`` (``"pooled/convs/0"``) over
        dimensions ``position[<layer>]`` and ``filter[<layer>]``, with the same coordinates.

        Raises:
          ImportError: xarray is not installed (``pip install xarray``).
        """
        from jaxconv.dump import xarray_view

        if layer is not None:
            self._check(layer)
        return xarray_view.to_xarray(self, layer)
