"""A filter's top n-grams: one record per example (:class:`NGram`), merged into distinct n-grams with counts
(:func:`distinct`), and grouped by the slots that fire (:class:`SlotGroup`, :func:`group_by_slots`).

Grouping after Jacovi, Sar Shalom and Goldberg (2018): a filter often detects several families of n-grams, told
apart by which of its slots (kernel positions) carry the activation. Each n-gram's slot contributions
(:func:`jaxconv.dump.analysis.slot_contributions`, kernel row dot word vector) give its firing pattern
(:func:`jaxconv.dump.analysis.firing_slots`); n-grams of one pattern form a group. Deterministic: no clustering
algorithm, no random state.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

from jaxconv.dump.analysis import FIRING_SHARE, firing_slots

__all__ = ["NGram", "SlotGroup", "distinct", "group_by_slots", "window_words"]


@dataclasses.dataclass(frozen=True)
class NGram:
    """One example's strongest n-gram for a filter (or, from :func:`distinct`, one distinct n-gram).

    Attributes:
      value: the filter's pooled (max) value on the example; example: its row in the dump.
      position: the map position of that max; span: ``(start, end)``, the token positions it covers in the
        example's row of ``tokens`` (padding cut off); words: those tokens' words; text: the words joined
        (:func:`jaxconv.data.detokenize`: with spaces, or as they are for characters and bytes).
      label, prediction: the example's gold label and predicted class as ints (None when unknown);
        label_name, prediction_name: the same as names (``Dump.class_name``; None when unknown).
      count: how many of the examples it was drawn from had this n-gram (1 for one example; from
        :func:`distinct`, the examples merged into it, whose strongest it describes).
    """

    value: float
    example: int
    position: int
    span: tuple[int, int]
    words: tuple[str, ...]
    text: str
    label: int | None = None
    prediction: int | None = None
    label_name: str | None = None
    prediction_name: str | None = None
    count: int = 1


def _merge(ngrams: Sequence[NGram]) -> list[tuple[NGram, list[NGram]]]:
    """Distinct texts in order of first appearance, each with the records that had it."""
    groups: dict[str, list[NGram]] = {}
    for g in ngrams:
        groups.setdefault(g.text, []).append(g)
    return [(dataclasses.replace(gs[0], count=sum(g.count for g in gs)), gs) for gs in groups.values()]


def distinct(ngrams: Sequence[NGram]) -> list[NGram]:
    """One record per distinct ``text``, in order of first appearance (strongest first when ``ngrams`` is sorted),
    its fields those of its first record and ``count`` the number of records merged.

    >>> gs = [NGram(3.0, 8, 9, (9, 12), ("a", "b"), "a b"), NGram(2.0, 4, 1, (1, 3), ("c",), "c"),
    ...       NGram(1.0, 5, 2, (2, 4), ("a", "b"), "a b")]
    >>> [(g.text, g.count, g.example) for g in distinct(gs)]
    [('a b', 2, 8), ('c', 1, 4)]
    """
    return [g for g, _ in _merge(ngrams)]


@dataclasses.dataclass(frozen=True, eq=False)
class SlotGroup:
    """The distinct n-grams of one firing pattern.

    Attributes:
      slots: the kernel positions that fire (``()``: none contributes positively); None when slot contributions
        are unknown (a conv that does not read the word vectors), and then the group holds every n-gram.
      ngrams: distinct n-grams (:class:`NGram` with ``count``), strongest first.
      contributions: ``(len(ngrams), width)`` each n-gram's slot contributions (of its strongest example), or None.
      examples: per n-gram, the examples merged into it.
    """

    slots: tuple[int, ...] | None
    ngrams: tuple[NGram, ...]
    contributions: Float[np.ndarray, "ngrams width"] | None
    examples: tuple[tuple[int, ...], ...]

    @property
    def count(self) -> int:
        """The examples in this group."""
        return sum(g.count for g in self.ngrams)


def group_by_slots(ngrams: Sequence[NGram], contributions: Float[np.ndarray, "ngrams width"] | None, *,
                   share: float = FIRING_SHARE) -> list[SlotGroup]:
    """Merge ``ngrams`` (one per example, strongest first) into distinct n-grams and group them by firing
    pattern. ``contributions`` ``(len(ngrams), width)`` are the records' slot contributions (None: one group,
    ``slots=None``). Groups come largest first (examples), ties by their strongest n-gram; an n-gram's pattern
    is that of its strongest example.

    >>> gs = [NGram(3.0, 0, 0, (0, 2), ("a", "b"), "a b"), NGram(2.5, 1, 0, (0, 2), ("c", "b"), "c b"),
    ...       NGram(2.0, 2, 0, (0, 2), ("a", "b"), "a b"), NGram(1.0, 3, 0, (0, 2), ("a", "d"), "a d")]
    >>> c = np.array([[2., 1.], [.5, 2.], [2., 1.], [1., 0.]])
    >>> [(g.slots, [(n.text, n.count) for n in g.ngrams]) for g in group_by_slots(gs, c)]
    [((0, 1), [('a b', 2)]), ((1,), [('c b', 1)]), ((0,), [('a d', 1)])]
    """
    merged = _merge(ngrams)
    if contributions is None:
        return [SlotGroup(None, tuple(g for g, _ in merged), None,
                          tuple(tuple(m.example for m in ms) for _, ms in merged))] if merged else []
    contributions = np.asarray(contributions, np.float32)
    if len(contributions) != len(ngrams):
        raise ValueError(f"contributions has {len(contributions)} rows; expected one per n-gram ({len(ngrams)}).")
    row = {id(g): i for i, g in enumerate(ngrams)}
    patterns: dict[tuple[int, ...], list[tuple[NGram, list[NGram]]]] = {}
    for g, ms in merged:
        patterns.setdefault(firing_slots(contributions[row[id(ms[0])]], share), []).append((g, ms))
    groups = [SlotGroup(slots, tuple(g for g, _ in items),
                        np.stack([contributions[row[id(ms[0])]] for _, ms in items]),
                        tuple(tuple(m.example for m in ms) for _, ms in items))
              for slots, items in patterns.items()]
    return sorted(groups, key=lambda s: (-s.count, -s.ngrams[0].value))


def window_words(g: NGram, width: int, *, stride: int = 1, padding: int = 0, dilation: int = 1) -> tuple[str | None, ...]:
    """The word each slot of ``g``'s window read: ``width`` entries, None where the slot read padding. Slot ``j``
    of map position ``p`` reads token ``p * stride - padding + j * dilation``.

    >>> window_words(NGram(1.0, 0, 4, (5, 7), ("a", "b"), "a b"), 3, padding=0)
    (None, 'a', 'b')
    """
    first = g.position * int(stride) - int(padding)
    return tuple(g.words[t - g.span[0]] if g.span[0] <= t < g.span[1] else None
                 for t in (first + j * int(dilation) for j in range(int(width))))
