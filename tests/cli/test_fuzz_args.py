"""Fuzzing the command line's arguments against its promise: ``jaxconv`` exits 0 with its output, or 2 with one
line on stderr; never a traceback, never another status.

Every subcommand's own flags (read from the parser, so a new flag is fuzzed too) get hostile values: negative and
huge ints, floats, empty and long strings, unicode, ``x``-joined sizes, missing paths; ``train`` and ``explain`` also
get ``--config.KEY=VALUE`` overrides of the fields users set. The work behind a valid ``train`` is not run: its
config goes through :func:`jaxconv.configs.validate` (what training checks first) instead; commands that read a run
get a run folder that does not exist, so they stop after their arguments are parsed and checked.
"""

from __future__ import annotations

import argparse
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxconv.cli.train as cli_train
from jaxconv.cli import COMMANDS, _parser, main
from jaxconv.configs import validate

#: Values a user could type for any flag.
VALUES = st.one_of(
    st.integers(-10**25, 10**25).map(str),
    st.sampled_from(["0", "-1", "1", "2", "1e23", "2.5", "nan", "inf", "", " ", "x", "3x", "5x5", "0x3", "-2x2",
                     "same", "valid", "causal", "full", "float16", "int8", "convs/0", "convs/0,convs/9", "test",
                     "dev", "train", "best", "latest", "auto", "tsv", "text", "$\\foo$", "café", "e\u0301", "\x00",
                     "a" * 2000, "--", "-", "true", "None"]),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
)
#: Config fields users override, with the same hostile values.
OVERRIDE_KEYS = ["seed", "train.batch_size", "train.epochs", "train.learning_rate", "model.filters",
                 "model.kernel_sizes", "model.dropout", "model.embed_dim", "data.name", "data.max_length",
                 "data.synthetic.num_examples", "data.format", "train.optimizer", "train.lr_schedule", "nosuch.key"]


def _flags(command: str) -> dict[str, argparse.Action]:
    """``{flag: action}`` of one subcommand, read from the parser."""
    sub = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {o: a for a in sub.choices[command]._actions for o in a.option_strings
            if o.startswith("--") and o not in ("--help",)}


FLAGS = {c: _flags(c) for c in COMMANDS}
_COUNT = itertools.count()


@st.composite
def command_lines(draw, missing_run: str):
    command = draw(st.sampled_from(sorted(COMMANDS)))
    argv = [command]
    if command in ("explain", "train"):
        argv.append(draw(st.sampled_from(["text_cnn", "char_cnn", "conv_lm", "text_cnn:mr", "nope", missing_run])))
    if command == "import":
        argv.append(draw(st.sampled_from([missing_run + ".keras", missing_run + ".h5", "README.md"])))
    if command == "predict":
        argv.append(draw(VALUES))
    flags = FLAGS[command]
    for flag in draw(st.lists(st.sampled_from(sorted(flags)), max_size=4, unique=True)):
        argv.append(flag)
        if flags[flag].nargs != 0:
            argv.append(missing_run if flag == "--workdir" else draw(VALUES))
    if command in ("explain", "train"):
        for key in draw(st.lists(st.sampled_from(OVERRIDE_KEYS), max_size=3, unique=True)):
            argv.append(f"--config.{key}={draw(VALUES)}")
    return argv


@pytest.fixture
def no_training(monkeypatch):
    """``jaxconv train`` checks its config as training does first, and trains nothing."""
    monkeypatch.setattr(cli_train, "run", lambda config, workdir: validate(config))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_arguments_exit_0_or_one_line_2(tmp_path, capsys, no_training, data):
    missing = tmp_path / f"no-run-{next(_COUNT)}"      # one per example: the fixtures outlive an example
    argv = data.draw(command_lines(str(missing)))
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc in (0, 2), (argv, rc, err)
    if rc == 2:
        errors = [line for line in err.splitlines() if not line.startswith("note: ")]   # notes may come first
        assert len(errors) == 1 and errors[0].startswith(f"jaxconv {argv[0]}: error: "), (argv, err)
        assert len(err) < 1200, (argv, len(err))        # quoted input is cut, never echoed whole
    assert "Traceback" not in err + out, argv
    assert not missing.exists(), argv                   # nothing made where no run was


@pytest.mark.parametrize("command", ["dump", "ablate", "report", "predict"])
def test_a_command_on_a_missing_run_makes_nothing(tmp_path, capsys, command):
    """Found by the fuzz above: ``jaxconv dump --workdir MISSING`` made ``MISSING/dumps/test/`` for its lock."""
    missing = tmp_path / "no-run"
    argv = [command, "--workdir", str(missing)] + (["some text"] if command == "predict" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"jaxconv {command}: error: ") and err.count("\n") == 1, err
    assert f"{missing} does not exist" in err
    assert not missing.exists()
