"""A trained classifier's predictions for texts: :meth:`jaxconv.Run.predict` (:func:`predict`)::

    run = jaxconv.load_run("runs/demo")
    for p in run.predict(["a sentence to classify", "another one"]):
        print(p.label, p.probabilities)           # 'class1' {'class0': 0.003, 'class1': 0.997}

Texts are encoded as training encoded them (:meth:`jaxconv.Run.encode_rows`). Each is padded by a rule of its own
(:func:`padded_length`: enough zeros after its words that every window touching a word is seen, rounded up to a
multiple of 8; or the model's fixed length), so its prediction does not depend on the texts around it; texts of one
padded length run together, ``batch_size`` rows at a time (a short batch is filled with rows of padding). Matmuls
and convolutions run at full float32 precision (:data:`PRECISION`) on every backend. The forward pass
is one ``jax.jit`` function over ``nnx.split``'s graph and state, shared by every model: it compiles once per graph
and padded length, and a later call with the same shapes reuses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Array, Float, Int

from jaxconv._args import check_count, check_texts

__all__ = ["Prediction", "predict", "padded_length"]

#: Padded lengths are rounded up to a multiple of this (fewer distinct shapes, fewer compiles).
LENGTH_MULTIPLE = 8


@dataclasses.dataclass(frozen=True)
class Prediction:
    """The model's class for one text.

    Attributes:
      text: the text as given; label: the predicted class's name (its index as a string when the run has no
        names); index: the predicted class (int); probabilities: ``{class name: softmax probability}``, in class
        order; logits: the model's logits ``(K,)`` float32.
    """

    text: str
    label: str
    index: int
    probabilities: dict[str, float]
    logits: np.ndarray = dataclasses.field(repr=False, compare=False)

    def __str__(self) -> str:
        probs = ", ".join(f"{k} {v:.3f}" for k, v in self.probabilities.items())
        return f"{self.label} ({probs}): {self.text}"


def _logits(graphdef, state, tokens: Int[Array, "B L"]) -> Float[Array, "B K"]:
    model = nnx.merge(graphdef, state)
    return model(tokens).astype(jnp.float32)


#: The forward pass, jitted once for every model: the graph is static, so each (graph, shapes) compiles once.
forward = jax.jit(_logits, static_argnums=0)

#: The matmul and convolution precision of :func:`predict` and :func:`jaxconv.evidence`: full float32, so that on a
#: GPU (TF32 by default) or a TPU (bfloat16 passes) the two agree and evidence's terms sum to the logits.
PRECISION = "highest"


def class_names(run) -> list[str]:
    """The run's class names, or ``"0"``, ``"1"``, ... when it has none."""
    names = run.label_names
    return [str(n) for n in names] if names else [str(i) for i in range(int(run.num_classes))]


def padded_length(run, text: str) -> int:
    """The length ``text`` is padded to: the run's fixed length, else its padded length (at least the model's
    ``min_length``) plus ``min_length - 1`` zeros, so that every window that touches a word is seen, rounded up to a
    multiple of :data:`LENGTH_MULTIPLE`. It depends on the text alone, so a text's prediction never depends on the
    other texts it is batched with."""
    if run.fixed_length:
        return int(run.fixed_length)
    need = max(run.pad_left + len(run.vocab.encode(run.tokenize(text))) + run.pad_right, run.min_length)
    return -(-(need + run.min_length - 1) // LENGTH_MULTIPLE) * LENGTH_MULTIPLE


def batches(run, texts: Sequence[str], batch_size: int) -> Iterator[tuple[list[int], int]]:
    """``(indices, length)``: the texts grouped by :func:`padded_length`, at most ``batch_size`` per group."""
    lengths = [padded_length(run, t) for t in texts]
    for L in sorted(set(lengths)):
        rows = [i for i, n in enumerate(lengths) if n == L]
        for lo in range(0, len(rows), batch_size):
            yield rows[lo:lo + batch_size], L


def pad_rows(tokens: np.ndarray, rows: int) -> np.ndarray:
    """``tokens`` ``(b, L)`` with all-padding rows added to ``(rows, L)``."""
    return np.concatenate([tokens, np.zeros((rows - len(tokens), tokens.shape[1]), tokens.dtype)]) \
        if len(tokens) < rows else tokens


def check_classifier(run, what: str) -> None:
    """ValueError when the run's model is a language model (its task is the next token, not a class)."""
    from jaxconv.models import model_kind

    cfg = run.config
    name = cfg.model.name if "model" in cfg and "name" in cfg.model else None
    try:
        task = model_kind(name).task if name else "classify"
    except ValueError:
        task = "classify"
    if task != "classify" or hasattr(run.model, "sample"):
        raise ValueError(f"{run.workdir} holds a {type(run.model).__name__}, a language model (it predicts the next "
                         f"token); {what} needs a classifier (a model kind whose task is 'classify'); "
                         f"run.generate(prompt, n) continues a text.")


def predict(run, texts: str | Sequence[str], *, batch_size: int = 32) -> list[Prediction]:
    """The run's predicted class and class probabilities for each text (see the module docstring).

    Args:
      run: a :class:`jaxconv.Run` whose model is a classifier.
      texts: a sequence of texts (raw strings, tokenized as in training); one str is one text.
      batch_size: rows per forward pass (every chunk is padded to this many rows), an int >= 1.

    Returns:
      one :class:`Prediction` per text, in order.

    Raises:
      TypeError: ``texts`` that are not a str or a sequence of str; a ``batch_size`` that is not an int.
      ValueError: ``batch_size`` below 1, or a language model's run.
    """
    texts = check_texts("jaxconv.predict", "texts", texts)
    batch_size = check_count("jaxconv.predict", "batch_size", batch_size)
    check_classifier(run, "predict")
    names = class_names(run)
    graphdef, state = nnx.split(run.model)
    out: list[Prediction | None] = [None] * len(texts)
    for rows, length in batches(run, texts, batch_size):
        tokens = run.encode([texts[i] for i in rows], length=length)                  # (b, L)
        with jax.default_matmul_precision(PRECISION):
            logits = np.asarray(forward(graphdef, state, jnp.asarray(pad_rows(tokens, batch_size))))[:len(rows)]
        if logits.ndim != 2 or logits.shape[1] != len(names):
            raise ValueError(f"{run.workdir}: the model returns shape {logits.shape[1:]} per text; predict needs "
                             f"logits (num_classes,) = ({len(names)},).")
        probs = np.asarray(jax.nn.softmax(logits, axis=-1))                           # (b, K)
        for i, z, p in zip(rows, logits, probs):
            k = int(np.argmax(z))
            out[i] = Prediction(text=texts[i], label=names[k], index=k,
                                probabilities={n: float(v) for n, v in zip(names, p)}, logits=z)
    return out
