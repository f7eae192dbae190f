"""Shared fixtures: a compilation counter and small pipelines."""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jax  # noqa: E402
import pytest  # noqa: E402

_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCounter:
    """Counts XLA backend compilations while installed."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: str, *_args, **_kwargs) -> None:
        if event == _COMPILE_EVENT:
            self.count += 1


@pytest.fixture
def compile_counter():
    counter = CompileCounter()
    jax.monitoring.register_event_duration_secs_listener(counter)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(counter)
