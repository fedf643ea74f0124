"""``jaxconv report --workdir RUN [--dump NAME]``: a static HTML report of a dump (:mod:`jaxconv.dump.report`)."""

from __future__ import annotations

import argparse

__all__ = ["add_parser", "make_report"]


def make_report(workdir, dump: str | None = None, out=None, *, examples: int = 3):
    """Write the report of ``RUN/dumps/<dump>`` to ``out`` (default ``RUN/report``); returns a
    :class:`jaxconv.dump.report.ReportResult`. Without ``dump``: the run's only dump, else ``test``."""
    from jaxconv.dump import load_dump
    from jaxconv.dump.report import write_report
    from jaxconv.dump.store import dump_dir
    from jaxconv.paths import as_path

    path = as_path(workdir)
    if dump is None and dump_dir(path, "test").exists():
        dump = "test"
    d = load_dump(path, dump)
    return write_report(d, out if out is not None else path / "report", examples=examples)


def _cmd_report(args) -> int:
    r = make_report(args.workdir, args.dump, args.out, examples=args.examples)
    print(f"report: {r.index}  ({r.pages} filter pages, {r.figures} figures; open it in a browser, no server needed)")
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv report`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "report", help="write a static HTML report of a dump (every layer and filter)",
        description="Write RUN/report/index.html (every layer and filter, with pages sorted by pooled activation "
                    "and by class association) and one page per filter: top n-grams, shaded example sentences, "
                    "slot words, the purity threshold and the kernel. Plain HTML and PNGs: no JavaScript, no "
                    "network.",
        epilog="example:\n  jaxconv dump --workdir runs/demo && jaxconv report --workdir runs/demo",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="the training run's directory")
    p.add_argument("--dump", help="the dump's name (default: the only one, else test)")
    p.add_argument("--out", help="where to write (default: RUN/report)")
    p.add_argument("--examples", type=int, default=3, help="the dump's first N examples shown on each page (3)")
    p.set_defaults(func=_cmd_report)
