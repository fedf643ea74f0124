"""Train and evaluate Kim (2014)'s sentence CNN: ``jaxconv train`` with this repository's config file.

    python experiments/text_cnn.py --config configs/text_cnn.py[:<preset>] --workdir runs/<name> \
        [--config.train.epochs=5 ...]

The same as ``jaxconv train text_cnn[:<preset>] --workdir runs/<name>`` (the presets, runtimes and expected
accuracies: ``jaxconv.configs.text_cnn``). Re-running the same command resumes from the workdir's latest
checkpoint. Outputs: see ``jaxconv.train.trainer``.
"""

import sys

from jaxconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
