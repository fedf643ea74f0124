"""PNG figures of a dump, drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``, rendered by
Agg): no pyplot, so importing this never changes a notebook's backend.

Per layer: :func:`example_heatmaps` (filters x positions for chosen examples), :func:`pooled_distribution` (the
pooled values of every filter) and :func:`class_means` (each class's mean pooled value per filter). Per filter:
:func:`kernel_png`, the ``(width, in)`` kernel as an image, one pixel per weight.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from jaxtyping import Float

__all__ = ["example_heatmaps", "pooled_distribution", "class_means", "kernel_png"]


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def example_heatmaps(dump, layer: str, examples: Sequence[int], path: str | os.PathLike) -> None:
    """One panel per example: the layer's map ``(filters, positions)``, positions labelled by their first word.

    Reads the maps of those examples only."""
    rows = [int(i) for i in examples]
    maps = dump.group[f"maps/{layer}"].oindex[rows, :, :].astype(np.float32)            # (E, P, F)
    spans = dump.group[f"spans/{layer}"][...]                                            # (P, 2)
    F, P = maps.shape[2], maps.shape[1]
    fig = _figure(min(2 + 0.18 * P, 16), 0.6 + len(rows) * (1 + 0.08 * F))
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    vmax = float(maps.max()) or 1.0
    for ax, i, m in zip(axes, rows, maps):
        words, first = dump.words(i), dump.start(i)
        ax.imshow(m.T, aspect="auto", cmap="viridis", vmin=0.0 if maps.min() >= 0 else -vmax, vmax=vmax,
                  interpolation="nearest")
        ticks = [p for p in range(P) if first <= spans[p, 0] < first + len(words)]
        ax.set_xticks(ticks, [words[spans[p, 0] - first] for p in ticks], rotation=90, fontsize=7)
        ax.set_ylabel("filter")
        ax.set_title(f"{layer}, example {i}: filters x positions (labelled by each window's first word)", fontsize=9)
    fig.savefig(path)


def pooled_distribution(pooled: Float[np.ndarray, " examples filters"], layer: str,
                        path: str | os.PathLike) -> None:
    """Box plots of ``pooled`` ``(examples, filters)``, one per filter."""
    F = pooled.shape[1]
    fig = _figure(min(2 + 0.16 * F, 18), 3.2)
    ax = fig.subplots()
    ax.boxplot(pooled, positions=np.arange(F), widths=0.6, showfliers=False)
    ax.set_xticks(np.arange(0, F, max(1, F // 25)))
    ax.set_xlabel("filter")
    ax.set_ylabel("max-pooled value")
    ax.set_title(f"{layer}: distribution of the pooled value of each filter over the examples", fontsize=9)
    fig.savefig(path)


def class_means(pooled: Float[np.ndarray, " examples filters"], classes: np.ndarray, names: Sequence[str],
                layer: str, path: str | os.PathLike) -> None:
    """Heatmap ``(classes, filters)``: each class's mean pooled value per filter (``classes`` ``(examples,)``)."""
    K, F = len(names), pooled.shape[1]
    means = np.stack([pooled[classes == c].mean(axis=0) if np.any(classes == c) else np.zeros(F)
                      for c in range(K)])                                                # (K, F)
    fig = _figure(min(2 + 0.16 * F, 18), 1.2 + 0.35 * K)
    ax = fig.subplots()
    im = ax.imshow(means, aspect="auto", cmap="magma", interpolation="nearest")
    ax.set_yticks(range(K), [str(n) for n in names])
    ax.set_xlabel("filter")
    ax.set_title(f"{layer}: mean pooled value per class", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.savefig(path)


def kernel_png(kernel: Float[np.ndarray, " width channels"], path: str | os.PathLike) -> None:
    """The kernel ``(width, in)`` as a PNG, one pixel per weight, blue negative, red positive (symmetric scale)."""
    from matplotlib.image import imsave

    k = np.asarray(kernel, np.float32)
    m = float(np.abs(k).max()) or 1.0
    imsave(path, k, cmap="RdBu_r", vmin=-m, vmax=m)
