"""One filter's page of the report (``filters/<layer>-f<j>.html``) and the facts the index shows about it.

The page: the filter's threshold (or "no threshold reaches 75% purity"), a histogram of its pooled values, its
top n-grams distinct with counts and grouped by the slots that fire (:meth:`jaxconv.dump.Dump.ngram_groups`),
example sentences shaded on one scale for the whole page, its slot words, and its kernel as a bar per slot.
"""

from __future__ import annotations

import collections
import dataclasses

import numpy as np

from jaxconv.dump import figures
from jaxconv.dump.analysis import Threshold
from jaxconv.dump.ngrams import SlotGroup, window_words
from jaxconv.dump.report_html import escape as _e
from jaxconv.dump.report_html import filter_slug, page, shaded_sentence

__all__ = ["FilterRow", "filter_row", "filter_page", "threshold_text"]


@dataclasses.dataclass(frozen=True, eq=False)
class FilterRow:
    """What the report knows about one filter.

    Attributes:
      layer, filter, width (kernel positions); max, mean: its pooled values over the dump; threshold (None when
      the dump has no classes); assoc_class, assoc: :meth:`jaxconv.dump.Dump.class_association`'s class and
      effect; groups: its top n-grams, distinct and grouped by firing slots; slot_words: per slot its nearest
      words (empty when unknown); top_k: how many examples the groups were drawn from.
    """

    layer: str
    filter: int
    width: int
    max: float
    mean: float
    threshold: Threshold | None
    assoc_class: int | None
    assoc: float | None
    groups: list[SlotGroup]
    slot_words: list[list]
    top_k: int

    @property
    def slug(self) -> str:
        return filter_slug(self.layer, self.filter)

    @property
    def distinct(self) -> list:
        """The distinct n-grams of all groups, most examples first (ties: strongest first)."""
        out = [g for group in self.groups for g in group.ngrams]
        return sorted(out, key=lambda g: (-g.count, -g.value))

    @property
    def search_text(self) -> str:
        """What the index's search box matches: the layer, the distinct top n-grams and the slot words."""
        words = [w.word for slot in self.slot_words for w in slot]
        return "\n".join([self.layer, *(g.text for g in self.distinct), *words])


def filter_row(dump, layer: str, f: int, *, top_k: int, slot_k: int, pooled: np.ndarray, assoc) -> FilterRow:
    """The :class:`FilterRow` of filter ``f`` (``pooled`` ``(N, F)`` the layer's pooled values; ``assoc`` its
    class association or None)."""
    classes_known = dump.predictions is not None or dump.labels is not None
    embedded = layer in (dump.attrs.get("embedded_layers") or []) and dump.has("embedding")
    return FilterRow(layer, f, int(dump.attrs["layer_info"][layer]["kernel_shape"][0]), float(pooled[:, f].max()),
                     float(pooled[:, f].mean()), dump.threshold(layer, f) if classes_known else None,
                     int(assoc.classes[f]) if assoc else None, float(assoc.effect[f]) if assoc else None,
                     dump.ngram_groups(layer, f, k=top_k), dump.slot_words(layer, f, k=slot_k) if embedded else [],
                     int(top_k))


def threshold_text(t: Threshold | None) -> str:
    """The threshold as the index shows it: its value, "no threshold reaches 75% purity", or ``-`` (no classes)."""
    if t is None:
        return "-"
    if not t.found:
        return f"no threshold reaches {t.minimum_purity:.0%} purity"
    return f"{t.value:.3f}"


def _class_counts(dump, examples, values) -> str:
    """The classes of ``examples`` in ``values`` (labels or predictions) as names with counts."""
    if values is None:
        return "-"
    counts = collections.Counter(int(values[i]) for i in examples)
    return ", ".join(f"{_e(dump.class_name(c))} &times;{n}" if len(examples) > 1 else _e(dump.class_name(c))
                     for c, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _pattern(dump, row: FilterRow, group: SlotGroup) -> str:
    """``"· m02b m02a"``: per slot, the commonest word among the group's n-grams where the slot fires, else ``·``."""
    info = dump.attrs["layer_info"][row.layer]
    per_slot = [collections.Counter() for _ in range(row.width)]
    for g in group.ngrams:
        for j, w in enumerate(window_words(g, row.width, stride=info["stride"], padding=info["padding"][0],
                                           dilation=info["dilation"])):
            per_slot[j][w] += g.count
    return " ".join(_e(per_slot[j].most_common(1)[0][0] or "(padding)") if j in group.slots else "&middot;"
                    for j in range(row.width))


def _groups(dump, row: FilterRow) -> list[str]:
    n = sum(group.count for group in row.groups)
    parts = ["<h2>Top n-grams</h2>",
             f'<p class="note">The distinct n-grams of the filter\'s {n} strongest examples (count: how many of them '
             f"pooled it), grouped by the slots (kernel positions) that fire, after Jacovi et al. (2018): a slot "
             f"fires when its contribution (its kernel row &middot; the word's vector) is positive and at least half "
             f"the window's largest. With the bias, the contributions sum to the filter's value before its "
             f"nonlinearity.</p>"]
    for gi, group in enumerate(row.groups):
        if group.slots is None:
            head = (f"{group.count} examples, {len(group.ngrams)} distinct n-grams (slot contributions need a conv "
                    f"that reads the word vectors)")
        elif not group.slots:
            head = f"no slot contributes positively: {group.count} examples, {len(group.ngrams)} distinct n-grams"
        else:
            head = (f"slot{'s' if len(group.slots) > 1 else ''} {', '.join(map(str, group.slots))} fire: "
                    f"<b>{_pattern(dump, row, group)}</b> &mdash; {group.count} of {n} examples, "
                    f"{len(group.ngrams)} distinct n-gram{'s' if len(group.ngrams) > 1 else ''}")
        slots = "" if group.contributions is None else "".join(f"<th>slot {j}</th>" for j in range(row.width))
        parts.append(f'<h3 class="group">{head}</h3><table class="group" id="group-{gi}"><tr><th>#</th><th>n-gram'
                     f"</th><th>count</th><th>activation</th>{slots}<th>label</th><th>predicted</th>"
                     f"<th>in its sentence (strongest example)</th></tr>")
        for i, g in enumerate(group.ngrams):
            cells = "" if group.contributions is None else "".join(
                f'<td class="num{" fire" if j in group.slots else ""}">{c:.3f}</td>'
                for j, c in enumerate(group.contributions[i]))
            members = group.examples[i]
            parts.append(f'<tr class="ngram"><td>{i + 1}</td><td class="ng"><b>{_e(g.text)}</b></td>'
                         f'<td class="num count">{g.count}</td><td class="num">{g.value:.3f}</td>{cells}'
                         f"<td>{_class_counts(dump, members, dump.labels)}</td>"
                         f"<td>{_class_counts(dump, members, dump.predictions)}</td>"
                         f"<td>example {g.example}: {shaded_sentence(dump, g.example, span=g.span, context=6)}</td></tr>")
        parts.append("</table>")
    return parts


def filter_page(dump, row: FilterRow, examples: list[int], *, shade_max: float | None = None, nav: str = "",
                columns=()) -> str:
    """The HTML of ``row``'s page. ``examples``: the dump's examples shown shaded (after its 3 strongest);
    ``shade_max``: the value shaded fully (default: the filter's strongest pooled value in the dump); ``nav``: the
    navigation links (HTML); ``columns``: the index's extra columns (:class:`jaxconv.dump.report.Column`), whose
    values for this filter are shown under its threshold."""
    layer, f = row.layer, row.filter
    info = dump.attrs["layer_info"][layer]
    t = row.threshold
    parts = [nav, f"<h1>{_e(layer)} filter {f}</h1>",
             f"<p>kernel {_e(info['kernel'])}, stride {info['stride']}, padding {tuple(info['padding'])}, dilation "
             f"{info['dilation']}: each position sees {info['rf_size']} tokens. Max pooled {row.max:.3f}, mean "
             f"{row.mean:.3f} over {dump.num_examples} examples.</p>"]
    assoc = (f" Class association: {_e(dump.class_name(row.assoc_class))} ({row.assoc:.2f})."
             if row.assoc is not None else "")
    if t is not None and t.found:
        parts.append(f'<p class="threshold">Threshold <b>{t.value:.3f}</b> (Jacovi et al., 2018, purity rule): '
                     f"{t.passing} of {t.count} examples ({t.coverage:.0%}) lie above it, {t.purity:.0%} of them "
                     f"predicted <b>{_e(dump.class_name(t.identity_class))}</b>, the filter's class; purity asked: "
                     f"{t.minimum_purity:.0%}.{assoc}</p>")
    elif t is not None:
        parts.append(f'<p class="threshold none"><b>No threshold reaches {t.minimum_purity:.0%} purity</b> (Jacovi '
                     f"et al., 2018, purity rule): above every cut of its pooled values, fewer than "
                     f"{t.minimum_purity:.0%} of the {t.count} examples' predictions are "
                     f"<b>{_e(dump.class_name(t.identity_class))}</b>, the filter's class.{assoc}</p>")
    if columns:
        parts.append('<table class="extra"><tr>' + "".join(f"<th>{_e(c.header)}</th>" for c in columns) + "</tr><tr>"
                     + "".join(c.cell(layer, f) for c in columns) + "</tr></table>")
    parts.append(figures.histogram_svg(dump.pooled(layer)[:, f], t.value if t is not None and t.found else None))
    parts.append(f'<p class="note">The filter\'s pooled value on each of the {dump.num_examples} examples: counts '
                 f"per bin" + ("; red: bins at or above the threshold." if t is not None and t.found else ".") + "</p>")
    parts += _groups(dump, row)
    tops = [g.example for group in row.groups for g in group.ngrams]
    strongest = sorted(tops, key=lambda i: -float(dump.pooled(layer)[i, f]))[:3]
    shown = list(dict.fromkeys([*strongest, *examples]))
    scale = row.max if shade_max is None else float(shade_max)
    why = "this filter's strongest pooled value in the dump" if shade_max is None else "the value the report was given"
    parts.append(f'<h2>Example sentences</h2><p class="note scale">shading: 0 to {scale:.3f}, {why}; one scale for '
                 f"every sentence on this page. Each word is shaded by the filter's strongest activation among the "
                 f"windows that contain it (hover for the value); dotted: not in the vocabulary (the model saw "
                 f"&lt;unk&gt;).</p><table><tr><th>example</th><th>label</th><th>predicted</th><th>pooled</th>"
                 f"<th>sentence</th></tr>")
    maps = dump.feature_map(layer, f)[shown] if shown else []     # (len(shown), positions): one read, not one each
    for i, m in zip(shown, maps):
        g = dump.ngram(layer, f, i)
        parts.append(f'<tr class="example"><td class="num">{i}</td><td>{_e(dump.class_name(g.label))}</td>'
                     f'<td>{_e(dump.class_name(g.prediction))}</td><td class="num">{g.value:.3f}</td>'
                     f"<td>{shaded_sentence(dump, i, dump.token_activations(layer, f, i, row=m), scale)}</td></tr>")
    parts.append("</table>")
    if row.slot_words:
        slots = row.slot_words
        parts.append("<h2>Slot words</h2><p class=\"note\">per kernel position, the words whose vectors have the "
                     "largest dot product with that kernel row.</p><table class=\"slots\"><tr>"
                     + "".join(f"<th>slot {j}</th>" for j in range(len(slots))) + "</tr>")
        for r in range(len(slots[0])):
            parts.append("<tr>" + "".join(f"<td>{_e(s[r].word)} <span class=\"note\">{s[r].score:.2f}</span></td>"
                                          for s in slots) + "</tr>")
        parts.append("</table>")
    kernel = dump.group[f"kernels/{layer}"][:, :, f]                                      # (W, C)
    norms = np.linalg.norm(kernel, axis=1)                                               # (W,)
    w, c = kernel.shape
    parts.append(f"<h2>Kernel ({w} x {c})</h2>"
                 + figures.slot_bars_svg(norms, [s[0].word for s in row.slot_words] if row.slot_words else None)
                 + f'<p class="note">Each kernel position (slot) is a row of {c} weights; the bar is its L2 norm, how '
                 f"strongly that slot can respond" + (", and under it the word it matches best." if row.slot_words
                                                     else ".") + "</p>")
    return page(f"{layer} filter {f}: jaxconv report", "\n".join(parts))
