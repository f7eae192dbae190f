"""Every hand-picked bad input of the table: a structured DataraxError, and a stream
that goes on unchanged (a witness iterator against its control)."""

from __future__ import annotations

import contextlib
import io

import pytest
from bad_inputs import CASES, STATES
from witness import Pair, assert_structured

from datarax.core.errors import StateError


@pytest.fixture(scope="module")
def pair() -> Pair:
    return Pair()


def test_the_table_has_at_least_150_distinct_bad_inputs():
    keys = [(c.api, c.label) for c in CASES] + [("set_state", label) for label, _ in STATES]
    assert len(keys) == len(set(keys))
    assert len(keys) >= 150


@pytest.mark.parametrize("case", CASES, ids=[f"{c.api}: {c.label}" for c in CASES])
def test_a_bad_input_is_a_structured_error_and_changes_no_stream(case, pair):
    pair.assert_same_next()
    with pytest.raises(case.error) as info, contextlib.redirect_stderr(io.StringIO()):
        case.call()
    assert_structured(info.value, case.where)
    pair.assert_same_next()


@pytest.mark.parametrize(("label", "change"), STATES, ids=[label for label, _ in STATES])
def test_a_bad_state_is_refused_and_changes_nothing(label, change, pair):
    pair.assert_same_next()
    state = pair.witness.get_state()
    with pytest.raises(StateError) as info:
        pair.witness.set_state(change(state))
    assert_structured(info.value, "PipelineIterator.set_state")
    assert pair.witness.get_state() == state
    pair.assert_same_next()
