"""Fingerprints of a run's data: what ``run.json`` stores so that a run re-opened on other data is refused.

Each fingerprint is ``"sha256:<hex>"``. A split's covers its texts (as read, before tokenizing), their labels in
order and the label names; the vocabulary's covers its tokens in id order. Two fingerprints are equal exactly when
what they cover is (up to SHA-256 collisions): reordering the words of one text, or one label, changes them.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable, Sequence

__all__ = ["split_fingerprint", "vocab_fingerprint", "data_fingerprint"]


def split_fingerprint(texts: Iterable[str], labels: Iterable[Any] | None = None,
                      label_names: Sequence[str] | None = None) -> str:
    """``"sha256:..."`` of ``texts`` (with ``labels``, one per text, when given) and ``label_names``."""
    h = hashlib.sha256(json.dumps({"label_names": list(label_names) if label_names is not None else None}).encode())
    rows = zip(texts, labels) if labels is not None else ((t, None) for t in texts)
    for text, label in rows:
        h.update(json.dumps([text, label if label is None or isinstance(label, str) else int(label)]).encode())
        h.update(b"\n")
    return f"sha256:{h.hexdigest()}"


def vocab_fingerprint(vocab) -> str:
    """``"sha256:..."`` of a vocabulary's tokens in id order."""
    return f"sha256:{hashlib.sha256(json.dumps(list(vocab.tokens)).encode()).hexdigest()}"


def data_fingerprint(ds) -> dict[str, str]:
    """``{split: fingerprint}`` of a :class:`jaxconv.data.TextDataset`'s splits as read (before any fold or hold-out,
    which the config decides)."""
    return {split: split_fingerprint(lt.texts, lt.labels, ds.label_names) for split, lt in ds.splits().items()}
