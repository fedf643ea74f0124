"""The report's HTML pieces, shared by its pages (:mod:`jaxconv.dump.report`, :mod:`jaxconv.dump.report_filter`) and
by pages that other modules add to it (:class:`jaxconv.dump.report.Page`): escaping, the page frame, file names,
and a sentence with its words shaded on a stated scale.

Every piece of dataset text goes through :func:`escape` (``html.escape`` with quotes), so a sentence holding
``<script>`` shows as text.
"""

from __future__ import annotations

import html

import numpy as np

from jaxconv.data.tokenize import JOINERS

__all__ = ["escape", "page", "filter_slug", "shaded_sentence", "CSS"]

CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1300px}
table{border-collapse:collapse;margin:.6em 0}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tok{padding:1px 2px;border-radius:3px}td.ng{white-space:nowrap}.unk{text-decoration:underline dotted}
mark{background:#ffd27f}td.fire{background:#fde2c4;font-weight:600}
svg text{font-family:system-ui,sans-serif;fill:#222}
nav a{margin-right:1em}.note{color:#555;font-size:13px}.none{color:#8a4b00}
input#search{font-size:15px;padding:3px 6px;width:22em}"""


def escape(x) -> str:
    """``str(x)`` escaped for HTML text and attribute values (``&``, ``<``, ``>``, both quotes)."""
    return html.escape(str(x), quote=True)


def page(title: str, body: str, *, script: str = "") -> str:
    """A whole HTML page: ``title`` (escaped), the inline CSS, ``body`` (HTML, already escaped) and, when given, one
    inline ``script`` (trusted code, never dataset text) at its end."""
    tail = f"\n<script>{script}</script>" if script else ""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f"<style>{CSS}</style></head>\n<body>\n{body}{tail}\n</body></html>\n")


def filter_slug(layer: str, filter: int) -> str:
    """The file name stem of a filter's page: ``convs/2``, 7 -> ``convs-2-f7``."""
    return "".join(c if c.isalnum() or c in "_." else "-" for c in layer) + f"-f{int(filter)}"


def shaded_sentence(dump, example: int, scores: np.ndarray | None = None, scale: float | None = None,
                    span: tuple[int, int] | None = None, *, context: int | None = None,
                    rgb: tuple[int, int, int] = (255, 140, 0)) -> str:
    """Example ``example``'s words as HTML, each in a ``<span class="tok">`` (dotted when the model saw
    ``<unk>``).

    Args:
      scores: ``(len(dump.words(example)),)`` one value per word, or None (no shading).
      scale: the value shaded fully: a word's opacity is ``clip(score / scale, 0, 1)``, the same scale for every
        sentence it is given to (required with ``scores``; ``<= 0`` shades nothing).
      span: ``(start, end)`` token positions to mark (``<mark>``), e.g. an n-gram.
      context: with ``span``, show only this many words either side of it (``&hellip;`` for the rest).
      rgb: the shading colour.
    """
    if scores is not None and scale is None:
        raise ValueError("shaded_sentence: scores need a scale (the value shaded fully, the same for every sentence).")
    words, ids, first = dump.words(example), dump.column("tokens")[example], dump.start(example)
    unk = dump.attrs.get("unk_id", 1)                   # None: the vocabulary drops unknown words
    keep = range(len(words))
    if context is not None and span is not None:
        keep = range(max(0, span[0] - first - int(context)), min(len(words), span[1] - first + int(context)))
    out = ["&hellip;"] if keep and keep.start > 0 else []
    for j in keep:
        w = words[j]
        cls = "tok unk" if unk is not None and ids[first + j] == unk else "tok"
        if scores is not None:
            a = max(0.0, min(1.0, float(scores[j]) / scale)) if scale > 0 else 0.0
            piece = (f'<span class="{cls}" style="background:rgba({rgb[0]},{rgb[1]},{rgb[2]},{a:.2f})" '
                     f'title="{scores[j]:.3f}">{escape(w)}</span>')
        else:
            piece = f'<span class="{cls}">{escape(w)}</span>'
        if span is not None and span[0] <= first + j < span[1]:
            piece = f"<mark>{piece}</mark>"
        out.append(piece)
    if keep and keep.stop < len(words):
        out.append("&hellip;")
    return JOINERS.get(dump.attrs["tokenizer"], " ").join(out)   # words with spaces; characters and bytes as they are
