"""What a run stores about its data, and the checks before a workdir that already holds a run is opened again.

- :func:`absolute_data_paths`: the config with its data files and directories (``config.data.train`` / ``dev`` /
  ``test`` / ``path`` / ``sst_trees``, ``config.model.vectors``) made absolute against the directory the run starts
  in, so that ``config.json`` names the same files from anywhere (``jaxconv dump --workdir W`` run elsewhere).
  Empty fields and URLs (``gs://...``) are kept as given.
- :func:`check_same_data`: a run re-opened on data other than its own is refused, before anything of it is
  rewritten. ``run.json`` stores ``fingerprint``: ``{split: "sha256:..."}`` of each split's texts and labels as
  read, and ``"vocab"``, of the vocabulary (:mod:`jaxconv.data.fingerprint`); runs from before the fingerprint
  are compared by their ``vocab.json``.
"""

from __future__ import annotations

import copy
import json
import os

from jaxconv.data.fingerprint import vocab_fingerprint

__all__ = ["PATH_FIELDS", "ChangedDataError", "absolute_data_paths", "same_path", "run_fingerprint",
           "check_same_data"]

#: The config fields that name local files or directories, stored absolute in ``config.json``.
PATH_FIELDS = ("data.train", "data.dev", "data.test", "data.path", "data.sst_trees", "model.vectors")


class ChangedDataError(ValueError):
    """A workdir's run was trained on other data (or another vocabulary) than the data this config reads."""


def _absolute(value):
    if not isinstance(value, str) or not value or "://" in value:
        return value
    return os.path.abspath(os.path.expanduser(value))


def absolute_data_paths(config):
    """A copy of ``config`` whose :data:`PATH_FIELDS` are absolute (against the current directory); ``config``
    itself is left as it is."""
    out = copy.deepcopy(config)
    for field in PATH_FIELDS:
        section, key = field.split(".")
        if section in out and key in out[section]:
            value = out[section][key]
            if _absolute(value) != value:
                out[section][key] = _absolute(value)
    return out


def same_path(old, new) -> bool:
    """Whether two values of a :data:`PATH_FIELDS` field name the same path (a relative one stored by an older run
    is taken against the current directory)."""
    return _absolute(old) == _absolute(new)


def run_fingerprint(data) -> dict[str, str]:
    """What ``run.json`` stores as ``fingerprint``: the data's splits and ``"vocab"``."""
    return {**getattr(data, "fingerprint", {}), "vocab": vocab_fingerprint(data.vocab)}


def _read_json(path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ChangedDataError(f"{path} cannot be read ({type(e).__name__}: {str(e)[:80]}), so it is unknown whether "
                               f"the run's data is unchanged; the run is left as it is. Use a new --workdir, or "
                               f"restore the file.") from None


def check_same_data(workdir, data, config) -> None:
    """Raise :class:`ChangedDataError` (one line: what changed, and what to do) when ``workdir`` holds a run whose
    recorded data or vocabulary differs from ``data`` (a :class:`~jaxconv.data.pipeline.DataPipeline` built from
    ``config``). Reads only; a workdir without ``run.json`` / ``vocab.json`` passes."""
    from jaxconv.data import Vocab

    new = run_fingerprint(data)
    changed = []
    info_path = workdir / "run.json"
    old = (_read_json(info_path) if info_path.exists() else {}).get("fingerprint") or {}
    files = {split: config.data[split] for split in ("train", "dev", "test")
             if config.data.name == "file" and config.data[split]}
    for split in sorted(set(old) | set(new), key=["train", "dev", "test", "vocab"].index):
        if split != "vocab" and old and old.get(split) != new.get(split):
            what = f"config.data.{split}={files[split]}" if split in files else f"the {split} split"
            changed.append(f"{what} reads other texts or labels" if split in new and split in old
                           else f"{what} is {'new' if split in new else 'gone'}")
    vocab_path = workdir / "vocab.json"
    if old.get("vocab") is not None:
        vocab_changed = old["vocab"] != new["vocab"]
    elif vocab_path.exists():
        try:
            vocab_changed = Vocab.load(vocab_path).tokens != data.vocab.tokens
        except (OSError, ValueError) as e:
            raise ChangedDataError(f"{vocab_path} cannot be read ({type(e).__name__}: {str(e)[:80]}); the run is "
                                   f"left as it is. Use a new --workdir, or restore the file.") from None
    else:
        vocab_changed = False
    if vocab_changed:
        changed.append(f"the vocabulary built from it differs from {vocab_path}")
    if changed:
        raise ChangedDataError(f"{workdir} holds a run trained on other data: {'; '.join(changed)}; resuming it would "
                               f"mix two experiments, so nothing was changed. Use a new --workdir, or restore the "
                               f"data the run was trained on.")
