"""Placing batches on devices: a mesh axis for the batch, optionally one for features."""

from datarax.sharding.array import ArraySharder

__all__ = ["ArraySharder"]
