"""Training: ``train_and_evaluate(config, workdir)`` and its parts.

- :mod:`~jaxconv.train.trainer`: ``train_and_evaluate`` and ``train_many`` (several runs in one program).
- :mod:`~jaxconv.train.loop`: the epochs of one run or a stack of runs (dispatch, metrics, dev, checkpoints).
- :mod:`~jaxconv.train.run`: opening a run (config checks, workdir, data, resume); :mod:`~jaxconv.train.state`: the
  model and optimizer as arrays, and the run's bookkeeping.
- :mod:`~jaxconv.train.steps`: loss, train and eval steps, the compiled K-step programs;
  :mod:`~jaxconv.train.optim`: optimizers (the row-sparse embedding Adadelta); :mod:`~jaxconv.train.schedule`:
  an epoch as dispatches, the data resident on the device; :mod:`~jaxconv.train.compiles`: compile counting.
- :mod:`~jaxconv.train.input_pipeline`: ``config.data`` -> vocabulary and bucketed batches.
- :mod:`~jaxconv.train.mesh`: 1-D ``"data"`` mesh, batch sharding, multi-host rules.
- :mod:`~jaxconv.train.checkpoint`: orbax ``latest`` / ``best`` managers, :func:`load_params`.
- :mod:`~jaxconv.train.metrics`: ``metrics.jsonl``, TensorBoard, progress bar.
"""

from jaxconv.train.checkpoint import Checkpoints, load_params
from jaxconv.train.input_pipeline import DataPipeline, build_data
from jaxconv.train.metrics import MetricsWriter, read_metrics
from jaxconv.train.trainer import NonFiniteLossError, make_optimizer, train_and_evaluate, train_many

__all__ = ["train_and_evaluate", "train_many", "NonFiniteLossError", "make_optimizer", "build_data", "DataPipeline",
           "Checkpoints", "load_params", "MetricsWriter", "read_metrics"]
