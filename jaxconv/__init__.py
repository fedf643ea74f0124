"""jaxconv: a differentiable convolution playground in JAX + Flax NNX.

>>> import jaxconv
>>> jaxconv.shapes.conv_output_length(50, 5)
46

Training and runs load on first use (they import orbax): ``jaxconv.load_config``, ``jaxconv.train_and_evaluate``,
``jaxconv.load_run``, ``jaxconv.load_dump`` and ``jaxconv.dump_activations`` (activation dumps,
:mod:`jaxconv.dump`), ``jaxconv.import_model`` (trained Keras and PyTorch models, :mod:`jaxconv.imports`),
``jaxconv.evidence`` (why a prediction: per-filter terms, :mod:`jaxconv._evidence`).

One rule for arguments across the API (:mod:`jaxconv._args`): a count (``k``) is an int >= 1; an index (``filter``,
``example``, a class) is an int in ``[0, n)``, never negative; one str where texts are taken is one text. Anything
else is refused with a TypeError or ValueError naming the function, the argument and the value; nothing is rounded,
clipped or counted from the end.
"""

from jaxconv import layouts, shapes
from jaxconv.nn.conv import Conv1D, Conv2D
from jaxconv.inspection import Explanation, explain, feature_map, feature_maps, receptive_spans, saliency

__version__ = "0.2.0"
__all__ = ["Conv1D", "Conv2D", "shapes", "layouts", "__version__"]
__all__ += ["explain", "Explanation", "feature_maps", "feature_map", "receptive_spans", "saliency"]
__all__ += ["load_config", "train_and_evaluate", "load_run", "Run", "load_dump", "Dump", "import_model",
            "dump_activations", "ablate", "rank_filters", "evidence", "Evidence"]

_LAZY = {"load_config": "jaxconv.configs", "train_and_evaluate": "jaxconv.train", "load_run": "jaxconv.runs",
         "Run": "jaxconv.runs", "load_dump": "jaxconv.dump.loader", "Dump": "jaxconv.dump.loader",
         "import_model": "jaxconv.imports", "dump_activations": "jaxconv.dump.runner",
         "ablate": "jaxconv.dump.ablation", "rank_filters": "jaxconv.dump.probe", "evidence": "jaxconv._evidence",
         "Evidence": "jaxconv._evidence"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'jaxconv' has no attribute {name!r}")
