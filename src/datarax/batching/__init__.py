"""Batching: how an epoch's positions are grouped into batches and compiled chunks."""

from datarax.batching.default import DefaultBatcher, DefaultBatcherConfig
from datarax.batching.geometry import Geometry

__all__ = ["DefaultBatcher", "DefaultBatcherConfig", "Geometry"]
