"""The ground truth of the dump and its analysis: which planted motifs of the synthetic corpus the filters found.

    jaxconv train text_cnn --workdir runs/demo && jaxconv dump --workdir runs/demo
    python experiments/planted_motifs.py --workdir runs/demo

Prints motif -> class -> filter -> activation and the fraction of motifs that are the top n-gram of at least one
filter (:mod:`jaxconv.dump.motifs`); exits with status 1 when that fraction is below ``--minimum`` (0.9).
"""

import argparse
import sys

from jaxconv.dump import load_dump
from jaxconv.dump.motifs import planted_motifs, recover_motifs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a run trained on the synthetic corpus, with a dump")
    parser.add_argument("--dump", default="test", help="the dump's name (default test)")
    parser.add_argument("--minimum", type=float, default=0.9, help="the fraction that must be recovered (0.9)")
    args = parser.parse_args(argv)
    dump = load_dump(args.workdir, args.dump)
    recovery = recover_motifs(dump, planted_motifs(dump.attrs["config"]))
    print(recovery.table())
    if recovery.fraction < args.minimum:
        print(f"planted motifs: {recovery.fraction:.0%} recovered, below the {args.minimum:.0%} asked for",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
