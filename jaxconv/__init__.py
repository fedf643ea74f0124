"""jaxconv: a differentiable convolution playground in JAX + Flax NNX.

>>> import jaxconv
>>> jaxconv.shapes.conv_output_length(50, 5)
46
"""

from jaxconv import layouts, shapes
from jaxconv.nn.conv import Conv1D, Conv2D
from jaxconv.inspection import Explanation, explain, feature_map, feature_maps, receptive_spans, saliency

__version__ = "0.1.0"
__all__ = ["Conv1D", "Conv2D", "shapes", "layouts", "__version__"]
__all__ += ["explain", "Explanation", "feature_maps", "feature_map", "receptive_spans", "saliency"]
