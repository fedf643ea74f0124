"""jaxconv.configs: one loader for built-in names and config files, typed overrides, one-line errors, one source for
each config and each default."""

from __future__ import annotations

import json
import pathlib
import re
import subprocess
import sys
import textwrap

import ml_collections
import pytest

from jaxconv.configs import (BUILTIN_CONFIGS, ConfigError, apply_overrides, check_complete, load_config,
                             load_config_module, split_override_args, validate)
from jaxconv.configs import text_cnn as builtin_text_cnn

REPO = pathlib.Path(__file__).resolve().parents[2]


def test_builtin_name_and_repository_file_are_one_source():
    """configs/text_cnn.py is a thin entry point over the packaged config: equal configs for every preset."""
    for preset in builtin_text_cnn.PRESETS:
        by_name = load_config(f"text_cnn:{preset}")
        by_file = load_config(f"{REPO / 'configs' / 'text_cnn.py'}:{preset}")
        assert by_name.to_dict() == by_file.to_dict()
    module, preset = load_config_module(f"{REPO / 'configs' / 'text_cnn.py'}:mr")
    assert module.get_config is builtin_text_cnn.get_config and preset == "mr"
    assert "text_cnn" in BUILTIN_CONFIGS
    # No config file of the repository defines its own fields: the top-level file only re-exports.
    text = (REPO / "configs" / "text_cnn.py").read_text()
    assert "ConfigDict" not in text and "from jaxconv.configs.text_cnn import" in text


def test_overrides_are_parsed_as_the_field_type():
    config = load_config("text_cnn:mr", ["train.epochs=5", "train.learning_rate=0.5", "progress=false",
                                         "model.widths=(2, 3)", "data.name=trec", "data.bucket_lengths=(40, 64)",
                                         "model.widths=7"])
    assert config.train.epochs == 5 and isinstance(config.train.epochs, int)
    assert config.train.learning_rate == 0.5 and config.progress is False
    assert config.model.widths == (7,)                                    # a single value becomes a 1-tuple
    assert config.data.name == "trec" and config.data.bucket_lengths == (40, 64)
    config = load_config("text_cnn", {"train.epochs": 2, "data.synthetic.num_examples": "300", "seed": 3})
    assert (config.train.epochs, config.data.synthetic.num_examples, config.seed) == (2, 300, 3)
    with pytest.raises(AttributeError):          # locked: a typo in a field name is an error, not a new field
        config.train.epohcs = 3


@pytest.mark.parametrize("overrides, message", [
    (["train.nope=1"], "train.nope: config.train has no field 'nope'; its fields are: batch_size, "),
    (["trian.epochs=1"], "trian.epochs: config has no field 'trian'; its fields are: data, distributed, model, "),
    (["train.epochs=x"], "train.epochs='x': expected an int."),
    (["train.learning_rate=fast"], "train.learning_rate='fast': expected a float."),
    (["progress=maybe"], "progress='maybe': expected a bool (true or false)."),
    (["model.widths=abc"], "model.widths='abc': expected a tuple literal, e.g. (3, 4, 5)."),
    (["data=3"], "data: config.data is a group of fields (alphabet, bucket_lengths, "),
    (["data.name.x=3"], "data.name.x: config.data.name has no field 'x'; its fields are: (none: it is a value"),
    (["epochs"], "override 'epochs': expected key=value, e.g. train.epochs=5."),
    ({"train.epochs": 2.5}, "train.epochs=2.5: expected a value of type int (the field's type; its default is 3)."),
])
def test_override_errors_name_the_key_and_what_was_expected(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config("text_cnn", overrides)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_spec_errors(tmp_path):
    cases = {
        "text_cnn:bogus": "config 'text_cnn:bogus': get_config('bogus') failed: unknown preset 'bogus' of text_cnn; "
                          "expected one of ['cr', 'file', 'mpqa', 'mr', 'sst1', 'sst2', 'subj', 'synthetic', 'trec'].",
        "nope": "config 'nope' is not a built-in config name, and no file of that name exists; expected a built-in",
        str(tmp_path / "nope.py"): f"config file {str(tmp_path / 'nope.py')!r} does not exist; expected",
        str(REPO / "README.md"): f"config file {str(REPO / 'README.md')!r} is not a Python file; expected a .py file",
        str(REPO / "configs"): f"config {str(REPO / 'configs')!r} is a directory; expected",
    }
    for spec, message in cases.items():
        with pytest.raises(ConfigError) as info:
            load_config(spec)
        assert str(info.value).startswith(message), (spec, str(info.value))
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_module_anywhere\n")
    with pytest.raises(ConfigError, match=r"could not load config file .*broken.py': ModuleNotFoundError: No module"):
        load_config(str(broken))
    no_preset = tmp_path / "plain.py"
    no_preset.write_text("import ml_collections\ndef get_config():\n    return ml_collections.ConfigDict({'a': 1})\n")
    assert load_config(str(no_preset), ["a=2"]).a == 2
    with pytest.raises(ConfigError, match=r"its get_config\(\) takes no preset, but the spec names preset 'x'"):
        load_config(f"{no_preset}:x")


def test_user_config_file_with_presets(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text(textwrap.dedent('''
        from jaxconv.configs import text_cnn

        def get_config(preset=None):
            config = text_cnn.get_config("synthetic")
            config.model.filters = {"small": 4, None: 8}[preset]
            return config
    '''))
    assert load_config(str(path)).model.filters == 8
    assert load_config(f"{path}:small", {"train.epochs": 1}).model.filters == 4


def test_split_override_args():
    rest, overrides = split_override_args(["train", "text_cnn", "--workdir", "w", "--config.train.epochs=3",
                                           "--config.model.widths", "(2, 3)", "--config.data.name=mr:x=y"])
    assert rest == ["train", "text_cnn", "--workdir", "w"]
    assert overrides == [("train.epochs", "3"), ("model.widths", "(2, 3)"), ("data.name", "mr:x=y")]
    with pytest.raises(ConfigError, match=r"--config.train.epochs: expected a value"):
        split_override_args(["--config.train.epochs"])


def test_defaults_live_in_the_config_once():
    """The library reads config fields without fallbacks; a hand-built config that lacks fields is refused by name."""
    from jaxconv.train.trainer import make_optimizer

    config = load_config("text_cnn")
    assert config.train.optimizer == "adam" and config.train.learning_rate == 0.003
    assert make_optimizer(config.train) is make_optimizer(load_config("text_cnn").train)   # the cached Adam
    partial = ml_collections.ConfigDict(config.to_dict())
    del partial.train["rho"], partial.data["vocab_from"]
    with pytest.raises(ConfigError, match=r"the config lacks 2 field\(s\) of text_cnn: data.vocab_from, train.rho; "
                                          r"start from jaxconv.load_config\('text_cnn'\)"):
        check_complete(partial, config, "text_cnn")
    with pytest.raises(AttributeError):
        make_optimizer(partial.train)                    # no hidden second default in the library
    # No `.get("field", default)` on a config anywhere in the library: each default has one home.
    pattern = re.compile(r"\b(config|tc|t|d|m|train_config)(\.(model|data|train))?\.get\(")
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "jaxconv").rglob("*.py")
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []


def test_apply_overrides_on_a_copy_leaves_the_preset_alone():
    a = load_config("text_cnn:trec")
    b = apply_overrides(load_config("text_cnn:trec"), {"seed": 4})
    assert (a.seed, b.seed) == (0, 4)


def test_jaxconv_train_unknown_key_without_config_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jaxconv", "train", "--workdir", str(tmp_path / "w"),
                           "--config.data.file=x"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("jaxconv train: error: --config.data.file: config.data has no field 'file'; its fields are: "
                           "alphabet, bucket_lengths, dev, dev_fraction, fold, format, label_field, max_buckets, max_length, "
                           "max_vocab, min_count, name, num_folds, on_error, pad_left, pad_right, path, split_seed, "
                           "sst_phrases, sst_trees, synthetic, test, text_field, tokenizer, train, vocab_from\n")
    assert not (tmp_path / "w").exists()


def test_config_json_round_trip(tmp_path):
    """What the trainer writes as config.json loads back into the same fields (load_run relies on it)."""
    config = load_config("text_cnn:mr")
    back = ml_collections.ConfigDict(json.loads(config.to_json_best_effort()))
    assert tuple(back.model.widths) == config.model.widths and back.train.optimizer == "adadelta"


# ------------------------------------------------------------------------------------------------- validate


@pytest.mark.parametrize("overrides, message", [
    ({"train.epochs": -1}, "config.train.epochs=-1: expected an int >= 1 (passes over the training data)."),
    ({"train.epochs": 0}, "config.train.epochs=0: expected an int >= 1 (passes over the training data)."),
    ({"train.batch_size": 0}, "config.train.batch_size=0: expected an int >= 1 (examples per training step)."),
    ({"train.learning_rate": 0.0}, "config.train.learning_rate=0.0: expected a finite number > 0 (the optimizer's "
                                   "step size)."),
    ({"train.learning_rate": float("nan")}, "config.train.learning_rate=nan: expected a finite number > 0"),
    ({"train.eps": -1e-6}, "config.train.eps=-1e-06: expected a finite number > 0 (the optimizer's epsilon)."),
    ({"train.rho": 1.5}, "config.train.rho=1.5: expected a float in [0, 1] (Adadelta's decay)."),
    ({"train.momentum": 1.0}, "config.train.momentum=1.0: expected a float in [0, 1) (SGD momentum)."),
    ({"train.steps": -5}, "config.train.steps=-5: expected an int >= 0 (a cap on the total steps, 0: none)."),
    ({"train.patience": -1}, "config.train.patience=-1: expected an int >= 0 (epochs without dev improvement"),
    ({"train.keep": 0}, "config.train.keep=0: expected an int >= 1 (latest checkpoints kept)."),
    ({"train.log_every_steps": -1}, "config.train.log_every_steps=-1: expected an int >= 0"),
    ({"train.checkpoint_every_steps": -2}, "config.train.checkpoint_every_steps=-2: expected an int >= 0"),
    ({"train.eval_batch_size": -1}, "config.train.eval_batch_size=-1: expected an int >= 0"),
    ({"train.max_norm": -3.0}, "config.train.max_norm=-3.0: expected a finite number >= 0 (the max-norm bound, 0: "
                               "off)."),
    ({"model.dropout": 1.0}, "config.model.dropout=1.0: expected a float in [0, 1) (the dropout rate on the pooled "
                             "features)."),
    ({"model.dropout": -0.1}, "config.model.dropout=-0.1: expected a float in [0, 1)"),
    ({"model.widths": "(0,)"}, "config.model.widths=(0,): expected a non-empty tuple of ints >= 1 (filter widths)."),
    ({"model.widths": "()"}, "config.model.widths=(): expected a non-empty tuple of ints >= 1 (filter widths)."),
    ({"model.filters": 0}, "config.model.filters=0: expected an int >= 1 (feature maps per width)."),
    ({"model.embed_dim": 0}, "config.model.embed_dim=0: expected an int >= 1 (the word vector size)."),
    ({"data.dev_fraction": 0.0}, "config.data.dev_fraction=0.0: expected a float in (0, 1) (the share of train held "
                                 "out as dev)."),
    ({"data.dev_fraction": 1.0}, "config.data.dev_fraction=1.0: expected a float in (0, 1)"),
    ({"data.fold": 10}, "config.data.fold=10: expected an int with 0 <= fold < config.data.num_folds=10 (the "
                        "cross-validation fold used as test set)."),
    ({"data.fold": -1}, "config.data.fold=-1: expected an int with 0 <= fold < config.data.num_folds=10"),
    ({"data.num_folds": 1}, "config.data.num_folds=1: expected an int >= 2 (cross-validation folds)."),
    ({"data.min_count": 0}, "config.data.min_count=0: expected an int >= 1"),
    ({"data.max_vocab": 1}, "config.data.max_vocab=1: expected 0 (no limit) or an int >= 2"),
    ({"data.pad_left": -1}, "config.data.pad_left=-1: expected an int >= 0 (pad tokens before each sentence)."),
    ({"data.max_buckets": 0}, "config.data.max_buckets=0: expected an int >= 1"),
    ({"data.bucket_lengths": "(40, 0)"}, "config.data.bucket_lengths=(40, 0): expected None or a non-empty tuple of "
                                         "ints >= 1 (padded batch lengths)."),
])
def test_validate_names_the_field_the_value_and_the_range(overrides, message):
    config = load_config("text_cnn", overrides)
    with pytest.raises(ConfigError) as info:
        validate(config)
    assert str(info.value).startswith(message), str(info.value)
    assert "\n" not in str(info.value)


def test_validate_accepts_every_builtin_preset_and_the_edges():
    for preset in builtin_text_cnn.PRESETS:
        validate(load_config(f"text_cnn:{preset}"))
    validate(load_config("text_cnn", {"train.steps": 0, "train.patience": 0, "train.max_norm": 0.0, "data.fold": 9,
                                      "model.dropout": 0.0, "train.rho": 1.0, "data.bucket_lengths": "(40,)",
                                      "data.max_vocab": 2, "model.embedding": "non-static"}))


def test_validate_refuses_a_frozen_embedding_without_vectors():
    """embedding='static' with no vectors file would train on frozen random vectors without a word."""
    for kind in ("static", "multichannel"):
        with pytest.raises(ConfigError, match=re.escape(
                f"config.model.embedding='{kind}' keeps the word vectors frozen, but config.model.vectors is empty, so "
                f"they would stay random and never train: set config.model.vectors to a word2vec/GloVe text file, or "
                f"use config.model.embedding='rand' (random vectors that train).")):
            validate(load_config("text_cnn", {"model.embedding": kind}))
        validate(load_config("text_cnn", {"model.embedding": kind, "model.vectors": "vectors.txt"}))


def test_validate_reports_every_problem_in_one_line():
    config = load_config("text_cnn", {"train.epochs": -1, "model.widths": "(0,)", "train.batch_size": 0})
    with pytest.raises(ConfigError) as info:
        validate(config)
    assert str(info.value) == ("config.model.widths=(0,): expected a non-empty tuple of ints >= 1 (filter widths); "
                               "config.train.batch_size=0: expected an int >= 1 (examples per training step); "
                               "config.train.epochs=-1: expected an int >= 1 (passes over the training data).")


@pytest.mark.parametrize("override, message", [
    ("--config.train.epochs=-1", "config.train.epochs=-1: expected an int >= 1 (passes over the training data)."),
    ("--config.model.widths=(0,)", "config.model.widths=(0,): expected a non-empty tuple of ints >= 1 (filter "
                                   "widths)."),
    ("--config.model.embedding=static", "config.model.embedding='static' keeps the word vectors frozen, but "
                                        "config.model.vectors is empty"),
])
def test_jaxconv_train_refuses_a_bad_config_before_writing_anything(override, message, tmp_path, capsys):
    """The run stops before anything is read or written (the workdir is not even created): one line, exit 2."""
    from jaxconv.cli import main

    workdir = tmp_path / "w"
    assert main(["train", "text_cnn", "--workdir", str(workdir), override]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(f"jaxconv train: error: {message}") and err.count("\n") == 1
    assert not workdir.exists()
