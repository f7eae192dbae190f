"""Batching: cutting epochs into batches and stacking records."""

from datarax.batching.default import DefaultBatcher, DefaultBatcherConfig

__all__ = ["DefaultBatcher", "DefaultBatcherConfig"]
