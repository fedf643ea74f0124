"""``jaxconv ablate --workdir RUN``: zero each filter in turn and measure what the predictions lose
(:func:`jaxconv.dump.ablation.ablate`)."""

from __future__ import annotations

import argparse
import pathlib

from jaxconv.cli._common import positive_int

__all__ = ["add_parser"]


def _cmd_ablate(args) -> int:
    from jaxconv.dump.ablation import ablate, ablation_path
    from jaxconv.runs import load_run

    run = load_run(args.workdir)
    records = ablate(run, args.split, input=args.input, format=args.format, layers=args.layers,
                     batch_size=args.batch_size)
    name = pathlib.Path(args.input).stem if args.input else args.split or "test"
    order = sorted(records, key=lambda r: (r.delta_logit, r.delta_accuracy))
    print(f"ablation of {len(records)} filters over {name} ({', '.join(sorted({r.layer for r in records}))}); "
          f"the {min(args.top, len(order))} that matter most (zeroing them lowers the true class's logit most):")
    print(f"  {'layer':<12} {'filter':>6} {'delta_logit':>12} {'delta_accuracy':>15}")
    for r in order[:args.top]:
        print(f"  {r.layer:<12} {r.filter:>6} {r.delta_logit:>12.4f} {r.delta_accuracy:>+15.2%}")
    print(f"written: {ablation_path(run.workdir, name)}")
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv ablate`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "ablate", help="zero each filter in turn: how much accuracy and true-class logit it carries",
        description="For every filter of the chosen convs, zero its feature map (after the activation) and run a "
                    "labelled split again; all filters in one compiled program (a vmapped mask). Writes "
                    "RUN/dumps/<name>/ablation.json, which jaxconv report shows.",
        epilog="examples:\n  jaxconv ablate --workdir runs/demo\n"
               "  jaxconv ablate --workdir runs/mr --split dev --layers convs/2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="the run's directory (trained or imported)")
    p.add_argument("--split", help="test (default), dev or train: as training split the data")
    p.add_argument("--input", metavar="FILE", help="a labelled file instead of a split: '<label> <text>' lines, "
                                                   "TSV, CSV or JSON lines, as training reads them")
    p.add_argument("--format", help="how to read --input: auto, label_text, tsv, csv, jsonl (training's formats, with the run's "
                        "text_field/label_field) or text (one sentence per line, no labels); default: the run's "
                        "config.data.format")
    p.add_argument("--layers", help="comma-separated conv paths (default: every conv)")
    p.add_argument("--batch-size", type=positive_int, help="examples per call (default: the config's eval batch size)")
    p.add_argument("--top", type=positive_int, default=10, help="filters to print (10)")
    p.set_defaults(func=_cmd_ablate)
