"""A seedable simulator of a retailer and its shoppers, as Segment messages with ground truth.

- :mod:`.catalog`: the shop's products (:func:`generate_catalog`).
- :mod:`.shoppers`: people's behaviour as a time-ordered stream of messages (:func:`simulate`).
- :mod:`.truth`: what really happened (:class:`GroundTruth`), written beside the data.
- :mod:`.send`: delivery through the HTTP API (Segment's Python client) or the service layer.
- :mod:`.cli`: ``tidings simulate``.

Generation is pure (no I/O); only :mod:`.send` and :mod:`.cli` touch the network or a database.
"""

from __future__ import annotations

from .catalog import CatalogProduct, generate_catalog
from .shoppers import ShopperModel, SimEvent, Simulation, simulate
from .truth import GroundTruth, PersonTruth, read_ground_truth, write_ground_truth

__all__ = [
    "CatalogProduct",
    "GroundTruth",
    "PersonTruth",
    "ShopperModel",
    "SimEvent",
    "Simulation",
    "generate_catalog",
    "read_ground_truth",
    "simulate",
    "write_ground_truth",
]
