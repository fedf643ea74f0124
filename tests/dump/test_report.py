"""``jaxconv report``: static, self-contained HTML with every dataset text escaped, checked in headless Chromium
(the index's search box typed into over the DevTools protocol)."""

from __future__ import annotations

import fcntl
import html
import json
import os
import re
import select
import subprocess
import tempfile
import time

import numpy as np
import pytest
from helpers import CHROMIUM_FLAGS, chromium, chromium_exe

from jaxconv.cli import main
from jaxconv.dump import dump_activations, figures, load_dump
from jaxconv.dump.report import SEARCH_SCRIPT, Column, Page, write_report

pytestmark = pytest.mark.slow  # reports of a trained run's dump, in a browser

MARKUP = [
    "1 <script>document.title='x'</script> m00b m00a m00c w0001 w0002",
    '0 a <b>bold</b> & "quoted" <img src=x onerror=alert(1)> m01c m01a m01b w0003',
]
SHADE = re.compile(r'style="background:rgba\(255,140,0,([\d.]+)\)" title="(-?[\d.]+)"')


@pytest.fixture(scope="module")
def report(demo_dump, tmp_path_factory):
    """``jaxconv report`` of a dump whose first two sentences are markup (as text): ``RUN/report/markup``."""
    test = load_dump(demo_dump, "test")
    lines = MARKUP + [f"{y} {t}" for y, t in zip(test.labels[:30], test.column("texts")[:30])]
    path = tmp_path_factory.mktemp("markup") / "markup.txt"
    path.write_text("\n".join(lines) + "\n")
    dump_activations(demo_dump, input=path)
    assert main(["report", "--workdir", str(demo_dump), "--dump", "markup"]) == 0
    return demo_dump / "report" / "markup"


@pytest.fixture(scope="module")
def small(demo_dump, tmp_path_factory):
    """A 6-example dump of one layer, for quick reports."""
    path = tmp_path_factory.mktemp("small") / "small.txt"
    path.write_text("".join(f"{i % 2} {line[2:]}\n" for i, line in enumerate(MARKUP * 3)))
    dump_activations(demo_dump, input=path, layers="convs/0")
    return load_dump(demo_dump, "small")


def test_report_pages_are_static_and_escaped(report, capsys):
    pages = sorted((report / "filters").glob("*.html"))
    assert len(pages) == 96 and (report / "filters" / "convs-2-f31.html") in pages
    figs = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert len(figs) == 9 and {"heatmap-convs-0.png", "pooled-convs-1.png", "classes-convs-2.png"} <= set(figs)
    assert all((report / "figures" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figs)
    indexes = [report / "index.html", report / "by-activation.html", report / "by-association.html"]
    for page in [*indexes, *pages]:
        text = page.read_text()
        assert "http://" not in text and "https://" not in text, page
        assert "<b>bold</b>" not in text and "<img src=x" not in text, page
        scripts = re.findall(r"<script>(.*?)</script>", text, re.S)
        assert scripts == ([SEARCH_SCRIPT] if page in indexes else []), page                 # ours alone
        assert text.lower().count("<script") == len(scripts), page
    sample = (report / "filters" / "convs-0-f0.html").read_text()
    assert html.escape("<script>document.title='x'</script>", quote=True) in sample
    for word in ("<b>bold</b>", "&", '"quoted"', "<img", "onerror=alert(1)>"):
        assert f">{html.escape(word, quote=True)}</span>" in sample, word
    for name in ("Top n-grams", "Example sentences", "Slot words", "Kernel (3 x 64)", "shading: 0 to"):
        assert name in sample
    # the static sorts: by the strongest pooled value, by class association
    values = [float(v) for v in re.findall(r'f\d+\.html">\d+</a></td><td class="num">\d+</td><td class="num">'
                                           r"([-\d.]+)</td>", (report / "by-activation.html").read_text())]
    assert len(values) == 96 and values == sorted(values, reverse=True)
    index = (report / "index.html").read_text()
    assert index.index("filters/convs-0-f0.html") < index.index("filters/convs-0-f1.html") < index.index(
        "filters/convs-2-f31.html")
    d = load_dump(report.parent.parent, "markup")
    assert d.words(0)[0] == "<script>document.title='x'</script>"


def test_one_shading_scale_per_filter_page(report):
    """Every shaded word on a page: opacity = its value / the filter's strongest pooled value (not per sentence),
    and the caption states that scale."""
    d = load_dump(report.parent.parent, "markup")
    weak = 0
    for layer, f in [("convs/0", 11), ("convs/1", 3), ("convs/2", 30)]:
        text = (report / "filters" / f"{layer.replace('/', '-')}-f{f}.html").read_text()
        top = float(d.pooled(layer)[:, f].max())
        assert f"shading: 0 to {top:.3f}, this filter's strongest pooled value in the dump" in text
        rows = re.findall(r'<tr class="example">(.*?)</tr>', text, re.S)
        assert len(rows) >= 4
        for row in rows:
            pairs = [(float(a), float(v)) for a, v in SHADE.findall(row)]
            assert pairs
            for a, v in pairs:
                assert a == pytest.approx(min(1.0, max(0.0, v / top)), abs=0.006), (layer, f, a, v)
            weak += max(a for a, _ in pairs) < 0.9                                       # per sentence would be 1
    assert weak > 0


def test_no_threshold_is_said_not_printed(report):
    d = load_dump(report.parent.parent, "markup")
    index = (report / "index.html").read_text()
    none = [(la, f) for la in d.layers for f in range(d.num_filters(la)) if not d.threshold(la, f).found]
    found = [(la, f) for la in d.layers for f in range(d.num_filters(la)) if d.threshold(la, f).found]
    assert none and found, "the markup dump should have filters with and without a threshold"
    for layer, f in none[:5]:
        page = (report / "filters" / f"{layer.replace('/', '-')}-f{f}.html").read_text()
        assert "No threshold reaches 75% purity" in page and "Threshold <b>" not in page
        assert 'class="threshold"' not in page.replace('class="threshold none"', "")
        assert "lie above it" not in page
        row = re.search(rf'<tr class="filter"[^>]*><td>{re.escape(layer)}</td><td><a href="filters/'
                        rf'{layer.replace("/", "-")}-f{f}\.html">.*?</tr>', index, re.S).group(0)
        assert '<td class="none">no threshold reaches 75% purity</td>' in row
    layer, f = found[0]
    t = d.threshold(layer, f)
    page = (report / "filters" / f"{layer.replace('/', '-')}-f{f}.html").read_text()
    assert f"Threshold <b>{t.value:.3f}</b>" in page and f"threshold {t.value:.3f}</text>" in page


def test_top_ngrams_are_distinct_with_counts_grouped_by_slots(report):
    d = load_dump(report.parent.parent, "markup")
    layer, f = "convs/0", 3
    page = (report / "filters" / f"convs-0-f{f}.html").read_text()
    rows = re.findall(r'<tr class="ngram"><td>\d+</td><td class="ng"><b>(.*?)</b></td>'
                      r'<td class="num count">(\d+)</td>', page)
    k = min(50, d.num_examples)
    expected = d.top_ngrams(layer, f, k=k, distinct=True)
    assert sorted((html.unescape(t), int(c)) for t, c in rows) == sorted((g.text, g.count) for g in expected)
    assert sum(int(c) for _, c in rows) == k and len({t for t, _ in rows}) == len(rows)     # distinct
    groups = d.ngram_groups(layer, f, k=k)
    heads = re.findall(r'<h3 class="group">(.*?)</h3>', page)
    assert len(heads) == len(groups)
    for head, group in zip(heads, groups):
        slots = ", ".join(map(str, group.slots))
        assert head.startswith(f"slot{'s' if len(group.slots) > 1 else ''} {slots} fire") or not group.slots
        assert f"{group.count} of {k} examples" in head
    # the index lists them too, with counts
    index = (report / "index.html").read_text()
    best = max(expected, key=lambda g: (g.count, g.value))
    assert f"{html.escape(best.text)} <span class=\"note\">&times;{best.count}</span>" in index


def test_figures_have_axes_counts_and_colorbars(report):
    d = load_dump(report.parent.parent, "markup")
    out = report.parent / "figure-check"
    out.mkdir(exist_ok=True)
    fig = figures.example_heatmaps(d, "convs/1", [0, 5, 7], out / "h.png")
    assert len(fig.axes) == 4 and fig.axes[-1].get_ylabel() == "activation"                # 3 panels + colorbar
    for ax, i in zip(fig.axes[:3], [0, 5, 7]):
        title = ax.get_title()
        assert f"example {i}" in title and f"label {d.class_name(int(d.labels[i]))}" in title
        assert f"predicted {d.class_name(int(d.predictions[i]))}" in title
        assert ax.get_ylabel() == "filter" and ax.get_xlabel().startswith("position")
    pooled = d.pooled("convs/1")
    fig = figures.class_means(pooled, d.labels, ["neg <b>", "pos"], "convs/1", out / "c.png")
    assert fig.axes[-1].get_ylabel() == "mean pooled value" and fig.axes[0].get_xlabel() == "filter"
    n0 = int((d.labels == 0).sum())
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == [f"neg <b> (n={n0})", f"pos (n={len(d.labels) - n0})"]
    fig = figures.pooled_distribution(pooled, "convs/1", out / "p.png")
    ax = fig.axes[0]
    assert ax.get_xlabel() == "filter" and ax.get_ylabel() == "max-pooled value"
    assert f"{d.num_examples} examples" in ax.get_title()
    svg = figures.histogram_svg(pooled[:, 3], threshold=float(np.median(pooled[:, 3])))
    counts = [int(c) for c in re.findall(r'<text class="count"[^>]*>(\d+)</text>', svg)]
    assert sum(counts) == d.num_examples and "max-pooled value</text>" in svg and "examples</text>" in svg
    assert 'class="threshold"' in svg and 'fill="#e45756"' in svg
    assert 'class="threshold"' not in figures.histogram_svg(pooled[:, 3])
    svg = figures.slot_bars_svg(np.array([1.0, 0.25, 0.5]), ["<script>", "b", "c"])
    assert re.findall(r'<text class="norm"[^>]*>([\d.]+)</text>', svg) == ["1.000", "0.250", "0.500"]
    assert "&lt;script&gt;</text>" in svg and "<script>" not in svg and "L2 norm</text>" in svg
    page = (report / "filters" / "convs-0-f11.html").read_text()
    norms = np.linalg.norm(d.group["kernels/convs/0"][:, :, 11], axis=1)
    assert re.findall(r'<text class="norm"[^>]*>([\d.]+)</text>', page) == [f"{n:.3f}" for n in norms]
    assert 'class="kernel"' not in page and "kernel-" not in page                           # no (width x in) strip


def test_extra_columns_and_pages(small, tmp_path):
    """write_report's extension points: a per-filter column (sortable) and a page linked from every page."""
    out = tmp_path / "r"
    effect = {("convs/0", f): float(np.sin(f)) for f in range(32)}
    r = write_report(small, out, columns=[Column("Δ accuracy", effect, note="made up <here>", sort=True),
                                          Column("tag", lambda la, f: "<b>" if f == 2 else None)],
                     pages=[Page("examples.html", "examples", "<h1>Examples</h1>")])
    assert r.pages == 32
    index = (out / "index.html").read_text()
    assert '<a href="by-accuracy.html">Δ accuracy</a></th>' in index and "made up &lt;here&gt;" in index
    assert '<td class="num">0.909</td>' in index and "<td>&lt;b&gt;</td>" in index
    ordered = [float(v) for v in re.findall(r'<td class="num">(-?[\d.]+)</td><td(?: class="num")?>(?:-|&lt;b&gt;)'
                                            r"</td>", (out / "by-accuracy.html").read_text())]
    assert ordered == sorted(ordered, reverse=True) and len(ordered) == 32
    assert (out / "examples.html").read_text().count("<h1>Examples</h1>") == 1
    page = (out / "filters" / "convs-0-f2.html").read_text()
    assert '<a href="../examples.html">examples</a>' in page
    # The given columns, then the report's own (the class probe's weight: this dump has labels).
    assert '<table class="extra"><tr><th>Δ accuracy</th><th>tag</th><th>probe weight</th></tr><tr><td class="num">' \
           '0.909</td><td>&lt;b&gt;</td><td class="num">' in page
    assert '<a href="examples.html">examples</a>' in index
    with pytest.raises(IndexError, match=r"examples=\[9\] are out of range; expected 0 <= example < 6"):
        write_report(small, tmp_path / "bad", examples=[1, 9])


def test_each_dump_gets_its_own_report_folder(report, small, capsys):
    run = report.parent.parent
    before = (report / "index.html").read_text()
    assert main(["report", "--workdir", str(run), "--dump", "small"]) == 0
    assert f"report: {run / 'report' / 'small' / 'index.html'}" in capsys.readouterr().out
    assert (report / "index.html").read_text() == before                               # the first one kept
    assert len(list((run / "report" / "small" / "filters").glob("*.html"))) == 32
    listing = (run / "report" / "index.html").read_text()
    assert '<a href="markup/index.html">markup</a>' in listing and '<a href="small/index.html">small</a>' in listing
    out = run / "elsewhere"
    assert main(["report", "--workdir", str(run), "--dump", "small", "--out", str(out)]) == 0
    assert (out / "index.html").is_file() and len(list((out / "filters").glob("*.html"))) == 32


# ------------------------------------------------------------------------------------------------ in a browser


class DevTools:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (the DevTools protocol on fds 3 and 4, JSON
    messages ending in NUL): standard library only."""

    def __init__(self, url: str, timeout: float = 120):
        exe = chromium_exe()
        self.profile = tempfile.TemporaryDirectory()
        to_chrome, self._write = os.pipe()
        self._read, from_chrome = os.pipe()
        # the child's ends moved to fds >= 10, then bash puts them on 3 and 4 (no Python runs in the child)
        a, b = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_chrome, from_chrome))
        os.close(to_chrome)
        os.close(from_chrome)
        args = [exe, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile.name}", "--remote-debugging-pipe",
                "about:blank"]
        self.proc = subprocess.Popen(["bash", "-c", f'exec "$0" "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', *args],
                                     pass_fds=(a, b), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(a)
        os.close(b)
        self.deadline, self._id, self._buffer, self.session = time.monotonic() + timeout, 0, b"", None
        try:
            target = self.call("Target.createTarget", url=url)["targetId"]
            self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            loaded = f"location.href === {json.dumps(url)} && document.readyState === 'complete'"
            while not self.evaluate(loaded):
                assert time.monotonic() < self.deadline, f"{url} did not load"
                time.sleep(0.05)
        except BaseException:
            self.close()
            raise

    def call(self, method: str, **params):
        self._id += 1
        message = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                left = self.deadline - time.monotonic()
                assert left > 0 and select.select([self._read], [], [], left)[0], f"no answer to {method}"
                chunk = os.read(self._read, 1 << 16)
                assert chunk, f"Chromium closed the pipe during {method}"
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                assert "error" not in reply, reply
                return reply["result"]

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result
        return result["result"].get("value")

    def type(self, text: str) -> None:
        for ch in text:
            self.call("Input.dispatchKeyEvent", type="keyDown", text=ch, key=ch, unmodifiedText=ch)
            self.call("Input.dispatchKeyEvent", type="keyUp", key=ch)

    def backspace(self, times: int) -> None:
        for _ in range(times):
            self.call("Input.dispatchKeyEvent", type="rawKeyDown", key="Backspace", code="Backspace",
                      windowsVirtualKeyCode=8)
            self.call("Input.dispatchKeyEvent", type="keyUp", key="Backspace", code="Backspace",
                      windowsVirtualKeyCode=8)

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            os.close(self._read)
            os.close(self._write)
            self.profile.cleanup()


VISIBLE = "Array.from(document.querySelectorAll('tr.filter')).filter(r => r.offsetParent !== null).length"


def test_search_box_hides_rows_in_headless_chromium(report):
    """Type into the index's search box: the rows whose top n-grams and slot words lack the text hide."""
    d = load_dump(report.parent.parent, "markup")
    searchable = []
    for layer in d.layers:
        for f in range(d.num_filters(layer)):
            words = [w.word for slot in d.slot_words(layer, f, k=5) for w in slot]
            texts = [g.text for g in d.top_ngrams(layer, f, k=50, distinct=True)]
            searchable.append("\n".join([layer, *texts, *words]).lower())
    queries = [next(w for g in d.top_ngrams("convs/0", 11, k=1) for w in g.words
                    if 0 < sum(w in s for s in searchable) < 96), "M00B M00A", "<img src=x onerror=alert(1)>"]
    browser = DevTools((report / "index.html").as_uri())
    try:
        assert browser.evaluate(VISIBLE) == 96 and browser.evaluate("document.title") == "jaxconv report: markup"
        browser.evaluate("document.getElementById('search').focus()")
        for q in queries:
            browser.type(q)
            assert browser.evaluate("document.getElementById('search').value") == q
            expected = sum(q.lower() in s for s in searchable)
            assert browser.evaluate(VISIBLE) == expected, q
            assert browser.evaluate("document.getElementById('shown').textContent") == \
                f"{expected} of 96 filters match"
            browser.backspace(len(q))
            assert browser.evaluate(VISIBLE) == 96
        assert 0 < sum(queries[1].lower() in s for s in searchable) < 96
        assert browser.evaluate("document.title") == "jaxconv report: markup"                # no markup ran
    finally:
        browser.close()


def test_report_in_headless_chromium(report, tmp_path):
    """Load index.html, follow a link to a filter page, screenshot it; no script ran, the markup shows as text."""
    from PIL import Image

    index = (report / "index.html").as_uri()
    dom = chromium("--dump-dom", index).stdout
    assert "<title>jaxconv report: markup</title>" in dom
    links = re.findall(r'<a href="(filters/[^"]+\.html)">', dom)
    assert len(links) == 96
    page = (report / links[0]).resolve()
    assert page.is_file()
    dom = chromium("--dump-dom", page.as_uri()).stdout
    assert "<title>convs/0 filter 0: jaxconv report</title>" in dom                      # not set to 'x'
    assert "&lt;script&gt;document.title='x'&lt;/script&gt;" in dom                      # shown as text
    assert "<script" not in dom.lower() and "<img src=\"x\"" not in dom and "&lt;b&gt;bold&lt;/b&gt;" in dom
    assert dom.count('<tr class="ngram">') >= 1 and 'class="threshold' in dom and "Slot words" in dom
    assert dom.count("<svg") == 2                                                        # histogram, slot bars
    shot = tmp_path / "filter.png"
    chromium("--window-size=1280,1600", f"--screenshot={shot}", page.as_uri())
    image = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert image.shape[:2] == (1600, 1280)
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50        # not blank
