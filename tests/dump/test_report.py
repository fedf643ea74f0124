"""``jaxconv report``: static, self-contained HTML with every dataset text escaped, checked in headless Chromium."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
import tempfile

import numpy as np
import pytest
from conftest import in_ci

from jaxconv.cli import main
from jaxconv.dump import dump_activations, load_dump

pytestmark = pytest.mark.slow  # reports of a trained run's dump, in a browser

MARKUP = [
    "1 <script>document.title='x'</script> m00b m00a m00c w0001 w0002",
    '0 a <b>bold</b> & "quoted" <img src=x onerror=alert(1)> m01c m01a m01b w0003',
]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def report(demo_dump, tmp_path_factory):
    """``jaxconv report`` of a dump whose first two sentences are markup (as text)."""
    test = load_dump(demo_dump, "test")
    lines = MARKUP + [f"{y} {t}" for y, t in zip(test.labels[:30], test.column("texts")[:30])]
    path = tmp_path_factory.mktemp("markup") / "markup.txt"
    path.write_text("\n".join(lines) + "\n")
    dump_activations(demo_dump, input=path)
    assert main(["report", "--workdir", str(demo_dump), "--dump", "markup"]) == 0
    return demo_dump / "report"


def test_report_pages_are_static_and_escaped(report, capsys):
    pages = sorted((report / "filters").glob("*.html"))
    assert len(pages) == 96 and (report / "filters" / "convs-2-f31.html") in pages
    figures = sorted(p.name for p in (report / "figures").glob("*.png"))
    assert len(figures) == 96 + 9 and {"heatmap-convs-0.png", "pooled-convs-1.png", "classes-convs-2.png"} <= set(
        figures)
    assert all((report / "figures" / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for f in figures)
    for page in [report / "index.html", report / "by-activation.html", report / "by-association.html", *pages]:
        text = page.read_text()
        assert "<script" not in text.lower() and "http://" not in text and "https://" not in text, page
        assert "<b>bold</b>" not in text and "<img src=x" not in text, page
    sample = (report / "filters" / "convs-0-f0.html").read_text()
    assert html.escape("<script>document.title='x'</script>", quote=True) in sample
    for word in ("<b>bold</b>", "&", '"quoted"', "<img", "onerror=alert(1)>"):
        assert f">{html.escape(word, quote=True)}</span>" in sample, word
    for name in ("Top n-grams", "Example sentences", "Slot words", "Kernel (3 x 64)", "Threshold <b>"):
        assert name in sample
    assert sample.count('<tr class="ngram">') == 10
    # the static sorts: by the strongest pooled value, by class association
    values = [float(v) for v in re.findall(r'f\d+\.html">\d+</a></td><td class="num">\d+</td><td class="num">'
                                           r"([-\d.]+)</td>", (report / "by-activation.html").read_text())]
    assert len(values) == 96 and values == sorted(values, reverse=True)
    index = (report / "index.html").read_text()
    assert index.index("filters/convs-0-f0.html") < index.index("filters/convs-0-f1.html") < index.index(
        "filters/convs-2-f31.html")
    d = load_dump(report.parent, "markup")
    assert d.words(0)[0] == "<script>document.title='x'</script>"


def _chromium(*args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "headless Chromium is not installed (apt-get install -y chromium; .ci/run installs it)"
        if in_ci():
            pytest.fail(f"CI must check the report in a real browser: {message}")
        pytest.skip(message)
    with tempfile.TemporaryDirectory() as profile:
        proc = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                              text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_report_in_headless_chromium(report, tmp_path):
    """Load index.html, follow a link to a filter page, screenshot it; no script ran, the markup shows as text."""
    from PIL import Image

    index = (report / "index.html").as_uri()
    dom = _chromium("--dump-dom", index).stdout
    assert "<title>jaxconv report: markup</title>" in dom
    links = re.findall(r'<a href="(filters/[^"]+\.html)">', dom)
    assert len(links) == 96
    page = (report / links[0]).resolve()
    assert page.is_file()
    dom = _chromium("--dump-dom", page.as_uri()).stdout
    assert "<title>convs/0 filter 0: jaxconv report</title>" in dom                      # not set to 'x'
    assert "&lt;script&gt;document.title='x'&lt;/script&gt;" in dom                      # shown as text
    assert "<script" not in dom.lower() and "<img src=\"x\"" not in dom and "&lt;b&gt;bold&lt;/b&gt;" in dom
    assert dom.count('<tr class="ngram">') == 10 and 'class="threshold"' in dom and "Slot words" in dom
    shot = tmp_path / "filter.png"
    _chromium("--window-size=1280,1600", f"--screenshot={shot}", page.as_uri())
    image = np.asarray(Image.open(shot).convert("RGB"), np.float32)
    assert image.shape[:2] == (1600, 1280)
    assert image.std() > 20 and len(np.unique(image.reshape(-1, 3), axis=0)) > 50        # not blank
