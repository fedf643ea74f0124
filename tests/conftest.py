"""Shared test helpers.

- Keras runs on the JAX backend: ``KERAS_BACKEND`` is set here, before any test module can import keras.
- On a GPU, JAX would reserve 75% of its memory in the pytest process, and the training subprocesses that tests
  start (kill-and-resume, CLI runs) could then not create their own GPU context. ``XLA_PYTHON_CLIENT_PREALLOCATE``
  is set to ``false`` here, for this process and every child (no effect on CPU).
- :func:`require_torch` imports PyTorch for the cross-checks: it skips when torch is missing, except under CI
  (``CI=true``), where a missing torch is a failure (``.ci/run`` installs it).
- :func:`require_shared` / the ``shared_datasets`` fixture locate the shared data directory
  (``../shared/datasets/sentences`` beside the repository, or ``$JAXCONV_DATA``): skip when absent, fail under CI.
- ``demo_run`` / ``demo_dump`` (session): the demo's run (the built-in synthetic preset, trained once for the whole
  session, ~10 s) and its test-split dump, shared by the dump, analysis, report and notebook tests.
- ``s3_bucket`` (module): ``s3://jaxconv-test`` on an in-process S3 server (moto), for the remote-store tests.
"""

from __future__ import annotations

import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")

import jax
import pytest

# 32-bit by default everywhere; tests that need float64 use `with jax.enable_x64(True)` locally.
jax.config.update("jax_enable_x64", False)

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
TORCH_CI_MESSAGE = "CI must run the PyTorch cross-checks: torch is not installed; .ci/run installs torch==2.13.0"


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require_torch():
    """Return the ``torch`` module; skip the test when it is not installed (fail under ``CI=true``)."""
    try:
        import torch
    except ImportError:
        if in_ci():
            pytest.fail(TORCH_CI_MESSAGE)
        pytest.skip("torch is not installed (optional cross-check; .ci/run installs torch==2.13.0)")
    return torch


def shared_datasets_dir() -> pathlib.Path:
    """Where the shared sentence datasets should be: ``$JAXCONV_DATA`` or ``<repo>/../shared/datasets/sentences``."""
    env = os.environ.get("JAXCONV_DATA")
    if env:
        return pathlib.Path(env)
    return REPO_ROOT.parent / "shared" / "datasets" / "sentences"


def require_shared(path: str | os.PathLike | None = None) -> pathlib.Path:
    """Return ``shared_datasets_dir() / path`` (or the directory itself); skip when absent, fail under ``CI=true``."""
    base = shared_datasets_dir()
    target = base / path if path is not None else base
    if not target.exists():
        msg = (f"shared data {str(target)!r} is missing: expected the sentences datasets at ../shared/datasets/sentences "
               f"beside the repository (or set JAXCONV_DATA)")
        if in_ci():
            pytest.fail(f"CI must run the tests on the shared data: {msg}")
        pytest.skip(msg)
    return target


@pytest.fixture
def torch():
    """The ``torch`` module (see :func:`require_torch`)."""
    return require_torch()


@pytest.fixture
def shared_datasets() -> pathlib.Path:
    """``pathlib.Path`` of the shared sentences directory (see :func:`require_shared`)."""
    return require_shared()


def subprocess_env(**extra) -> dict:
    """``os.environ`` for a child python: no inherited ``XLA_FLAGS``, plus ``extra``."""
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> pathlib.Path:
    """The demo's run: ``jaxconv train text_cnn`` (synthetic preset), trained once per session."""
    from jaxconv.cli import main

    workdir = tmp_path_factory.mktemp("demo") / "run"
    assert main(["train", "text_cnn", "--workdir", str(workdir), "--config.progress=false"]) == 0
    return workdir


@pytest.fixture(scope="session")
def demo_dump(demo_run) -> pathlib.Path:
    """``demo_run`` with its test split dumped (``dumps/test``); tests must not change that dump."""
    from jaxconv.dump import dump_activations

    dump_activations(demo_run)
    return demo_run


@pytest.fixture(scope="module")
def s3_bucket():
    """``s3://jaxconv-test`` on a moto server on 127.0.0.1; fsspec and etils are pointed at it and reset after. The
    test module imports (or skips on) moto, s3fs and boto3 itself, as its in_ci() rule says."""
    import socket

    import boto3
    import fsspec.config
    import moto.server as moto_server
    from etils.epath import backend

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    endpoint = f"http://127.0.0.1:{port}"
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved_conf = dict(fsspec.config.conf.get("s3", {}))
    mp = pytest.MonkeyPatch()
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}.items():
        mp.setenv(key, value)
    fsspec.config.conf["s3"] = {**saved_conf, "endpoint_url": endpoint, "use_listings_cache": False}
    backend.fsspec_backend._get_filesystem.cache_clear()      # etils caches one filesystem per protocol
    try:
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket="jaxconv-test")
        yield "s3://jaxconv-test"
    finally:
        fsspec.config.conf["s3"] = saved_conf
        backend.fsspec_backend._get_filesystem.cache_clear()
        mp.undo()
        server.stop()
