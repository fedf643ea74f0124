"""Ground truth for the whole chain (dump -> spans -> n-grams): which planted motifs the filters found.

The synthetic corpus (:mod:`jaxconv.data.synthetic`) plants known class motifs, words whose ORDER decides the class.
A trained text CNN needs filters that detect them, so each motif should be the top n-gram
(:meth:`jaxconv.dump.Dump.top_ngrams`) of at least one filter. A motif counts as recovered when it IS a filter's
top n-gram: the same words in the same order, nothing more (only filters as wide as the motif can show that).
Wider filters whose top n-gram merely contains the motif are counted apart (``inside``): a random filter's
5-word window holds a 3-word motif by chance often enough that containment proves little.

>>> rec = MotifRecovery(rows=(), recovered=0, total=0)
>>> rec.fraction
0.0
"""

from __future__ import annotations

import dataclasses

__all__ = ["MotifRow", "MotifRecovery", "planted_motifs", "recover_motifs", "identifies"]

Motif = tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class MotifRow:
    """One planted motif: its words, its class, the filters whose top n-gram it is ``(layer, filter, value)``
    (strongest first), and how many wider filters' top n-grams contain it."""

    motif: Motif
    cls: int
    filters: tuple[tuple[str, int, float], ...]
    inside: int

    @property
    def recovered(self) -> bool:
        return bool(self.filters)


@dataclasses.dataclass(frozen=True)
class MotifRecovery:
    """Every motif's :class:`MotifRow`; ``recovered`` of ``total`` are some filter's top n-gram."""

    rows: tuple[MotifRow, ...]
    recovered: int
    total: int

    @property
    def fraction(self) -> float:
        return self.recovered / self.total if self.total else 0.0

    def table(self) -> str:
        """The rows as text: motif -> class -> best filter -> its activation -> how many filters."""
        lines = [f"{'motif':<20} {'class':>5}  {'filter':<14} {'activation':>10}  {'filters':>7}  {'inside':>6}"]
        for r in self.rows:
            best = r.filters[0] if r.filters else None
            lines.append(f"{' '.join(r.motif):<20} {r.cls:>5}  "
                         f"{f'{best[0]}#{best[1]}' if best else '-':<14} "
                         f"{f'{best[2]:.3f}' if best else '-':>10}  {len(r.filters):>7}  {r.inside:>6}")
        lines.append(f"recovered: {self.recovered} / {self.total} motifs = {self.fraction:.0%} are the top n-gram "
                     f"of at least one filter")
        return "\n".join(lines)


def planted_motifs(config) -> dict[int, list[Motif]]:
    """The motifs the synthetic corpus of ``config`` (a run's config, a ConfigDict or a dict) planted, by class.

    Raises:
      ValueError: the config's data is not the synthetic corpus.
    """
    from jaxconv import data as jdata

    data = config["data"]
    if data["name"] != "synthetic":
        raise ValueError(f"planted motifs exist only in the synthetic corpus; this run's data is {data['name']!r}.")
    kw = dict(data["synthetic"])
    kw["length_range"] = tuple(kw["length_range"])
    return jdata.synthetic_dataset(**kw).extras["motifs"]


def recover_motifs(dump, motifs: dict[int, list[Motif]]) -> MotifRecovery:
    """Which of ``motifs`` ({class: [motif, ...]}) are the top n-gram of some filter of ``dump`` (a
    :class:`jaxconv.dump.Dump`)."""
    tops = [(layer, f, dump.top_ngrams(layer, f, k=1)[0]) for layer in dump.layers for f in
            range(dump.num_filters(layer))]
    rows = []
    for cls, ms in sorted(motifs.items()):
        for m in ms:
            m = tuple(m)
            exact = sorted(((layer, f, g.value) for layer, f, g in tops if g.words == m), key=lambda x: -x[2])
            inside = sum(1 for _, _, g in tops if len(g.words) > len(m) and any(
                g.words[i:i + len(m)] == m for i in range(len(g.words) - len(m) + 1)))
            rows.append(MotifRow(m, int(cls), tuple(exact), inside))
    return MotifRecovery(tuple(rows), sum(r.recovered for r in rows), len(rows))


def _pairs(words) -> set[tuple[str, str]]:
    return set(zip(words, words[1:]))


def identifies(words, motif, motifs) -> bool:
    """Whether an n-gram's ``words`` single out ``motif`` among all ``motifs``: they hold it whole, or an ordered
    pair of its adjacent words that no other motif has (the order that decides the class; a filter keyed on
    ``m01c m01b`` fires on ``m01c m01b m01a`` and on no other motif).

    >>> identifies(("w7", "m01c", "m01b"), ("m01c", "m01b", "m01a"), [("m01c", "m01b", "m01a"), ("m01c", "m01a", "m01b")])
    True
    >>> identifies(("m01c", "w7", "m01a"), ("m01c", "m01b", "m01a"), [("m01c", "m01b", "m01a"), ("m01c", "m01a", "m01b")])
    False
    """
    words, motif = tuple(words), tuple(motif)
    if any(words[i:i + len(motif)] == motif for i in range(len(words) - len(motif) + 1)):
        return True
    own = _pairs(motif) - set().union(*(_pairs(tuple(m)) for m in motifs if tuple(m) != motif))
    return bool(own & _pairs(words))
