"""NNX building blocks: convolutions, pooling, and the max-norm constraint."""

from jaxconv.nn.constraints import apply_max_norm, optax_max_norm, project_max_norm
from jaxconv.nn.conv import PADDING_MODES, Conv1D, Conv2D, ConvND, PostActivation, PreActivation, resolve_activation
from jaxconv.nn.pool import AvgPool1D, MaxPool1D

__all__ = ["Conv1D", "Conv2D", "ConvND", "PreActivation", "PostActivation", "PADDING_MODES", "resolve_activation",
           "MaxPool1D", "AvgPool1D", "project_max_norm", "apply_max_norm", "optax_max_norm"]
