"""A static HTML report of a dump: ``index.html`` and one page per filter (``jaxconv report`` writes it to
``RUN/report/<dump name>/``).

Self-contained: plain HTML, inline CSS and SVG, PNG figures beside it, no network. The pages read without
JavaScript; the index holds one small inline script, its search box. Every piece of dataset text (words,
sentences, label names) and every layer name goes through ``html.escape``, so a sentence holding ``<script>``
shows as text.

- ``index.html`` lists every layer and filter: its strongest and mean pooled value, threshold (or "no threshold
  reaches 75% purity"), coverage, class, association and its top n-grams, distinct with counts. A search box
  hides the rows whose n-grams and slot words do not contain what is typed. ``by-activation.html`` and
  ``by-association.html`` are the same table sorted (static pages: the column headers link to them). Per layer:
  filters x positions heatmaps of chosen examples, the distribution of pooled values per filter and each class's
  mean activation (PNG, :mod:`jaxconv.dump.figures`).
- ``filters/<layer>-f<j>.html`` (:mod:`jaxconv.dump.report_filter`).

More can be added: ``columns`` (:class:`Column`, a value per filter, optionally with its own sorted page) and
``pages`` (:class:`Page`, linked from every page's navigation).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from jaxconv.dump import figures
from jaxconv.dump.examples_page import PAGE as EXAMPLES_PAGE
from jaxconv.dump.examples_page import write_examples_page
from jaxconv.dump.report_filter import FilterRow, filter_page, filter_row, threshold_text
from jaxconv.dump.report_html import escape as _e
from jaxconv.dump.report_html import filter_slug, page
from jaxconv.paths import naming_write_errors

__all__ = ["write_report", "ReportResult", "chosen_examples", "HEATMAP_EXAMPLES", "Column", "Page", "filter_slug",
           "SEARCH_SCRIPT"]

#: The index's only script: hide the rows whose ``data-search`` does not contain the search box's text.
SEARCH_SCRIPT = """(function () {
  var box = document.getElementById("search"), shown = document.getElementById("shown");
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr.filter"));
  function apply() {
    var q = box.value.trim().toLowerCase(), n = 0;
    rows.forEach(function (r) {
      var hit = !q || r.getAttribute("data-search").toLowerCase().indexOf(q) >= 0;
      r.hidden = !hit;
      if (hit) n++;
    });
    shown.textContent = q ? n + " of " + rows.length + " filters match" : "";
  }
  box.addEventListener("input", apply);
  apply();
})();"""


#: The most examples a layer's heatmap figure draws (the first of those shown; the filter pages show them all).
HEATMAP_EXAMPLES = 10


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """Where the report went: ``index`` (path of index.html), ``pages`` (filter pages), ``figures`` (PNGs),
    ``examples`` (how many examples each filter page shows)."""

    index: str
    pages: int
    figures: int
    examples: int = 0


def chosen_examples(examples, num_examples: int) -> list[int]:
    """The rows that ``examples`` (:func:`write_report`'s argument) names in a dump of ``num_examples`` rows.

    The rule: an int ``N >= 1`` means the first ``N`` rows, capped at ``num_examples`` (a larger ``N`` shows them
    all); a sequence names rows, each an int in ``0 <= row < num_examples``.

    Raises:
      ValueError: ``examples`` is not an int >= 1 (0, -3, 2.5, True, "3") nor a sequence of ints; IndexError: a
        row out of range. Each message names ``examples``, the value and what is expected.
    """
    if isinstance(examples, (int, np.integer)) and not isinstance(examples, (bool, np.bool_)):
        if examples < 1:
            raise ValueError(f"examples={int(examples)} is not a number of examples to show; expected an int >= 1 "
                             f"(at most the dump's {num_examples} rows are shown) or a list of rows.")
        return list(range(min(int(examples), num_examples)))
    if isinstance(examples, (str, bytes, float, bool, np.floating, np.bool_)) or not hasattr(examples, "__iter__"):
        raise ValueError(f"examples={str(repr(examples))[:80]} is not understood; expected an int >= 1 (the dump's "
                         f"first N rows) or a list of rows.")
    chosen = list(examples)
    wrong = [i for i in chosen if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer))]
    if wrong:
        raise ValueError(f"examples holds {str(repr(wrong[0]))[:80]}, not a row; expected ints in 0 <= row < "
                         f"{num_examples}.")
    bad = [int(i) for i in chosen if not 0 <= i < num_examples]
    if bad:
        raise IndexError(f"examples={bad!r} are out of range; expected 0 <= example < {num_examples}.")
    return [int(i) for i in chosen]


@dataclasses.dataclass(frozen=True)
class Column:
    """An extra column of the index.

    Attributes:
      header: its heading (text); values: per filter, ``(layer, filter) -> value``, a mapping or a function; a float
        is written with ``fmt``, anything else as escaped text, None as ``-``.
      fmt: the format of floats; note: a sentence for the index's notes (text).
      sort: also write ``by-<header>.html``, the table sorted by this column (largest first), linked from the
        header.
    """

    header: str
    values: Mapping[tuple[str, int], object] | Callable[[str, int], object]
    fmt: str = "{:.3f}"
    note: str = ""
    sort: bool = False

    def value(self, layer: str, filter: int):
        return self.values(layer, filter) if callable(self.values) else self.values.get((layer, filter))

    def number(self, layer: str, filter: int) -> float | None:
        """The value as a float for sorting (None when missing or not a number)."""
        v = self.value(layer, filter)
        return float(v) if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) else None

    def cell(self, layer: str, filter: int) -> str:
        v = self.value(layer, filter)
        if v is None:
            return '<td class="num">-</td>'
        if isinstance(v, (float, np.floating)):
            return f'<td class="num">{_e(self.fmt.format(float(v)))}</td>'
        return f'<td class="num">{_e(v)}</td>' if isinstance(v, (int, np.integer)) else f"<td>{_e(v)}</td>"

    @property
    def file(self) -> str:
        """Its sorted page: ``"by-<header in lower-case ASCII letters, digits and dashes>.html"``."""
        return "by-" + (re.sub(r"[^a-z0-9]+", "-", self.header.lower()).strip("-") or "column") + ".html"


@dataclasses.dataclass(frozen=True)
class Page:
    """An extra page of the report, linked from every page's navigation.

    Attributes:
      file: its file name beside ``index.html`` (``"examples.html"``); title: its title and link text.
      body: its HTML, or a function of the report's folder returning it; trusted markup: escape every piece of
        dataset text in it with :func:`jaxconv.dump.report_html.escape`. From it, filter ``j`` of ``layer`` is
        ``filters/<filter_slug(layer, j)>.html``.
    """

    file: str
    title: str
    body: str | Callable[[os.PathLike], str]


def _nav(pages: Sequence[Page], up: str = "") -> str:
    links = [(f"{up}index.html", "all filters"), (f"{up}by-activation.html", "by activation"),
             (f"{up}by-association.html", "by association"),
             *([(f"{up}{EXAMPLES_PAGE}", "examples: why that prediction")] if all(p.file != EXAMPLES_PAGE
                                                                                  for p in pages) else []),
             *((f"{up}{p.file}", p.title) for p in pages)]
    return "<nav>" + "".join(f'<a href="{_e(h)}">{_e(t)}</a>' for h, t in links) + "</nav>"


def _index(dump, rows: list[FilterRow], order: str, figs: dict[str, list[str]], columns: Sequence[Column],
           pages: Sequence[Page]) -> str:
    sorts = {"index.html": "layer and filter", "by-activation.html": "strongest pooled value",
             "by-association.html": "class association", **{c.file: c.header for c in columns if c.sort}}
    t0 = next((r.threshold for r in rows if r.threshold is not None), None)
    purity = f"{t0.minimum_purity:.0%}" if t0 else "-"
    head = (_nav(pages) + f"<h1>Filters of {_e(dump.attrs.get('model', 'the model'))}: dump {_e(dump.attrs['name'])}"
            f"</h1><p>{dump.num_examples} examples ({_e(dump.attrs['source'])}), checkpoint step "
            f"{_e(dump.attrs['checkpoint_step'])}, layers {_e(', '.join(dump.layers))}. Sorted by {_e(sorts[order])}; "
            + " ".join(f'<a href="{_e(k)}">sort by {_e(v)}</a>' for k, v in sorts.items() if k != order) + "</p>"
            f'<p class="note">threshold: the pooled value above which the filter\'s n-grams are at least {purity} '
            f"pure for its class (Jacovi et al., 2018), or none when no value reaches it; coverage: the share of "
            f"examples above it; association: the standardized difference of the class's mean pooled value from "
            f"the others'; top n-grams: the distinct n-grams of its {rows[0].top_k if rows else 0} strongest "
            f"examples, with how many had each." + "".join(f" {_e(c.header)}: {_e(c.note)}" for c in columns
                                                           if c.note) + "</p>"
            '<p><label>Search filters: <input id="search" type="search" autocomplete="off" '
            'placeholder="an n-gram or a word"></label> <span id="shown" class="note"></span> '
            '<span class="note">(matches the top n-grams and slot words)</span></p>')
    extra = "".join(f'<th><a href="{_e(c.file)}">{_e(c.header)}</a></th>' if c.sort else f"<th>{_e(c.header)}</th>"
                    for c in columns)
    table = ['<table id="filters"><tr><th><a href="index.html">layer</a></th><th>filter</th><th>width</th>'
             '<th><a href="by-activation.html">max pooled</a></th><th>mean pooled</th><th>threshold</th>'
             '<th>coverage</th><th>class</th><th><a href="by-association.html">association</a></th>'
             f"{extra}<th>top n-grams (count)</th></tr>"]
    for r in rows:
        t = r.threshold
        tops = "; ".join(f"{_e(g.text)} <span class=\"note\">&times;{g.count}</span>" for g in r.distinct[:3])
        more = len(r.distinct) - 3
        more_note = f' <span class="note">(+{more} more)</span>' if more > 0 else ""
        table.append(
            f'<tr class="filter" data-search="{_e(r.search_text)}"><td>{_e(r.layer)}</td>'
            f'<td><a href="filters/{_e(r.slug)}.html">{r.filter}</a></td>'
            f'<td class="num">{r.width}</td><td class="num">{r.max:.3f}</td><td class="num">{r.mean:.3f}</td>'
            + (f'<td class="num">{threshold_text(t)}</td>' if t is None or t.found else
               f'<td class="none">{threshold_text(t)}</td>')
            + f'<td class="num">{f"{t.coverage:.0%}" if t is not None and t.found else "-"}</td>'
            f'<td>{_e(dump.class_name(r.assoc_class)) if r.assoc_class is not None else "-"}</td>'
            f'<td class="num">{f"{r.assoc:.2f}" if r.assoc is not None else "-"}</td>'
            + "".join(c.cell(r.layer, r.filter) for c in columns)
            + f'<td>{tops}{more_note}</td></tr>')
    table.append("</table>")
    pics = "".join(f"<h2>{_e(layer)}</h2>" + "".join(f'<p><img src="figures/{_e(f)}" alt="{_e(f)}"></p>' for f in fs)
                   for layer, fs in figs.items())
    return page(f"jaxconv report: {dump.attrs['name']}", head + "\n".join(table) + pics, script=SEARCH_SCRIPT)


def _sorted(rows: list[FilterRow], key) -> list[FilterRow]:
    """Largest first, None last, ties in layer and filter order."""
    return sorted(rows, key=lambda r: (key(r) is None, -(key(r) if key(r) is not None else 0.0)))


def write_report(dump, out_dir, *, examples: int | Sequence[int] = 3, top_k: int = 50, slot_k: int = 5,
                 shade_max: float | None = None, columns: Sequence[Column] = (),
                 pages: Sequence[Page] = ()) -> ReportResult:
    """Write the report of ``dump`` (a :class:`jaxconv.dump.Dump`) into ``out_dir`` (created; files replaced).

    Args:
      examples: the dump's first this many examples (an int >= 1, capped at the dump's rows: a larger number shows
        them all; ``ReportResult.examples`` says how many), or these rows (a list); they are shown, shaded, on
        every filter page, and the first :data:`HEATMAP_EXAMPLES` of them in each layer's heatmap figure. See
        :func:`chosen_examples`.
      top_k: each filter's top n-grams are drawn from its ``top_k`` strongest examples (distinct, with counts,
        grouped by the slots that fire); slot_k: words per slot.
      shade_max: the activation shaded fully on every filter page (default: each filter's strongest pooled value
        in the dump: one scale per page, stated in its caption).
      columns: extra per-filter columns of the index (:class:`Column`; each filter's page shows its values too),
        after the report's own: what zeroing each filter costs (when ``jaxconv ablate`` saved it beside the dump)
        and the class probe's weight (:mod:`jaxconv.dump.report_why`); pages: extra pages (:class:`Page`).

    Raises:
      jaxconv.paths.WorkdirError: a write failed (a full disk): one line naming ``out_dir`` and the cause.
    """
    from etils import epath

    out = epath.Path(os.fspath(out_dir))
    with naming_write_errors(out, "the report"):
        return _write_report(dump, out, examples, top_k, slot_k, shade_max, columns, pages)


def _write_report(dump, out, examples, top_k, slot_k, shade_max, columns, pages) -> ReportResult:
    from jaxconv.dump.report_why import why_columns

    chosen = chosen_examples(examples, dump.num_examples)         # bad input refused before anything is written
    columns = [*columns, *why_columns(dump)]
    (out / "filters").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    dump.column("words")
    dump.column("tokens")
    classes = dump.labels if dump.labels is not None else dump.predictions
    names = [dump.class_name(c) for c in range(dump.num_classes)]
    figs: dict[str, list[str]] = {}
    rows: list[FilterRow] = []
    for layer in dump.layers:
        slug = filter_slug(layer, 0)[:-3]
        figs[layer] = [f"heatmap-{slug}.png", f"pooled-{slug}.png"]
        if chosen:
            figures.example_heatmaps(dump, layer, chosen[:HEATMAP_EXAMPLES], out / "figures" / figs[layer][0])
        else:
            figs[layer].pop(0)
        pooled = dump.pooled(layer)
        figures.pooled_distribution(pooled, layer, out / "figures" / figs[layer][-1])
        if classes is not None:
            figs[layer].append(f"classes-{slug}.png")
            figures.class_means(pooled, classes, names, layer, out / "figures" / figs[layer][-1])
        assoc = dump.class_association(layer) if classes is not None else None
        rows += [filter_row(dump, layer, f, top_k=top_k, slot_k=slot_k, pooled=pooled, assoc=assoc)
                 for f in range(dump.num_filters(layer))]
    nav = _nav(pages, up="../")
    for r in rows:
        (out / "filters" / f"{r.slug}.html").write_text(filter_page(dump, r, chosen, shade_max=shade_max, nav=nav,
                                                                    columns=columns))
    orders = {"index.html": rows, "by-activation.html": _sorted(rows, lambda r: r.max),
              "by-association.html": _sorted(rows, lambda r: r.assoc)}
    for c in columns:
        if c.sort:
            orders[c.file] = _sorted(rows, lambda r, c=c: c.number(r.layer, r.filter))
    for file, ordered in orders.items():
        (out / file).write_text(_index(dump, ordered, file, figs, columns, pages))
    if all(p.file != EXAMPLES_PAGE for p in pages):                                  # a page of that name wins
        write_examples_page(dump, out)
    for p in pages:
        body = p.body(out) if callable(p.body) else p.body
        (out / p.file).write_text(page(f"{p.title}: jaxconv report", _nav(pages) + body))
    return ReportResult(index=str(out / "index.html"), pages=len(rows), figures=sum(len(v) for v in figs.values()),
                        examples=len(chosen))
