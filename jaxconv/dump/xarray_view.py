"""A dump as an ``xarray.Dataset`` with coordinates (:meth:`jaxconv.dump.Dump.to_xarray`); xarray is optional.

One layer (``to_xarray("convs/0")``) gives plain names: dimensions ``example``, ``position``, ``filter``, ``slot``
and ``in`` (the kernel's), ``token``, ``class``, ``bound``, ``vocab``, ``channel``; variables ``maps``, ``pooled``,
``argmax``, ``spans``, ``kernel``, ``bias``, ``class_weights`` beside the per-example arrays (``tokens``,
``words``, ``lengths``, ``starts``, ``probabilities``) and the ``embedding``. Every layer at once keeps the
store's names: ``pooled/convs/0`` over ``filter[convs/0]``. Both carry coordinates: ``example``, ``filter``
and ``position`` ids, ``class`` (the label names), and per example ``label``, ``label_name``, ``prediction``,
``prediction_name`` and ``text``. The arrays stay lazy (read from the store when used).
"""

from __future__ import annotations

import numpy as np

__all__ = ["to_xarray"]

#: The per-layer arrays: store prefix -> the one-layer variable name.
KINDS = {"maps": "maps", "pooled": "pooled", "argmax": "argmax", "spans": "spans", "kernels": "kernel",
         "biases": "bias", "class_weights": "class_weights"}
#: Variables that become coordinates: store name -> coordinate name.
AS_COORDS = {"labels": "label", "predictions": "prediction", "texts": "text"}


def _import_xarray():
    try:
        import xarray as xr
    except ImportError as e:
        raise ImportError("Dump.to_xarray needs xarray (pip install xarray).") from e
    return xr


def to_xarray(dump, layer: str | None = None):
    """See :meth:`jaxconv.dump.Dump.to_xarray`. ``layer`` None: every layer, named as in the store."""
    xr = _import_xarray()
    from jaxconv.dump import store as dstore

    opened: dict[str, object] = {}

    def group(parent: str):
        if parent not in opened:
            opened[parent] = xr.open_zarr(dstore.open_store(dump.path, read_only=True), group=parent or None,
                                          consolidated=False, chunks=None, zarr_format=3)
        return opened[parent]

    root = group("")
    parts = [root[[v for v in root.data_vars if v not in AS_COORDS]]]
    layers = dump.layers if layer is None else [layer]
    for la in layers:
        dims = {f"position[{la}]": "position", f"filter[{la}]": "filter", f"width[{la}]": "slot",
                f"in[{la}]": "in"}
        for kind, short in KINDS.items():
            if not dump.has(f"{kind}/{la}"):
                continue
            parent, _, leaf = f"{kind}/{la}".rpartition("/")
            var = group(parent)[leaf]
            if layer is None:
                parts.append(var.rename(f"{kind}/{la}").to_dataset())
            else:
                parts.append(var.rename({d: dims[d] for d in var.dims if d in dims}).rename(short).to_dataset())
    out = xr.merge(parts, compat="no_conflicts", join="exact", combine_attrs="drop")
    coords: dict[str, object] = {"example": np.arange(dump.num_examples)}
    for la in layers:
        F, P = dump.num_filters(la), int(dump.attrs["layer_info"][la]["positions"])
        suffix = "" if layer is not None else f"[{la}]"
        coords[f"filter{suffix}"], coords[f"position{suffix}"] = np.arange(F), np.arange(P)
    if "class" in out.dims:
        coords["class"] = [dump.class_name(c) for c in range(out.sizes["class"])]
    for name, coord in AS_COORDS.items():
        values = dump._read(name)
        if values is None:
            continue
        coords[coord] = ("example", values)
        if name != "texts":
            coords[f"{coord}_name"] = ("example", np.array([dump.class_name(int(c)) for c in values]))
    out = out.assign_coords(coords)
    out.attrs = {k: v for k, v in dump.attrs.items() if isinstance(v, (str, int, float, bool))}
    if layer is not None:
        info = dump.attrs["layer_info"][layer]
        out.attrs.update(layer=layer, **{k: info[k] for k in ("kernel", "stride", "dilation", "rf_size")})
    return out
