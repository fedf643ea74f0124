"""The PyTorch importer (jaxconv.imports.torch): torch text CNNs read into layer graphs, run as ImportedModel and
compared with torch's own output on random ids (id 0 among them), from an nn.Module and from a saved .pt2."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # every torch form imported from a module and a .pt2, ~1 min

from conftest import in_ci, TORCH_CI_MESSAGE

try:
    import torch
except ImportError:  # optional: CI installs it
    if in_ci():
        pytest.fail(TORCH_CI_MESSAGE, pytrace=False)
    pytest.skip("torch is not installed (optional cross-check; .ci/run installs torch==2.13.0)",
                allow_module_level=True)

import torch.nn.functional as F
from flax import nnx
from torch import nn

from jaxconv.imports.source import UnsupportedModel
from jaxconv.imports.torch import read_torch
from jaxconv.models.imported import ImportedModel

V, D, FILTERS, CLASSES, L = 40, 6, 4, 3, 12


# ---------------------------------------------------------------------------------------------------- the models
class KimConv1d(nn.Module):
    """Kim's CNN, the Conv1d form: Embedding -> transpose(1, 2) -> Conv1d per width -> relu -> max(dim=2) -> cat."""

    def __init__(self, widths=(2, 3, 4)):
        super().__init__()
        self.embedding = nn.Embedding(V, D, padding_idx=0)
        self.convs = nn.ModuleList([nn.Conv1d(D, FILTERS, k) for k in widths])
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(FILTERS * len(widths), CLASSES)

    def forward(self, x):
        e = self.embedding(x).transpose(1, 2)                                         # (B, D, L)
        h = [F.relu(conv(e)).max(dim=2)[0] for conv in self.convs]                    # (B, F) each
        return self.fc(self.dropout(torch.cat(h, 1)))


class KimConv2d(nn.Module):
    """Kim's CNN, the Conv2d form: emb.unsqueeze(1) -> Conv2d(1, F, (k, D)) -> relu -> squeeze(3) ->
    F.max_pool1d(x, x.size(2)).squeeze(2) -> cat."""

    def __init__(self, widths=(2, 3, 4), padding=0):
        super().__init__()
        self.embedding = nn.Embedding(V, D, padding_idx=0)
        self.convs = nn.ModuleList([nn.Conv2d(1, FILTERS, (k, D), padding=(padding, 0)) for k in widths])
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(FILTERS * len(widths), CLASSES)

    def forward(self, x):
        e = self.embedding(x).unsqueeze(1)                                            # (B, 1, L, D)
        h = [F.relu(conv(e)).squeeze(3) for conv in self.convs]                       # (B, F, L') each
        h = [F.max_pool1d(i, i.size(2)).squeeze(2) for i in h]                        # (B, F) each
        return self.fc(self.dropout(torch.cat(h, 1)))


REDUCE = {
    "max_dim": lambda x: x.max(dim=2)[0],
    "max_pool_whole": lambda x: F.max_pool1d(x, x.size(2)).squeeze(2),
    "avg_pool_whole": lambda x: F.avg_pool1d(x, x.size(2)).squeeze(2),
    "mean": lambda x: x.mean(dim=2),
    "amax_keep": lambda x: x.amax(dim=2, keepdim=True).squeeze(-1),
    "adaptive_max": lambda x: torch.flatten(F.adaptive_max_pool1d(x, 1), 1),
    "adaptive_avg": lambda x: F.adaptive_avg_pool1d(x, 1).squeeze(-1),
    "flatten": lambda x: x.flatten(1),                                                 # fixes the length
    "view": lambda x: x.view(x.size(0), -1),
}
FIXED_LENGTH = ("flatten", "view")


class Stack(nn.Module):
    """Embedding -> transpose(1, 2) -> ``body`` over (B, D, L) -> ``reduce`` -> Linear [-> ``out``]."""

    def __init__(self, body, reduce="max_dim", out=None):
        super().__init__()
        self.embedding = nn.Embedding(V, D, padding_idx=0)
        self.body = nn.Sequential(*body)
        self.reduce, self.out = reduce, out
        with torch.no_grad():
            features = self.features(torch.zeros(2, L, dtype=torch.long)).shape[1]
        self.fc = nn.Linear(features, CLASSES)

    def features(self, x):
        return REDUCE[self.reduce](self.body(self.embedding(x).transpose(1, 2)))

    def forward(self, x):
        y = self.fc(self.features(x))
        if self.out == "log_softmax":
            return F.log_softmax(y, dim=-1)
        if self.out == "softmax":
            return F.softmax(y, dim=1)
        return y


def conv(**kw):
    return nn.Conv1d(D, FILTERS, kw.pop("kernel_size", 3), **kw)


def seeded(make, seed=0):
    """A model with random weights (the embedding's padding row too: torch uses it as stored)."""
    torch.manual_seed(seed)
    model = make()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Embedding):
                m.weight[0].normal_()
    return model.eval()


# ---------------------------------------------------------------------------------------------------- helpers
def random_ids(batch, length, seed=1):
    ids = np.random.default_rng(seed).integers(0, V, (batch, length))
    ids[:, -length // 3:] = 0                                                         # post padding
    ids[0, 0] = 0
    return ids


def example_ids():
    return torch.from_numpy(random_ids(2, L, seed=0))


def torch_output(module, ids):
    with torch.no_grad():
        return module(torch.from_numpy(ids).long()).numpy()


def imported_model(src) -> ImportedModel:
    graph = json.loads(json.dumps(src.graph))                                          # JSON-able as it is stored
    outputs = src.reference(random_ids(2, src.length)).shape[-1]
    model = ImportedModel(V, outputs, graph=json.dumps(graph), rngs=nnx.Rngs(0))
    model.load_params(src.params)
    return model


def sources(module, tmp_path):
    """The module read twice: as an nn.Module with example ids, and as a .pt2 file torch.export.save wrote."""
    x = example_ids()
    from_module = read_torch(module, x)
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(module, (x,)), path)
    return from_module, read_torch(str(path))


def check(module, tmp_path, lengths=(L,)):
    """Both imports equal torch to 1e-5 at each length; the .pt2 reference equals torch at the example length."""
    for src in sources(module, tmp_path):
        assert src.framework == f"torch {torch.__version__.split('+')[0]}" and src.padding == "post"
        assert src.length == L and src.graph["input"] == "ids"
        model = imported_model(src)
        for length in lengths:
            ids = random_ids(5, length, seed=length)
            expected = torch_output(module, ids)
            np.testing.assert_allclose(np.asarray(model.source_output(ids)), expected, rtol=1e-5, atol=1e-5)
            if length == L:
                np.testing.assert_allclose(src.reference(ids), expected, rtol=1e-6, atol=1e-6)
    return src


def ops(src):
    return [n["op"] for n in src.graph["nodes"]]


# ---------------------------------------------------------------------------------------------------- Kim
@pytest.mark.parametrize("make", [KimConv1d, KimConv2d], ids=["conv1d", "conv2d"])
def test_kim_cnn_equals_torch_at_any_length(make, tmp_path):
    src = check(seeded(make), tmp_path, lengths=(L, L + 9, 5))
    # channels-last without a single transpose: the layouts are tracked, not materialised
    assert ops(src) == ["embedding", "conv1d", "conv1d", "conv1d", "global_max_pool", "global_max_pool",
                        "global_max_pool", "concatenate", "dense"] or \
        ops(src) == ["embedding"] + ["conv1d", "global_max_pool"] * 3 + ["concatenate", "dense"]
    names = [n["name"] for n in src.graph["nodes"]]
    assert {"embedding", "convs_0", "convs_1", "convs_2", "fc"} <= set(names) and src.graph["output"] == "fc"
    convs = [n for n in src.graph["nodes"] if n["op"] == "conv1d"]
    assert all(n["activation"] == "relu" and n["inputs"] == ["embedding"] for n in convs)
    assert [n["kernel_size"] for n in convs] == [2, 3, 4]
    assert src.params["convs_1"]["kernel"].shape == (3, D, FILTERS)                   # (k, in, F)
    assert src.params["fc"]["kernel"].shape == (3 * FILTERS, CLASSES)                 # (in, units)


def test_kim_layers_name_the_aten_ops():
    src1 = read_torch(seeded(KimConv1d), example_ids())
    src2 = read_torch(seeded(KimConv2d), example_ids())
    assert {op for _, op, _ in src1.layers} == {
        "aten.embedding.default", "aten.transpose.int", "aten.conv1d.default", "aten.relu.default", "aten.max.dim",
        "operator.getitem", "aten.cat.default", "aten.dropout.default", "aten.linear.default"}
    assert {op for _, op, _ in src2.layers} == {
        "aten.embedding.default", "aten.unsqueeze.default", "aten.conv2d.default", "aten.relu.default",
        "aten.squeeze.dim", "aten.max_pool1d.default", "aten.cat.default", "aten.dropout.default",
        "aten.linear.default"}
    what = dict((name, text) for name, _, text in src2.layers)
    assert "spans the whole embedding" in what["conv2d"] and "padding_idx=0" in what["embedding"]
    assert "global_max_pool" in what["max_pool1d"] and "folded into 'convs_0'" in what["relu"]


def test_kim_conv2d_with_padding_and_a_narrower_kernel(tmp_path):
    check(seeded(lambda: KimConv2d(padding=1)), tmp_path, lengths=(L, 7))

    class Narrow(nn.Module):                                 # a (3, D - 2) kernel: a true conv2d node
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, D)
            self.conv = nn.Conv2d(1, FILTERS, (3, D - 2), padding=(1, 1), stride=(1, 2))
            self.fc = nn.Linear(FILTERS, CLASSES)

        def forward(self, x):
            h = torch.tanh(self.conv(self.embedding(x).unsqueeze(1)))                # (B, F, L, W')
            return self.fc(h.amax(dim=(2, 3)))

    src = check(seeded(Narrow), tmp_path, lengths=(L, 8))
    assert "conv2d" in ops(src) and src.params["conv"]["kernel"].shape == (3, D - 2, 1, FILTERS)


# ---------------------------------------------------------------------------------------------------- sweeps
CONVS = {
    "k3": dict(kernel_size=3),
    "pad1": dict(kernel_size=3, padding=1),
    "same_even": dict(kernel_size=4, padding="same"),                 # torch puts the odd extra on the right
    "same_dilated": dict(kernel_size=3, padding="same", dilation=2),
    "stride2": dict(kernel_size=3, stride=2),
    "dilation3_pad2": dict(kernel_size=2, dilation=3, padding=2),
    "groups2": dict(kernel_size=3, groups=2),
    "no_bias": dict(kernel_size=3, bias=False),
}


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")
@pytest.mark.parametrize("name", list(CONVS))
def test_conv1d_settings(name, tmp_path):
    src = check(seeded(lambda: Stack([conv(**CONVS[name]), nn.ReLU()])), tmp_path, lengths=(L, L + 5))
    node = next(n for n in src.graph["nodes"] if n["op"] == "conv1d")
    expected_padding = {"pad1": [1, 1], "same_even": [1, 2], "same_dilated": [2, 2], "dilation3_pad2": [2, 2]}
    assert node["padding"] == expected_padding.get(name, "valid")
    assert node["use_bias"] == (name != "no_bias") and node["activation"] == "relu"   # nn.ReLU folded in


POOLS = {
    "maxpool2": (lambda: [conv(), nn.ReLU(), nn.MaxPool1d(2)], "max_dim"),
    "maxpool3_s2_p1": (lambda: [conv(), nn.Tanh(), nn.MaxPool1d(3, stride=2, padding=1)], "mean"),
    "avgpool_include_pad": (lambda: [conv(), nn.AvgPool1d(3, stride=1, padding=1)], "max_dim"),
    "avgpool_exclude_pad": (lambda: [conv(), nn.AvgPool1d(2, stride=2, padding=1, count_include_pad=False)],
                            "amax_keep"),
    "max_pool_whole": (lambda: [conv(), nn.ReLU()], "max_pool_whole"),
    "avg_pool_whole": (lambda: [conv(), nn.ReLU()], "avg_pool_whole"),
    "adaptive_max": (lambda: [conv(), nn.ReLU()], "adaptive_max"),
    "adaptive_avg": (lambda: [conv(), nn.ReLU()], "adaptive_avg"),
    "flatten": (lambda: [conv(stride=2), nn.ReLU()], "flatten"),
    "view": (lambda: [conv(), nn.ReLU(), nn.MaxPool1d(2)], "view"),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_pools_and_reshapes(name, tmp_path):
    body, reduce = POOLS[name]
    fixed = reduce in FIXED_LENGTH
    src = check(seeded(lambda: Stack(body(), reduce)), tmp_path, lengths=(L,) if fixed else (L, L + 7))
    if "whole" in name or "adaptive" in name:
        assert ops(src)[-2] in ("global_max_pool", "global_avg_pool")                 # works at any length
    if fixed:                                  # torch's (B, F, L') order is materialised before flatten / view
        assert ops(src)[-3:] == ["transpose", "flatten", "dense"]


ACTIVATIONS = {
    "gelu": (nn.GELU, None), "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), None), "elu": (nn.ELU, "log_softmax"),
    "tanh": (nn.Tanh, None), "sigmoid": (nn.Sigmoid, "softmax"), "silu": (nn.SiLU, None), "relu6": (nn.ReLU6, None),
}


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_activations(name, tmp_path):
    act, out = ACTIVATIONS[name]
    src = check(seeded(lambda: Stack([conv(padding=1), act()], out=out)), tmp_path, lengths=(L, 9))
    assert next(n for n in src.graph["nodes"] if n["op"] == "conv1d")["activation"] == name
    if out:
        last = src.graph["nodes"][-1]
        assert (last["op"], last["fn"], last["axis"]) == ("activation", out, -1)


def test_an_activation_whose_input_is_read_twice_is_its_own_node(tmp_path):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, D)
            self.conv = conv()
            self.fc = nn.Linear(2 * FILTERS, CLASSES)

        def forward(self, x):
            h = self.conv(self.embedding(x).transpose(1, 2))
            return self.fc(torch.cat([torch.sigmoid(h).mean(dim=2), h.max(dim=2)[0]], dim=1))

    src = check(seeded(Twice), tmp_path, lengths=(L, 6))
    assert next(n for n in src.graph["nodes"] if n["op"] == "conv1d")["activation"] == "linear"
    assert "activation" in ops(src)


def test_layouts_that_mix_channels_first_and_last(tmp_path):
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, D, padding_idx=0)
            self.conv = nn.Conv1d(D, FILTERS, 3, padding="same")
            self.token = nn.Linear(FILTERS, 5)                       # per position, over torch's (B, L, F) last axis
            self.fc = nn.Linear(FILTERS + 5 + D, CLASSES)

        def forward(self, x):
            e = self.embedding(x).permute(0, 2, 1)                                    # (B, D, L)
            h = self.conv(e)                                                          # (B, F, L)
            t = F.elu(self.token(h.transpose(1, 2))).transpose(1, 2)                  # (B, 5, L)
            both = torch.cat([h, t, e], dim=1)                                        # (B, F + 5 + D, L)
            return F.log_softmax(self.fc(F.softmax(both, dim=2).amax(dim=2)), dim=1)

    src = check(seeded(Mixed), tmp_path, lengths=(L, 4))
    assert "transpose" not in ops(src) and "reshape" not in ops(src)
    assert next(n for n in src.graph["nodes"] if n["op"] == "concatenate")["axis"] == 2     # channels-last
    assert [n["axis"] for n in src.graph["nodes"] if n["op"] == "activation"] == [1, -1]    # over L; the classes


def test_kim_multichannel_stacks_two_embeddings_for_a_conv2d(tmp_path):
    class Multichannel(nn.Module):                           # Kim's static + non-static channels
        def __init__(self):
            super().__init__()
            self.static = nn.Embedding(V, D, padding_idx=0)
            self.tuned = nn.Embedding(V, D, padding_idx=0)
            self.convs = nn.ModuleList([nn.Conv2d(2, FILTERS, (k, D)) for k in (2, 3)])
            self.fc = nn.Linear(2 * FILTERS, CLASSES)

        def forward(self, x):
            e = torch.stack([self.static(x), self.tuned(x)], dim=1)                  # (B, 2, L, D)
            h = [F.relu(conv(e)).squeeze(3) for conv in self.convs]                   # (B, F, L')
            return self.fc(torch.cat([i.max(dim=2)[0] for i in h], 1))

    src = check(seeded(Multichannel), tmp_path, lengths=(L, 6))
    assert ops(src).count("embedding") == 2 and ops(src).count("conv2d") == 2


@pytest.mark.filterwarnings("ignore:.*treespec:FutureWarning")
def test_a_decomposed_program_reads_its_core_aten_forms():
    module = seeded(KimConv1d)
    ep = torch.export.export(module, (example_ids(),)).run_decompositions()            # convolution, addmm, permute
    src = read_torch(ep)
    assert {"aten.convolution.default", "aten.addmm.default"} <= {op for _, op, _ in src.layers}
    ids = random_ids(5, L + 3)
    np.testing.assert_allclose(np.asarray(imported_model(src).source_output(ids)), torch_output(module, ids),
                               rtol=1e-5, atol=1e-5)
    ep = torch.export.export(seeded(KimConv2d), (example_ids(),)).run_decompositions()  # max_pool2d_with_indices
    with pytest.raises(UnsupportedModel) as e:
        read_torch(ep)
    assert "max_pool2d_with_indices" in one_line(e) and "run_decompositions" in str(e.value)


def test_program_reference_runs_any_batch_at_the_exported_length(tmp_path):
    module = seeded(KimConv1d)
    _, src = sources(module, tmp_path)
    ids = random_ids(7, L)                                                             # the example batch is 2
    np.testing.assert_allclose(src.reference(ids), torch_output(module, ids), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=f"fixed at length {L}"):
        src.reference(random_ids(2, L + 1))


# ---------------------------------------------------------------------------------------------------- errors
def one_line(excinfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_data_dependent_control_flow_is_one_line():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, D)
            self.fc = nn.Linear(D, CLASSES)

        def forward(self, x):
            e = self.embedding(x)
            if e.sum() > 0:
                return self.fc(e.mean(1))
            return self.fc(e.amax(1))

    with pytest.raises(UnsupportedModel) as e:
        read_torch(seeded(Branchy), example_ids())
    text = one_line(e)
    assert "'Branchy' has data-dependent control flow" in text and "torch.export cannot capture" in text
    assert "GuardOnDataDependentSymNode" in text


def test_an_unsupported_op_is_one_line_naming_it():
    class Recurrent(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(V, D)
            self.lstm = nn.LSTM(D, FILTERS, batch_first=True)
            self.fc = nn.Linear(FILTERS, CLASSES)

        def forward(self, x):
            return self.fc(self.lstm(self.embedding(x))[0].amax(1))

    with pytest.raises(UnsupportedModel) as e:
        read_torch(seeded(Recurrent), example_ids())
    text = one_line(e)
    assert "in module 'lstm' (LSTM)" in text and "is not supported" in text and "conv1d" in text


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate"])
def test_padding_mode_other_than_zeros_is_one_line(mode):
    model = seeded(lambda: Stack([nn.Conv1d(D, FILTERS, 3, padding=1, padding_mode=mode)]))
    with pytest.raises(UnsupportedModel) as e:
        read_torch(model, example_ids())
    assert f"padding_mode={mode!r}" in one_line(e) and "zeros" in str(e.value)


def test_other_unsupported_settings_are_one_line():
    class TrainDropout(Stack):
        def forward(self, x):
            return self.fc(F.dropout(self.features(x), 0.5))                # training=True even in eval

    class TwoOutputs(Stack):
        def forward(self, x):
            h = self.features(x)
            return self.fc(h), h

    cases = [(lambda: TrainDropout([conv()]), "train=True"), (lambda: TwoOutputs([conv()]), "returns 2 values"),
             (lambda: Stack([conv(), nn.MaxPool1d(2, ceil_mode=True)]), "ceil_mode=True")]
    for make, words in cases:
        with pytest.raises(UnsupportedModel) as e:
            read_torch(seeded(make), example_ids())
        assert words in one_line(e)


def test_a_file_that_is_not_a_torch_export_is_one_line(tmp_path):
    text = tmp_path / "notes.pt2"
    text.write_text("not a model")
    weights = tmp_path / "weights.pt2"
    torch.save(seeded(KimConv1d).state_dict(), weights)
    for path in (text, weights):
        with pytest.raises(UnsupportedModel) as e:
            read_torch(path)
        assert one_line(e).startswith(f"{path}: not a torch.export file")
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_torch(tmp_path / "missing.pt2")


def test_bad_arguments():
    with pytest.raises(ValueError, match="example_input=None"):
        read_torch(seeded(KimConv1d))
    with pytest.raises(ValueError, match=r"expected int token ids of shape \(B, L\)"):
        read_torch(seeded(KimConv1d), np.zeros(L, np.int64))
    with pytest.raises(TypeError, match="source=int"):
        read_torch(3)
