#!/usr/bin/env bash
# The package as a user gets it: `pip install .` without extras into a fresh virtualenv, used from outside the
# checkout (so nothing is imported from the working tree): import it, `jaxconv shape`, a 20-step `jaxconv train` on
# the built-in synthetic corpus, `jaxconv dump` and `jaxconv report` of it, `python -m jaxconv --version`.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
# A copy of the working tree, so that the build leaves nothing (build/, *.egg-info) in the checkout.
mkdir "$tmp/src"
tar -C "$repo" --exclude=./.venv --exclude=./.git --exclude=./runs --exclude=./build -cf - . | tar -C "$tmp/src" -xf -
"$tmp/venv/bin/python" -m pip install --quiet "$tmp/src"
cd "$tmp"
py="$tmp/venv/bin/python"
if "$py" -c "import pytest" 2>/dev/null; then echo "install-check: the test extras leaked into a plain install" >&2; exit 1; fi
"$py" -c "import jaxconv, jaxconv.train, jaxconv.configs, jaxconv.data, jaxconv.models; print('import jaxconv', jaxconv.__version__)"
"$py" -m jaxconv --version
"$py" - <<'PY'
import importlib.metadata as md, importlib.resources as res
assert res.files("jaxconv").joinpath("py.typed").is_file(), "py.typed is not installed"
files = [str(f) for f in md.files("jaxconv")]
assert any(f.endswith("LICENSE") for f in files), f"no LICENSE in the installed metadata: {files[:5]}"
assert md.metadata("jaxconv")["License-Expression"] == "Apache-2.0"
assert any(f.endswith("configs/text_cnn.py") for f in files), "the built-in configs are not installed"
print("installed: py.typed, LICENSE (Apache-2.0), built-in configs")
PY
"$tmp/venv/bin/jaxconv" shape --input 50x300 --filters 111 --kernel-size 5 | head -1
"$tmp/venv/bin/jaxconv" train text_cnn --workdir "$tmp/run" --config.train.steps=20 --config.progress=false
"$py" - "$tmp/run" <<'PY'
import json, pathlib, sys
result = json.loads((pathlib.Path(sys.argv[1]) / "final_metrics.json").read_text())
assert result["step"] == 20, result
print("install-check: ok, 20 steps, test accuracy", result["test_accuracy"])
PY
# Its activations dumped and reported, and read back with plain zarr.
"$tmp/venv/bin/jaxconv" dump --workdir "$tmp/run" | tail -1
"$tmp/venv/bin/jaxconv" report --workdir "$tmp/run"
"$py" - "$tmp/run" <<'PY'
import pathlib, sys, zarr
run = pathlib.Path(sys.argv[1])
g = zarr.open_group(str(run / "dumps" / "test" / "activations.zarr"), mode="r")
assert g.attrs["complete"] is True and g["maps/convs/0"].shape[0] == g.attrs["num_examples"], dict(g.attrs)
report = run / "report" / "test"                   # each dump its own report folder
assert (report / "index.html").is_file() and len(list((report / "filters").glob("*.html"))) == 96
assert (run / "report" / "index.html").is_file()   # the run's reports, listed
print("install-check: dump and report ok,", g.attrs["num_examples"], "examples")
PY
# A trained Keras 1 model imported with h5py alone (no Keras, no TensorFlow in a plain install), then explained.
"$py" - "$tmp/keras1.h5" "$tmp/src/tests/imports" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
from keras_legacy import founding_model_h5   # writes the Keras 1.2.2 layout with h5py
founding_model_h5(sys.argv[1])
PY
"$tmp/venv/bin/jaxconv" import "$tmp/keras1.h5" --workdir "$tmp/keras1" | grep -F "(1, 50, 300) -> (1, 46, 111)"
"$tmp/venv/bin/jaxconv" explain "$tmp/keras1" | grep -F "(width=5, in=300, out=111)"
if "$py" -c "import keras" 2>/dev/null || "$py" -c "import tensorflow" 2>/dev/null; then
  echo "install-check: keras or tensorflow is installed in a plain install" >&2; exit 1
fi
echo "install-check: Keras 1 import ok"
