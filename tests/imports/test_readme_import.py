"""The README's "A trained Keras model, end to end" commands, run as written on the founding question's Keras 1 model
(a Keras-1.2-layout HDF5 file written with h5py): import, explain, dump, report. The dump's predictions agree with
the Keras model's on every text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO_ROOT, subprocess_env

pytestmark = pytest.mark.slow  # four commands in subprocesses

SECTION = "### A trained Keras model, end to end"


def readme_commands() -> list[str]:
    """The ``jaxconv ...`` lines of the README section's first ``bash`` block."""
    text = (REPO_ROOT / "README.md").read_text()
    assert SECTION in text, f"README.md has no section {SECTION!r}"
    block = re.search(r"```bash\n(.*?)```", text[text.index(SECTION):], re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.startswith("jaxconv ")]


def test_the_readme_commands_import_dump_and_report_a_keras1_model(tmp_path):
    keras = pytest.importorskip("keras")
    from keras_legacy import founding_model_h5, keras3_founding_model

    weights = founding_model_h5(tmp_path / "model.h5", backend="tensorflow")
    words = [f"w{i}" for i in range(1, 500)]
    (tmp_path / "word_index.json").write_text(json.dumps({w: i + 1 for i, w in enumerate(words)}))
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(words + ["unseen", "WORDS,"], rng.integers(3, 70))) for _ in range(60)]
    (tmp_path / "texts.txt").write_text("".join(f"{i % 2} {t}\n" for i, t in enumerate(texts)))

    commands = readme_commands()
    assert [c.split()[1] for c in commands] == ["import", "explain", "dump", "report"]
    out = {}
    for command in commands:
        r = subprocess.run([sys.executable, "-m", "jaxconv", *command.split()[1:]], cwd=tmp_path, text=True,
                           capture_output=True, env=subprocess_env(JAX_PLATFORMS="cpu"))
        assert r.returncode == 0, f"{command}: {r.stderr}"
        out[command.split()[1]] = r.stdout
    for name in ("import", "explain"):                    # the founding question's answer
        assert "(width=5, in=300, out=111)" in out[name] and "(1, 50, 300) -> (1, 46, 111)" in out[name]
    assert "keras 1.2.2 (tensorflow)" in out["import"] and "convolution1d_1" in out["import"]

    from jaxconv.data import keras_tokenizer
    from jaxconv.dump import load_dump

    index = {w: i + 1 for i, w in enumerate(words)}
    seqs = [[index[w] for w in keras_tokenizer()(t) if w in index] for t in texts]
    theirs = keras3_founding_model(weights).predict(keras.utils.pad_sequences(seqs, maxlen=50), verbose=0)
    workdir = next(tmp_path / c.split("--workdir")[1].split()[0] for c in commands if "--workdir" in c)
    d = load_dump(workdir, "texts")
    assert d.num_examples == len(texts)
    np.testing.assert_array_equal(d.predictions, theirs.argmax(-1))                    # 100% agreement
    np.testing.assert_allclose(d.group["probabilities"][...], theirs, atol=1e-5)
    page = workdir / "report" / "texts" / "filters" / "layers-convolution1d_1-f7.html"
    assert page.exists() and "layers/convolution1d_1" in page.read_text()
    assert "runs/keras1/report/texts/filters/layers-convolution1d_1-f7.html" in (REPO_ROOT / "README.md").read_text()
    assert os.path.exists(workdir / "report" / "texts" / "index.html")
