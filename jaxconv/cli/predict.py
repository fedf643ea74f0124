"""``jaxconv predict --workdir RUN TEXT [TEXT ...]``: a trained classifier's prediction for each text, and why.

Per text: the predicted class with every class's probability (:meth:`jaxconv.Run.predict`), then, for a model whose
filters are max-pooled and read by a linear layer, the filters that pushed most for and against the prediction,
each with its n-gram, pooled value and contribution (:meth:`jaxconv.Run.evidence`). ``--evidence`` asks for the
filters (an error for a model of another shape), ``--no-evidence`` leaves them out; by default they are shown
when the model has them.
"""

from __future__ import annotations

import argparse
import sys

from jaxconv.cli._common import CliError, positive_int

__all__ = ["add_parser"]


def _texts(args) -> list[str]:
    texts = list(args.texts)
    if args.input == "-":
        texts += [line.rstrip("\n") for line in sys.stdin if line.strip()]
    elif args.input is not None:          # decoded as training decodes its files (jaxconv.data.lines)
        from jaxconv.data.lines import decode_lines

        try:
            lines, _ = decode_lines(args.input)
        except (OSError, ValueError) as e:
            raise CliError(f"--input {e}" if str(e).startswith(args.input) else f"--input: {e}") from None
        texts += [line for line in lines if line.strip()]
    if not texts:
        raise CliError("give the texts to classify: jaxconv predict --workdir RUN \"some text\" [...] "
                       "(or --input FILE, one text per line).")
    return texts


def _cmd_predict(args) -> int:
    from jaxconv._evidence import readout
    from jaxconv.runs import load_run

    texts = _texts(args)
    run = load_run(args.workdir, int(args.checkpoint) if args.checkpoint.isdigit() else args.checkpoint)
    show = args.evidence
    if show is not False:
        try:
            readout(run.model)
            show = True
        except ValueError as e:
            if show:
                raise ValueError(f"--evidence: {e}") from None
            print(f"(no per-filter evidence: {e})", file=sys.stderr)
            show = False
    if show:
        results = [(ev.text, ev.table(args.top)) for ev in run.evidence(texts, batch_size=args.batch_size)]
    else:
        results = [(p.text, f"prediction: {p.label}    (" + "  ".join(f"{n} {v:.3f}" for n, v in
                                                                     p.probabilities.items()) + ")")
                   for p in run.predict(texts, batch_size=args.batch_size)]
    for i, (text, table) in enumerate(results):
        if i:
            print()
        print(repr(text))
        print(table)
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv predict`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "predict", help="classify texts with a trained run, with the filters for and against each prediction",
        description="Print each text's predicted class and class probabilities; for a model whose filters are "
                    "max-pooled and read by a linear layer (Kim's CNN), also the top filters for and against the "
                    "prediction with their n-grams and exact contributions (logit margins).",
        epilog='example:\n  jaxconv predict --workdir runs/demo "m00b m00a m00c w0001 w0002"',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("texts", nargs="*", help="the texts to classify")
    p.add_argument("--workdir", required=True, help="the run's directory (trained or imported)")
    p.add_argument("--input", help="a file of texts, one per line ('-': standard input)")
    p.add_argument("--top", type=positive_int, default=5, help="filters shown for and against (5)")
    p.add_argument("--evidence", action=argparse.BooleanOptionalAction, default=None,
                   help="show the filters (an error for a model of another shape); default: when the model has them")
    p.add_argument("--checkpoint", default="best", help="'best' (default), 'latest' or a step number")
    p.add_argument("--batch-size", type=positive_int, default=32, help="texts per forward pass (32)")
    p.set_defaults(func=_cmd_predict)
