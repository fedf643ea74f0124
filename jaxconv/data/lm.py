"""Text for language models: a corpus of lines (sentences) split into train / valid **by line**.

The corpus is the sentence files of the built-in datasets (their texts, labels dropped, duplicates removed so that
no line is in both splits), or any UTF-8 text file. :mod:`jaxconv.train.lm_pipeline` turns each split into one
stream of ids and cuts it into windows.

>>> train, valid = split_lines([f"line {i}" for i in range(20)], valid_fraction=0.1, seed=0)
>>> len(train), len(valid)
(18, 2)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["split_lines"]


def split_lines(lines: Sequence[str], *, valid_fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """Empty lines dropped, duplicates removed (first kept), then a seeded shuffle split: ``(train, valid)``.

    ``valid`` gets ``max(1, round(valid_fraction * n))`` lines; the two lists keep the corpus order within them.
    """
    if not 0.0 < float(valid_fraction) < 1.0:
        raise ValueError(f"valid_fraction must be in (0, 1); got valid_fraction={valid_fraction!r}.")
    unique = list(dict.fromkeys(line.strip() for line in lines if line.strip()))
    if len(unique) < 2:
        raise ValueError(f"a language-model corpus needs at least 2 distinct non-empty lines; got {len(unique)}.")
    n_valid = min(max(1, round(valid_fraction * len(unique))), len(unique) - 1)
    order = np.random.default_rng(seed).permutation(len(unique))
    valid_idx = set(order[:n_valid].tolist())
    train = [t for i, t in enumerate(unique) if i not in valid_idx]
    valid = [t for i, t in enumerate(unique) if i in valid_idx]
    return train, valid
