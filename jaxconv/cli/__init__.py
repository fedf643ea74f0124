"""The ``jaxconv`` command (also ``python -m jaxconv``).

Subcommands:

- ``jaxconv shape``: the arithmetic of one convolution (or a small stack): output shape with the formula, the
  kernel shape in each framework's layout, ``(lo, hi)`` padding under each convention, params and FLOPs.
- ``jaxconv explain CONFIG[:PRESET] | RUN``: build a config's model (or load a run folder's) and print
  :func:`jaxconv.explain`'s table.
- ``jaxconv train CONFIG[:PRESET] --workdir DIR [--config.KEY=VALUE ...]``: train and evaluate a config.
- ``jaxconv import SOURCE --workdir RUN``: a trained Keras (1, 2, 3) or PyTorch model as a run folder
  (:func:`jaxconv.import_model`).
- ``jaxconv dump --workdir RUN [--split S | --input FILE] [--layers L,...]``: stream a trained run's per-filter
  activations to a Zarr store (:mod:`jaxconv.dump`).
- ``jaxconv ablate --workdir RUN [--split S | --input FILE]``: zero each filter in turn over a labelled split; what
  accuracy and true-class logit each carries (:mod:`jaxconv.dump.ablation`).
- ``jaxconv report --workdir RUN [--dump NAME] [--out DIR]``: a static HTML report of a dump, one page per filter
  (in ``RUN/report/<dump>/`` by default).
- ``jaxconv predict --workdir RUN TEXT [TEXT ...]``: each text's predicted class and probabilities, and the filters
  for and against it with their n-grams and contributions (:meth:`jaxconv.Run.evidence`).

Bad arguments and named failures give one line on stderr and exit status 2, never a traceback; Ctrl-C gives one
line saying where the work stopped and exit status 130.

>>> main(["shape", "--input", "50x300", "--filters", "111", "--kernel-size", "5"])  # doctest: +ELLIPSIS
Conv1D: input (length=50, in=300) -> output (46, 111)
  out_length: 46 = floor((50 + 0 + 0 - 1*(5-1) - 1) / 1) + 1
...
0
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

from jaxconv._orbax_calls import drop_orbax_echoes
from jaxconv.cli import ablate, dump, explain, imports, predict, report, shape, train
from jaxconv.cli._common import CliError, Parser
from jaxconv.cli.shape import LayerSpec, shape_report
from jaxconv.configs import split_override_args
from jaxconv.interrupts import EXIT_INTERRUPTED

__all__ = ["main", "shape_report", "LayerSpec", "CliError"]

COMMANDS = {"shape": shape, "explain": explain, "train": train, "import": imports, "dump": dump, "ablate": ablate,
            "report": report, "predict": predict}


def _parser() -> Parser:
    from jaxconv import __version__

    parser = Parser(prog="jaxconv", description="Convolution arithmetic, model inspection and training.")
    parser.add_argument("--version", action="version", version=f"jaxconv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``jaxconv`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in COMMANDS), None)
    # A failed checkpoint read or write is one line here: orbax's echoes of it are not printed. This process-wide
    # hook is the command's to install; importing the library installs nothing.
    drop_orbax_echoes()
    prog = f"jaxconv {command}" if command else "jaxconv"
    try:
        argv, overrides = split_override_args(argv)
        if overrides and command not in ("train", "explain"):
            raise CliError(f"--config.{overrides[0][0]}: config overrides belong to 'jaxconv train' or "
                           f"'jaxconv explain'.")
        try:
            args = _parser().parse_args(argv)
        except SystemExit as e:  # --help, --version
            return int(e.code or 0)
        args.overrides = overrides
        if getattr(args, "func", None) is None:
            raise CliError(f"choose a command: {', '.join(COMMANDS)} (jaxconv --help)")
        return args.func(args)
    except KeyboardInterrupt as e:
        # Ctrl-C: one line, where the work stopped (jaxconv.interrupts.Interrupted says) and that it resumes.
        where = " ".join(str(e).split()) or "nothing is lost; run the same command again to go on"
        print(f"{prog}: interrupted: {where}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `jaxconv shape ... | head`
        sys.stdout = open(os.devnull, "w")
        return 0
    except (CliError, ValueError, OSError, FloatingPointError) as e:
        # Named failures: bad arguments, a library error about them (shapes, padding, config values), a missing
        # file or an unreachable workdir, a non-finite loss. One line, no traceback.
        message = " ".join(str(e).split("\n"))
        kind = f"{type(e).__name__}: " if isinstance(e, (OSError, FloatingPointError)) else ""
        print(f"{prog}: error: {kind}{message}", file=sys.stderr)
        return 2
