"""The report's examples page (``examples.html``): per example, the prediction, the filters for and against it and
its words shaded by summed evidence; the numbers are ``run.evidence``'s, every dataset text is escaped, and the page
loads in headless Chromium."""

from __future__ import annotations

import html
import re

import numpy as np
import pytest
from helpers import chromium
from flax import nnx

import jaxconv
from jaxconv.cli import main
from jaxconv.dump import dump_activations, load_dump
from jaxconv.dump.examples_page import write_examples_page

HOSTILE = ["1 <script>alert(1)</script> m00b m00a m00c w0001", '0 a <b>bold</b> & "q" m01c m01a m01b w0003']


@pytest.fixture(scope="module")
def hostile(demo_dump, tmp_path_factory):
    """A dump of the demo run whose first sentences are markup (as text), then test sentences."""
    test = load_dump(demo_dump, "test")
    lines = HOSTILE + [f"{y} {t}" for y, t in zip(test.labels[:8], test.column("texts")[:8])]
    path = tmp_path_factory.mktemp("hostile") / "hostile.txt"
    path.write_text("\n".join(lines) + "\n")
    dump_activations(demo_dump, input=path)
    return load_dump(demo_dump, "hostile")


def test_examples_page_shows_run_evidence_escaped(hostile, demo_dump, tmp_path):
    page = write_examples_page(hostile, tmp_path, examples=6, top_k=3)
    text = open(page).read()
    assert "<script" not in text.lower() and "<b>bold</b>" not in text and "http" not in text
    assert f">{html.escape('<script>alert(1)</script>')}</span>" in text and ">&lt;b&gt;bold&lt;/b&gt;</span>" in text
    sections = re.findall(r'<section class="example" id="example-(\d+)">(.*?)</section>', text, re.S)
    assert [int(i) for i, _ in sections] == list(range(6))
    run = jaxconv.load_run(demo_dump)
    evs = jaxconv.evidence(run.model, hostile.column("tokens")[:6], words=[hostile.words(i) for i in range(6)],
                           starts=[hostile.start(i) for i in range(6)], class_names=["class0", "class1"])
    for (_, body), ev, pred in zip(sections, evs, hostile.predictions[:6]):
        assert ev.prediction == int(pred)                                               # the dump's prediction
        assert f'predicted <b class="prediction">{ev.label}</b>' in body
        top = ev.top(3)
        shown = re.findall(r'<tr class="for"><td class="num">([-+\d.]+)</td><td><a href="filters/([^"]+)\.html">'
                           r'.*?</td><td class="ng">(.*?)</td>', body)
        assert [(float(v), slug, html.unescape(ng)) for v, slug, ng in shown] == [
            (round(t.contribution, 3), f"{t.layer.replace('/', '-')}-f{t.filter}", t.text) for t in top.supporting]
        titles = [float(v) for v in re.findall(r'<span class="tok[^"]*" style="[^"]*" title="([-+\d.]+)">', body)]
        np.testing.assert_allclose(titles, ev.word_scores(), atol=6e-4)
    assert evs[0].label == "class1" and evs[1].label == "class0"
    assert "m00b m00a m00c" in sections[0][1] and "full colour at" in text


def test_examples_page_without_a_run_or_of_another_shape_says_why(tmp_path):
    from jaxconv.models import CharCNN, TextCNN

    vocab = ["<pad>", "<unk>"] + [f"w{i}" for i in range(30)]
    model = TextCNN(len(vocab), 2, embed_dim=8, widths=(2, 3), filters=4, rngs=nnx.Rngs(0))
    r = dump_activations(model=model, texts=["w1 w2 <i>x</i>", "w3"], vocab=vocab, path=tmp_path / "mem.zarr")
    d = load_dump(r.path)
    text = open(write_examples_page(d, tmp_path / "a")).read()
    assert 'class="unavailable"' in text and "made from a model in memory" in text
    from jaxconv.dump.memory import memory_run

    text = open(write_examples_page(d, tmp_path / "b", run=memory_run(model, vocab))).read()
    assert text.count('<section class="example"') == 2 and "&lt;i&gt;x&lt;/i&gt;" not in text   # <unk>: not kept
    char = CharCNN(len(vocab), 2, length=150, features=4, hidden=8, rngs=nnx.Rngs(0))
    text = open(write_examples_page(d, tmp_path / "c", run=memory_run(char, vocab))).read()
    assert "this CharCNN is not: its convolutions are stacked" in text and "<section" not in text


@pytest.mark.slow
def test_report_links_the_examples_page_and_chromium_shows_it_as_text(hostile, demo_dump, tmp_path):
    from PIL import Image

    out = tmp_path / "report"
    assert main(["report", "--workdir", str(demo_dump), "--dump", "hostile", "--out", str(out)]) == 0
    dom = chromium("--dump-dom", (out / "index.html").as_uri()).stdout
    assert '<a href="examples.html">' in dom
    dom = chromium("--dump-dom", (out / "examples.html").as_uri()).stdout
    assert "<title>Why the model predicted that: dump hostile</title>" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom.lower()
    assert dom.count('<section class="example"') == 10 and dom.count('<tr class="for">') >= 10
    links = re.findall(r'<a href="(filters/[^"]+\.html)">', dom)
    assert links and all((out / link).is_file() for link in links)
    shot = tmp_path / "examples.png"
    chromium("--window-size=1280,1400", f"--screenshot={shot}", (out / "examples.html").as_uri())
    image = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50    # not blank
    green = (image[..., 1] > image[..., 0] + 40) & (image[..., 1] > image[..., 2] + 40)
    assert green.sum() > 200                                                            # words shaded for
