"""NNX building blocks: convolutions (and, as they land, constraints and pooling)."""

from jaxconv.nn.conv import PADDING_MODES, Conv1D, Conv2D, ConvND, PostActivation, PreActivation, resolve_activation

__all__ = ["Conv1D", "Conv2D", "ConvND", "PreActivation", "PostActivation", "PADDING_MODES", "resolve_activation"]
