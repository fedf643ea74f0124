"""``jaxconv report`` on awkward input: label names and texts holding ``$`` (drawn literally, never as mathtext),
and ``--examples`` / ``examples=`` (an int >= 1, capped at the dump's rows with a note)."""

from __future__ import annotations

import matplotlib.text
import numpy as np
import pytest
import zarr

from jaxconv.cli import main
from jaxconv.dump import dump_activations, dump_path, figures, load_dump
from jaxconv.dump.report import HEATMAP_EXAMPLES, write_report

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


@pytest.mark.parametrize("value", ["0", "-3", "2.5"])
def test_report_examples_must_be_an_int_of_at_least_one(dollars, tmp_path, value, capsys):
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", "--workdir", str(dollars.path.parent.parent.parent), "--dump", "dollars", "--out",
                 str(out), "--examples", value]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert "argument --examples" in err and "expected an int >= 1" in err, err
    assert not out.exists()


@pytest.mark.parametrize("value", [0, -3, 2.5, True, "3"])
def test_write_report_examples_must_be_an_int_of_at_least_one(dollars, tmp_path, value):
    out = tmp_path / "report"
    with pytest.raises(ValueError, match=r"examples=.* expected an int >= 1"):
        write_report(dollars, out, examples=value)
    assert not out.exists()                                                   # refused before writing anything


def test_report_examples_are_capped_at_the_dumps_rows_with_a_note(dollars, tmp_path, monkeypatch, capsys):
    drawn = _drawn(monkeypatch)
    out = tmp_path / "report"
    capsys.readouterr()
    assert main(["report", "--workdir", str(dollars.path.parent.parent.parent), "--dump", "dollars", "--out",
                 str(out), "--examples", "100000"]) == 0
    err = capsys.readouterr().err
    assert "note: --examples 100000 is more than the dump's 12 examples; showing all 12" in err, err
    page = (out / "filters" / "convs-0-f0.html").read_text()
    assert page.count('<tr class="example">') == 12
    panels = [ax for ax in drawn[0].axes if ax.get_title()]                   # the heatmap: a titled panel each
    assert len(panels) == HEATMAP_EXAMPLES < 12


def test_a_filter_page_reads_its_map_once_for_all_its_examples(dollars, monkeypatch):
    """Each shaded example used to read its own row (its whole chunk, decompressed again): minutes for a page of
    hundreds of examples. One read of the rows shown, and the same shading as row by row."""
    from jaxconv.dump.loader import FilterMap
    from jaxconv.dump.report_filter import filter_page, filter_row

    row = filter_row(dollars, "convs/0", 3, top_k=5, slot_k=2, pooled=dollars.pooled("convs/0"), assoc=None)
    expected = [dollars.token_activations("convs/0", 3, i) for i in range(12)]
    reads, original = [], FilterMap.__getitem__
    monkeypatch.setattr(FilterMap, "__getitem__", lambda self, key: reads.append(key) or original(self, key))
    page = filter_page(dollars, row, list(range(12)))
    assert len(reads) == 1 and page.count('<tr class="example">') == 12
    for i in range(12):
        got = dollars.token_activations("convs/0", 3, i, row=original(dollars.feature_map("convs/0", 3), [i])[0])
        np.testing.assert_array_equal(got, expected[i])
