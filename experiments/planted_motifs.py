"""The ground truth of the dump and its analysis: which planted motifs of the synthetic corpus the filters found.

    jaxconv train text_cnn --workdir runs/demo && jaxconv dump --workdir runs/demo
    python experiments/planted_motifs.py --workdir runs/demo

Prints motif -> class -> filter -> activation and the fraction of motifs that are the top n-gram of at least one
filter (:mod:`jaxconv.dump.motifs`); exits with status 1 when that fraction is below ``--minimum`` (0.9). Then two
checks of the "why" tools, as measured: the ablation (``jaxconv ablate``; its saved result when there is one) of
the filters whose top n-gram holds a motif against the others, and the probe (``jaxconv.rank_filters``) with
"contains motif m" as the property: does its first filter's top n-gram single m out (hold it, or a pair of its
words in m's order that no other motif has: :func:`jaxconv.dump.motifs.identifies`)?
"""

import argparse
import sys

import numpy as np

from jaxconv.dump import load_dump, rank_filters, read_ablation
from jaxconv.dump.ablation import ablate, ablation_path
from jaxconv.dump.motifs import identifies, planted_motifs, recover_motifs


def why_checks(workdir, dump, motifs: list[str]) -> list[str]:
    """The ablation and probe lines: how the filters that hold a motif fare."""
    from jaxconv.runs import load_run

    top = {(la, f): dump.top_ngrams(la, f, 1)[0].text for la in dump.layers for f in range(dump.num_filters(la))}
    holds = {k for k, text in top.items() if any(m in text for m in motifs)}
    saved = read_ablation(ablation_path(workdir, dump.attrs["name"]))
    records = saved["filters"] if saved else ablate(load_run(workdir), dump.attrs["name"])
    delta = {(r.layer, r.filter): r.delta_logit for r in records}
    most = sorted(delta, key=delta.get)[:20]
    a = np.mean([delta[k] for k in holds]) if holds else float("nan")
    b = np.mean([v for k, v in delta.items() if k not in holds]) if len(holds) < len(delta) else float("nan")
    found, words = 0, [tuple(m.split()) for m in motifs]
    for m, w in zip(motifs, words):
        has = [m in " ".join(dump.words(i)) for i in range(dump.num_examples)]
        first = rank_filters(dump, has)[0]
        found += identifies(top[(first.layer, first.filter)].split(), w, words)
    return [f"ablation: zeroing a filter whose top n-gram holds a motif lowers the true-class logit by {-a:.3f} on "
            f"average ({len(holds)} filters), any other by {-b:.3f} ({len(delta) - len(holds)}); "
            f"{sum(k in holds for k in most)} of the 20 that matter most hold a motif",
            f"probe: for {found} of {len(motifs)} motifs, the filter ranked first for \"contains that motif\" singles "
            f"it out in its top n-gram (holds it, or a pair of its words no other motif has)"]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", required=True, help="a run trained on the synthetic corpus, with a dump")
    parser.add_argument("--dump", default="test", help="the dump's name (default test)")
    parser.add_argument("--minimum", type=float, default=0.9, help="the fraction that must be recovered (0.9)")
    args = parser.parse_args(argv)
    dump = load_dump(args.workdir, args.dump)
    recovery = recover_motifs(dump, planted_motifs(dump.attrs["config"]))
    print(recovery.table())
    motifs = [" ".join(r.motif.words) if hasattr(r.motif, "words") else " ".join(r.motif) for r in recovery.rows]
    print("\n".join(why_checks(args.workdir, dump, motifs)))
    if recovery.fraction < args.minimum:
        print(f"planted motifs: {recovery.fraction:.0%} recovered, below the {args.minimum:.0%} asked for",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
