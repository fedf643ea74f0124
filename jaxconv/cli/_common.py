"""What every ``jaxconv`` subcommand shares: the one-line error and argument parsers."""

from __future__ import annotations

import argparse

from jaxconv._format import cut_quoted, quote

__all__ = ["CliError", "Parser", "parse_sizes", "positive_int"]


class CliError(Exception):
    """A bad argument: reported as one line on stderr, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block) and exit status 2."""

    def error(self, message):
        raise CliError(cut_quoted(message))     # argparse quotes the value typed whole: cut it as ours are


def parse_sizes(text: str, what: str, example: str) -> tuple[int, ...]:
    parts = text.lower().split("x")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes):
        raise CliError(f"{what} {quote(text)} is not understood; expected positive ints joined by 'x', e.g. {example}.")
    return sizes


def positive_int(text: str) -> int:
    """argparse ``type=`` for counts: an int >= 1 (``--vocab-size 0`` is an error, not "not given")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{quote(text)} is not an int; expected an int >= 1") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an int >= 1; got {value}")
    return value
