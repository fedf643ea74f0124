"""Zhang, Zhao and LeCun (2015)'s character CNN: the built-in config ``jaxconv/configs/char_cnn.py``, here for the
command lines that name a file (``--config configs/char_cnn.py:<preset>``). Its presets, runtimes and results are in
``jaxconv.configs.char_cnn``'s docstring; ``jaxconv train char_cnn:<preset> --workdir DIR`` is the same run.
"""

from jaxconv.configs.char_cnn import PRESETS, get_config

__all__ = ["get_config", "PRESETS"]
