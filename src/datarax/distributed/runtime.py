"""`initialize`: join JAX's distributed runtime as the launcher's environment says."""

from __future__ import annotations

import os

import jax

from datarax.distributed.env import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID


def initialize(*, heartbeat_timeout_seconds: int = 10, initialization_timeout: int = 60) -> bool:
    """Call ``jax.distributed.initialize`` for a process started by the launcher.

    Does nothing (and returns ``False``) outside the launcher, so scripts run alone
    as one process. A short heartbeat timeout makes the survivors of a dead peer
    fail within seconds instead of waiting on it.

    Example:
        >>> initialize()  # not started by the launcher: one process
        False
    """
    coordinator = os.environ.get(ENV_COORDINATOR)
    if not coordinator:
        return False
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=int(os.environ[ENV_NUM_PROCESSES]),
        process_id=int(os.environ[ENV_PROCESS_ID]),
        initialization_timeout=initialization_timeout,
        heartbeat_timeout_seconds=heartbeat_timeout_seconds,
    )
    return True
