"""Per-filter activation dumps: stream a trained run's feature maps to a Zarr store, then read them back.

Write one with ``jaxconv dump --workdir RUN`` or :func:`dump_activations`; read it with :func:`load_dump`
(:class:`Dump`), or with plain ``zarr.open``. The store, ``RUN/dumps/<name>/activations.zarr`` (a Zarr v3 group),
holds, for ``N`` examples padded to length ``L`` and each dumped conv ``<layer>`` with ``P`` positions and ``F``
filters:

=========================  ======================  ===============================================================
array                      shape                   what
=========================  ======================  ===============================================================
``maps/<layer>``           ``(N, P, F)``           the feature maps (after the activation), in the dump's dtype;
                                                   chunked ``(rows, P, 1)``: one filter reads alone
``pooled/<layer>``         ``(N, F)`` float32      max over the positions that see at least one word
``argmax/<layer>``         ``(N, F)`` int32        the position of that max
``spans/<layer>``          ``(P, 2)`` int32        ``[start, end)`` token positions each map position sees
``kernels/<layer>``        ``(width, in, F)``      the conv's kernel; ``biases/<layer>`` ``(F,)``
``class_weights/<layer>``  ``(F, K)``              how each filter's pooled value moves each class (when known)
``embedding``              ``(V, C)`` float32      the vectors the first convs read (for slot words; when known)
``vocab``                  ``(V,)`` str            the vocabulary (id -> word)
``tokens``                 ``(N, L)`` int32        the token ids as the model saw them (0 = padding)
``lengths``                ``(N,)`` int32          words per example (padding excluded)
``starts``                 ``(N,)`` int32          the token position of each example's first word (``pad_left``,
                                                   or later in a left-padded imported model's rows)
``texts``, ``words``       ``(N,)`` str            the raw text; its tokens joined by spaces
``labels``                 ``(N,)`` int32          gold labels, when the input has them
``predictions``            ``(N,)`` int32          the model's class; ``probabilities`` ``(N, K)`` float32
=========================  ======================  ===============================================================

Attributes: the layers and, per layer, kernel shape and axis names, stride, padding ``(lo, hi)``, dilation,
receptive field (``layer_info``); the receptive-span rule (``span_rule``); vocabulary path, config, checkpoint
and step, dtype, jaxconv version; ``complete: true`` is written last (see :mod:`jaxconv.dump.store`).
"""

from jaxconv.dump.ablation import Ablation, ablate, read_ablation
from jaxconv.dump.adapters import DumpAdapter, get_adapter
from jaxconv.dump.analysis import ClassAssociation, Threshold
from jaxconv.dump.loader import Dump, DumpError, FilterMap, NGram, SlotGroup, SlotWord, load_dump
from jaxconv.dump.runner import DTYPES, DumpResult, dump_activations, dump_path
from jaxconv.dump.probe import FilterRank, rank_filters
from jaxconv.dump.store import DumpExistsError

__all__ = ["load_dump", "Dump", "DumpError", "FilterMap", "NGram", "SlotGroup", "SlotWord", "Threshold",
           "ClassAssociation", "dump_activations", "DumpResult", "DTYPES", "dump_path", "DumpExistsError",
           "DumpAdapter", "get_adapter", "ablate", "Ablation", "read_ablation", "rank_filters", "FilterRank"]
