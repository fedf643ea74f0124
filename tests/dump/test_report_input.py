"""``jaxconv report`` on awkward input: label names and texts holding ``$`` (drawn literally, never as mathtext),
and ``--examples`` / ``examples=`` (an int >= 1, capped at the dump's rows with a note)."""

from __future__ import annotations

import matplotlib.text
import pytest
import zarr

from jaxconv.dump import dump_activations, dump_path, figures, load_dump
from jaxconv.dump.report import write_report

pytestmark = pytest.mark.slow  # reports of a trained run's dump

LABELS = ["$5 or $10", "$\\foo$"]
LINES = ["0 price $5 or $10 m00b m00a", "1 tex $\\foo$ here m01c",
         *(f"{i % 2} plain words m00a m01b w000{i}" for i in range(10))]


@pytest.fixture(scope="module")
def dollars(demo_dump, tmp_path_factory):
    """A 12-example dump of one layer whose first texts and both label names hold ``$``."""
    path = tmp_path_factory.mktemp("dollars") / "dollars.txt"
    path.write_text("\n".join(LINES) + "\n")
    dump_activations(demo_dump, input=path, layers="convs/0")
    zarr.open_group(str(dump_path(demo_dump, "dollars")), mode="r+").attrs["label_names"] = LABELS
    return load_dump(demo_dump, "dollars")


def _drawn(monkeypatch) -> list:
    """The Figures the report's PNG functions return, in order."""
    drawn = []
    for name in ("example_heatmaps", "pooled_distribution", "class_means"):
        draw = getattr(figures, name)
        monkeypatch.setattr(figures, name, lambda *a, _draw=draw, **k: drawn.append(_draw(*a, **k)) or drawn[-1])
    return drawn


def test_dollar_signs_are_drawn_literally(dollars, tmp_path, monkeypatch):
    drawn = _drawn(monkeypatch)
    result = write_report(dollars, tmp_path / "report", examples=2)        # "$\foo$" as mathtext aborts the report
    assert result.figures == 3 and len(drawn) == 3
    texts = [t for fig in drawn for t in fig.findobj(matplotlib.text.Text)]
    strings = {t.get_text() for t in texts}
    assert {"$5", "$10", "$\\foo$"} <= strings                               # the heatmap's words
    assert "$5 or $10 (n=6)" in strings and "$\\foo$ (n=6)" in strings       # the class-means rows
    assert any("label $5 or $10" in s for s in strings) and any("label $\\foo$" in s for s in strings)   # titles
    dollar = [t for t in texts if "$" in t.get_text()]
    assert all(not t.get_parse_math() and not t.get_usetex() for t in dollar), \
        [t.get_text() for t in dollar if t.get_parse_math()]
