"""``jaxconv dump --workdir RUN``: stream a trained run's per-filter activations to a Zarr store.

The store is ``RUN/dumps/<name>/activations.zarr`` (:mod:`jaxconv.dump` describes it); read it with
``jaxconv report``, ``jaxconv.load_dump`` or plain ``zarr.open``. On several hosts (``JAXCONV_DISTRIBUTED=1``, the
same command on each) every host writes its own rows and process 0 prints the summary (:mod:`jaxconv.dump.hosts`).
"""

from __future__ import annotations

import argparse
import logging

from jaxconv._format import quote
from jaxconv.cli._common import CliError

__all__ = ["add_parser", "parse_checkpoint"]


def parse_checkpoint(text: str) -> str | int:
    """``best`` / ``latest`` / a step number."""
    if text in ("best", "latest"):
        return text
    if text.isdigit():
        return int(text)
    raise CliError(f"--checkpoint {quote(text)} is not known; expected best, latest or a step number.")


def _cmd_dump(args) -> int:
    import jax

    from jaxconv.dump import dump_activations
    from jaxconv.dump.hosts import HostFailed
    from jaxconv.train.mesh import is_primary, maybe_initialize_distributed

    maybe_initialize_distributed()  # JAXCONV_DISTRIBUTED=1: before anything touches the devices
    logging.getLogger("absl").setLevel(logging.WARNING)
    logging.getLogger("jaxconv").setLevel(logging.INFO)
    checkpoint = parse_checkpoint(args.checkpoint)
    try:
        r = dump_activations(args.workdir, split=args.split, input=args.input, format=args.format, layers=args.layers,
                             dtype=args.dtype, checkpoint=checkpoint, batch_size=args.batch_size,
                             name=args.name, overwrite=args.overwrite, chunk_rows=args.chunk_rows)
    except HostFailed as e:
        raise CliError(str(e)) from None
    if not is_primary():
        return 0
    resumed = f", resumed at row {r.resumed_from}" if r.resumed_from else ""
    if r.resumed_from and jax.process_count() > 1:
        resumed = f", resumed with {r.resumed_from} rows written before"
    print(f"dump {r.name}: {r.num_examples} examples x layers {', '.join(r.layers)} from checkpoint step "
          f"{r.checkpoint_step} in {r.seconds:.1f} s ({r.examples_per_s:.0f} examples/s{resumed})\n"
          f"store:   {r.path}\n"
          f"report:  jaxconv report --workdir {args.workdir} --dump {r.name}\n"
          f"python:  jaxconv.load_dump({args.workdir!r}, {r.name!r})")
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv dump`` on the subparsers ``sub``."""
    p = sub.add_parser(
        "dump", help="stream a trained run's per-filter activations to a Zarr store",
        description="Run a split of the run's dataset (or a text file) through the trained model and write every "
                    "chosen conv's feature maps, max-pooled values and positions, tokens, labels, predictions and "
                    "probabilities to RUN/dumps/<name>/activations.zarr. Memory does not grow with the number of "
                    "examples; an interrupted dump resumes when run again.",
        epilog="examples:\n  jaxconv dump --workdir runs/demo                       # the test split\n"
               "  jaxconv dump --workdir runs/mr --split train --layers convs/2 --dtype float16\n"
               "  jaxconv dump --workdir runs/mr --input my_sentences.txt       # -> dumps/my_sentences",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workdir", required=True, help="the training run's directory (or gs:// path)")
    p.add_argument("--split", help="test (the default without --input), dev or train: as training split the data")
    p.add_argument("--input", metavar="FILE", help="a file instead of a split: one sentence per line, optionally "
                                                   "after a label, or TSV, CSV, JSON lines as training reads them")
    p.add_argument("--format", help="how to read --input: auto, label_text, tsv, csv, jsonl (training's formats, with the run's "
                        "text_field/label_field) or text (one sentence per line, no labels); default: the run's "
                        "config.data.format")
    p.add_argument("--layers", help="comma-separated conv paths, e.g. convs/0,convs/2 (default: every conv)")
    p.add_argument("--dtype", default="float32", help="the maps on disk: float32 (default) or float16")
    p.add_argument("--checkpoint", default="best", help="best (default), latest or a step number")
    p.add_argument("--batch-size", type=int, help="rows per step (default: the config's eval batch size)")
    p.add_argument("--name", help="the dump's name (default: the split, or the input file's stem)")
    p.add_argument("--overwrite", action="store_true", help="replace a complete dump of the same name")
    p.add_argument("--chunk-rows", type=int, help="examples per block: one shard of every array, the unit written "
                   "and resumed from (default: ~256 MB of maps, in inner chunks of ~256 KiB per filter)")
    p.set_defaults(func=_cmd_dump)
