"""``jaxconv import SOURCE --workdir RUN``: a trained Keras or PyTorch model as a jaxconv run folder
(:func:`jaxconv.import_model`)."""

from __future__ import annotations

import argparse

from jaxconv._format import quote
from jaxconv.cli._common import CliError, positive_int

__all__ = ["add_parser", "describe_import"]

EPILOG = """\
examples:
  jaxconv import model.h5 --vocab word_index.json --workdir runs/keras1     # Keras 1, 2 or 3 HDF5
  jaxconv import model.keras --vocab tokenizer.json --workdir runs/k3 --labels neg,pos
  jaxconv import kim.pt2 --vocab vocab.txt --tokenizer lower --padding post --workdir runs/torch

then:
  jaxconv explain runs/keras1
  jaxconv dump --workdir runs/keras1 --input texts.txt
  jaxconv report --workdir runs/keras1 --dump texts

SOURCE: a .keras or .h5 file (read with h5py alone: no Keras, no TensorFlow) or a torch.export .pt2 file.
--vocab: one token per line (line i = id i), a JSON token -> id object (a Keras word_index), or the JSON of a
Keras Tokenizer (tokenizer.to_json(): its num_words, oov_token and word splitting apply). Without it, the model
reads ids: texts are ids separated by spaces.
"""


def describe_import(run, example_length: int) -> str:
    """What ``jaxconv import`` prints: the source, its layers, the explain table, the input and the check."""
    from jaxconv.inspection import explain

    src = run.source
    lines = [f"imported {src['framework']} model from {src['description']}"
             + (f" -> {run.workdir}" if run.workdir is not None else ""), "layers read:"]
    width = max([len(name) for name, _, _ in src["layers"]] + [4])
    cls_width = max([len(c) for _, c, _ in src["layers"]] + [4])
    lines += [f"  {name:<{width}}  {cls:<{cls_width}}  -> {became}" for name, cls, became in src["layers"]]
    lines += ["", str(explain(run.model, (1, example_length), dtype="int32")), ""]
    unk = getattr(run.vocab, "unk_id", 1)
    length = f"padded to {run.fixed_length}" if run.fixed_length else "padded to the longest text"
    lines.append(f"input: token ids {length} ({run.padding}-padding, {run.truncating}-truncating), tokenizer "
                 f"{run.tokenizer!r}, vocabulary {len(run.vocab)} ids (unknown words: "
                 f"{'dropped' if unk is None else f'id {unk}'})")
    names = f" ({', '.join(run.label_names)})" if run.label_names else ""
    lines.append(f"output: {run.num_classes} classes{names}")
    if src["max_difference"] is not None:
        lines.append(f"largest difference from the source on random ids: {src['max_difference']:.2g} (relative, "
                     f"lengths {', '.join(map(str, src['checked_lengths']))}; tolerance {src['tolerance']:g})")
    else:
        lines.append(f"difference from the source: not measured ({src['framework'].split()[0]} "
                     f"{src['framework'].split()[1] if len(src['framework'].split()) > 1 else ''} is not "
                     f"installed here; reading the file needs only h5py)")
    return "\n".join(lines)


def _cmd_import(args) -> int:
    from jaxconv.imports import import_model

    labels = [s.strip() for s in args.labels.split(",")] if args.labels else None
    if labels is not None and (not all(labels) or len(set(labels)) != len(labels)):
        raise CliError(f"--labels {quote(args.labels)}: expected distinct names separated by commas, e.g. neg,pos.")
    run = import_model(args.source, args.workdir, vocab=args.vocab, tokenizer=args.tokenizer,
                       max_length=args.max_length, padding=args.padding, truncating=args.truncating,
                       label_names=labels, overwrite=args.overwrite)
    print(describe_import(run, run.fixed_length or max(run.min_length, 50)))
    print(f"\nnext:  jaxconv explain {args.workdir}\n"
          f"       jaxconv dump --workdir {args.workdir} --input texts.txt\n"
          f"       jaxconv report --workdir {args.workdir} --dump texts")
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv import`` on the subparsers ``sub``."""
    from jaxconv.data.tokenize import TOKENIZERS

    p = sub.add_parser(
        "import", help="a trained Keras (1, 2, 3) or PyTorch model as a jaxconv run folder",
        description="Read a trained text model into jaxconv's layers, check that its outputs equal the source's "
                    "(when the source framework is installed), and write a run folder that jaxconv explain, dump "
                    "and report use as they use a trained run.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="a .keras, .h5 or .pt2 file")
    p.add_argument("--workdir", required=True, help="the run folder to write (must be new or empty)")
    p.add_argument("--vocab", metavar="FILE", help="the source's vocabulary (see below)")
    p.add_argument("--tokenizer", choices=sorted(TOKENIZERS), metavar="NAME",
                   help="how text becomes words: whitespace, lower, kim, keras, ... (default: keras for Keras "
                        "models, whitespace otherwise)")
    p.add_argument("--max-length", type=positive_int, metavar="N",
                   help="the length texts were padded or cut to (default: the model's own, if it fixes one)")
    p.add_argument("--padding", choices=("pre", "post"), help="where the zeros go (default: pre for Keras, as "
                                                             "pad_sequences; post for PyTorch)")
    p.add_argument("--truncating", choices=("pre", "post"), help="which end a long text loses (default: pre for "
                                                                "Keras, else as --padding)")
    p.add_argument("--labels", metavar="A,B,...", help="class names, one per output")
    p.add_argument("--overwrite", action="store_true", help="replace an existing run folder")
    p.set_defaults(func=_cmd_import)
