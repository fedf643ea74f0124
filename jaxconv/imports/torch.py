"""Reading a PyTorch model: :func:`read_torch` (a ``.pt2`` file, a ``torch.export.ExportedProgram``, or an
``nn.Module`` with example ids) into a :class:`~jaxconv.imports.source.SourceModel`.

The model goes through ``torch.export`` (no ``run_decompositions``: the training-IR aten ops ``conv1d``, ``linear``,
``max_pool1d``, ... map onto the layer graph as they are; the decomposed ``convolution``/``addmm`` forms are read
too). Its aten graph is lowered op by op with layout tracking (:mod:`jaxconv.imports._torch_layout`): torch is
channels-first, the layer graph channels-last, so ``transpose``/``permute``/``unsqueeze``/``squeeze`` usually emit
nothing, and a ``transpose``/``reshape`` node appears only where a value must be in torch's own order (``view``,
``flatten`` of a ``(B, F, L)`` tensor, the model's output).

What the common text CNNs become (Kim 2014, the two usual PyTorch forms)::

    Embedding -> transpose(1, 2) -> Conv1d(D, F, k) -> relu -> max(dim=2)   conv1d (+relu) -> global_max_pool
    Embedding -> unsqueeze(1) -> Conv2d(1, F, (k, D)) -> relu -> squeeze(3)
              -> F.max_pool1d(x, x.size(2)) -> squeeze(2)                   conv1d (+relu) -> global_max_pool

then ``cat`` -> ``concatenate``, dropout -> nothing, ``Linear`` -> ``dense``. ``F.max_pool1d(x, x.size(2))`` is
exported with the example's length baked in; the importer reads a window that covers the whole length as a global
pool, so the imported model runs at any length. The supported ops: :data:`jaxconv.imports._torch_ops.SUPPORTED`;
anything else is an :class:`~jaxconv.imports.source.UnsupportedModel` naming the node, its op and that list.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pathlib
import warnings
from typing import Any

import numpy as np

from jaxconv.imports.source import SourceModel, UnsupportedModel

__all__ = ["read_torch"]


def read_torch(source: Any, example_input: Any = None) -> SourceModel:
    """Read a PyTorch model into a layer graph with its weights.

    Args:
      source: a path (``str``/``PathLike``) to a ``.pt2`` file written by ``torch.export.save``; a
        ``torch.export.ExportedProgram``; or a ``torch.nn.Module`` taking token ids ``(B, L)`` int64 and returning
        the class scores ``(B, C)`` (exported here with ``torch.export.export(module.eval(), (example_input,))``,
        its training mode restored afterwards).
      example_input: token ids ``(B, L)`` (int torch tensor or numpy array) for an ``nn.Module``; unused otherwise
        (an exported program fixes its own input shape).

    Returns:
      A :class:`SourceModel`: ``graph`` (input ``"ids"``, channels-last), ``params`` in jaxconv layouts,
      ``framework`` ``"torch 2.13.0"``, ``length`` the example's ``L``, ``padding`` ``"post"``, ``layers`` one
      ``(fx node, aten op, what it became)`` per op, and ``reference``: ``ids (B', L') int -> output (B', C)`` numpy,
      run by torch: an ``nn.Module`` itself (in eval mode, any ``B'`` and ``L'``), else the exported program (any
      ``B'``, in chunks of the example's ``B``; only at the exported length, ``L' == L``, as export fixes it).

    Raises:
      UnsupportedModel: an op or setting the layer graph cannot express, data-dependent control flow that
        ``torch.export`` cannot capture, or a file that is not a torch export.
      FileNotFoundError: ``source`` is a path that does not exist.
      TypeError / ValueError: ``source`` of another type; an ``nn.Module`` without ``(B, L)`` ``example_input``.
    """
    try:
        import torch
    except ImportError:
        raise UnsupportedModel(f"SOURCE {source}: reading a torch.export program needs PyTorch, which is not installed "
                               f"here (pip install torch; the CPU build is enough).") from None

    from jaxconv.imports._torch_lower import Lowering

    ep, description = _exported(torch, source, example_input)
    lowering = Lowering(ep)
    graph = lowering.run()
    if isinstance(source, torch.nn.Module):
        reference = _module_reference(torch, source)
    else:
        reference = _program_reference(torch, ep, lowering.batch, lowering.length)
    return SourceModel(graph=graph, params=lowering.g.params, framework=f"torch {torch.__version__.split('+')[0]}",
                       description=description, layers=lowering.layers, length=lowering.length, padding="post",
                       reference=reference)


def _exported(torch, source, example_input):
    """``(ExportedProgram, description)`` for any accepted ``source``."""
    if isinstance(source, torch.export.ExportedProgram):
        return source, "torch.export.ExportedProgram"
    if isinstance(source, torch.nn.Module):
        return _export_module(torch, source, example_input), f"torch.nn.Module {type(source).__name__!r}"
    if isinstance(source, (str, os.PathLike)):
        path = pathlib.Path(source)
        return _load(torch, path), str(path)
    raise TypeError(f"source={type(source).__name__}: expected a path to a .pt2 file (torch.export.save), a "
                    f"torch.export.ExportedProgram, or a torch.nn.Module with example_input.")


def _load(torch, path: pathlib.Path):
    """``torch.export.load(path)``; one-line errors for a missing or foreign file."""
    if not path.is_file():
        raise FileNotFoundError(f"source={str(path)!r}: no such file; expected a .pt2 file written by "
                                f"torch.export.save.")
    logged: list[logging.LogRecord] = []
    try:
        with _quiet(logged):
            ep = torch.export.load(path)
    except Exception as err:  # a zip of something else, a pickle, a truncated file: torch raises many kinds
        # torch.export.load logs the real reason and raises "check the warnings above": name the logged one.
        causes = [r.exc_info[1] for r in logged if r.exc_info and r.exc_info[1] is not None]
        cause = causes[-1] if causes else err
        raise UnsupportedModel(f"{path}: not a torch.export file (torch.export.load failed: {type(cause).__name__}: "
                               f"{_last_line(cause)}); expected a .pt2 file written by torch.export.save.") from None
    if not isinstance(ep, torch.export.ExportedProgram):
        raise UnsupportedModel(f"{path}: torch.export.load returned a {type(ep).__name__}; expected an "
                               f"ExportedProgram.")
    return ep


def _export_module(torch, module, example_input):
    """``torch.export.export(module.eval(), (ids,))`` with one-line errors."""
    if example_input is None:
        raise ValueError(f"example_input=None: exporting torch.nn.Module {type(module).__name__!r} needs example "
                         f"token ids (B, L) (an int64 tensor or numpy array).")
    ids = example_input if isinstance(example_input, torch.Tensor) else torch.from_numpy(np.asarray(example_input))
    if ids.ndim != 2 or ids.dtype.is_floating_point or ids.dtype.is_complex:
        raise ValueError(f"example_input has dtype {ids.dtype} and shape {tuple(ids.shape)}; expected int token ids "
                         f"of shape (B, L).")
    was_training = module.training
    try:
        with _quiet([]):
            return torch.export.export(module.eval(), (ids.long(),))
    except Exception as err:  # export raises many kinds (RuntimeError subclasses, UserError, Unsupported...)
        raise UnsupportedModel(_export_error(module, err)) from None
    finally:
        module.train(was_training)


def _export_error(module, err: Exception) -> str:
    """The one line for an export failure: data-dependent control flow named as such."""
    kind = type(err).__name__
    text = str(err)
    if "DataDependent" in kind or "data-dependent" in text.lower() or "data dependent" in text.lower():
        return (f"torch.nn.Module {type(module).__name__!r} has data-dependent control flow (a Python if/while on "
                f"tensor values in forward) that torch.export cannot capture ({kind}); jaxconv imports models whose "
                f"forward runs the same ops for every input.")
    return f"torch.export could not export torch.nn.Module {type(module).__name__!r} ({kind}: {_first_line(err)})."


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else "no message"


def _last_line(err: BaseException) -> str:
    """The message's last line, cut after its first sentence when long (torch appends advice to some)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    line = lines[-1] if lines else "no message"
    return line.split(". ")[0].rstrip(".") if len(line) > 120 else line


#: the loggers torch.export.export/load report failures on (besides raising them).
_TORCH_LOGGERS = ("torch.export", "torch.export._trace", "torch._export", "torch._export.non_strict_utils",
                  "torch.fx.experimental.symbolic_shapes", "torch._dynamo")


@contextlib.contextmanager
def _quiet(logged: list):
    """No torch.export chatter on stderr while exporting or loading (its partial graphs, warnings and logged
    tracebacks; the failure becomes one line): the log records go to ``logged`` instead."""

    class _Keep(logging.Filter):
        def filter(self, record):
            logged.append(record)
            return False

    keep = _Keep()
    loggers = [logging.getLogger(name) for name in _TORCH_LOGGERS]
    for logger in loggers:
        logger.addFilter(keep)
    try:
        with contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(keep)


def _module_reference(torch, module):
    """``ids (B, L) int -> numpy output``: the module itself, in eval mode (its mode restored after each call)."""

    def reference(ids) -> np.ndarray:
        ids = np.asarray(ids)
        was_training = module.training
        try:
            with torch.no_grad():
                return module.eval()(torch.from_numpy(ids.astype(np.int64))).detach().cpu().numpy()
        finally:
            module.train(was_training)

    return reference


def _program_reference(torch, ep, batch: int, length: int):
    """``ids (B', L) int -> numpy output``: the exported program, run in chunks of its example batch ``batch`` (the
    last one padded with id 0 rows, cut off again), since an exported program fixes its input shape."""
    module = ep.module()

    def reference(ids) -> np.ndarray:
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.shape[1] != length:
            raise ValueError(f"ids has shape {ids.shape}; the exported program is fixed at length {length} "
                             f"(expected (B, {length})).")
        outs = []
        with torch.no_grad():
            for start in range(0, max(len(ids), 1), batch):
                chunk = ids[start:start + batch].astype(np.int64)
                n = len(chunk)
                chunk = np.concatenate([chunk, np.zeros((batch - n, length), np.int64)])
                outs.append(module(torch.from_numpy(chunk)).detach().cpu().numpy()[:n])
        return np.concatenate(outs)

    return reference
