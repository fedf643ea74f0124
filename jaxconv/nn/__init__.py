"""NNX building blocks: convolutions (and, as they land, constraints and pooling)."""

from jaxconv.nn.conv import PADDING_MODES, Conv1D, Conv2D, ConvND, PostActivation, PreActivation, resolve_activation

__all__ = ["Conv1D", "Conv2D", "ConvND", "PreActivation", "PostActivation", "PADDING_MODES", "resolve_activation"]
from jaxconv.nn.constraints import apply_max_norm, optax_max_norm, project_max_norm; __all__ += ["project_max_norm", "apply_max_norm", "optax_max_norm"]  # noqa: E402,E702,I001
