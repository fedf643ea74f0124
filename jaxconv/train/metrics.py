"""Metrics out of a run: JSONL, TensorBoard, and a progress bar for people at a terminal.

``workdir/metrics.jsonl`` has one JSON object per line, e.g.::

    {"step": 100, "epoch": 0, "split": "train", "loss": 0.52, "accuracy": 0.74, "examples_per_sec": 2210.5, "time": ...}
    {"step": 192, "epoch": 0, "split": "dev", "loss": 0.47, "accuracy": 0.78, "compiles": 4, ...}
    {"step": 960, "epoch": 4, "split": "test", "loss": 0.45, "accuracy": 0.77, "checkpoint_step": 576, ...}

``time`` is seconds since the Unix epoch; ``examples_per_sec`` and ``time`` are the only fields that vary between
two runs of the same config on the same machine. The same scalars go to TensorBoard (``workdir/tensorboard``) as
``<split>/<name>`` (:class:`jaxconv.train.tensorboard.ScalarWriter`, no TensorFlow needed). Only process 0 writes
(``enabled=False`` elsewhere). The workdir may be local or remote (``gs://``): paths go through ``etils.epath``.

:class:`ProgressBar` draws a rich progress bar on a terminal, and in a Jupyter notebook a line of text that updates in
place (rich's own notebook display when ``ipywidgets`` is installed).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
import time
from typing import Any

from etils import epath

from jaxconv.train.tensorboard import ScalarWriter
from jaxconv.paths import CorruptFileError, append_bytes, is_remote, json_error_text, write_text

__all__ = ["MetricsWriter", "ProgressBar", "read_metrics", "TIMING_FIELDS", "EXPLODED_LOSS_FACTOR", "exploded_loss"]

#: Fields that measure time and so differ between otherwise identical runs.
TIMING_FIELDS = ("time", "examples_per_sec", "elapsed_s", "epoch_time_s", "train_time_s", "eval_time_s",
                 "checkpoint_time_s", "compile_time_s")


#: A train loss this many times the loss at chance counts as exploded (:func:`exploded_loss`).
EXPLODED_LOSS_FACTOR = 1e3


def exploded_loss(loss: float, num_outputs: int, step: int, epoch: int, learning_rate: float) -> str | None:
    """The warning for a mean train ``loss`` that has grown by orders of magnitude without becoming nan, or None.

    The rule: ``loss > EXPLODED_LOSS_FACTOR * ln(num_outputs)``. ``ln(num_outputs)`` is the cross-entropy of a model
    at chance (uniform over its ``num_outputs`` classes or tokens), about where a freshly initialised model starts;
    a mean loss 1000 times that means logits in the thousands on the wrong side, which no learning run reaches
    (Adam at ``learning_rate=1e9`` gives ``3e19`` and chance accuracy, with every loss finite).

    >>> exploded_loss(0.4, 2, 10, 1, 1e-3) is None
    True
    >>> exploded_loss(3.5e20, 2, 5, 1, 1e9)  # doctest: +NORMALIZE_WHITESPACE
    'the train loss is 3.5e+20 at step 5 (epoch 1), over 1000x the loss at chance (ln 2 = 0.693): training has
    diverged though no loss is nan. Lower the learning rate (--config.train.learning_rate, now 1e+09) and train
    again in a new --workdir.'
    """
    chance = math.log(max(int(num_outputs), 2))
    if not loss > EXPLODED_LOSS_FACTOR * chance:
        return None
    return (f"the train loss is {loss:.3g} at step {step} (epoch {epoch}), over {EXPLODED_LOSS_FACTOR:.0f}x the loss "
            f"at chance (ln {max(int(num_outputs), 2)} = {chance:.3g}): training has diverged though no loss is nan. "
            f"Lower the learning rate (--config.train.learning_rate, now {learning_rate:.3g}) and train again in a "
            f"new --workdir.")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no nan/inf
    return value


def read_metrics(path: str | os.PathLike, split: str | None = None) -> list[dict]:
    """The records of a ``metrics.jsonl`` or of the one in a workdir (all, or one ``split``).

    Raises:
      CorruptFileError: a line is not a JSON object; the message names the file and the line, and says that the run
        resumes once the line is removed (the records are a log: the checkpoints do not depend on them).
    """
    path = epath.Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    out = []
    if not path.exists():
        return out
    for number, line in enumerate(path.read_bytes().decode("utf-8", errors="replace").splitlines(), 1):
        if line.strip():
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict):
                    raise ValueError(f"a JSON {type(rec).__name__}, not an object")
            except ValueError as e:
                raise CorruptFileError(
                    f"cannot read line {number} of the metrics {path} ({json_error_text(e)}); the checkpoints do not "
                    f"depend on it, so the run can resume: delete that line (or fix it) and run the same command "
                    f"again.") from None
            if split is None or rec.get("split") == split:
                out.append(rec)
    return out


class MetricsWriter:
    """Append metric records to ``workdir/metrics.jsonl`` and TensorBoard.

    Args:
      workdir: the run directory.
      enabled: False on processes other than 0 (then every method does nothing).
      resume_step: when resuming from a checkpoint at this step, drop records written after it by the interrupted
        run (and any ``test`` records), so the file reads like one uninterrupted run.
    """

    def __init__(self, workdir: str | os.PathLike, *, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.enabled = enabled
        self.path = epath.Path(workdir) / "metrics.jsonl"
        self.tb_dir = epath.Path(workdir) / "tensorboard"
        self._tb = None
        self._lines: list[str] = []          # every line, for object stores, which cannot append
        self._local = not is_remote(self.path)
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            if resume_step is not None:
                self._lines = [json.dumps(rec) + "\n" for rec in read_metrics(self.path)
                               if rec.get("step", 0) <= resume_step and rec.get("split") != "test"]
            write_text(self.path, "".join(self._lines), what="the metrics")
        if tensorboard:
            self._tb = ScalarWriter(self.tb_dir)

    @property
    def tensorboard_dir(self):
        """Where the TensorBoard events go (None when not written)."""
        return self.tb_dir if self._tb is not None else None

    def write(self, split: str, step: int, epoch: int, **values: Any) -> dict:
        """Append one record ``{"step", "epoch", "split", **values, "time"}``; returns it."""
        rec = {"step": int(step), "epoch": int(epoch), "split": split}
        rec.update({k: _clean(v) for k, v in values.items()})
        rec["time"] = time.time()
        if not self.enabled:
            return rec
        line = json.dumps(rec) + "\n"
        if self._local:
            append_bytes(self.path, line.encode("utf-8"), what="the metrics")
        else:
            self._lines.append(line)
            write_text(self.path, "".join(self._lines), what="the metrics")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{split}/{k}", float(v), int(step))
        return rec

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


def in_notebook() -> bool:
    """True inside a Jupyter kernel (or Colab), where stderr is not a terminal but output cells can update."""
    shell = sys.modules.get("IPython")
    ip = shell.get_ipython() if shell is not None and hasattr(shell, "get_ipython") else None
    if ip is None:
        return False
    return type(ip).__name__ == "ZMQInteractiveShell" or "google.colab" in str(type(ip))


class _NotebookLine:
    """A one-line progress display that updates in place through an IPython display handle (no widgets needed)."""

    def __init__(self, total: int, start: int, description: str):
        from IPython.display import display

        self.total, self.completed, self.description = total, start, description
        self.fields = {"loss": "-", "rate": "-"}
        self.t0, self.start, self.shown = time.time(), start, 0.0
        self.handle = display({"text/plain": self.text()}, raw=True, display_id=True)

    def text(self) -> str:
        frac = self.completed / self.total if self.total else 1.0
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        elapsed = time.time() - self.t0
        done = self.completed - self.start
        eta = (self.total - self.completed) * elapsed / done if done > 0 else float("nan")
        eta_text = f"{eta:.0f}s" if math.isfinite(eta) else "-"
        return (f"{self.description} [{bar}] {self.completed}/{self.total}  loss {self.fields['loss']}  "
                f"{self.fields['rate']} ex/s  {elapsed:.0f}s elapsed, ETA {eta_text}")

    def update(self, completed: int, force: bool = False, **fields) -> None:
        self.completed = completed
        self.fields.update(fields)
        if force or time.time() - self.shown >= 0.5 or completed >= self.total:
            self.handle.update({"text/plain": self.text()}, raw=True)
            self.shown = time.time()


class ProgressBar:
    """A progress bar over training steps: step, loss, examples/s, elapsed time and ETA.

    Shown only when ``enabled`` and either stderr is a terminal (a rich bar) or the code runs in a Jupyter notebook
    (rich's notebook bar when ``ipywidgets`` is installed, else one line of text updated in place). CI logs and
    pipes get no redraw noise: there every method does nothing.
    """

    def __init__(self, total_steps: int, *, enabled: bool = True, start: int = 0, description: str = "train"):
        self.mode = None
        if enabled:
            self.mode = "terminal" if sys.stderr.isatty() else "notebook" if in_notebook() else None
        self._progress = self._line = None
        if self.mode == "notebook" and importlib.util.find_spec("ipywidgets") is None:
            # rich draws its notebook bar with ipywidgets; without it, one line of text updated in place
            self._line = _NotebookLine(total_steps, start, description)
            return
        if self.mode is None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self._progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[rate]} ex/s"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            console=Console(stderr=True), transient=False)
        self._progress.start()
        self._task = self._progress.add_task(description, total=total_steps, completed=start, loss="-", rate="-")

    @property
    def active(self) -> bool:
        return self._progress is not None or self._line is not None

    def update(self, step: int, *, loss: float | None = None, rate: float | None = None):
        if not self.active:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if rate is not None:
            fields["rate"] = f"{rate:,.0f}"
        if self._line is not None:
            self._line.update(step, **fields)
        else:
            self._progress.update(self._task, completed=step, **fields)

    def log(self, message: str) -> None:
        """Print a line above a terminal bar (when one is shown); returns whether it did."""
        if self._progress is not None:
            self._progress.console.print(message)
            return True
        return False

    def close(self) -> None:
        if self._line is not None:
            self._line.update(self._line.completed, force=True)
            self._line = None
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
