"""Kim (2014)'s sentence CNN: the built-in config ``jaxconv/configs/text_cnn.py``, here for the command lines that
name a file (``--config configs/text_cnn.py:mr``). Its presets, runtimes and expected accuracies are in
``jaxconv.configs.text_cnn``'s docstring; ``jaxconv train text_cnn:mr --workdir runs/mr`` is the same run.
"""

from jaxconv.configs.text_cnn import PRESETS, get_config

__all__ = ["get_config", "PRESETS"]
