"""A PyTorch Kim CNN imported with import_model, from the module and from a .pt2 file, then dumped on real sentences
(SST-2's dev split, tokenized and indexed as a PyTorch user would): the dump's predictions and probabilities are
torch's, on every sentence."""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # imports and dumps end to end

from conftest import require_shared, require_torch

import jaxconv
from jaxconv.dump import dump_activations, load_dump


def _sentences(n=200):
    path = require_shared("stsa.binary.dev")
    lines = path.read_text(encoding="latin-1").splitlines()[:n]
    return [line.split(" ", 1)[1].strip() for line in lines]


def _vocab(texts, size=300):
    from collections import Counter

    counts = Counter(w for t in texts for w in t.lower().split())
    return ["<pad>", "<unk>", *[w for w, _ in counts.most_common(size - 2)]]


def _kim(torch, form: str, vocab_size: int):
    nn, F = torch.nn, torch.nn.functional

    class Kim(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocab_size, 16, padding_idx=0)
            if form == "conv1d":
                self.convs = nn.ModuleList([nn.Conv1d(16, 8, k) for k in (3, 4, 5)])
            else:
                self.convs = nn.ModuleList([nn.Conv2d(1, 8, (k, 16)) for k in (3, 4, 5)])
            self.dropout = nn.Dropout(0.5)
            self.fc = nn.Linear(24, 2)

        def forward(self, x):
            e = self.embedding(x)
            if form == "conv1d":
                h = [F.relu(c(e.transpose(1, 2))).max(dim=2)[0] for c in self.convs]
            else:
                h = [F.relu(c(e.unsqueeze(1))).squeeze(3) for c in self.convs]
                h = [F.max_pool1d(i, i.size(2)).squeeze(2) for i in h]
            return self.fc(self.dropout(torch.cat(h, 1)))

    torch.manual_seed(0)
    return Kim().eval()


@pytest.mark.parametrize("form", ["conv1d", "conv2d"])
def test_a_torch_kim_cnn_dumps_with_torchs_predictions(form, tmp_path):
    torch = require_torch()
    texts = _sentences()
    words = _vocab(texts)
    model = _kim(torch, form, len(words))
    stoi = {w: i for i, w in enumerate(words)}
    L = 64
    ids = np.zeros((len(texts), L), np.int64)                              # post-padded, unknown -> <unk>
    for i, t in enumerate(texts):
        x = [stoi.get(w, 1) for w in t.lower().split()][:L]
        ids[i, :len(x)] = x
    with torch.no_grad():
        theirs = torch.softmax(model(torch.from_numpy(ids)), -1).numpy()
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n")
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")

    example = torch.from_numpy(ids[:4])
    sources = {"module": model, "pt2": tmp_path / "kim.pt2"}
    torch.export.save(torch.export.export(model, (example,)), sources["pt2"])
    for name, src in sources.items():
        run = jaxconv.import_model(src, tmp_path / name, vocab=tmp_path / "vocab.txt", tokenizer="lower",
                                   max_length=L, example_input=example, label_names=["negative", "positive"])
        assert run.source["max_difference"] <= 1e-5 and run.padding == "post"
        dump_activations(tmp_path / name, input=tmp_path / "texts.txt")
        d = load_dump(tmp_path / name, "texts")
        np.testing.assert_array_equal(d.predictions, theirs.argmax(-1))     # every sentence
        np.testing.assert_allclose(d.group["probabilities"][...], theirs, atol=1e-5)
        assert d.layers == ["layers/convs_0", "layers/convs_1", "layers/convs_2"]
        assert d.has("class_weights/layers/convs_1") and d.has("embedding")
