"""One check every library operator passes inside a pipeline.

``assert_operator_in_pipeline(make_op, data)`` runs the operator (built anew by
``make_op()``) after an in-memory source of ``data`` and checks that

- every record's output is the same at batch sizes 16 and 32 (randomness is per
  record, never per position), bit for bit;
- a state saved before any step resumes the stream exactly (the
  resume-at-every-step harness, at batch size 16);
- a second epoch compiles nothing new.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from conftest import CompileCounter
from datarax import from_source
from datarax.dag.nodes import OperatorNode
from datarax.operators import Operator
from datarax.sources import MemorySource, MemorySourceConfig
from harness import assert_resumes_at_every_step


def _pipeline(
    make_op: Callable[[], Operator],
    data: dict[str, np.ndarray],
    batch_size: int,
    *,
    num_epochs: int = 1,
    seed: int = 3,
):
    source = MemorySource(MemorySourceConfig(), data=data)
    return from_source(source, batch_size, shuffle=True, seed=seed, num_epochs=num_epochs) >> (
        OperatorNode(make_op())
    )


def _per_record(pipeline) -> dict[tuple[int, int], dict[str, tuple[str, bytes]]]:
    out: dict[tuple[int, int], dict[str, tuple[str, bytes]]] = {}
    for batch in pipeline:
        ids = np.asarray(batch.record_ids)
        epochs = np.broadcast_to(np.asarray(batch.epoch), ids.shape)
        fields = {k: np.asarray(v) for k, v in batch.data.items()}
        for row, (epoch, rid) in enumerate(zip(epochs.tolist(), ids.tolist(), strict=True)):
            out[(epoch, rid)] = {k: (str(v.dtype), v[row].tobytes()) for k, v in fields.items()}
    return out


def assert_operator_in_pipeline(
    make_op: Callable[[], Operator], data: dict[str, Any], *, resume: bool = True
) -> None:
    """The three pipeline properties above, for the operator ``make_op()`` builds.

    ``data`` holds at least 33 records so that batch sizes 16 and 32 cut it
    differently (and each epoch has a short last batch).
    """
    data = {k: np.asarray(v) for k, v in data.items()}
    sizes = {len(v) for v in data.values()}
    assert len(sizes) == 1 and sizes.pop() >= 33, "give at least 33 records"
    small = _per_record(_pipeline(make_op, data, 16, num_epochs=2))
    large = _per_record(_pipeline(make_op, data, 32, num_epochs=2))
    assert small.keys() == large.keys()
    different = [key for key in small if small[key] != large[key]]
    assert not different, f"records {different[:5]} differ between batch sizes 16 and 32"

    if resume:
        assert_resumes_at_every_step(lambda: _pipeline(make_op, data, 16))

    counter = CompileCounter()
    it = iter(_pipeline(make_op, data, 16, num_epochs=None))
    steps = -(-len(next(iter(data.values()))) // 16)
    for _ in range(steps):
        next(it)
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        for _ in range(steps):
            next(it)
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)
    assert counter.count == 0, f"the second epoch compiled {counter.count} times"
