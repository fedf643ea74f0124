"""The gated dilated causal-conv language model: the built-in config ``jaxconv/configs/conv_lm.py``, here for the
command lines that name a file (``--config configs/conv_lm.py:<preset>``). Its presets, runtimes and results are in
``jaxconv.configs.conv_lm``'s docstring; ``jaxconv train conv_lm:<preset> --workdir DIR`` is the same run.
"""

from jaxconv.configs.conv_lm import PRESETS, get_config

__all__ = ["get_config", "PRESETS"]
