"""`make demo`: the main job on its built-in default.

Until the text-CNN trainer lands this answers the seed question (see experiments/seed_example.py).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import seed_example  # noqa: E402

if __name__ == "__main__":
    seed_example.main(sys.argv[1:])
