"""Train and evaluate Zhang et al. (2015)'s character CNN: ``jaxconv train`` with this repository's config file.

    python experiments/char_cnn.py --config configs/char_cnn.py[:<preset>] --workdir runs/<name> \
        [--config.train.epochs=5 ...]

The same as ``jaxconv train char_cnn[:<preset>] --workdir runs/<name>`` (the presets, runtimes and accuracies:
``jaxconv.configs.char_cnn``); without ``--config``, the default preset. Re-running the same command resumes from the workdir's latest checkpoint. The
per-filter dump and report work as for every model: ``jaxconv dump --workdir runs/<name>``, then ``jaxconv report``.
"""

import sys

from jaxconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", "--config", "configs/char_cnn.py", *sys.argv[1:]]))   # a later --config wins
