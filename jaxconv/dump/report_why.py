"""The report's columns on what each filter does for the predictions: what zeroing it costs (the ablation saved
beside the dump by ``jaxconv ablate``) and the filter probe's weight for the class (:func:`jaxconv.rank_filters`).
Each column also gets its own sorted page: "by logit lost" is the view of the filters that matter."""

from __future__ import annotations

from jaxconv.dump.ablation import read_ablation
from jaxconv.dump.probe import rank_filters
from jaxconv.dump.report import Column
from jaxconv.paths import as_path

__all__ = ["why_columns"]


def why_columns(dump) -> list[Column]:
    """The ablation columns (when ``ablation.json`` lies beside the dump's store) and the class probe's (when the
    dump has two or more classes among its labels, else its predictions)."""
    columns = []
    saved = read_ablation(as_path(dump.path).parent / "ablation.json")
    if saved is not None and saved["examples"] == dump.num_examples:
        lost = {(r.layer, r.filter): -r.delta_logit for r in saved["filters"]}
        acc = {(r.layer, r.filter): 0.0 - r.delta_accuracy + 0.0 for r in saved["filters"]}   # no "-0.0%"
        n = saved["examples"]
        columns += [
            Column("logit lost", lost, note=f"how much the true class's logit falls, on average over the "
                   f"{n} examples, when the filter's feature map is zeroed (jaxconv ablate); the filters that matter "
                   f"come first on its sorted page.", sort=True),
            Column("accuracy lost", acc, fmt="{:+.1%}", note="the accuracy the model loses with the "
                   "filter zeroed (negative: it gains).", sort=True)]
    classes = "class" if dump.labels is not None else "predictions" if dump.predictions is not None else None
    if classes is not None:
        try:
            ranks = rank_filters(dump, classes)
        except ValueError:                                  # one class only: nothing to probe
            ranks = []
        if ranks:
            weight = {(r.layer, r.filter): r.weight for r in ranks}
            what = "gold class" if classes == "class" else "predicted class"
            columns.append(Column("probe weight", weight, note=f"the filter's weight in an elastic-net "
                                  f"probe of the {what} on every filter's pooled value (jaxconv.rank_filters; for "
                                  f"two classes, towards the second).", sort=True))
    return columns
