"""``jaxconv report --workdir RUN [--dump NAME] [--out DIR]``: a static HTML report of a dump
(:mod:`jaxconv.dump.report`), by default in ``RUN/report/<dump name>/`` so that each dump keeps its own."""

from __future__ import annotations

import argparse
import sys

from jaxconv.cli._common import positive_int

__all__ = ["add_parser", "make_report", "report_dir"]


def report_dir(workdir, dump: str):
    """Where ``jaxconv report`` writes a dump's report by default: ``RUN/report/<dump>``."""
    from jaxconv.paths import as_path

    return as_path(workdir) / "report" / dump


def _listing(reports) -> None:
    """``RUN/report/index.html``: a link to each dump's report there."""
    from jaxconv.dump.report_html import escape, page
    from jaxconv.paths import write_text

    names = sorted(p.name for p in reports.iterdir() if (p / "index.html").exists())
    items = "".join(f'<li><a href="{escape(n)}/index.html">{escape(n)}</a></li>' for n in names)
    write_text(reports / "index.html", page("jaxconv reports", f"<h1>Reports of this run's dumps</h1><ul>{items}</ul>"),
               what="the list of reports")


def make_report(workdir, dump: str | None = None, out=None, *, examples: int = 3):
    """Write the report of ``RUN/dumps/<dump>`` to ``out`` (default ``RUN/report/<dump>``, and then
    ``RUN/report/index.html`` lists the run's reports); returns a :class:`jaxconv.dump.report.ReportResult`.
    Without ``dump``: the run's only dump, else ``test``. ``examples``: an int >= 1, capped at the dump's rows
    (:func:`jaxconv.dump.report.chosen_examples`; ``ReportResult.examples`` is the number shown)."""
    from jaxconv.dump import load_dump
    from jaxconv.dump.report import write_report
    from jaxconv.dump.store import dump_dir
    from jaxconv.paths import as_path

    path = as_path(workdir)
    if dump is None and dump_dir(path, "test").exists():
        dump = "test"
    d = load_dump(path, dump)
    if out is not None:
        return write_report(d, out, examples=examples)
    result = write_report(d, report_dir(path, d.attrs["name"]), examples=examples)
    _listing(path / "report")
    return result


def _cmd_report(args) -> int:
    r = make_report(args.workdir, args.dump, args.out, examples=args.examples)
    if r.examples < args.examples:
        print(f"note: --examples {args.examples} is more than the dump's {r.examples} examples; showing all "
              f"{r.examples}", file=sys.stderr)
    print(f"report: {r.index}  ({r.pages} filter pages, {r.figures} figures; open it in a browser, no server needed)")
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv report`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "report", help="write a static HTML report of a dump (every layer and filter)",
        description="Write RUN/report/<dump>/index.html (every layer and filter, searchable, with pages sorted by "
                    "pooled activation and by class association) and one page per filter: its top n-grams "
                    "distinct with counts and grouped by the slots that fire, example sentences shaded on one "
                    "scale, slot words, the purity threshold and the kernel's slots. Plain HTML, SVG and PNGs: no "
                    "network; the index's search box is the only script.",
        epilog="example:\n  jaxconv dump --workdir runs/demo && jaxconv report --workdir runs/demo\n"
               "  (writes runs/demo/report/test/index.html)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="the training run's directory")
    p.add_argument("--dump", help="the dump's name (default: the only one, else test)")
    p.add_argument("--out", help="where to write (default: RUN/report/<dump>)")
    p.add_argument("--examples", type=positive_int, default=3,
                   help="the dump's first N examples (an int >= 1) shown on each filter page, and the first few "
                        "of them in each layer's heatmap; capped at the dump's number of examples, with a note (3)")
    p.set_defaults(func=_cmd_report)
