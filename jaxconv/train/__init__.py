"""Training: ``train_and_evaluate(config, workdir)`` and its parts.

- :mod:`~jaxconv.train.trainer`: the loop (jitted steps, early stopping, resume, final test score).
- :mod:`~jaxconv.train.input_pipeline`: ``config.data`` -> vocabulary and bucketed batches.
- :mod:`~jaxconv.train.mesh`: 1-D ``"data"`` mesh, batch sharding, multi-host rules.
- :mod:`~jaxconv.train.checkpoint`: orbax ``latest`` / ``best`` managers, :func:`load_params`.
- :mod:`~jaxconv.train.metrics`: ``metrics.jsonl``, TensorBoard, progress bar.
"""

from jaxconv.train.checkpoint import Checkpoints, load_params
from jaxconv.train.input_pipeline import DataPipeline, build_data
from jaxconv.train.metrics import MetricsWriter, read_metrics
from jaxconv.train.trainer import NonFiniteLossError, make_optimizer, train_and_evaluate

__all__ = ["train_and_evaluate", "NonFiniteLossError", "make_optimizer", "build_data", "DataPipeline", "Checkpoints",
           "load_params", "MetricsWriter", "read_metrics"]
