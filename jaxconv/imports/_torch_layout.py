"""Layout tracking for the PyTorch importer (:mod:`jaxconv.imports.torch`).

PyTorch computes channels-first, ``(B, C, L)``; the layer graph (:mod:`jaxconv.models.imported`) is channels-last,
``(B, L, C)``. Rather than transposing around every op, the importer keeps, for each torch value, a :class:`Val`:
the layer-graph value that holds its numbers plus how torch's axes map onto that value's axes. A ``transpose``,
``permute``, ``unsqueeze`` or ``squeeze`` then changes only the map; an op that needs its input in a given order
(a convolution wants ``(B, L, C)``, ``view`` wants torch's own order) asks :meth:`TorchGraph.arrange` for it, which
emits a ``transpose`` and/or ``reshape`` node only when the map is not already that order.

The map of a :class:`Val`: ``axes[i]`` is the graph axis that holds torch axis ``i``, or ``None`` for a unit axis that
exists only on the torch side (after ``unsqueeze``, or a global pool torch keeps as size 1). Graph axes that no torch
axis maps to are unit axes too (after torch squeezed them). Torch's batch axis is always graph axis 0.

>>> v = Val("embedding", axes=(0, 1, 2), shape=(2, 7, 8), dyn=(False, True, False), grank=3)
>>> t = v.transposed(1, 2)                     # torch (B, D, L) is still graph (B, L, D): nothing emitted
>>> t.axes, t.shape
((0, 2, 1), (2, 8, 7))
>>> g = TorchGraph()
>>> g.arrange(t, [0, 2, 1], "conv").name       # the order a conv1d reads: already there
'embedding'
>>> g.materialise(t, "view").name, g.nodes[-1]["op"], g.nodes[-1]["perm"]
('view_transpose', 'transpose', [0, 2, 1])
"""

from __future__ import annotations

import dataclasses
import re

import numpy as np

__all__ = ["Val", "TorchGraph", "graph_name"]


@dataclasses.dataclass(frozen=True)
class Val:
    """A torch tensor value as a layer-graph value.

    Attributes:
      name: the layer-graph value (a node name, or ``"ids"``).
      axes: per torch axis, the graph axis holding it, or ``None`` for a torch-only unit axis.
      shape: the torch shape (at the example input's batch and length).
      dyn: per torch axis, whether its size follows the input length (so the graph uses ``-1`` for it in a reshape).
      grank: the rank of the graph value.
    """

    name: str
    axes: tuple[int | None, ...]
    shape: tuple[int, ...]
    dyn: tuple[bool, ...]
    grank: int

    @property
    def rank(self) -> int:
        """The torch rank."""
        return len(self.shape)

    def dim(self, d: int) -> int:
        """Torch axis ``d`` (negative counts from the end) as a non-negative index; ValueError outside the rank."""
        if not -self.rank <= d < self.rank:
            raise ValueError(f"dim={d} is outside a rank-{self.rank} tensor of shape {self.shape}.")
        return d % self.rank

    def order(self) -> list[int]:
        """The torch axes that the graph value holds, in the graph's order: ``(0, 2, 1)`` -> ``[0, 2, 1]``."""
        return sorted((i for i, a in enumerate(self.axes) if a is not None), key=lambda i: self.axes[i])

    def transposed(self, d0: int, d1: int) -> Val:
        """Torch ``transpose(d0, d1)``: only the map changes."""
        perm = list(range(self.rank))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        return self.permuted(perm)

    def permuted(self, perm) -> Val:
        """Torch ``permute(perm)``: torch axis ``k`` of the result is axis ``perm[k]`` of this value."""
        return dataclasses.replace(self, axes=tuple(self.axes[p] for p in perm),
                                   shape=tuple(self.shape[p] for p in perm), dyn=tuple(self.dyn[p] for p in perm))

    def unsqueezed(self, d: int) -> Val:
        """Torch ``unsqueeze(d)`` (``d`` in ``0..rank``): a torch-only unit axis."""
        return dataclasses.replace(self, axes=self.axes[:d] + (None,) + self.axes[d:],
                                   shape=self.shape[:d] + (1,) + self.shape[d:], dyn=self.dyn[:d] + (False,) + self.dyn[d:])

    def dropped(self, dims) -> Val:
        """Torch ``squeeze`` of unit axes ``dims``: their graph axes (if any) stay as unit axes no torch axis maps to."""
        keep = [i for i in range(self.rank) if i not in set(dims)]
        return dataclasses.replace(self, axes=tuple(self.axes[i] for i in keep),
                                   shape=tuple(self.shape[i] for i in keep), dyn=tuple(self.dyn[i] for i in keep))

    def reduced(self, d: int) -> Val:
        """After a global pool over graph axis ``axes[d]`` (keepdims False): torch keeps axis ``d`` as size 1."""
        g = self.axes[d]
        axes = tuple(None if i == d else (a - 1 if a is not None and a > g else a) for i, a in enumerate(self.axes))
        shape = tuple(1 if i == d else s for i, s in enumerate(self.shape))
        dyn = tuple(False if i == d else f for i, f in enumerate(self.dyn))
        return Val(self.name, axes, shape, dyn, self.grank - 1)


def graph_name(text: str) -> str:
    """A node name from a module path or fx name: ``"convs.0"`` -> ``"convs_0"``, ``"L['self'].fc"`` -> ``"fc"``."""
    text = re.sub(r"^L\W*self\W*", "", text)
    return re.sub(r"[^0-9A-Za-z_]+", "_", text).strip("_")


class TorchGraph:
    """The layer graph being written: ``nodes`` (in order), ``params`` by node, and unique names."""

    def __init__(self, input_name: str = "ids"):
        self.nodes: list[dict] = []
        self.params: dict[str, dict[str, np.ndarray]] = {}
        self.by_name: dict[str, dict] = {}
        self.used: set[str] = {input_name}

    def unique(self, base: str) -> str:
        """``base``, or ``base_2``, ``base_3``, ... when taken."""
        base = base or "node"
        name, k = base, 2
        while name in self.used:
            name, k = f"{base}_{k}", k + 1
        self.used.add(name)
        return name

    def add(self, base: str, op: str, inputs: list[str], params: dict[str, np.ndarray] | None = None,
            **settings) -> dict:
        """Append a node named ``base`` (made unique); returns the node dict (its ``"name"`` is the value's name)."""
        node = {"name": self.unique(base), "op": op, "inputs": list(inputs), **settings}
        self.nodes.append(node)
        self.by_name[node["name"]] = node
        if params:
            # copies: torch's .numpy() shares the module's memory, which may go on training
            self.params[node["name"]] = {k: np.array(v, dtype=np.float32) for k, v in params.items()}
        return node

    def arrange(self, v: Val, order, hint: str) -> Val:
        """``v`` as a graph value holding torch axes ``order`` in that order (every other torch axis must be a unit
        axis; ``order[0] == 0``, the batch). Emits a ``transpose`` and/or ``reshape`` node named after ``hint`` only
        when ``v`` is not already laid out so.

        Example: ``v`` torch ``(B, C, L)`` held as graph ``(B, L, C)`` (``axes (0, 2, 1)``); ``order [0, 2, 1]``
        returns ``v``; ``order [0, 1, 2]`` emits ``transpose perm [0, 2, 1]``.
        """
        order = [int(i) for i in order]
        if order[0] != 0 or sorted(set(order)) != sorted(order):
            raise ValueError(f"order={order} must start with the batch axis 0 and name each torch axis once.")
        for i in range(v.rank):
            if i not in order and v.shape[i] != 1:
                raise ValueError(f"order={order} leaves out torch axis {i} of size {v.shape[i]} (shape {v.shape}); "
                                 f"only unit axes may be left out.")
        axes = tuple(order.index(i) if i in order else None for i in range(v.rank))
        if v.grank == len(order) and all(v.axes[i] == k for k, i in enumerate(order)):
            return v
        held = [v.axes[i] for i in order if v.axes[i] is not None]
        perm = held + [g for g in range(v.grank) if g not in held]  # the rest are unit axes
        name = v.name
        if perm != list(range(v.grank)):
            name = self.add(f"{hint}_transpose", "transpose", [name], perm=perm)["name"]
        if v.grank != len(order) or any(v.axes[i] is None for i in order):
            shape = self.reshape_target([v.shape[i] for i in order], [v.dyn[i] for i in order])
            name = self.add(f"{hint}_reshape", "reshape", [name], shape=shape)["name"]
        return Val(name, axes, v.shape, v.dyn, len(order))

    def materialise(self, v: Val, hint: str) -> Val:
        """``v`` as a graph value in torch's own axis order and shape (what ``view`` and the model's output read)."""
        return self.arrange(v, range(v.rank), hint)

    @staticmethod
    def reshape_target(shape, dyn) -> list[int]:
        """A ``reshape`` node's ``shape`` (after the batch axis) for a torch ``shape``: ``-1`` on the first axis whose
        size follows the input length, so the node works at any length: ``([2, 7, 8], [F, T, F]) -> [-1, 8]``."""
        out = [int(s) for s in shape[1:]]
        for k, flag in enumerate(dyn[1:]):
            if flag:
                out[k] = -1
                break
        return out
