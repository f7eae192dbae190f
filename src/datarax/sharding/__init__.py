"""Placing batches on devices: a mesh axis for the batch, optionally one for features."""

from datarax.sharding.array import ArraySharder
from datarax.sharding.process import JaxProcessSharder

__all__ = ["ArraySharder", "JaxProcessSharder"]
