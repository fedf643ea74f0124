"""Lowering a ``torch.export`` program's aten graph to a layer graph (:mod:`jaxconv.imports.torch`).

:class:`Lowering` walks the exported graph in order: placeholders become the ids (the one user input) or numpy
weights (parameters, buffers, constants); each ``call_function`` node goes to its handler in
:mod:`jaxconv.imports._torch_ops`, which emits layer-graph nodes and returns the torch value as a
:class:`~jaxconv.imports._torch_layout.Val`; the output is laid out in torch's own axis order.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxconv.imports._torch_layout import TorchGraph, Val, graph_name
from jaxconv.imports._torch_ops import ASSERTS, HANDLERS, SUPPORTED
from jaxconv.imports.source import UnsupportedModel

__all__ = ["Lowering"]


class Lowering:
    """One exported program being lowered.

    Args:
      ep: a ``torch.export.ExportedProgram`` whose one user input is the token ids, int ``(B, L)``.
      input_name: the graph's input value (``"ids"``).

    After :meth:`run`: ``g`` (the :class:`TorchGraph`: nodes and params), ``layers`` (one ``(fx node name, aten
    op, what it became)`` per op) and ``length``/``batch`` (the example input's ``L`` and ``B``).
    """

    def __init__(self, ep, input_name: str = "ids"):
        import torch

        self._torch = torch
        self.ep = ep
        self.input_name = input_name
        self.g = TorchGraph(input_name)
        self.env: dict[Any, Any] = {}
        self.layers: list[tuple[str, str, str]] = []
        self.made_by: dict[str, Any] = {}
        self.length: int | None = None
        self.batch: int | None = None

    # ---------------------------------------------------------------------------------------------------- driver
    def run(self) -> dict:
        """Lower the whole program; returns the layer graph ``{"input", "output", "nodes"}``."""
        output = None
        for node in self.ep.graph.nodes:
            if node.op == "placeholder":
                self._placeholder(node)
            elif node.op == "call_function":
                self._call(node)
            elif node.op == "output":
                output = self._output(node)
            else:
                raise self.fail(node, f"is a {node.op!r} node (a submodule or control-flow branch); jaxconv imports "
                                      f"a flat graph of aten ops")
        if output is None:
            raise UnsupportedModel("the exported program has no output node; expected one output (the class scores)")
        return {"input": self.input_name, "output": output, "nodes": self.g.nodes}

    def _placeholder(self, node) -> None:
        sig = self.ep.graph_signature
        if node.name in sig.user_inputs:
            if len(sig.user_inputs) != 1:
                raise UnsupportedModel(f"the exported program takes {len(sig.user_inputs)} inputs "
                                       f"({', '.join(sig.user_inputs)}); jaxconv imports a model of one input: the "
                                       f"token ids (B, L)")
            val = node.meta.get("val")
            shape = tuple(int(s) for s in getattr(val, "shape", ()))
            if len(shape) != 2 or getattr(val, "dtype", None) not in (self._torch.int64, self._torch.int32):
                raise UnsupportedModel(f"the exported program's input {node.name!r} is {getattr(val, 'dtype', '?')} "
                                       f"of shape {shape}; expected token ids, int64 (B, L)")
            self.batch, self.length = shape
            self.env[node] = Val(self.input_name, (0, 1), shape, (False, True), 2)
            return
        target = (sig.inputs_to_parameters.get(node.name) or sig.inputs_to_buffers.get(node.name)
                  or sig.inputs_to_lifted_tensor_constants.get(node.name))
        tensor = self.ep.state_dict.get(target, self.ep.constants.get(target)) if target else None
        if not isinstance(tensor, self._torch.Tensor):
            raise self.fail(node, f"is an input of kind {type(tensor).__name__} (target {target!r}); expected the ids "
                                  f"or a weight tensor")
        self.env[node] = tensor.detach().cpu().numpy()

    def _call(self, node) -> None:
        op = self.op_name(node)
        if op in ASSERTS:
            self.env[node] = None
            self.layers.append((node.name, self.op_str(node), "nothing (a check)"))
            return
        handler = HANDLERS.get(op)
        if handler is None:
            hint = ""
            if any(n.op == "call_function" and self.op_name(n) == "convolution" for n in self.ep.graph.nodes):
                hint = (" (this program looks decomposed to core ATen by run_decompositions; jaxconv reads the "
                        "program torch.export.export returns)")
            raise self.fail(node, f"is not supported{hint}; jaxconv imports these aten ops: {SUPPORTED}")
        before = len(self.g.nodes)
        try:
            value, what = handler(self, node, self.bind(node))
        except UnsupportedModel:
            raise
        except ValueError as err:
            raise self.fail(node, f"could not be read ({err})") from None
        for n in self.g.nodes[before:]:
            self.made_by[n["name"]] = node
        self.env[node] = value
        self.layers.append((node.name, self.op_str(node), what))

    def _output(self, node) -> str:
        outs = node.args[0]
        outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
        if len(outs) != 1:
            raise UnsupportedModel(f"the model returns {len(outs)} values; jaxconv imports a model with one output "
                                   f"(the class scores)")
        v = self.value(outs[0])
        if not isinstance(v, Val) or v.name == self.input_name:
            raise UnsupportedModel(f"the model's output {getattr(outs[0], 'name', outs[0])!r} is not computed from "
                                   f"the ids; expected the class scores (B, C)")
        return self.g.materialise(v, "output").name

    # ---------------------------------------------------------------------------------------------------- for handlers
    def bind(self, node) -> dict[str, Any]:
        """The node's arguments by the op schema's names, defaults filled in (``{}`` for non-aten targets)."""
        schema = getattr(node.target, "_schema", None)
        if schema is None:
            return {}
        a = {arg.name: arg.default_value for arg in schema.arguments if arg.has_default_value()}
        positional = [arg for arg in schema.arguments if not arg.kwarg_only]
        a.update({arg.name: v for arg, v in zip(positional, node.args)})
        a.update(node.kwargs)
        return a

    def op_name(self, node) -> str:
        """``aten.conv1d.default`` -> ``"conv1d"``; ``operator.getitem`` -> ``"getitem"``."""
        schema = getattr(node.target, "_schema", None)
        if schema is not None:
            return schema.name.split("::")[-1]
        return getattr(node.target, "__name__", str(node.target))

    def overload(self, node) -> str:
        """``aten.max.dim`` -> ``"dim"``."""
        return getattr(node.target, "_overloadname", "")

    def op_str(self, node) -> str:
        """The op as the layers list and errors name it: ``"aten.conv1d.default"``, ``"operator.getitem"``."""
        if getattr(node.target, "_schema", None) is not None:
            return str(node.target)
        return f"{getattr(node.target, '__module__', None) or 'operator'}.{self.op_name(node)}".replace("_operator",
                                                                                                     "operator")

    def module_of(self, node) -> tuple[str, str] | None:
        """``(path, class)`` of the innermost module the node ran in (``("convs.0", "torch.nn...Conv1d")``)."""
        stack = node.meta.get("nn_module_stack") or {}
        if not stack:
            return None
        path, cls = list(stack.values())[-1]
        if isinstance(cls, type):
            cls = f"{cls.__module__}.{cls.__qualname__}"
        return str(path), str(cls)

    def base(self, node) -> str:
        """A readable node name: the module path when the node ran in a torch.nn layer (``"convs_0"``, ``"fc"``),
        else the fx node's name (``"max_1"``, ``"cat"``)."""
        m = self.module_of(node)
        if m and m[0] and m[1].startswith("torch.nn."):
            return graph_name(m[0]) or graph_name(node.name)
        return graph_name(node.name)

    def out_shape(self, node) -> tuple[int, ...]:
        """The torch shape of the node's value at the example input."""
        return tuple(int(s) for s in node.meta["val"].shape)

    def value(self, arg):
        """What an argument holds: a :class:`Val`, a numpy weight, a tuple, or the argument itself."""
        if isinstance(arg, self._torch.fx.Node):
            return self.env[arg]
        if isinstance(arg, (list, tuple)):
            return [self.value(x) for x in arg]
        return arg

    def tensor(self, node, arg) -> Val:
        """The argument as a value computed from the ids; :class:`UnsupportedModel` when it is a weight."""
        v = self.value(arg)
        if not isinstance(v, Val):
            raise self.fail(node, f"reads {getattr(arg, 'name', arg)!r} ({type(v).__name__}) where a value computed "
                                  f"from the ids was expected")
        return v

    def const(self, node, arg, what: str) -> np.ndarray:
        """The argument as a weight (numpy); :class:`UnsupportedModel` when it is computed from the ids."""
        v = self.value(arg)
        if not isinstance(v, np.ndarray):
            raise self.fail(node, f"has {what}={getattr(arg, 'name', arg)!r} computed from the input; expected a "
                                  f"weight (a parameter or buffer)")
        return v

    def sole_reader(self, node, arg) -> bool:
        """Whether ``node`` is the only reader of ``arg`` (export's checks aside) and ``arg``'s handler made the
        graph node holding its value (so an activation may be folded into that node)."""
        users = [u for u in arg.users if not (u.op == "call_function" and self.op_name(u) in ASSERTS)]
        v = self.env.get(arg)
        return users == [node] and isinstance(v, Val) and self.made_by.get(v.name) is arg

    def fail(self, node, why: str) -> UnsupportedModel:
        """``node 'relu' (aten.relu.default, in module 'act' (ReLU)) <why>.``: one line."""
        where = ""
        m = self.module_of(node) if node.op == "call_function" else None
        if m and m[0]:
            where = f", in module {m[0]!r} ({m[1].rsplit('.', 1)[-1]})"
        op = self.op_str(node) if node.op == "call_function" else node.op
        return UnsupportedModel(f"node {node.name!r} ({op}{where}) {why}.")
