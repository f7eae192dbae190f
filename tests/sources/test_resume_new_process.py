"""Mixed, Grain-protocol and padded sources resume mid-epoch in a new process, exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from resume_sources import RECORDS, build

from harness import run_child, stream_digest

HERE = Path(__file__).parent
NAMES = ("mixed", "grain", "padded")


def test_every_epoch_is_a_permutation_of_the_records():
    for name in NAMES:
        epochs: dict[int, list[int]] = {}
        for batch in build(name):
            epochs.setdefault(batch.epoch, []).extend(batch.record_ids.tolist())
        assert sorted(epochs) == [0, 1, 2], name
        orders = [epochs[e] for e in range(3)]
        assert all(sorted(o) == list(range(RECORDS)) for o in orders), name
        assert orders[0] != orders[1] != orders[2], name


def test_values_follow_their_records():
    for batch in build("grain"):
        np.testing.assert_array_equal(np.asarray(batch["x"]), 2 * batch.record_ids)
    batch = next(iter(build("mixed")))
    assert set(np.asarray(batch["x"]) // 100) <= {0, 1, 2}


def test_states_resume_in_a_new_process():
    cases, expected = [], []
    for name in NAMES:
        batches = list(build(name))
        for k in (3, 12, 25):  # epoch 0, epoch 1, epoch 2 (past the short last batch)
            it = iter(build(name))
            for _ in range(k):
                next(it)
            cases.append([name, it.get_state()])
            expected.append(stream_digest(batches[k:]))
    assert run_child(HERE / "resume_sources_child.py", cases) == expected
