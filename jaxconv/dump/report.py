"""A static HTML report of a dump: ``RUN/report/index.html`` and one page per filter.

Self-contained: plain HTML and inline CSS, PNG figures beside it, no script, no network, nothing that needs
JavaScript to read. Every piece of dataset text (words, sentences, label names) and every layer name goes
through ``html.escape``, so a sentence holding ``<script>`` shows as text.

- ``index.html`` lists every layer and filter; ``by-activation.html`` and ``by-association.html`` are the same
  table sorted by the strongest pooled value and by class association (static pages: the column headers link
  to them). Per layer: filters x positions heatmaps of chosen examples, the distribution of pooled values per
  filter and each class's mean activation (PNG, :mod:`jaxconv.dump.figures`).
- ``filters/<layer>-f<j>.html``: the filter's top n-grams with their activations, example sentences (its top
  three and the dump's first few) with each word shaded by the filter's activation, its slot words, its purity
  threshold, a histogram of its pooled values, and its kernel as a ``(width x in)`` heatmap.
"""

from __future__ import annotations

import dataclasses
import html
import os

import numpy as np

from jaxconv.data.tokenize import JOINERS
from jaxconv.dump import figures
from jaxconv.dump.analysis import Threshold
from jaxconv.dump.examples_page import write_examples_page

__all__ = ["write_report", "ReportResult", "filter_slug"]

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1300px}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tok{padding:1px 2px;border-radius:3px}td.ng{white-space:nowrap}.unk{text-decoration:underline dotted}
mark{background:#ffd27f}
.bars{display:flex;align-items:flex-end;height:90px;gap:2px}.bars div{background:#4c78a8;width:18px}
.bars div.over{background:#e45756}img.kernel{image-rendering:pixelated;border:1px solid #999}
nav a{margin-right:1em}.note{color:#555;font-size:13px}"""


@dataclasses.dataclass(frozen=True)
class ReportResult:
    """Where the report went: ``index`` (path of index.html), ``pages`` (filter pages), ``figures`` (PNGs)."""

    index: str
    pages: int
    figures: int


@dataclasses.dataclass(frozen=True)
class _Row:
    layer: str
    filter: int
    width: int
    max: float
    mean: float
    threshold: Threshold | None
    assoc_class: int | None
    assoc: float | None
    top: str

    @property
    def slug(self) -> str:
        return filter_slug(self.layer, self.filter)


def filter_slug(layer: str, filter: int) -> str:
    """The file name stem of a filter's page: ``convs/2``, 7 -> ``convs-2-f7``."""
    return "".join(c if c.isalnum() or c in "_." else "-" for c in layer) + f"-f{int(filter)}"


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")


def _rows(dump) -> list[_Row]:
    out = []
    classes_known = dump.predictions is not None or dump.labels is not None
    for layer in dump.layers:
        pooled = dump.pooled(layer)                                                      # (N, F)
        assoc = dump.class_association(layer) if classes_known else None
        width = int(dump.attrs["layer_info"][layer]["kernel_shape"][0])
        for f in range(dump.num_filters(layer)):
            out.append(_Row(layer, f, width, float(pooled[:, f].max()), float(pooled[:, f].mean()),
                            dump.threshold(layer, f) if classes_known else None,
                            int(assoc[0][f]) if assoc else None, float(assoc[1][f]) if assoc else None,
                            dump.top_ngrams(layer, f, k=1)[0].text))
    return out


def _index(dump, rows: list[_Row], order: str, figs: dict[str, list[str]]) -> str:
    sorts = {"index.html": "layer and filter", "by-activation.html": "strongest pooled value",
             "by-association.html": "class association"}
    head = (f"<h1>Filters of {_e(dump.attrs.get('model', 'the model'))}: dump {_e(dump.attrs['name'])}</h1>"
            f"<p>{dump.num_examples} examples ({_e(dump.attrs['source'])}), checkpoint step "
            f"{_e(dump.attrs['checkpoint_step'])}, layers {_e(', '.join(dump.layers))}. Sorted by {sorts[order]}; "
            + " ".join(f'<a href="{k}">sort by {v}</a>' for k, v in sorts.items() if k != order) + "</p>"
            '<p><a href="examples.html">Examples: why the model predicted what it did</a></p>'
            f'<p class="note">threshold: the pooled value above which the filter\'s n-grams are at least '
            f"{rows[0].threshold.minimum_purity if rows and rows[0].threshold else '-'} pure for its class "
            f"(Jacovi et al., 2018); coverage: the share of examples above it; association: the standardized "
            f"difference of the class's mean pooled value from the others'.</p>")
    table = ['<table><tr><th><a href="index.html">layer</a></th><th>filter</th><th>width</th>'
             '<th><a href="by-activation.html">max pooled</a></th><th>mean pooled</th><th>threshold</th>'
             '<th>coverage</th><th>class</th><th><a href="by-association.html">association</a></th>'
             '<th>top n-gram</th></tr>']
    for r in rows:
        t = r.threshold
        table.append(
            f'<tr><td>{_e(r.layer)}</td><td><a href="filters/{_e(r.slug)}.html">{r.filter}</a></td>'
            f'<td class="num">{r.width}</td><td class="num">{r.max:.3f}</td><td class="num">{r.mean:.3f}</td>'
            f'<td class="num">{f"{t.value:.3f}" if t else "-"}</td>'
            f'<td class="num">{f"{t.coverage:.0%}" if t else "-"}</td>'
            f'<td>{_e(dump.class_name(r.assoc_class)) if r.assoc_class is not None else "-"}</td>'
            f'<td class="num">{f"{r.assoc:.2f}" if r.assoc is not None else "-"}</td><td>{_e(r.top)}</td></tr>')
    table.append("</table>")
    pics = "".join(f"<h2>{_e(layer)}</h2>" + "".join(f'<p><img src="figures/{_e(f)}" alt="{_e(f)}"></p>' for f in fs)
                   for layer, fs in figs.items())
    return _page(f"jaxconv report: {dump.attrs['name']}", head + "\n".join(table) + pics)


def _sentence(dump, example: int, scores: np.ndarray | None, span: tuple[int, int] | None) -> str:
    words, ids, first = dump.words(example), dump.column("tokens")[example], dump.start(example)
    unk = dump.attrs.get("unk_id", 1)                   # None: the vocabulary drops unknown words
    vmax = float(scores.max()) if scores is not None and scores.size and scores.max() > 0 else 1.0
    out = []
    for j, w in enumerate(words):
        cls = "tok unk" if unk is not None and ids[first + j] == unk else "tok"
        if scores is not None:
            a = max(0.0, min(1.0, float(scores[j]) / vmax))
            piece = (f'<span class="{cls}" style="background:rgba(255,140,0,{a:.2f})" '
                     f'title="{scores[j]:.3f}">{_e(w)}</span>')
        else:
            piece = f'<span class="{cls}">{_e(w)}</span>'
        if span is not None and span[0] <= first + j < span[1]:
            piece = f"<mark>{piece}</mark>"
        out.append(piece)
    return JOINERS.get(dump.attrs["tokenizer"], " ").join(out)   # words with spaces; characters and bytes as they are


def _histogram(values: np.ndarray, threshold: Threshold | None) -> str:
    counts, edges = np.histogram(values, bins=20)
    top = counts.max() or 1
    bars = "".join(f'<div class="{"over" if threshold and edges[i] >= threshold.value else ""}" '
                   f'style="height:{max(1, int(88 * c / top))}px" title="{edges[i]:.3f}..{edges[i + 1]:.3f}: {c}">'
                   f"</div>" for i, c in enumerate(counts))
    return (f'<div class="bars">{bars}</div><p class="note">pooled values from {edges[0]:.3f} to {edges[-1]:.3f}, '
            f"20 bins; red: at or above the threshold.</p>")


def _filter_page(dump, row: _Row, examples: list[int], top_k: int, slot_k: int, kernel_file: str) -> str:
    layer, f = row.layer, row.filter
    info = dump.attrs["layer_info"][layer]
    t = row.threshold
    parts = [f'<nav><a href="../index.html">all filters</a><a href="../by-activation.html">by activation</a>'
             f'<a href="../by-association.html">by association</a></nav>',
             f"<h1>{_e(layer)} filter {f}</h1>",
             f"<p>kernel {_e(info['kernel'])}, stride {info['stride']}, padding {tuple(info['padding'])}, dilation "
             f"{info['dilation']}: each position sees {info['rf_size']} tokens. Max pooled {row.max:.3f}, mean "
             f"{row.mean:.3f}.</p>"]
    if t is not None:
        parts.append(f'<p class="threshold">Threshold <b>{t.value:.3f}</b> (Jacovi et al., 2018, purity rule): '
                     f"{t.passing} of {t.count} examples ({t.coverage:.0%}) lie above it, {t.purity:.0%} of them "
                     f"predicted <b>{_e(dump.class_name(t.identity_class))}</b>, the filter's class; purity asked: "
                     f"{t.minimum_purity:.0%}. Class association: {_e(dump.class_name(row.assoc_class))} "
                     f"({row.assoc:.2f}).</p>")
    parts.append(_histogram(dump.pooled(layer)[:, f], t))
    parts.append("<h2>Top n-grams</h2><table><tr><th>#</th><th>activation</th><th>example</th><th>label</th>"
                 "<th>predicted</th><th>n-gram</th><th>in its sentence</th></tr>")
    tops = dump.top_ngrams(layer, f, k=top_k)
    for i, g in enumerate(tops, 1):
        parts.append(f'<tr class="ngram"><td>{i}</td><td class="num">{g.value:.3f}</td><td class="num">{g.example}'
                     f"</td><td>{_e(dump.class_name(g.label))}</td><td>{_e(dump.class_name(g.prediction))}</td>"
                     f'<td class="ng"><b>{_e(g.text)}</b></td><td>{_sentence(dump, g.example, None, g.span)}</td></tr>')
    shown = list(dict.fromkeys([*(g.example for g in tops[:3]), *examples]))
    parts.append("</table><h2>Example sentences</h2><p class=\"note\">each word shaded by the filter's strongest "
                 "activation among the windows that contain it (hover for the value); dotted: not in the "
                 "vocabulary (the model saw &lt;unk&gt;).</p><table><tr><th>example</th><th>label</th>"
                 "<th>predicted</th><th>pooled</th><th>sentence</th></tr>")
    for i in shown:
        g = dump.ngram(layer, f, i)
        parts.append(f'<tr class="example"><td class="num">{i}</td><td>{_e(dump.class_name(g.label))}</td>'
                     f'<td>{_e(dump.class_name(g.prediction))}</td><td class="num">{g.value:.3f}</td>'
                     f"<td>{_sentence(dump, i, dump.token_activations(layer, f, i), None)}</td></tr>")
    parts.append("</table>")
    if layer in (dump.attrs.get("embedded_layers") or []):
        slots = dump.slot_words(layer, f, k=slot_k)
        parts.append("<h2>Slot words</h2><p class=\"note\">per kernel position, the words whose vectors have the "
                     "largest dot product with that kernel row.</p><table class=\"slots\"><tr>"
                     + "".join(f"<th>slot {j}</th>" for j in range(len(slots))) + "</tr>")
        for r in range(len(slots[0])):
            parts.append("<tr>" + "".join(f"<td>{_e(s[r].word)} <span class=\"note\">{s[r].score:.2f}</span></td>"
                                          for s in slots) + "</tr>")
        parts.append("</table>")
    kernel = dump.group[f"kernels/{layer}"][:, :, f]                                      # (W, C)
    norms = ", ".join(f"{v:.3f}" for v in np.linalg.norm(kernel, axis=1))
    w, c = kernel.shape
    parts.append(f"<h2>Kernel ({w} x {c})</h2><p><img class=\"kernel\" src=\"../figures/{_e(kernel_file)}\" "
                 f'alt="kernel heatmap" style="width:{min(900, c * 4)}px;height:{w * 16}px"></p>'
                 f'<p class="note">rows: kernel positions (slots), columns: input channels; blue negative, red '
                 f"positive. Slot norms: {norms}.</p>")
    return _page(f"{layer} filter {f}: jaxconv report", "\n".join(parts))


def write_report(dump, out_dir, *, examples: int = 3, top_k: int = 10, slot_k: int = 5) -> ReportResult:
    """Write the report of ``dump`` (a :class:`jaxconv.dump.Dump`) into ``out_dir`` (created; files replaced).

    Args:
      examples: the first this many examples of the dump are shown, shaded, on every filter page (and in the
        per-layer heatmaps).
      top_k: top n-grams per filter; slot_k: words per slot.
    """
    from etils import epath

    out = epath.Path(os.fspath(out_dir))
    (out / "filters").mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(parents=True, exist_ok=True)
    dump.column("words")
    dump.column("tokens")
    chosen = list(range(min(int(examples), dump.num_examples)))
    classes = dump.labels if dump.labels is not None else dump.predictions
    names = [dump.class_name(c) for c in range(dump.num_classes)]
    figs: dict[str, list[str]] = {}
    for layer in dump.layers:
        slug = filter_slug(layer, 0)[:-3]
        figs[layer] = [f"heatmap-{slug}.png", f"pooled-{slug}.png"]
        figures.example_heatmaps(dump, layer, chosen, out / "figures" / figs[layer][0])
        figures.pooled_distribution(dump.pooled(layer), layer, out / "figures" / figs[layer][1])
        if classes is not None:
            figs[layer].append(f"classes-{slug}.png")
            figures.class_means(dump.pooled(layer), classes, names, layer, out / "figures" / figs[layer][2])
    rows = _rows(dump)
    for r in rows:
        kernel_file = f"kernel-{r.slug}.png"
        figures.kernel_png(dump.group[f"kernels/{r.layer}"][:, :, r.filter], out / "figures" / kernel_file)
        (out / "filters" / f"{r.slug}.html").write_text(_filter_page(dump, r, chosen, top_k, slot_k, kernel_file))
    write_examples_page(dump, out)                                                       # examples.html
    orders = {"index.html": rows,
              "by-activation.html": sorted(rows, key=lambda r: -r.max),
              "by-association.html": sorted(rows, key=lambda r: -(r.assoc if r.assoc is not None else -np.inf))}
    for file, ordered in orders.items():
        (out / file).write_text(_index(dump, ordered, file, figs))
    return ReportResult(index=str(out / "index.html"), pages=len(rows),
                        figures=len(rows) + sum(len(v) for v in figs.values()))
