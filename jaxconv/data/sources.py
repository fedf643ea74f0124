"""Optional dataset sources by name: Hugging Face ``datasets`` and TensorFlow Datasets, local only.

No function here touches the network. ``datasets`` and ``tensorflow_datasets`` are imported only
when asked for, and a missing one raises ``ImportError`` saying what to install.

Spec strings for :func:`load_named_source`::

    "mr" | "sst1" | "sst2" | "trec"    the sentence files (jaxconv.data.load_sentence_dataset)
    | "subj" | "cr" | "mpqa"
    "synthetic"                        the planted-motif corpus (jaxconv.data.synthetic_dataset)
    "hf:<saved dir | cached name>"     Hugging Face datasets, offline
    "tfds:<name>"                      TensorFlow Datasets, already prepared under data_dir
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from jaxconv.data.readers import LabeledText, TextDataset, _check_labels

__all__ = ["load_hf_dataset", "load_tfds_dataset", "load_named_source", "BUILTIN_SOURCES"]

#: Names :func:`load_named_source` understands without a prefix.
BUILTIN_SOURCES = ("mr", "sst1", "sst2", "trec", "subj", "cr", "mpqa", "synthetic")

_TEXT_FIELDS = ("sentence", "text", "content", "review", "question", "document")
_DEV_NAMES = ("validation", "dev", "valid", "val")


def _resolve_splits(available: Sequence[str], splits: Mapping[str, str] | None, what: str) -> dict[str, str]:
    """Our split name -> the source's split name."""
    if splits is not None:
        unknown = sorted(set(splits) - {"train", "dev", "test"})
        if "train" not in splits or unknown:
            raise ValueError(f"splits must map 'train' (and optionally 'dev', 'test') to {what} split names; "
                             f"got {dict(splits)!r}.")
        missing = [v for v in splits.values() if v not in available]
        if missing:
            raise ValueError(f"{what} has splits {sorted(available)}; splits={dict(splits)!r} names missing {missing}.")
        return dict(splits)
    out = {}
    if "train" not in available:
        raise ValueError(f"{what} has no 'train' split (splits: {sorted(available)}); pass splits={{'train': ...}}.")
    out["train"] = "train"
    dev = next((d for d in _DEV_NAMES if d in available), None)
    if dev is not None:
        out["dev"] = dev
    if "test" in available:
        out["test"] = "test"
    return out


def _pick_text_field(columns: Sequence[str], text_field: str | None, label_field: str, what: str) -> str:
    if text_field is not None:
        if text_field not in columns:
            raise ValueError(f"{what}: text_field={text_field!r} is not a column; columns: {list(columns)}.")
        return text_field
    for name in _TEXT_FIELDS:
        if name in columns:
            return name
    raise ValueError(f"{what}: no text column among {list(_TEXT_FIELDS)}; columns: {list(columns)}. "
                     f"Pass text_field=.")


def _to_labeled(texts, labels, path: str, what: str, split: str) -> LabeledText:
    texts = [t.decode("utf-8") if isinstance(t, (bytes, bytearray)) else str(t) for t in texts]
    labels = [int(v) for v in labels]
    if any(v < 0 for v in labels):
        raise ValueError(f"{what}: split {split!r} has negative labels (e.g. -1 = unlabelled, as in GLUE test "
                         f"sets); leave it out with splits={{'train': ..., 'dev': ...}}.")
    return LabeledText(texts=texts, labels=labels, path=path, encoding="utf-8", skipped=0)


@contextlib.contextmanager
def _hf_offline():
    """Force Hugging Face libraries offline for the duration (env vars and already-read constants)."""
    saved_env = {k: os.environ.get(k) for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")}
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    os.environ["HF_HUB_OFFLINE"] = "1"
    patched: list[tuple[Any, str, Any]] = []
    try:
        import datasets.config as dconfig

        for attr in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"):
            if hasattr(dconfig, attr):
                patched.append((dconfig, attr, getattr(dconfig, attr)))
                setattr(dconfig, attr, True)
        try:
            import huggingface_hub.constants as hconst

            if hasattr(hconst, "HF_HUB_OFFLINE"):
                patched.append((hconst, "HF_HUB_OFFLINE", hconst.HF_HUB_OFFLINE))
                hconst.HF_HUB_OFFLINE = True
        except ImportError:
            pass
        yield
    finally:
        for obj, attr, value in reversed(patched):
            setattr(obj, attr, value)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def load_hf_dataset(name_or_path: str, *, text_field: str | None = None, label_field: str = "label",
                    splits: Mapping[str, str] | None = None, config_name: str | None = None,
                    cache_dir: str | None = None) -> TextDataset:
    """Load a Hugging Face dataset that is already on this machine.

    A directory written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk`` is read with
    ``datasets.load_from_disk`` (a single ``Dataset`` becomes the train split). Anything else goes
    to ``datasets.load_dataset(name_or_path, config_name)`` with ``HF_DATASETS_OFFLINE=1`` and
    ``HF_HUB_OFFLINE=1``, so only the local cache (or local data files) can answer.

    Args:
      name_or_path: a saved directory, a local data directory, or a cached hub name (``"glue"``).
      text_field: the text column; default the first of ``sentence, text, content, review,
        question, document`` present.
      label_field: the integer label column.
      splits: our split (``"train"``, ``"dev"``, ``"test"``) -> the dataset's split name; default
        ``train``, the first of ``validation/dev/valid/val``, and ``test`` when present.
      config_name: the dataset configuration (e.g. ``"sst2"`` for ``"glue"``).
      cache_dir: the ``datasets`` cache directory, when not the default.

    Returns:
      :class:`TextDataset` named ``"hf:<name_or_path>"``; ``label_names`` from a ``ClassLabel``
      feature when there is one; ``extras["tokenizer"] = "kim"``.

    Raises:
      ImportError: ``datasets`` is not installed.
      FileNotFoundError: not saved locally and not in the cache (no download is attempted).
      ValueError: missing columns or splits, bad labels.
    """
    try:
        import datasets
    except ImportError as e:
        raise ImportError("load_hf_dataset needs the Hugging Face `datasets` package: pip install datasets") from e
    what = f"hf:{name_or_path}"
    path = Path(name_or_path).expanduser()
    with _hf_offline():
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            obj = datasets.load_from_disk(str(path))
        else:
            try:
                obj = datasets.load_dataset(str(name_or_path), config_name, cache_dir=cache_dir)
            except Exception as e:  # datasets raises several types for "not available offline"
                raise FileNotFoundError(
                    f"{what}: not found locally: neither a directory saved with save_to_disk nor a dataset in "
                    f"the local Hugging Face cache (downloads are disabled here: HF_DATASETS_OFFLINE=1). "
                    f"Download it once elsewhere and save_to_disk, then pass that path. ({type(e).__name__}: {e})"
                ) from e
    if isinstance(obj, datasets.Dataset):
        obj = datasets.DatasetDict({"train": obj})
    mapping = _resolve_splits(list(obj.keys()), splits, what)
    train_ds = obj[mapping["train"]]
    columns = list(train_ds.column_names)
    tf = _pick_text_field(columns, text_field, label_field, what)
    if label_field not in columns:
        raise ValueError(f"{what}: label_field={label_field!r} is not a column; columns: {columns}.")
    feature = train_ds.features.get(label_field)
    label_names = list(feature.names) if hasattr(feature, "names") else None
    out = {}
    for ours, theirs in mapping.items():
        ds = obj[theirs]
        out[ours] = _to_labeled(ds[tf], ds[label_field], f"{path}[{theirs}]" if path.exists() else f"{what}[{theirs}]",
                                what, theirs)
    C = _check_labels(what, out, len(label_names) if label_names else None)
    return TextDataset(name=what, train=out["train"], dev=out.get("dev"), test=out.get("test"), num_classes=C,
                       label_names=label_names, extras={"tokenizer": "kim", "source": what})


def load_tfds_dataset(name: str, *, data_dir: str | None = None, text_field: str | None = None,
                      label_field: str = "label", splits: Mapping[str, str] | None = None) -> TextDataset:
    """Load a TensorFlow Datasets dataset already prepared under ``data_dir`` (``download=False``).

    Uses ``tfds.load(name, data_dir=data_dir, download=False, with_info=True)`` and
    ``tfds.as_numpy``; byte strings are decoded as UTF-8.

    Args:
      name: a TFDS name, e.g. ``"glue/sst2"``.
      data_dir: the TFDS data directory (default: TFDS's own, usually ``~/tensorflow_datasets``).
      text_field, label_field, splits: as in :func:`load_hf_dataset`.

    Raises:
      ImportError: ``tensorflow_datasets`` is not installed.
      FileNotFoundError: the dataset is not prepared locally.
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise ImportError("load_tfds_dataset needs TensorFlow Datasets: pip install tensorflow-datasets "
                          "tensorflow") from e
    what = f"tfds:{name}"
    try:
        ds_dict, info = tfds.load(name, data_dir=data_dir, download=False, with_info=True)
    except Exception as e:  # tfds raises AssertionError / DatasetNotFoundError when not prepared
        raise FileNotFoundError(
            f"{what}: not prepared under data_dir={data_dir!r} and downloads are disabled here (download=False). "
            f"Prepare it once (`tfds build {name} --data_dir=...`) and pass data_dir. ({type(e).__name__}: {e})"
        ) from e
    mapping = _resolve_splits(list(ds_dict.keys()), splits, what)
    features = getattr(info, "features", {}) or {}
    label_feature = features[label_field] if label_field in features else None
    label_names = list(label_feature.names) if hasattr(label_feature, "names") else None
    out = {}
    for ours, theirs in mapping.items():
        rows = list(tfds.as_numpy(ds_dict[theirs]))
        if not rows:
            raise ValueError(f"{what}: split {theirs!r} is empty.")
        columns = list(rows[0].keys())
        tf = _pick_text_field(columns, text_field, label_field, what)
        if label_field not in columns:
            raise ValueError(f"{what}: label_field={label_field!r} is not a feature; features: {columns}.")
        out[ours] = _to_labeled([r[tf] for r in rows], [r[label_field] for r in rows], f"{what}[{theirs}]", what,
                                theirs)
    C = _check_labels(what, out, len(label_names) if label_names else None)
    return TextDataset(name=what, train=out["train"], dev=out.get("dev"), test=out.get("test"), num_classes=C,
                       label_names=label_names, extras={"tokenizer": "kim", "source": what})


def load_named_source(spec: str, **kw) -> TextDataset:
    """Load a dataset from a spec string (see the module docstring).

    Keyword arguments go to the loader: ``root=``, ``encoding=``, ``on_error=`` for the sentence
    files; :func:`jaxconv.data.synthetic_dataset`'s for ``"synthetic"``; :func:`load_hf_dataset`'s
    for ``"hf:"``; :func:`load_tfds_dataset`'s for ``"tfds:"``.

    >>> load_named_source("synthetic", num_examples=100).name
    'synthetic'

    Raises:
      ValueError: an unknown spec (the message lists the accepted forms).
    """
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"spec must be a non-empty str; got spec={spec!r}.")
    if spec.startswith("hf:"):
        return load_hf_dataset(spec[3:], **kw)
    if spec.startswith("tfds:"):
        return load_tfds_dataset(spec[5:], **kw)
    key = spec.lower()
    if key == "synthetic":
        from jaxconv.data.synthetic import synthetic_dataset

        return synthetic_dataset(**kw)
    from jaxconv.data.readers import _ALIASES, SENTENCE_DATASETS, load_sentence_dataset

    if _ALIASES.get(key, key) in SENTENCE_DATASETS:
        return load_sentence_dataset(key, kw.pop("root", None), **kw)
    raise ValueError(f"Unknown data source spec={spec!r}; expected one of {list(BUILTIN_SOURCES)}, "
                     f"'hf:<saved dir or cached name>' or 'tfds:<name>'.")
