"""Start N local processes of a script on JAX's distributed runtime.

Usage::

    python -m datarax.distributed.launch -n 2 script.py [script args...]
    python -m datarax.distributed.launch -n 4 --devices-per-process 2 script.py

Each process gets ``DATARAX_COORDINATOR`` (``127.0.0.1:<free port>``),
``DATARAX_NUM_PROCESSES`` and ``DATARAX_PROCESS_ID`` in its environment (and, with
``--devices-per-process``, that many simulated CPU devices); the script calls
:func:`datarax.distributed.initialize`. When a process fails or is killed, the
launcher stops the others within ``--grace`` seconds and exits non-zero, naming the
process and how it ended: a dead peer never leaves the others hanging.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

from datarax.distributed.env import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def process_env(
    process_id: int, num_processes: int, port: int, devices_per_process: int | None
) -> dict[str, str]:
    """The environment of process ``process_id``."""
    env = dict(os.environ)
    env[ENV_COORDINATOR] = f"127.0.0.1:{port}"
    env[ENV_NUM_PROCESSES] = str(num_processes)
    env[ENV_PROCESS_ID] = str(process_id)
    if devices_per_process:
        flag = f"--xla_force_host_platform_device_count={devices_per_process}"
        env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {flag}".strip()
        env.setdefault("JAX_PLATFORMS", "cpu")
    return env


def describe_exit(code: int) -> str:
    """``exited with code 3`` or ``was killed by SIGKILL``."""
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"


def launch(
    script: Sequence[str],
    num_processes: int,
    *,
    devices_per_process: int | None = None,
    grace: float = 5.0,
    timeout: float | None = None,
) -> int:
    """Run ``python script...`` in ``num_processes`` processes; returns the exit code.

    Returns 0 when every process exits with 0. Otherwise the remaining processes
    are terminated (killed after ``grace`` seconds), a line naming the first failed
    process goes to stderr, and 1 is returned.
    """
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, *script],
            env=process_env(i, num_processes, port, devices_per_process),
        )
        for i in range(num_processes)
    ]
    deadline = None if timeout is None else time.monotonic() + timeout
    failure: str | None = None
    try:
        while True:
            codes = [p.poll() for p in procs]
            failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                i, code = failed[0]
                failure = f"process {i} of {num_processes} {describe_exit(code)}"
                break
            if all(c == 0 for c in codes):
                return 0
            if deadline is not None and time.monotonic() > deadline:
                failure = f"the processes did not finish within {timeout:g} s"
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        failure = "interrupted"
    _stop(procs, grace)
    print(f"datarax.distributed.launch: {failure}; stopped the other processes", file=sys.stderr)
    return 1


def _stop(procs: list[subprocess.Popen], grace: float) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    end = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(timeout=max(0.0, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m datarax.distributed.launch", description=__doc__.split("\n")[0]
    )
    parser.add_argument("-n", "--num-processes", type=int, required=True)
    parser.add_argument("--devices-per-process", type=int, default=None)
    parser.add_argument("--grace", type=float, default=5.0, help="seconds before SIGKILL")
    parser.add_argument("--timeout", type=float, default=None, help="stop after this long")
    parser.add_argument("script", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    if args.num_processes < 1 or not args.script:
        parser.error("give -n N (N >= 1) and a script")
    return launch(
        args.script,
        args.num_processes,
        devices_per_process=args.devices_per_process,
        grace=args.grace,
        timeout=args.timeout,
    )


if __name__ == "__main__":
    sys.exit(main())
