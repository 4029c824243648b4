"""Evaluation networks built from a genotype (docs/algorithm.md#evaluation-networks).

``CifarNetwork`` (small images, any channels and classes) and ``ImageNetNetwork`` (mobile setting)
share one cell (``cell.EvalCell``, stacked by ``cell.CellStack``) and one auxiliary head design
(``heads``). Both return ``(logits, auxiliary_logits)``; the auxiliary logits only in training.
"""

from __future__ import annotations

from .cell import CellStack, EvalCell
from .cifar import CifarNetwork
from .heads import AuxiliaryHead
from .imagenet import ImageNetNetwork

__all__ = ["AuxiliaryHead", "CellStack", "CifarNetwork", "EvalCell", "ImageNetNetwork", "build_network"]


FAMILIES = {"cifar": CifarNetwork, "imagenet": ImageNetNetwork}


def build_network(spec: dict) -> CifarNetwork | ImageNetNetwork:
    """Builds a network from its plain-data description (as stored in a model file).

    ``spec`` holds ``family`` ("cifar" or "imagenet"), ``genotype`` (the JSON form), ``num_cells``,
    ``init_channels``, ``num_classes``, ``in_channels`` and ``auxiliary``.
    """
    from ..genotype import genotype_from_dict

    network = FAMILIES[spec["family"]]
    return network(
        genotype_from_dict(spec["genotype"]),
        num_cells=spec["num_cells"],
        init_channels=spec["init_channels"],
        num_classes=spec["num_classes"],
        in_channels=spec["in_channels"],
        auxiliary=spec["auxiliary"],
    )
