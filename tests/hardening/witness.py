"""Checks shared by the hardening tests: the shape of an error, and a witness iterator.

A *witness* is an iterator that lives through the bad inputs; its *control* is an
iterator of an identical pipeline that never sees them. After every bad input the
two must give the same next batch, bit for bit: nothing a user got wrong may
change a running stream.
"""

from __future__ import annotations

import re

import numpy as np
from flax import nnx

from datarax import DataraxError, from_source
from datarax.dag.nodes import OperatorNode
from datarax.operators.image import RandomFlip, RandomFlipConfig
from datarax.sources import MemorySource, MemorySourceConfig
from harness import snapshot

RECORDS = 10
BATCH = 4
EPOCHS = 3


def witness_pipeline():
    """Shuffled, 3 epochs of 10 records in batches of 4, with a stochastic operator."""
    data = {
        "x": np.arange(RECORDS, dtype=np.float32),
        "image": np.arange(RECORDS * 12, dtype=np.float32).reshape(RECORDS, 2, 2, 3),
    }
    source = MemorySource(MemorySourceConfig(), data=data)
    flip = RandomFlip(RandomFlipConfig(), rngs=nnx.Rngs(5))
    return from_source(source, BATCH, shuffle=True, seed=11, num_epochs=EPOCHS) >> OperatorNode(
        flip
    )


class Pair:
    """A witness iterator and its control, kept in step."""

    def __init__(self) -> None:
        self.witness = iter(witness_pipeline())
        self.control = iter(witness_pipeline())

    def assert_same_next(self) -> None:
        """Both give the same next batch (both start again once exhausted)."""
        try:
            got = snapshot(next(self.witness))
        except StopIteration:
            self.witness.reset()
            self.control.reset()
            got = snapshot(next(self.witness))
        want = snapshot(next(self.control))
        assert got == want, "the witness iterator's stream changed after a bad input"


def assert_structured(error: BaseException, where: str = "") -> None:
    """``error`` is a DataraxError whose message says where (starting with ``where``),
    what was expected and what was found, in the library's format."""
    assert isinstance(error, DataraxError), f"{type(error).__name__}: {error}"
    assert error.where, f"no 'where' in: {error}"
    assert error.where.startswith(where), f"where {error.where!r} does not start with {where!r}"
    assert error.expected is not None and error.found is not None, f"incomplete: {error}"
    text = str(error)
    assert text.startswith(f"{error.where}: {error.what}; expected "), text
    assert re.search(r"; expected .+, found ", text, re.S), text


def normalised(text: str, tmp: str) -> str:
    """A message with run-dependent parts (temporary folders, addresses) made stable."""
    text = text.replace(tmp, "<tmp>")
    return re.sub(r"0x[0-9a-f]{6,}", "0x…", text)
