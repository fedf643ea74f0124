"""``jaxconv explain CONFIG[:PRESET]``: build a config's model and print :func:`jaxconv.explain`'s table."""

from __future__ import annotations

import argparse
import sys

from jaxconv._format import quote
from jaxconv.cli._common import CliError, parse_sizes as _parse_sizes, positive_int
from jaxconv.configs import BUILTIN_CONFIGS, DEFAULT_CONFIG, load_config, load_config_module

__all__ = ["add_parser", "EXPLAIN_CONTRACT"]

EXPLAIN_CONTRACT = f"""\
CONFIG is a built-in config name ({', '.join(BUILTIN_CONFIGS)}) or a Python file defining get_config(preset) ->
ml_collections.ConfigDict (PRESET is passed as a string, or None when omitted), as configs/{DEFAULT_CONFIG}.py.
Fields can be overridden with --config.KEY=VALUE, as for jaxconv train.

The model is built by, in order of preference:
  1. build_model(config) defined in the config file, returning a model or (model, example_input); example_input
     is an array, a jax.ShapeDtypeStruct, a shape tuple (float32) or a (shape, dtype) pair;
  2. jaxconv.models.build_model(config, vocab_size=V, num_classes=K), with V from --vocab-size,
     config.model.vocab_size, config.data.vocab_size or config.data.synthetic.vocab_size (else 20000), and K from
     --num-classes, config.model.num_classes, config.data.num_classes or config.data.synthetic.num_classes
     (else 2); its input is token ids (1, L) int32 with L from --input-shape, config.data.max_length or
     max(config.data.bucket_lengths) (else 64).
--input-shape/--dtype override the example input. The model is built abstractly (nnx.eval_shape) when it can be,
so no parameter memory is spent; explain itself only traces shapes (jax.eval_shape).
"""


def _find(config, *dotted):
    for key in dotted:
        node = config
        try:
            for part in key.split("."):
                node = node[part] if isinstance(node, dict) else getattr(node, part)
        except (AttributeError, KeyError, TypeError):
            continue
        if node is not None and node != "" and node != ():
            return node
    return None


def _config_builder(module, config, example: list):
    """The config file's own ``build_model(config)``; an example input it returns goes into ``example``."""
    from flax import nnx

    def build():
        out = module.build_model(config)
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], nnx.Module):
            example.append(out[1])
            return out[0]
        return out

    return build


def _fixed_vocab_size(config) -> int | None:
    """The vocabulary size a config fixes without reading data: a named alphabet (the character CNN's) or bytes."""
    from jaxconv.data import ALPHABETS

    alphabet = _find(config, "data.alphabet") or ("bytes" if _find(config, "data.tokenizer") == "bytes" else None)
    return len(ALPHABETS[alphabet]) + 2 if alphabet in ALPHABETS else None       # + <pad> and <unk>


def _fixed_input_length(config) -> int | None:
    """The input length a model fixes (the character CNN's ``model.length``), else None."""
    from jaxconv.models import input_length_rule, model_kinds

    if _find(config, "model.name") not in model_kinds():
        return None
    try:
        return input_length_rule(config)[1]
    except (AttributeError, KeyError, TypeError, ValueError):   # a hand-written config without every field
        return None


def _jaxconv_builder(config, args, example: list):
    """``jaxconv.models.build_model`` with the vocabulary, classes and input length found as EXPLAIN_CONTRACT says."""
    import jax.numpy as jnp

    from jaxconv.data.readers import SENTENCE_DATASETS
    from jaxconv.models import build_model

    synthetic = _find(config, "data.name") == "synthetic"
    vocab = args.vocab_size or _find(config, "model.vocab_size", "data.vocab_size") or _fixed_vocab_size(config)
    if vocab is None and synthetic:
        vocab = _find(config, "data.synthetic.vocab_size")
    classes = args.num_classes or _find(config, "model.num_classes", "data.num_classes",
                                        *(["data.synthetic.num_classes"] if synthetic else []))
    if classes is None:  # a built-in sentence benchmark knows its class count without reading the files
        classes = SENTENCE_DATASETS.get(str(_find(config, "data.name") or ""), {}).get("num_classes")
    length = _fixed_input_length(config) or _find(config, "data.seq_len", "data.max_length")
    if length is None and _find(config, "data.bucket_lengths"):
        length = max(_find(config, "data.bucket_lengths"))
    from jaxconv.models import model_kinds

    kind = model_kinds().get(_find(config, "model.name"))
    if kind is not None and kind.task == "next_token":
        classes = classes or vocab                        # a language model: the next token is the class
    for what, value, default, flag in (("vocab_size", vocab, 20000, "--vocab-size"),
                                       ("num_classes", classes, 2, "--num-classes"),
                                       ("input length", length if not args.input_shape else 1, 64, "--input-shape")):
        if value is None:
            print(f"note: {what} is not in the config; using {default} ({flag} sets it)", file=sys.stderr)
    example.append(((1, int(length or 64)), jnp.int32))
    return lambda: build_model(config, vocab_size=int(vocab or 20000), num_classes=int(classes or 2))


def _dtype(text: str):
    import jax.numpy as jnp

    try:
        return jnp.dtype(text)
    except TypeError:
        raise CliError(f"--dtype {quote(text)} is not a dtype; expected e.g. int32 (token ids) or float32.") from None


def _example_input(example: list, args):
    """The example input: --input-shape/--dtype, else what the builder gave."""
    import jax

    if args.input_shape:
        return jax.ShapeDtypeStruct(_parse_sizes(args.input_shape, "--input-shape", "2x64"), _dtype(args.dtype or "int32"))
    if not example:
        raise CliError("no example input: give --input-shape (e.g. 1x64) and --dtype, or return (model, example_input) "
                       "from the config's build_model.")
    ex = example[0]
    if isinstance(ex, tuple) and len(ex) == 2 and isinstance(ex[0], (tuple, list)):
        ex = jax.ShapeDtypeStruct(tuple(ex[0]), _dtype(ex[1]))
    if args.dtype:
        ex = jax.ShapeDtypeStruct(tuple(ex.shape) if hasattr(ex, "shape") else tuple(ex), _dtype(args.dtype))
    return ex


def _build(module, config, args):
    from flax import nnx

    example: list = []
    build = (_config_builder(module, config, example) if callable(getattr(module, "build_model", None))
             else _jaxconv_builder(config, args, example))
    try:
        try:
            model = nnx.eval_shape(build)
        except CliError:
            raise
        except Exception:
            example.clear()
            model = build()
    except CliError:
        raise
    except Exception as e:
        raise CliError(f"building the model failed: {type(e).__name__}: {e}") from None
    if not isinstance(model, nnx.Module):
        raise CliError(f"build_model returned {type(model).__name__}, not an nnx.Module.")
    return model, _example_input(example, args)


def _is_run(text: str) -> bool:
    """Whether ``text`` names a run folder (trained or imported): a directory with a ``config.json``."""
    import os

    return os.path.isdir(text) and os.path.isfile(os.path.join(text, "config.json"))


def _from_run(args):
    """A run folder's model and its example input: ``--input-shape``, else one text of the run's fixed length (an
    imported model's), else 64 tokens (at least the model's shortest input)."""
    import jax
    import jax.numpy as jnp

    from jaxconv.runs import load_run

    if args.overrides:
        raise CliError(f"--config.{args.overrides[0][0]}: a run folder's config is the one it was made with; "
                       f"overrides apply to a CONFIG.")
    run = load_run(args.config)
    if run.source is not None:
        print(f"{args.config}: imported from {run.source['framework']} model {run.source['description']}; "
              f"{run.num_classes} classes"
              + (f" ({', '.join(run.label_names)})" if run.label_names else ""))
    if args.input_shape:
        return run.model, jax.ShapeDtypeStruct(_parse_sizes(args.input_shape, "--input-shape", "1x50"),
                                               _dtype(args.dtype or "int32"))
    return run.model, jax.ShapeDtypeStruct((1, run.fixed_length or max(run.min_length, 64)), jnp.int32)


def _cmd_explain(args) -> int:
    import numpy as np

    from jaxconv.inspection import explain
    from jaxconv.inspection._trace import _takes_token_ids

    if args.dtype:
        _dtype(args.dtype)   # a bad --dtype is reported before the model is built
    if _is_run(args.config):
        model, example = _from_run(args)
    else:
        module, _ = load_config_module(args.config)
        config = load_config(args.config, args.overrides, prefix="--config.")
        model, example = _build(module, config, args)
    try:
        e = explain(model, example)
    except (ValueError, TypeError) as err:
        if args.dtype and not np.issubdtype(_dtype(args.dtype), np.integer) and _takes_token_ids(model):
            raise CliError(f"--dtype {args.dtype}: the model ({type(model).__name__}) embeds token ids, so its example "
                           f"input needs an integer dtype; leave --dtype out (int32) or give an integer one, e.g. "
                           f"--dtype int32.") from None
        raise CliError(f"explain failed: {err}") from None
    if args.rich:
        import rich.console

        # On a terminal rich fits the table to its width; into a pipe or file, print it whole.
        console = rich.console.Console(width=None if sys.stdout.isatty() else 400)
        console.print(e.rich())
    else:
        print(e)
    return 0


def add_parser(sub) -> None:
    """Register ``jaxconv explain`` on the subparsers ``sub``."""
    q = sub.add_parser("explain", help="print the explain table of a config's model or a run folder's",
                       description="Print jaxconv.explain's table for the model of a config, or of a run folder "
                                   "(trained, or written by jaxconv import).",
                       epilog=EXPLAIN_CONTRACT, formatter_class=argparse.RawDescriptionHelpFormatter)
    q.add_argument("config", metavar="CONFIG[:PRESET] | RUN",
                   help=f"e.g. {DEFAULT_CONFIG}:mr, configs/{DEFAULT_CONFIG}.py:mr, or a run folder such as runs/demo")
    q.add_argument("--input-shape", metavar="SIZES", help="example input shape, e.g. 1x64")
    q.add_argument("--dtype", help="example input dtype (default: int32 with --input-shape)")
    q.add_argument("--vocab-size", type=positive_int, help="vocabulary size for jaxconv.models.build_model")
    q.add_argument("--num-classes", type=positive_int, help="number of classes for jaxconv.models.build_model")
    q.add_argument("--rich", action="store_true", help="print a rich table instead of plain text")
    q.set_defaults(func=_cmd_explain)
