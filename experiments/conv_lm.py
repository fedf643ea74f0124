"""Train the gated dilated causal-conv language model, score bits per byte on held-out lines, and sample from it.

    python experiments/conv_lm.py --workdir runs/lm [--config configs/conv_lm.py[:<preset>]] \
        [--sample "the film is "] [--temperature 0.8] [--sample_length 200] [--config.train.epochs=2 ...]

Training is ``jaxconv train conv_lm[:<preset>] --workdir runs/lm`` (the presets, runtimes and bits per byte:
``jaxconv.configs.conv_lm``); a re-run resumes, or only samples once the run is finished. Then each ``--sample``
prompt (repeatable; default: three prompts) is continued by ``--sample_length`` tokens of the best checkpoint's
model (``jaxconv.load_run(workdir).generate``): greedy at ``--temperature 0``, drawn at ``--temperature T > 0``
with ``--sample_seed``.
"""

import argparse
import sys

from jaxconv.cli import main as jaxconv_main

DEFAULT_PROMPTS = ("the film is ", "what is the ", "it 's a ")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    p.add_argument("--sample", action="append", default=None, help="a prompt to continue (repeatable)")
    p.add_argument("--temperature", type=float, default=0.0, help="0: greedy; T > 0: sample at temperature T")
    p.add_argument("--sample_length", type=int, default=120, help="tokens to generate per prompt")
    p.add_argument("--sample_seed", type=int, default=0)
    args, rest = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    if "-h" in rest or "--help" in rest:
        p.print_help()
        return jaxconv_main(["train", "--help"])
    code = jaxconv_main(["train", "--config", "configs/conv_lm.py", *rest])     # a later --config wins
    if code:
        return code
    import jaxconv

    workdir = rest[rest.index("--workdir") + 1] if "--workdir" in rest else next(
        a.split("=", 1)[1] for a in rest if a.startswith("--workdir="))
    run = jaxconv.load_run(workdir)
    for prompt in args.sample or DEFAULT_PROMPTS:
        try:
            text = run.generate(prompt, args.sample_length, temperature=args.temperature, seed=args.sample_seed)
        except ValueError as e:
            print(f"conv_lm: error: --sample: {e}", file=sys.stderr)
            return 2
        print(f"{prompt!r} -> {text!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
