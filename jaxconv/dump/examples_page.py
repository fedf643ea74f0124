"""The report's "examples" page, ``examples.html``: why the model predicted what it did, for the dump's first examples.

For each example: its label and the model's prediction with the class probabilities, the top filters for and
against the prediction (each with its n-gram, pooled value and contribution, linking to the filter's page), and its
words shaded by summed evidence: each word gets the sum of the contributions (margins, :mod:`jaxconv._evidence`) to
the predicted class of the filters whose max window covers it, on one colour scale for the whole page.

The terms are exact (:func:`jaxconv.evidence`): they come from the run's model, restored from the dump's run folder
at the dump's checkpoint, on the dump's own token rows. A model that is not max-pooled filters read by a linear
layer, or a dump whose run cannot be restored, gets a page that says so. Every piece of dataset text goes through
``html.escape``; the page holds no script.
"""

from __future__ import annotations

import html
import os

import numpy as np

from jaxconv.data.tokenize import JOINERS

__all__ = ["write_examples_page", "EXAMPLES", "PAGE"]

#: The dump's first this many examples are shown.
EXAMPLES = 20
#: The page's file name, beside index.html.
PAGE = "examples.html"

_CSS = """body{font-family:system-ui,sans-serif;margin:1.5em;color:#222;max-width:1300px}
table{border-collapse:collapse;margin:.4em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 7px;text-align:left;
vertical-align:top;font-size:14px}th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.tok{padding:1px 2px;border-radius:3px}.unk{text-decoration:underline dotted}td.ng{white-space:nowrap}
section.example{border-top:1px solid #ddd;padding-top:.4em}p.sentence{font-size:17px;line-height:1.9}
nav a{margin-right:1em}.note{color:#555;font-size:13px}.for{color:#1a7f37}.against{color:#c0392b}
div.cols{display:flex;gap:2em;flex-wrap:wrap}h3{margin:.3em 0}"""


def _e(x) -> str:
    return html.escape(str(x), quote=True)


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n<nav><a href=\"index.html\">all filters</a></nav>\n{body}\n"
            f"</body></html>\n")


def _restore_run(dump):
    """The dump's run at the dump's checkpoint, or a sentence saying why not."""
    from jaxconv.dump.store import STORE_NAME
    from jaxconv.runs import load_run

    here = dump.path.parent.parent.parent if dump.path.name == STORE_NAME else None     # RUN/dumps/<name>/store
    places = [p for p in (here, dump.attrs.get("workdir")) if p is not None]
    if not places:
        return None, "this dump was made from a model in memory, with no run folder to restore it from"
    ckpt = str(dump.attrs.get("checkpoint", "best"))
    ckpt = int(ckpt) if ckpt.isdigit() else ckpt
    why = ""
    for place in places:
        try:
            run = load_run(place, ckpt)
        except Exception as e:  # any failure to restore: the page says so, and the report goes on
            why = f"the run could not be restored from {place} ({type(e).__name__}: {e})"
            continue
        step = dump.attrs.get("checkpoint_step")
        if step is not None and int(run.step) != int(step):
            why = (f"the run's {ckpt} checkpoint in {place} is now step {run.step}, but the dump was made at step "
                   f"{step}; dump it again (jaxconv dump --overwrite)")
            continue
        return run, ""
    return None, why


def _sentence(dump, example: int, scores: np.ndarray, vmax: float) -> str:
    words, ids, first = dump.words(example), dump.column("tokens")[example], dump.start(example)
    unk = dump.attrs.get("unk_id", 1)
    out = []
    for j, w in enumerate(words):
        cls = "tok unk" if unk is not None and ids[first + j] == unk else "tok"
        s = float(scores[j])
        a = min(1.0, abs(s) / vmax) if vmax > 0 else 0.0
        rgb = "46,160,67" if s > 0 else "220,60,50"
        out.append(f'<span class="{cls}" style="background:rgba({rgb},{a:.2f})" title="{s:+.3f}">{_e(w)}</span>')
    return JOINERS.get(dump.attrs["tokenizer"], " ").join(out)


def _filters_table(dump, rows, kind: str, cls: str) -> str:
    from jaxconv.dump.report import filter_slug

    if not rows:
        return f'<p class="note">No filter pushes {kind} it.</p>'
    body = "".join(
        f'<tr class="{cls}"><td class="num">{t.contribution:+.3f}</td><td>'
        + (f'<a href="filters/{_e(filter_slug(t.layer, t.filter))}.html">{_e(t.layer)} f{t.filter}</a>'
           if t.layer in dump.layers else f"{_e(t.layer)} f{t.filter}")
        + f'</td><td class="num">{t.pooled:.3f}</td><td class="ng">{_e(t.text) if t.window.words else "(padding)"}'
        f"</td></tr>" for t in rows)
    return (f'<table class="{cls}"><tr><th>contribution</th><th>filter</th><th>pooled</th><th>n-gram</th></tr>'
            f"{body}</table>")


def _example(dump, i: int, ev, top_k: int, vmax: float) -> str:
    c = ev.prediction
    labels = dump.labels
    gold = f"label <b>{_e(ev.class_names[int(labels[i])])}</b>, " if labels is not None else ""
    probs = ", ".join(f"{_e(n)} {p:.3f}" for n, p in ev.probabilities.items())
    margin = float(ev.margins(c).sum() + ev.margin_bias(c))
    versus = "the other class's logit" if len(ev.class_names) == 2 else "the mean of the other logits"
    top = ev.top(top_k)
    return (f'<section class="example" id="example-{i}"><h2>Example {i}</h2>'
            f'<p>{gold}predicted <b class="prediction">{_e(ev.label)}</b> ({probs}).</p>'
            f'<p class="sentence">{_sentence(dump, i, ev.word_scores(c), vmax)}</p>'
            f'<p class="note">logit of {_e(ev.label)} minus {versus}: {margin:.3f} = bias {ev.margin_bias(c):+.3f} '
            f"+ the {len(ev.filters)} filters' contributions.</p>"
            f'<div class="cols"><div><h3 class="for">For {_e(ev.label)}</h3>'
            f'{_filters_table(dump, top.supporting, "towards", "for")}</div>'
            f'<div><h3 class="against">Against {_e(ev.label)}</h3>'
            f'{_filters_table(dump, top.opposing, "away from", "against")}</div></div></section>')


def examples_html(dump, *, examples: int = EXAMPLES, top_k: int = 5, run=None) -> str:
    """The page's HTML (see the module docstring); ``run``: the dump's run (default: restored from its folder)."""
    from jaxconv._evidence import evidence_rows, readout

    title = f"Why the model predicted that: dump {dump.attrs['name']}"
    head = f"<h1>{_e(title)}</h1>"
    why = ""
    if run is None:
        run, why = _restore_run(dump)
    if run is not None:
        try:
            readout(run.model)
        except ValueError as e:
            why = str(e)
    if why:
        return _page(title, head + f'<p class="unavailable">No per-filter evidence for this dump: {_e(why.rstrip("."))}.</p>')
    n = min(int(examples), dump.num_examples)
    rows = list(range(n))
    tokens = dump.column("tokens")[:n]                                                 # (n, L) as the dump fed them
    evs = evidence_rows(run.model, tokens, [dump.start(i) for i in rows], [dump.words(i) for i in rows],
                        class_names=[dump.class_name(c) for c in range(dump.num_classes)],
                        tokenizer=dump.attrs["tokenizer"], texts=list(dump.column("texts")[:n]))
    scores = [ev.word_scores() for ev in evs]
    vmax = max([float(np.abs(s).max()) for s in scores if s.size] + [0.0])
    preds = dump.predictions
    differ = [i for i, ev in zip(rows, evs) if preds is not None and int(preds[i]) != ev.prediction]
    intro = (f"<p>The dump's first {n} of {dump.num_examples} examples ({_e(dump.attrs['source'])}), checkpoint step "
             f"{_e(dump.attrs.get('checkpoint_step'))}. Each logit is exactly the bias plus one term per filter: the "
             f"filter's max-pooled value times its output weight. A filter's contribution here is its term for the "
             f"predicted class minus its mean term for the other classes (for two classes: how far it moves the "
             f"log-odds); its n-gram is the window of words behind its max.</p>"
             f'<p class="note">Words: the sum of the contributions of the filters whose max window covers the word; '
             f"green for, red against the predicted class, one colour scale for the whole page (full colour at "
             f"{vmax:.3f}; hover for the value). Dotted: not in the vocabulary.</p>")
    if differ:
        intro += (f'<p class="note">The model restored from the run predicts otherwise than the dump recorded for '
                  f"examples {', '.join(map(str, differ))}.</p>")
    body = "".join(_example(dump, i, ev, top_k, vmax) for i, ev in zip(rows, evs))
    return _page(title, head + intro + body)


def write_examples_page(dump, out_dir, *, examples: int = EXAMPLES, top_k: int = 5, run=None) -> str:
    """Write ``out_dir/examples.html`` for ``dump`` (a :class:`jaxconv.dump.Dump`); returns its path.

    Args:
      examples: the dump's first this many examples; top_k: filters shown for and against each prediction;
      run: the dump's :class:`jaxconv.Run` (default: restored from the dump's run folder at its checkpoint).
    """
    from etils import epath

    out = epath.Path(os.fspath(out_dir))
    out.mkdir(parents=True, exist_ok=True)
    (out / PAGE).write_text(examples_html(dump, examples=examples, top_k=top_k, run=run))
    return str(out / PAGE)
