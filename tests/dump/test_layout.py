"""A dump's layout (:mod:`jaxconv.dump.layout`) without dumping: blocks, shards and inner chunks, and how many
objects a store of MR's size, or of a million examples, is written as."""

from __future__ import annotations

import pytest

from jaxconv.dump import layout

#: Kim's CNN on MR padded to 64 tokens: widths 3, 4, 5, 100 filters each.
KIM = {f"convs/{i}": {"positions": 64 - w + 1, "filters": 100} for i, w in enumerate((3, 4, 5))}
#: The per-example arrays of a labelled dump of Kim's CNN: tokens, starts, lengths, texts, words, labels, and per
#: layer maps, pooled, argmax (:func:`layout.array_specs`); the runner adds predictions and probabilities.
ARRAYS = 6 + 3 * len(KIM) + 2


@pytest.mark.parametrize("dtype, n, most_blocks", [("float16", 10_662, 2), ("float32", 10_662, 4),
                                                    ("float16", 1_000_000, 200), ("float32", 1_000_000, 400)])
def test_objects_of_mr_and_of_a_million_examples(dtype, n, most_blocks):
    rows = layout.rows_per_chunk(KIM, dtype, n, None)
    specs = layout.array_specs(n, 64, rows, list(KIM), KIM, dtype, has_labels=True)
    maps = specs["maps/convs/0"]
    inner = layout.inner_rows(KIM, dtype)
    assert maps.shards == (rows, 62, 100) and maps.chunks == (inner, 62, 1) and rows % inner == 0
    per_row = sum(f["positions"] * f["filters"] for f in KIM.values()) * (2 if dtype == "float16" else 4)
    assert rows * per_row <= layout.BLOCK_BYTES                                        # the writer's buffer
    blocks = -(-n // rows)
    assert blocks <= most_blocks and all((s.shards or s.chunks)[0] == rows for s in specs.values())
    assert len(specs) + 2 == ARRAYS and blocks * ARRAYS <= 7000                         # "a few thousand" objects


def test_small_dumps_and_chosen_rows():
    assert layout.rows_per_chunk(KIM, "float32", 200, None) == 200                    # one block, one inner chunk
    specs = layout.array_specs(200, 64, 200, list(KIM), KIM, "float32", has_labels=False)
    assert specs["maps/convs/2"].chunks == (200, 60, 1) and specs["maps/convs/2"].shards == (200, 60, 100)
    assert layout.rows_per_chunk(KIM, "float32", 100, 16) == 16                       # chunk_rows: the block
    assert layout.array_specs(100, 64, 16, ["convs/0"], KIM, "float32", False)["maps/convs/0"].chunks[0] == 16
    with pytest.raises(ValueError, match=r"chunk_rows=0 must be an int >= 1"):
        layout.rows_per_chunk(KIM, "float32", 100, 0)
