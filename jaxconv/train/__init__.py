"""Training: ``train_and_evaluate(config, workdir)`` and its parts.

- :mod:`~jaxconv.train.trainer`: ``train_and_evaluate``, reading top to bottom: open or resume -> data -> state ->
  epochs -> test.
- :mod:`~jaxconv.train.run`: one run being trained (config checks, workdir, data, resume, its records);
  :mod:`~jaxconv.train.tasks`: what differs per task (classify, next token) and every metric.
- :mod:`~jaxconv.train.state`: the model and optimizer as arrays, and the run's bookkeeping.
- :mod:`~jaxconv.train.engine`: the device side (resident data, compiled programs, dispatch, evaluation);
  :mod:`~jaxconv.train.dispatch`: an epoch as dispatches of ``K`` steps; :mod:`~jaxconv.train.steps`: loss, train
  and eval steps, the compiled programs; :mod:`~jaxconv.train.optim`: optimizers, learning-rate schedules, the
  row-sparse embedding Adadelta.
- :mod:`~jaxconv.train.stacked`: ``train_many``, several runs of one shape trained by one program
  (:mod:`~jaxconv.train.stacked_engine`: its device side).
- :mod:`~jaxconv.train.checkpoint`, :mod:`~jaxconv.train.metrics`, :mod:`~jaxconv.train.mesh`,
  :mod:`~jaxconv.train.compiles`: checkpoints, metric records, devices and hosts, compile counting.

The data pipelines are :mod:`jaxconv.data.pipeline` and :mod:`jaxconv.data.lm`; run folders and ``load_run`` are
:mod:`jaxconv.runs`.
"""

from jaxconv.data.pipeline import DataPipeline, build_data
from jaxconv.train.checkpoint import Checkpoints, load_params
from jaxconv.train.metrics import MetricsWriter, read_metrics
from jaxconv.train.stacked import train_many
from jaxconv.train.trainer import NonFiniteLossError, make_optimizer, train_and_evaluate

__all__ = ["train_and_evaluate", "train_many", "NonFiniteLossError", "make_optimizer", "build_data", "DataPipeline",
           "Checkpoints", "load_params", "MetricsWriter", "read_metrics"]
