"""Metrics out of a run: JSONL, TensorBoard, and a progress bar for people at a terminal.

``workdir/metrics.jsonl`` has one JSON object per line, e.g.::

    {"step": 100, "epoch": 0, "split": "train", "loss": 0.52, "accuracy": 0.74, "examples_per_sec": 2210.5, "time": ...}
    {"step": 192, "epoch": 0, "split": "dev", "loss": 0.47, "accuracy": 0.78, "compiles": 4, ...}
    {"step": 960, "epoch": 4, "split": "test", "loss": 0.45, "accuracy": 0.77, "checkpoint_step": 576, ...}

``time`` is seconds since the Unix epoch; ``examples_per_sec`` and ``time`` are the only fields that vary between
two runs of the same config on the same machine. The same scalars go to TensorBoard (``workdir/tensorboard``) as
``<split>/<name>``. Only process 0 writes (``enabled=False`` elsewhere).
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from typing import Any

__all__ = ["MetricsWriter", "ProgressBar", "read_metrics", "TIMING_FIELDS"]

#: Fields that measure time and so differ between otherwise identical runs.
TIMING_FIELDS = ("time", "examples_per_sec", "elapsed_s", "epoch_time_s")


def _clean(value):
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)  # JSON has no nan/inf
    return value


def read_metrics(path: str | pathlib.Path, split: str | None = None) -> list[dict]:
    """The records of a ``metrics.jsonl`` (all, or one ``split``)."""
    path = pathlib.Path(path)
    if path.is_dir():
        path = path / "metrics.jsonl"
    out = []
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            if split is None or rec.get("split") == split:
                out.append(rec)
    return out


def _summary_writer_class():
    """``tensorboardX.SummaryWriter``, imported without PyTorch.

    tensorboardX imports torch whenever it is installed, only to accept torch tensors; that costs seconds at start-up
    and jaxconv logs plain floats. Unless torch is already loaded, the import below sees it as absent.
    """
    if "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # makes `import torch` raise ImportError inside tensorboardX
    try:
        from tensorboardX import SummaryWriter
    finally:
        del sys.modules["torch"]
    return SummaryWriter


class MetricsWriter:
    """Append metric records to ``workdir/metrics.jsonl`` and TensorBoard.

    Args:
      workdir: the run directory.
      enabled: False on processes other than 0 (then every method does nothing).
      resume_step: when resuming from a checkpoint at this step, drop records written after it by the interrupted
        run (and any ``test`` records), so the file reads like one uninterrupted run.
    """

    def __init__(self, workdir: str | pathlib.Path, *, enabled: bool = True, resume_step: int | None = None,
                 tensorboard: bool = True):
        self.enabled = enabled
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self.tb_dir = pathlib.Path(workdir) / "tensorboard"
        self._tb = None
        if not enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            keep = []
            if resume_step is not None:
                for rec in read_metrics(self.path):
                    if rec.get("step", 0) <= resume_step and rec.get("split") != "test":
                        keep.append(json.dumps(rec))
            self.path.write_text("".join(line + "\n" for line in keep))
        if tensorboard:
            self._tb = _summary_writer_class()(logdir=str(self.tb_dir))

    def write(self, split: str, step: int, epoch: int, **values: Any) -> dict:
        """Append one record ``{"step", "epoch", "split", **values, "time"}``; returns it."""
        rec = {"step": int(step), "epoch": int(epoch), "split": split}
        rec.update({k: _clean(v) for k, v in values.items()})
        rec["time"] = time.time()
        if not self.enabled:
            return rec
        with open(self.path, "a") as f:
            f.write(json.dumps(rec) + "\n")
        if self._tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self._tb.add_scalar(f"{split}/{k}", v, int(step))
        return rec

    def flush(self) -> None:
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None


class ProgressBar:
    """A rich progress bar over training steps: step, loss, examples/s, ETA.

    Shown only when ``enabled`` and stderr is a terminal (so CI logs get no redraw noise); otherwise every method
    does nothing.
    """

    def __init__(self, total_steps: int, *, enabled: bool = True, start: int = 0, description: str = "train"):
        self.active = bool(enabled) and sys.stderr.isatty()
        self._progress = None
        if not self.active:
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

    def update(self, step: int, *, loss: float | None = None, rate: float | None = None, description: str | None = None):
        if not self.active:
            return
        fields = {}
        if loss is not None:
            fields["loss"] = f"{loss:.4f}"
        if rate is not None:
            fields["rate"] = f"{rate:,.0f}"
        if description is not None:
            fields["description"] = description
        self._progress.update(self._task, completed=step, **fields)

    def log(self, message: str) -> None:
        """Print a line above the bar (when active)."""
        if self.active:
            self._progress.console.print(message)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
