"""Shared helpers of the audio operator tests: compiled application and test signals."""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

# ``in_pipeline`` lives one folder up (tests/operators).
sys.path.insert(0, str(Path(__file__).parents[1]))

from in_pipeline import assert_operator_in_pipeline  # noqa: E402

from datarax.operators.audio.base import RecordContext  # noqa: E402

__all__ = [
    "apply",
    "apply_ops",
    "assert_operator_in_pipeline",
    "chirp_mix",
    "context",
    "noise",
]

SR = 16000


@functools.partial(jax.jit, static_argnums=(0, 5))
def _run_ops(graphdef, state, data, record_ids, epoch, seed):
    # (graphdef, state) as the pipeline passes them: operators built alike share a compilation.
    for op in nnx.merge(graphdef, state):
        data, _ = op.apply_batch(data, {}, record_ids, epoch, seed)
    return data


def apply_ops(ops, data, ids, *, epoch=0, seed=0):
    """``apply_batch`` of each of ``ops`` in turn, compiled; returns the data dict."""
    graphdef, state = nnx.split(tuple(ops))
    data = {k: jnp.asarray(v) for k, v in data.items()}
    return _run_ops(graphdef, state, data, jnp.asarray(ids, jnp.int32), jnp.uint32(epoch), seed)


def apply(op, signals, ids=None, *, epoch=0, seed=0, field="audio", extra=None):
    """Run ``op`` on one batch of ``signals`` (NumPy in, NumPy out of ``op``'s target field)."""
    signals = np.asarray(signals)
    ids = np.arange(signals.shape[0]) if ids is None else np.asarray(ids)
    data = {field: signals, **(extra or {})}
    out = apply_ops([op], data, ids, epoch=epoch, seed=seed)
    return np.asarray(out[op.config.target])


def context(count, *, epoch=0, seed=0, data=None):
    """A :class:`RecordContext` for records ``0 .. count - 1`` (for direct ``transform`` calls)."""
    return RecordContext(jnp.arange(count, dtype=jnp.int32), jnp.uint32(epoch), seed, data or {})


def noise(shape, seed=0, scale=0.3):
    """Gaussian float32 test signals."""
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def chirp_mix(batch, length, *, sr=SR, seed=0):
    """Per record: a linear chirp 100 Hz -> sr/4 plus a 440 Hz sine (record-dependent phases)."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) / sr
    duration = length / sr
    f0, f1 = 100.0, sr / 4
    out = []
    for _ in range(batch):
        phase = rng.uniform(0, 2 * np.pi, 2)
        sweep = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration))
        out.append(0.5 * np.sin(sweep + phase[0]) + 0.25 * np.sin(2 * np.pi * 440 * t + phase[1]))
    return np.stack(out).astype(np.float32)
