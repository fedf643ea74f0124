"""Filter ablation (jaxconv.ablate) and the filter probe (jaxconv.rank_filters): the vmapped ablation equals zeroing
filters by hand; on the planted-motif corpus the filters that hold a motif matter more than the rest, and the probe
finds each motif's filter."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jaxconv
from jaxconv.dump import load_dump, rank_filters, read_ablation
from jaxconv.dump.ablation import ablate, ablation_path
from jaxconv.dump.memory import memory_run
from jaxconv.dump.motifs import identifies, planted_motifs, recover_motifs
from jaxconv.models import TextCNN
from helpers import copy_run


def test_the_vmapped_ablation_equals_zeroing_each_filter_by_hand():
    words = ["<pad>", "<unk>"] + [f"w{i}" for i in range(98)]
    model = TextCNN(100, 3, embed_dim=16, widths=(2, 3), filters=6, rngs=nnx.Rngs(0))
    run = memory_run(model, words, "whitespace")
    rng = np.random.default_rng(0)
    texts = [" ".join(f"w{i}" for i in rng.integers(0, 98, rng.integers(3, 12))) for _ in range(70)]
    labels = rng.integers(0, 3, 70)
    records = ablate(run, texts=texts, labels=labels, batch_size=16, masks_per_call=5)   # masks over 3 calls
    assert [(r.layer, r.filter) for r in records] == [(f"convs/{i}", j) for i in range(2) for j in range(6)]
    tokens = run.encode(texts)
    base = np.asarray(model(tokens))
    rows = np.arange(len(texts))
    for r in records:
        conv = model.convs[int(r.layer.split("/")[1])]
        kernel, bias = np.asarray(conv.kernel[...]), np.asarray(conv.bias[...])
        conv.kernel[...] = jnp.asarray(kernel).at[..., r.filter].set(0.0)               # relu(0) = 0: zeroed
        conv.bias[...] = jnp.asarray(bias).at[r.filter].set(0.0)
        logits = np.asarray(model(tokens))
        conv.kernel[...], conv.bias[...] = jnp.asarray(kernel), jnp.asarray(bias)
        assert r.delta_accuracy == pytest.approx((logits.argmax(-1) == labels).mean() - (base.argmax(-1) == labels).mean())
        assert r.delta_logit == pytest.approx((logits[rows, labels] - base[rows, labels]).mean(), abs=1e-5)
    with pytest.raises(ValueError, match="texts= needs labels= of the same length"):
        ablate(run, texts=texts, labels=labels[:3])


def _motif_filters(d):
    """The planted motifs' texts, and the filters whose top n-gram holds one of them."""
    rec = recover_motifs(d, planted_motifs(d.attrs["config"]))
    texts = [" ".join(r.motif.words) if hasattr(r.motif, "words") else " ".join(r.motif) for r in rec.rows]
    top = {(layer, f): d.top_ngrams(layer, f, 1)[0].text for layer in d.layers for f in range(d.num_filters(layer))}
    return texts, top


@pytest.fixture
def demo_copy(demo_dump, tmp_path):
    """A copy of the demo's run and dump, so that the ablation written beside it reaches no other test's report."""
    return copy_run(demo_dump, tmp_path / "run", dumps=["test"])


@pytest.mark.slow
def test_on_planted_motifs_the_motif_filters_matter_and_the_probe_finds_them(demo_copy, tmp_path):
    demo_dump = demo_copy
    d = load_dump(demo_dump, "test")
    motifs, top = _motif_filters(d)
    records = ablate(jaxconv.load_run(demo_dump), "test")
    saved = read_ablation(ablation_path(demo_dump, "test"))
    assert saved["examples"] == d.num_examples and len(saved["filters"]) == len(records) == len(top)
    holds = {k for k, text in top.items() if any(m in text for m in motifs)}
    delta = {(r.layer, r.filter): r.delta_logit for r in records}
    with_motif = np.mean([delta[k] for k in holds])
    without = np.mean([v for k, v in delta.items() if k not in holds])
    assert with_motif < without, (with_motif, without)                   # zeroing a motif filter costs more
    # The probe: "contains motif m" puts first a filter whose top n-gram singles m out; a shuffled property does not.
    rng = np.random.default_rng(0)
    found = shuffled = 0
    words = [tuple(m.split()) for m in motifs]
    for m, w in zip(motifs, words):
        has = np.array([m in " ".join(d.words(i)) for i in range(d.num_examples)])
        first = rank_filters(d, has)[0]
        found += identifies(top[(first.layer, first.filter)].split(), w, words)
        control = rank_filters(d, rng.permutation(has))[0]
        shuffled += identifies(top[(control.layer, control.filter)].split(), w, words)
    assert found == len(motifs) and shuffled <= 2, (found, shuffled)
    # The report shows both: sortable columns, and the filters that matter first on the "logit lost" page.
    from jaxconv.dump.report import write_report

    write_report(d, tmp_path / "report")
    index = (tmp_path / "report" / "index.html").read_text()
    assert all(f'href="by-{c}.html"' in index for c in ("logit-lost", "accuracy-lost", "probe-weight"))
    most = min(records, key=lambda r: r.delta_logit)
    page = (tmp_path / "report" / "by-logit-lost.html").read_text()
    first = page.index('<tr class="filter"')
    cells = re.findall(r"<td[^>]*>(.*?)</td>", page[first:page.index("</tr>", first)], re.S)
    assert cells[0] == most.layer and re.sub("<[^>]+>", "", cells[1]) == str(most.filter), cells[:2]


@pytest.mark.slow
def test_rank_filters_arguments(demo_dump, tmp_path):
    d = load_dump(demo_dump, "test")
    ranks = rank_filters(d)                                                            # the gold class
    assert len(ranks) == sum(d.num_filters(layer) for layer in d.layers) and ranks[0].rank == 0
    assert ranks[0].weight >= ranks[-1].weight
    (tmp_path / "labels.txt").write_text("\n".join(str(x) for x in d.labels) + "\n")
    assert [r.filter for r in rank_filters(d, tmp_path / "labels.txt")][:5] == [r.filter for r in ranks][:5]
    with pytest.raises(ValueError, match=r"3 labels for 200 examples; expected one per example"):
        rank_filters(d, [0, 1, 0])
    with pytest.raises(ValueError, match="the property has one value only"):
        rank_filters(d, [1] * d.num_examples)


@pytest.mark.slow
def test_ablate_command(demo_copy, capsys):
    from jaxconv.cli import main

    demo_dump = demo_copy
    assert main(["ablate", "--workdir", str(demo_dump), "--top", "3"]) == 0      # in process: the command's code
    out = capsys.readouterr().out
    assert "ablation of 96 filters over test" in out and "ablation.json" in out
    assert len(json.loads(ablation_path(demo_dump, "test").read_text())["filters"]) == 96
    r = subprocess.run([sys.executable, "-m", "jaxconv", "ablate", "--workdir", str(demo_dump), "--layers", "x"],
                       capture_output=True, text=True)                           # as a user runs it: one line
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'x' is not a convolution" in r.stderr
    # explain reads a trained run folder as it reads an imported one.
    assert main(["explain", str(demo_dump)]) == 0
    out = capsys.readouterr().out
    assert "convs/0" in out and "(1, 64) -> (1, 2)" in out
