"""Dump a trained run's per-filter activations: the same as ``jaxconv dump`` (``--help`` lists the options).

    python experiments/dump_activations.py --workdir runs/demo                 # the test split
    python experiments/dump_activations.py --workdir runs/mr --split train --layers convs/2 --dtype float16
"""

import sys

from jaxconv.cli import main

if __name__ == "__main__":
    sys.exit(main(["dump", *sys.argv[1:]]))
