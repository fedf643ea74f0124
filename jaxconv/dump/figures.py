"""The report's figures: PNGs drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``, rendered
by Agg; no pyplot, so importing this never changes a notebook's backend), and small inline SVG charts.

Per layer (PNG; each function returns its ``Figure``): :func:`example_heatmaps` (filters x positions for chosen
examples, one colour scale and its colorbar), :func:`pooled_distribution` (box plots of every filter's pooled
values) and :func:`class_means` (each class's mean pooled value per filter, with a colorbar). Per filter (inline
SVG text, no file): :func:`histogram_svg` (its pooled values, with axes, counts and the threshold) and
:func:`slot_bars_svg` (the L2 norm of each kernel row, a bar per slot, with the slot's nearest word). Every label
that holds dataset text is HTML-escaped.

Text is drawn as it is written: every text artist of the PNGs (titles, tick labels, axis labels) is made with
mathtext and TeX off (``parse_math=False``, ``usetex=False``), so a label or a word such as ``$5 or $10`` or
``$\foo$`` shows literally instead of being typeset as maths (or aborting the figure).
"""

from __future__ import annotations

import functools
import html
import os
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

__all__ = ["example_heatmaps", "pooled_distribution", "class_means", "histogram_svg", "slot_bars_svg"]


#: Matplotlib settings while a PNG is drawn and saved: text is literal (no mathtext, no TeX); see the module doc.
LITERAL_TEXT = {"text.parse_math": False, "text.usetex": False}


def _literal_text(draw):
    """Run the figure function ``draw`` (it draws and saves) with :data:`LITERAL_TEXT`: every text artist it makes,
    also the tick labels made while saving, takes its ``parse_math`` / ``usetex`` from these settings."""

    @functools.wraps(draw)
    def wrapped(*args, **kwargs):
        import matplotlib

        with matplotlib.rc_context(LITERAL_TEXT):
            return draw(*args, **kwargs)

    return wrapped


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _save(fig, path: str | os.PathLike) -> None:
    """Save ``fig`` as the PNG ``path``: matplotlib writes a local path itself; a remote one (``gs://``) is drawn
    into memory and written as one object through etils.epath."""
    from jaxconv.paths import is_remote

    if not is_remote(path):
        fig.savefig(path)
        return
    import io

    from etils import epath

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    epath.Path(path).write_bytes(buffer.getvalue())


@_literal_text
def example_heatmaps(dump, layer: str, examples: Sequence[int], path: str | os.PathLike):
    """One panel per example: the layer's map ``(filters, positions)``, positions labelled by their window's first
    word, each panel titled with the example's number, label and prediction; one colour scale for all panels
    and its colorbar. Reads the maps of those examples only. Returns the ``Figure``."""
    rows = [int(i) for i in examples]
    maps = dump.group[f"maps/{layer}"].oindex[rows, :, :].astype(np.float32)            # (E, P, F)
    spans = dump.group[f"spans/{layer}"][...]                                            # (P, 2)
    F, P = maps.shape[2], maps.shape[1]
    fig = _figure(min(3 + 0.18 * P, 17), 0.8 + len(rows) * (1.1 + 0.08 * F))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    vmax = float(maps.max()) or 1.0
    vmin = 0.0 if maps.min() >= 0 else -vmax
    labels, preds = dump.labels, dump.predictions
    im = None
    for ax, i, m in zip(axes, rows, maps):
        words, first = dump.words(i), dump.start(i)
        im = ax.imshow(m.T, aspect="auto", cmap="viridis", vmin=vmin, vmax=vmax, interpolation="nearest")
        ticks = [p for p in range(P) if first <= spans[p, 0] < first + len(words)]
        ax.set_xticks(ticks, [words[spans[p, 0] - first] for p in ticks], rotation=90, fontsize=7)
        ax.set_ylabel("filter")
        ax.set_xlabel("position (labelled by its window's first word)", fontsize=8)
        known = [f"label {dump.class_name(int(labels[i]))}" if labels is not None else "",
                 f"predicted {dump.class_name(int(preds[i]))}" if preds is not None else ""]
        ax.set_title(f"{layer}, example {i}" + "".join(f", {k}" for k in known if k), fontsize=9)
    fig.colorbar(im, ax=list(axes), label="activation", fraction=0.03)
    _save(fig, path)
    return fig


@_literal_text
def pooled_distribution(pooled: Float[np.ndarray, " examples filters"], layer: str, path: str | os.PathLike):
    """Box plots of ``pooled`` ``(examples, filters)``, one per filter (whiskers 1.5 IQR, outliers not drawn);
    the title gives the number of examples. Returns the ``Figure``."""
    N, F = pooled.shape
    fig = _figure(min(2 + 0.16 * F, 18), 3.2)
    ax = fig.subplots()
    ax.boxplot(pooled, positions=np.arange(F), widths=0.6, showfliers=False)
    ax.set_xticks(np.arange(0, F, max(1, -(-F // 16))))
    ax.set_xlabel("filter")
    ax.set_ylabel("max-pooled value")
    ax.set_title(f"{layer}: each filter's pooled value over the {N} examples (box: quartiles, whiskers: 1.5 IQR)",
                 fontsize=9)
    _save(fig, path)
    return fig


@_literal_text
def class_means(pooled: Float[np.ndarray, " examples filters"], classes: np.ndarray, names: Sequence[str],
                layer: str, path: str | os.PathLike):
    """Heatmap ``(classes, filters)``: each class's mean pooled value per filter (``classes`` ``(examples,)``),
    each class labelled with its number of examples, and a colorbar. Returns the ``Figure``."""
    K, F = len(names), pooled.shape[1]
    counts = [int(np.sum(classes == c)) for c in range(K)]
    means = np.stack([pooled[classes == c].mean(axis=0) if counts[c] else np.zeros(F) for c in range(K)])  # (K, F)
    fig = _figure(min(2.5 + 0.16 * F, 18), 1.4 + 0.35 * K)
    ax = fig.subplots()
    im = ax.imshow(means, aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_yticks(range(K), [f"{n} (n={c})" for n, c in zip(names, counts)])
    ax.set_xticks(np.arange(0, F, max(1, -(-F // 16))))
    ax.set_xlabel("filter")
    ax.set_ylabel("class")
    ax.set_title(f"{layer}: mean pooled value per class", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03, label="mean pooled value")
    _save(fig, path)
    return fig


# ------------------------------------------------------------------------------------------------ inline SVG


def _t(x: float, y: float, text, cls: str, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text class="{cls}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{extra}>'
            f"{html.escape(str(text), quote=True)}</text>")


def histogram_svg(values: Float[np.ndarray, " examples"], threshold: float | None = None, *, bins: int = 20,
                  width: int = 640, height: int = 230) -> str:
    """An SVG histogram of ``values`` ``(N,)``: ``bins`` bars, each nonzero bar's count written above it
    (``<text class="count">``), an x axis of values and a y axis of examples, both labelled; with ``threshold``,
    the bars at or above it red and a dashed line at it."""
    values = np.asarray(values, np.float64)
    counts, edges = np.histogram(values, bins=bins)
    left, right, top, bottom = 52, 14, 30, 46
    w, h = width - left - right, height - top - bottom
    lo, hi = float(edges[0]), float(edges[-1])
    x = (lambda v: left + w * (v - lo) / (hi - lo)) if hi > lo else (lambda v: left + w / 2)
    most = int(counts.max()) or 1
    bw = w / bins
    parts = [f'<svg class="histogram" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="histogram of pooled values">']
    for i, c in enumerate(counts):
        bh = h * c / most
        over = threshold is not None and edges[i] >= threshold
        parts.append(f'<rect x="{left + i * bw + 1:.1f}" y="{top + h - bh:.1f}" width="{bw - 2:.1f}" '
                     f'height="{bh:.1f}" fill="{"#e45756" if over else "#4c78a8"}">'
                     f"<title>{edges[i]:.3f} to {edges[i + 1]:.3f}: {c}</title></rect>")
        if c:
            parts.append(_t(left + (i + 0.5) * bw, top + h - bh - 3, int(c), "count", extra=' font-size="10"'))
    axis = 'stroke="#333" stroke-width="1"'
    parts.append(f'<line x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}" {axis}/>'
                 f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" {axis}/>')
    for k in range(0, bins + 1, max(1, bins // 5)):
        parts.append(f'<line x1="{left + k * bw:.1f}" y1="{top + h}" x2="{left + k * bw:.1f}" y2="{top + h + 4}" '
                     f"{axis}/>" + _t(left + k * bw, top + h + 15, f"{edges[k]:.2f}", "tick", extra=' font-size="10"'))
    for c in sorted({0, most // 2, most}):
        y = top + h - h * c / most
        parts.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{left}" y2="{y:.1f}" {axis}/>'
                     + _t(left - 6, y + 3, c, "tick", "end", ' font-size="10"'))
    parts.append(_t(left + w / 2, height - 6, "max-pooled value", "axis-label", extra=' font-size="12"'))
    parts.append(_t(14, top + h / 2, "examples", "axis-label",
                    extra=f' font-size="12" transform="rotate(-90 14 {top + h / 2:.1f})"'))
    if threshold is not None and lo <= threshold <= hi:
        tx = x(threshold)
        parts.append(f'<line class="threshold" x1="{tx:.1f}" y1="{top - 12}" x2="{tx:.1f}" y2="{top + h}" '
                     f'stroke="#e45756" stroke-dasharray="4 3"/>'
                     + _t(tx, top - 16, f"threshold {threshold:.3f}", "tick", "middle", ' font-size="10" fill="#e45756"'))
    parts.append("</svg>")
    return "".join(parts)


def slot_bars_svg(norms: Float[np.ndarray, " width"], words: Sequence[str] | None = None, *, height: int = 190) -> str:
    """An SVG bar chart of a kernel's rows: a bar per slot (kernel position), its height the row's L2 norm
    (written above it, ``<text class="norm">``), under it ``slot j`` and, with ``words``, the slot's nearest word;
    axes labelled."""
    norms = np.asarray(norms, np.float64)
    W = len(norms)
    left, top, bottom, bw = 52, 18, 58, 86
    width, h = left + W * bw + 14, height - top - bottom
    most = float(norms.max()) or 1.0
    axis = 'stroke="#333" stroke-width="1"'
    parts = [f'<svg class="slots" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img" aria-label="L2 norm of each kernel row">']
    for j, n in enumerate(norms):
        bh = h * n / most
        cx = left + (j + 0.5) * bw
        parts.append(f'<rect x="{left + j * bw + 12:.1f}" y="{top + h - bh:.1f}" width="{bw - 24}" height="{bh:.1f}" '
                     f'fill="#72b7b2"/>' + _t(cx, top + h - bh - 3, f"{n:.3f}", "norm", extra=' font-size="10"')
                     + _t(cx, top + h + 14, f"slot {j}", "tick", extra=' font-size="11"'))
        if words is not None:
            parts.append(_t(cx, top + h + 28, words[j], "word", extra=' font-size="11" font-style="italic"'))
    parts.append(f'<line x1="{left}" y1="{top + h}" x2="{width - 14}" y2="{top + h}" {axis}/>'
                 f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + h}" {axis}/>'
                 + _t(left - 6, top + 4, f"{most:.2f}", "tick", "end", ' font-size="10"')
                 + _t(left - 6, top + h + 3, "0", "tick", "end", ' font-size="10"')
                 + _t(left + W * bw / 2, height - 6, "kernel position (slot)" + (", its nearest word" if words else ""),
                      "axis-label", extra=' font-size="12"')
                 + _t(14, top + h / 2, "L2 norm", "axis-label",
                      extra=f' font-size="12" transform="rotate(-90 14 {top + h / 2:.1f})"'))
    parts.append("</svg>")
    return "".join(parts)
