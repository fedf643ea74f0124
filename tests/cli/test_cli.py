"""Tests for the ``jaxconv`` command (jaxconv/cli.py): golden outputs of ``jaxconv shape`` for the seed's
questions, one-line errors, and ``jaxconv explain`` on config files.

Numbers in the expected texts are computed here by hand (not with jaxconv.shapes) wherever possible.
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest

from jaxconv.cli import main
from jaxconv.configs import BUILTIN_CONFIGS
from jaxconv.configs.text_cnn import PRESETS as TEXT_CNN_PRESETS

REPO = pathlib.Path(__file__).resolve().parents[2]


def run_main(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def run_subprocess(*argv):
    proc = subprocess.run([sys.executable, "-m", "jaxconv", *argv], capture_output=True, text=True, cwd=REPO,
                          timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


# ---------------------------------------------------------------------------------------------------------------
# Golden outputs
# ---------------------------------------------------------------------------------------------------------------


def seed_expected() -> str:
    # A width-5 kernel over 50 tokens of 300-d vectors, 111 filters, valid padding, stride 1.
    L, C, F, k = 50, 300, 111, 5
    out = (L - k) // 1 + 1                          # 46
    params = k * C * F + F                          # weights + one bias per filter
    flops = out * F * (2 * k * C + 1)               # a multiply-add is 2 FLOPs, the bias add 1
    return textwrap.dedent(f"""\
        Conv1D: input (length=50, in=300) -> output ({out}, 111)
          out_length: {out} = floor((50 + 0 + 0 - 1*(5-1) - 1) / 1) + 1
          kernel shape:
            jaxconv  (width=5, in=300, out=111)
            Keras 3  (width=5, in=300, out=111)
            Keras 1  (width=5, 1=1, in=300, out=111)
            PyTorch  (out=111, in=300, width=5)
          each of the 111 filters spans all 300 input channels (groups=1)
          padding (lo, hi) under each convention, for length 50, kernel 5, stride 1, dilation 1:
            valid       (0, 0) -> 46  <- used
            same        (2, 2) -> 50
            same_lower  (2, 2) -> 50
            same_torch  (2, 2) -> 50
            causal      (4, 0) -> 50
            full        (4, 4) -> 54
          params: {params:,} = 5*300*111 weights + 111 biases
          FLOPs: {flops:,} per example = 46 positions * 111 filters * (2*5*300 + 1)  (multiply-add = 2, bias add = 1)
        """)


def test_shape_seed_keras1_kernel(capsys):
    rc, out, err = run_main(capsys, "shape", "--input", "50x300", "--filters", "111", "--kernel-size", "5")
    assert (rc, err) == (0, "")
    assert out == seed_expected()
    assert "(width=5, 1=1, in=300, out=111)" in out and "-> output (46, 111)" in out
    assert "166,611" in out                          # 5*300*111 + 111


def test_shape_5x5_kernel_3x3_stride_2_padding_1(capsys):
    rc, out, err = run_main(capsys, "shape", "--input", "5x5x1", "--filters", "1", "--kernel-size", "3",
                            "--stride", "2", "--padding", "1")
    o = (5 + 1 + 1 - 3) // 2 + 1                     # 3
    flops = o * o * 1 * (2 * 3 * 3 * 1 + 1)
    assert (rc, err) == (0, "")
    assert out == textwrap.dedent(f"""\
        Conv2D: input (height=5, width=5, in=1) -> output ({o}, {o}, 1)
          out_height: 3 = floor((5 + 1 + 1 - 1*(3-1) - 1) / 2) + 1
          out_width:  3 = floor((5 + 1 + 1 - 1*(3-1) - 1) / 2) + 1
          kernel shape:
            jaxconv       (height=3, width=3, in=1, out=1)
            Keras 3       (height=3, width=3, in=1, out=1)
            Keras 1 (tf)  (height=3, width=3, in=1, out=1)
            Keras 1 (th)  (out=1, in=1, height=3, width=3)
            PyTorch       (out=1, in=1, height=3, width=3)
          the filter spans the 1 input channel (groups=1)
          padding (lo, hi) per axis (height, width) under each convention, kernel 3x3, stride 2x2, dilation 1x1:
            valid       (0, 0), (0, 0) -> (2, 2)
            same        (1, 1), (1, 1) -> (3, 3)
            same_lower  (1, 1), (1, 1) -> (3, 3)
            same_torch  n/a: stride > 1
            causal      (2, 0), (2, 0) -> (3, 3)
            full        (2, 2), (2, 2) -> (4, 4)
            given       (1, 1), (1, 1) -> (3, 3)  <- used
          params: 10 = 3*3*1*1 weights + 1 bias
          FLOPs: {flops} per example = 3*3 positions * 1 filters * (2*3*3*1 + 1)  (multiply-add = 2, bias add = 1)
        """)


def test_shape_128x128x3_40_filters_5x5(capsys):
    rc, out, err = run_main(capsys, "shape", "--input", "128x128x3", "--filters", "40", "--kernel-size", "5")
    params = 5 * 5 * 3 * 40 + 40
    assert params == 3040
    o = 128 - 5 + 1
    flops = o * o * 40 * (2 * 5 * 5 * 3 + 1)
    assert (rc, err) == (0, "")
    assert out == textwrap.dedent(f"""\
        Conv2D: input (height=128, width=128, in=3) -> output (124, 124, 40)
          out_height: 124 = floor((128 + 0 + 0 - 1*(5-1) - 1) / 1) + 1
          out_width:  124 = floor((128 + 0 + 0 - 1*(5-1) - 1) / 1) + 1
          kernel shape:
            jaxconv       (height=5, width=5, in=3, out=40)
            Keras 3       (height=5, width=5, in=3, out=40)
            Keras 1 (tf)  (height=5, width=5, in=3, out=40)
            Keras 1 (th)  (out=40, in=3, height=5, width=5)
            PyTorch       (out=40, in=3, height=5, width=5)
          each of the 40 filters spans all 3 input channels (groups=1)
          padding (lo, hi) per axis (height, width) under each convention, kernel 5x5, stride 1x1, dilation 1x1:
            valid       (0, 0), (0, 0) -> (124, 124)  <- used
            same        (2, 2), (2, 2) -> (128, 128)
            same_lower  (2, 2), (2, 2) -> (128, 128)
            same_torch  (2, 2), (2, 2) -> (128, 128)
            causal      (4, 0), (4, 0) -> (128, 128)
            full        (4, 4), (4, 4) -> (132, 132)
          params: 3,040 = 5*5*3*40 weights + 40 biases
          FLOPs: {flops:,} per example = 124*124 positions * 40 filters * (2*5*5*3 + 1)  (multiply-add = 2, bias add = 1)
        """)


def test_shape_two_layers_28_to_24x24x16(capsys):
    # 28x28x1 -> 8 filters of 5x5 (valid) -> 24x24x8 -> 16 filters of 3x3 ('same') -> 24x24x16. Each second-layer
    # filter is a (3, 3, 8) block: it spans all 8 channels of the first layer's output.
    rc, out, err = run_main(capsys, "shape", "--input", "28x28x1", "--filters", "8", "--kernel-size", "5",
                            "--then", "16:3:1:same")
    p1, p2 = 5 * 5 * 1 * 8 + 8, 3 * 3 * 8 * 16 + 16
    f1, f2 = 24 * 24 * 8 * (2 * 25 + 1), 24 * 24 * 16 * (2 * 9 * 8 + 1)
    assert (rc, err) == (0, "")
    assert out == textwrap.dedent(f"""\
        layer 1 of 2: Conv2D: input (height=28, width=28, in=1) -> output (24, 24, 8)
          out_height: 24 = floor((28 + 0 + 0 - 1*(5-1) - 1) / 1) + 1
          out_width:  24 = floor((28 + 0 + 0 - 1*(5-1) - 1) / 1) + 1
          kernel shape:
            jaxconv       (height=5, width=5, in=1, out=8)
            Keras 3       (height=5, width=5, in=1, out=8)
            Keras 1 (tf)  (height=5, width=5, in=1, out=8)
            Keras 1 (th)  (out=8, in=1, height=5, width=5)
            PyTorch       (out=8, in=1, height=5, width=5)
          each of the 8 filters spans the 1 input channel (groups=1)
          padding (lo, hi) per axis (height, width) under each convention, kernel 5x5, stride 1x1, dilation 1x1:
            valid       (0, 0), (0, 0) -> (24, 24)  <- used
            same        (2, 2), (2, 2) -> (28, 28)
            same_lower  (2, 2), (2, 2) -> (28, 28)
            same_torch  (2, 2), (2, 2) -> (28, 28)
            causal      (4, 0), (4, 0) -> (28, 28)
            full        (4, 4), (4, 4) -> (32, 32)
          params: {p1} = 5*5*1*8 weights + 8 biases
          FLOPs: {f1:,} per example = 24*24 positions * 8 filters * (2*5*5*1 + 1)  (multiply-add = 2, bias add = 1)
        layer 2 of 2: Conv2D: input (height=24, width=24, in=8) -> output (24, 24, 16)
          out_height: 24 = floor((24 + 1 + 1 - 1*(3-1) - 1) / 1) + 1
          out_width:  24 = floor((24 + 1 + 1 - 1*(3-1) - 1) / 1) + 1
          kernel shape:
            jaxconv       (height=3, width=3, in=8, out=16)
            Keras 3       (height=3, width=3, in=8, out=16)
            Keras 1 (tf)  (height=3, width=3, in=8, out=16)
            Keras 1 (th)  (out=16, in=8, height=3, width=3)
            PyTorch       (out=16, in=8, height=3, width=3)
          each of the 16 filters spans all 8 input channels (groups=1)
          padding (lo, hi) per axis (height, width) under each convention, kernel 3x3, stride 1x1, dilation 1x1:
            valid       (0, 0), (0, 0) -> (22, 22)
            same        (1, 1), (1, 1) -> (24, 24)  <- used
            same_lower  (1, 1), (1, 1) -> (24, 24)
            same_torch  (1, 1), (1, 1) -> (24, 24)
            causal      (2, 0), (2, 0) -> (24, 24)
            full        (2, 2), (2, 2) -> (26, 26)
          params: {p2:,} = 3*3*8*16 weights + 16 biases
          FLOPs: {f2:,} per example = 24*24 positions * 16 filters * (2*3*3*8 + 1)  (multiply-add = 2, bias add = 1)
        stack: (28, 28, 1) -> (24, 24, 8) -> (24, 24, 16)
          receptive field of one output position: 7x7 input positions, jump 1x1
          params: {p1 + p2:,}; FLOPs: {f1 + f2:,} per example
        """)


def test_shape_options_1d(capsys):
    rc, out, _ = run_main(capsys, "shape", "--input", "10x4", "--filters", "6", "--kernel-size", "4",
                          "--stride", "2", "--padding", "same", "--groups", "2")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "Conv1D: input (length=10, in=4) -> output (5, 6)"
    assert "    jaxconv  (width=4, in=2, out=6)" in lines
    assert "  each filter spans 2 of the 4 input channels (groups=2: filter j reads channels of group j // 3)" in lines
    assert "    same        (1, 1) -> 5  <- used" in lines          # total = (5-1)*2 + 4 - 10 = 2
    assert "    same_torch  n/a: stride > 1" in lines
    rc, out, _ = run_main(capsys, "shape", "--input", "10x4", "--filters", "6", "--kernel-size", "3",
                          "--dilation", "2", "--padding", "4,0", "--then", "2:2:1:causal:3")
    assert rc == 0
    assert "    given       (4, 0) -> 10  <- used" in out
    assert "  receptive field of one output position: 8 input positions, jump 1" in out   # 1 + 2*(3-1) + 3*(2-1)


# ---------------------------------------------------------------------------------------------------------------
# Errors: one line on stderr, exit status 2
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("argv, message", [
    (["--input", "50x", "--filters", "1", "--kernel-size", "3"],
     "jaxconv shape: error: --input '50x' is not understood; expected positive ints joined by 'x'"),
    (["--input", "50x300x3x2", "--filters", "1", "--kernel-size", "3"],
     "jaxconv shape: error: --input '50x300x3x2' has 4 sizes; expected LENGTHxCHANNELS"),
    (["--input", "50x300", "--filters", "1", "--kernel-size", "3", "--padding", "nonsense"],
     "jaxconv shape: error: --padding 'nonsense' is not understood; expected one of valid, same, same_lower, "
     "same_torch, causal, full, an int >= 0, or lo,hi"),
    (["--input", "3x300", "--filters", "1", "--kernel-size", "5"],
     "jaxconv shape: error: input length 3 is shorter than the dilated kernel d*(k-1)+1 = 1*(5-1)+1 = 5 under "
     "padding='valid' (lo=0, hi=0): out = floor((L + lo + hi - d*(k-1) - 1) / s) + 1 gives "
     "-1 = floor((3 + 0 + 0 - 1*(5-1) - 1) / 1) + 1; expected out >= 1."),
    (["--input", "4x9x3", "--filters", "1", "--kernel-size", "5"],
     "jaxconv shape: error: on the height axis, input length 4 is shorter than the dilated kernel"),
    (["--input", "50x300", "--kernel-size", "5"],
     "jaxconv shape: error: the following arguments are required: --filters"),
    (["--input", "50x300", "--filters", "many", "--kernel-size", "5"],
     "jaxconv shape: error: argument --filters: invalid int value: 'many'"),
    (["--input", "50x300", "--filters", "2", "--kernel-size", "5x3"],
     "jaxconv shape: error: --kernel-size '5x3' has 2 sizes; the input has 1 spatial axes"),
    (["--input", "50x300", "--filters", "2", "--kernel-size", "5", "--groups", "7"],
     "jaxconv shape: error: --groups 7 must divide both the input channels (300) and --filters (2)."),
    (["--input", "50x300", "--filters", "2", "--kernel-size", "5", "--then", "16"],
     "jaxconv shape: error: --then '16' is not understood; expected FILTERS:KERNEL[:STRIDE[:PADDING[:DILATION]]]"),
    (["--input", "8x3", "--filters", "2", "--kernel-size", "5", "--then", "4:5"],
     "jaxconv shape: error: layer 2: input length 4 is shorter than the dilated kernel"),
])
def test_shape_errors_are_one_line(capsys, argv, message):
    rc, out, err = run_main(capsys, "shape", *argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith(message), err


def test_no_command_and_unknown_command(capsys):
    rc, out, err = run_main(capsys)
    assert (rc, out, err) == (2, "", "jaxconv: error: choose a command: shape, explain, train, import, dump, ablate, report, predict (jaxconv "
                                   "--help)\n")
    rc, _, err = run_main(capsys, "frobnicate")
    assert rc == 2 and err.count("\n") == 1 and err.startswith(
        "jaxconv: error: argument {shape,explain,train,import,dump,ablate,report,predict}: invalid choice")


def test_help_mentions_the_explain_contract(capsys):
    assert main(["explain", "--help"]) == 0
    out = capsys.readouterr().out
    assert "build_model(config) defined in the config file" in out and "jaxconv.models.build_model" in out


@pytest.mark.slow
def test_subprocess_golden_and_error():
    rc, out, err = run_subprocess("shape", "--input", "50x300", "--filters", "111", "--kernel-size", "5")
    assert (rc, out, err) == (0, seed_expected(), "")
    rc, out, err = run_subprocess("shape", "--input", "50x", "--filters", "1", "--kernel-size", "3")
    assert rc == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.slow
def test_console_script_when_installed():
    script = pathlib.Path(sys.executable).with_name("jaxconv")
    script = script if script.exists() else shutil.which("jaxconv")
    if not script:
        pytest.skip("the jaxconv console script is not installed (pip install -e .)")
    proc = subprocess.run([str(script), "shape", "--input", "5x5x1", "--filters", "1", "--kernel-size", "3",
                           "--stride", "2", "--padding", "1"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith("Conv2D: input (height=5, width=5, in=1) -> output (3, 3, 1)")


# ---------------------------------------------------------------------------------------------------------------
# jaxconv explain
# ---------------------------------------------------------------------------------------------------------------

CONFIG_WITH_BUILDER = '''
import ml_collections
import jax.numpy as jnp
from flax import nnx
from jaxconv import Conv1D


class Causal(nnx.Module):
    def __init__(self, filters, rngs):
        self.embed = nnx.Embed(30, 6, rngs=rngs)
        self.convs = nnx.List([Conv1D(6 if i == 0 else filters, filters, 3, dilation=2 ** i, padding="causal",
                                      activation="relu", rngs=rngs) for i in range(3)])

    def __call__(self, tokens):
        x = self.embed(tokens)
        for conv in self.convs:
            x = conv(x)
        return x


def get_config(preset=None):
    config = ml_collections.ConfigDict()
    config.filters = {"small": 4, "big": 16}[preset or "small"]
    return config


def build_model(config):
    return Causal(config.filters, nnx.Rngs(0)), ((2, 20), "int32")
'''


def test_explain_config_with_build_model(capsys, tmp_path):
    path = tmp_path / "causal.py"
    path.write_text(CONFIG_WITH_BUILDER)
    rc, out, err = run_main(capsys, "explain", f"{path}:big")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "Causal: input (2, 20) int32"
    conv2 = next(line for line in lines if line.startswith("convs/2"))
    # Receptive field of three width-3 causal convs with dilation 1, 2, 4: 1 + 2*(1 + 2 + 4) = 15 tokens.
    assert "(2, 20, 16) -> (2, 20, 16)" in conv2 and "(width=3, in=16, out=16)" in conv2 and "(8, 0)" in conv2
    assert conv2.split()[-4:] == ["15", "/", "1", "xla"]            # RF size / jump, then the algorithm
    params = 30 * 6 + (3 * 6 * 16 + 16) + 2 * (3 * 16 * 16 + 16)
    assert next(line for line in lines if line.startswith("total")).split()[1] == f"{params:,}"
    rc, out, _ = run_main(capsys, "explain", str(path), "--input-shape", "1x9")
    assert rc == 0 and out.splitlines()[0] == "Causal: input (1, 9) int32" and "(1, 9, 4)" in out
    rc, out, _ = run_main(capsys, "explain", str(path), "--rich")
    assert rc == 0 and "convs/2" in out and "Causal" in out


def test_explain_errors(capsys, tmp_path):
    rc, _, err = run_main(capsys, "explain", str(tmp_path / "missing.py"))
    assert rc == 2 and err.count("\n") == 1 and "does not exist" in err
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    rc, _, err = run_main(capsys, "explain", str(bad))
    assert (rc, err) == (2, f"jaxconv explain: error: config file {str(bad)!r} defines no get_config(preset) function.\n")
    good = tmp_path / "causal.py"
    good.write_text(CONFIG_WITH_BUILDER)
    rc, _, err = run_main(capsys, "explain", f"{good}:huge")
    assert rc == 2 and err.count("\n") == 1 and "get_config('huge') failed: 'huge'" in err


def test_explain_with_jaxconv_models_build_model(capsys, tmp_path):
    models = pytest.importorskip("jaxconv.models")
    if not hasattr(models, "build_model"):
        pytest.skip("jaxconv.models.build_model is not available")
    path = tmp_path / "kim.py"
    path.write_text(textwrap.dedent('''
        import ml_collections

        def get_config(preset=None):
            return ml_collections.ConfigDict({
                "seed": 0,
                "model": {"name": "text_cnn", "embed_dim": 10, "widths": (3, 4, 5), "filters": 7, "dropout": 0.5,
                          "embedding": "rand", "vocab_size": 100, "num_classes": 3},
                "data": {"max_length": 25},
            })
    '''))
    rc, out, err = run_main(capsys, "explain", str(path))
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].endswith("input (1, 25) int32")
    for i, k in enumerate((3, 4, 5)):
        row = next(line for line in lines if line.startswith(f"convs/{i}"))
        assert f"(1, 25, 10) -> (1, {25 - k + 1}, 7)" in row and row.split()[-4:] == [str(k), "/", "1", "xla"]
        assert f"{k * 10 * 7 + 7:,}" in row


def test_explain_repository_text_cnn_config(capsys):
    config = REPO / "configs" / "text_cnn.py"
    rc, out, err = run_main(capsys, "explain", f"{config}:mr", "--vocab-size", "1000", "--num-classes", "2",
                            "--input-shape", "2x40")
    assert rc == 0, err
    assert "convs/0" in out and "(width=3, in=300, out=100)" in out and "(2, 40) -> (2, 2)" in out


def test_explain_benchmark_preset_knows_its_class_count(capsys):
    """TREC has 6 question types: the classifier row shows 6 outputs without --num-classes."""
    rc, out, err = run_main(capsys, "explain", f"{REPO / 'configs' / 'text_cnn.py'}:trec", "--vocab-size", "1000",
                            "--input-shape", "2x40")
    assert rc == 0, err
    assert "num_classes" not in err
    assert "classifier  Linear   (2, 300) -> (2, 6)" in out


# ---------------------------------------------------------------------------------------------------------------
# Bad input from the command line: one line on stderr, exit status 2, no traceback
# ---------------------------------------------------------------------------------------------------------------

SPEC_HELP = (f"expected a built-in config name ({', '.join(BUILTIN_CONFIGS)}) or a path to a .py file defining get_config(preset), "
             "optionally followed by :PRESET, e.g. text_cnn:mr or configs/text_cnn.py:mr.")


@pytest.mark.parametrize("argv, message", [
    (["explain", "README.md"], "jaxconv explain: error: config file 'README.md' is not a Python file; expected a .py "
                               "file defining get_config(preset), e.g. configs/text_cnn.py."),
    (["explain", "configs"], f"jaxconv explain: error: config 'configs' is a directory; {SPEC_HELP}"),
    (["explain", "configs/text_cnn.py", "--dtype", "float99"],
     "jaxconv explain: error: --dtype 'float99' is not a dtype; expected e.g. int32 (token ids) or float32."),
    (["explain", "text_cnn", "--vocab-size", "0"],
     "jaxconv explain: error: argument --vocab-size: expected an int >= 1; got 0"),
    (["explain", "text_cnn", "--num-classes", "-2"],
     "jaxconv explain: error: argument --num-classes: expected an int >= 1; got -2"),
    (["explain", "text_cnn", "--vocab-size", "many"],
     "jaxconv explain: error: argument --vocab-size: 'many' is not an int; expected an int >= 1"),
    (["ablate", "--workdir", "w", "--batch-size", "0"],
     "jaxconv ablate: error: argument --batch-size: expected an int >= 1; got 0"),
    (["ablate", "--workdir", "w", "--top", "-3"], "jaxconv ablate: error: argument --top: expected an int >= 1; got -3"),
    (["train", "--config", "nope.py", "--workdir", "w"], f"jaxconv train: error: config file 'nope.py' does not "
                                                          f"exist; {SPEC_HELP}"),
    (["train", "--config", "configs/text_cnn.py:bogus", "--workdir", "w"],
     "jaxconv train: error: config 'configs/text_cnn.py:bogus': get_config('bogus') failed: unknown preset 'bogus' of "
     f"text_cnn; expected one of {sorted(TEXT_CNN_PRESETS)}."),
])
def test_bad_arguments_are_one_line(argv, message, capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)   # the paths as a user types them, from the repository root
    rc, out, err = run_main(capsys, *[str(tmp_path / a) if a == "w" else a for a in argv])
    assert (rc, out, err) == (2, "", message + "\n")
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_the_experiment_script_gives_the_same_one_line_errors(tmp_path):
    """experiments/text_cnn.py is `jaxconv train`: a missing config and a bad preset are one line (no chained
    ml_collections traceback, no traceback inside the message)."""
    for spec, message in (("nope.py", f"config file 'nope.py' does not exist; {SPEC_HELP}"),
                          ("configs/text_cnn.py:bogus", "config 'configs/text_cnn.py:bogus': get_config('bogus') "
                                                        "failed: unknown preset 'bogus' of text_cnn; expected one of "
                                                        f"{sorted(TEXT_CNN_PRESETS)}.")):
        proc = subprocess.run([sys.executable, "experiments/text_cnn.py", "--config", spec, "--workdir",
                               str(tmp_path / "w")], capture_output=True, text=True, cwd=REPO, timeout=120)
        assert (proc.returncode, proc.stdout, proc.stderr) == (2, "", f"jaxconv train: error: {message}\n")
    assert not (tmp_path / "w").exists()


def test_explain_float_dtype_on_a_token_model_names_the_flag(capsys):
    rc, out, err = run_main(capsys, "explain", "text_cnn", "--dtype", "float32", "--input-shape", "1x20")
    assert (rc, out) == (2, "")
    assert err == ("jaxconv explain: error: --dtype float32: the model (TextCNN) embeds token ids, so its example input "
                   "needs an integer dtype; leave --dtype out (int32) or give an integer one, e.g. --dtype int32.\n")
    rc, out, err = run_main(capsys, "explain", "text_cnn", "--dtype", "int16", "--input-shape", "1x20")
    assert (rc, err) == (0, "") and out.startswith("TextCNN: input (1, 20) int16")


def test_shape_of_a_huge_input_is_plain_arithmetic(capsys):
    """Sizes past what numpy can index (the kernel alone would have 3e30 entries) are only numbers: no
    "iterator is too large"."""
    n = 10 ** 15
    rc, out, err = run_main(capsys, "shape", "--input", f"{n}x{n}", "--filters", str(n), "--kernel-size", "3")
    assert (rc, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"Conv1D: input (length={n}, in={n}) -> output ({n - 2}, {n})"
    assert f"    Keras 1  (width=3, 1=1, in={n}, out={n})" in lines
    assert f"    PyTorch  (out={n}, in={n}, width=3)" in lines
    assert f"  params: {3 * n * n + n:,} = 3*{n}*{n} weights + {n} biases" in lines
