"""datarax's fused training loop: the pipeline's transform and the train step in one
``lax.scan`` per chunk of steps (:func:`datarax.training.fuse`).

The pipeline is the per-batch system's (a device-resident ``MemorySource``, W1's or W2's
built-in image operators, short last batches dropped), repeated without end; the step is
the same pure train step, so both systems see identical batches and train the same
model::

    loop = fuse(pipeline, step, donate=True)           # step(state, batch) -> (state, metrics)
    while steps_left:
        state, metrics = loop.run(state, steps=chunk)  # one compiled scan per call

A pass runs the scenario's steps (``epochs_per_pass`` x ``steps_per_epoch``) in calls of
``chunk = loop.steps_per_call`` steps (by default the full batches of an epoch).
``loop.run`` returns its metrics as device arrays without waiting for its steps, and
the pass keeps them so until its end, as the per-batch loops keep their losses: the
host work of the next call (record ids, the programs' look-up, the dispatch) overlaps
the steps of the previous one. That host work is the fused loop's **wait**, measured
as the main thread's CPU time inside ``loop.run`` (``time.thread_time``; the steps run
on XLA's threads), over the pass's wall time. The cold pass's first
call runs one step, so that its **time to first step** ends when that step's loss is
ready, as it does for the per-batch loops (the one-step call runs the same compiled
scan, skipping the other steps).
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import jax
import numpy as np
from flax import nnx

from datarax.benchmarking.adapters.base import BuildContext, MakePass
from datarax.benchmarking.scenarios import SCENARIOS, Scenario
from datarax.benchmarking.training import PassFigures, make_model, pure_train_step

_NO_FUSE = "datarax.training (the fused API, fuse) cannot be found in this datarax"
UNSUPPORTED: dict[str, str] = {
    name: _NO_FUSE
    for name, s in SCENARIOS.items()
    if s.family == "training" and importlib.util.find_spec("datarax.training") is None
}

#: XLA:CPU runs convolution gradients inside a loop body (the fused scan's body, or a
#: ``lax.cond`` branch) 10-100x slower than at the top level of a program
#: (jax-ml/jax#12868; here a kernel gradient took 14 s in a loop against 0.12 s outside):
#: the fused CNN ran 0.3-0.5 steps/s against 8 for the per-batch loop, so one pass of
#: the ci_cpu size outlasts the whole run. Remove the entry once the fused loop avoids it.
UNSUPPORTED_ON: dict[tuple[str, str], str] = {
    ("TCNN", "cpu"): "XLA:CPU runs convolution gradients inside the fused scan 10-100x "
    "slower than in a per-step program (jax-ml/jax#12868); measured on accelerators only",
}


def build(scenario: Scenario, context: BuildContext) -> MakePass:
    """The fused loop has no loader passes: it runs the training scenarios only."""
    raise ValueError(f"datarax-fused runs the training scenarios, not {scenario.name}")


def build_training(scenario: Scenario, context: BuildContext) -> FusedLoop:
    """The fused training loop over the scenario's datarax image pipeline."""
    from datarax.benchmarking.adapters.datarax import datarax_image_pipeline

    pipeline = datarax_image_pipeline(scenario, context.data, context.stats, num_epochs=None)
    return FusedLoop(scenario, pipeline)


class FusedLoop:
    """``loop.run(state, steps=chunk)`` until a pass's steps are done (see the module doc).

    Args:
        scenario: A training scenario (its model, batch size and steps per pass).
        pipeline: The datarax pipeline, with no end (``num_epochs=None``).
    """

    def __init__(self, scenario: Scenario, pipeline: Any) -> None:
        from datarax.training import fuse

        if scenario.model is None:
            raise ValueError(f"scenario {scenario.name} is not a training scenario")
        graphdef, self.state = nnx.split(make_model(scenario.model))
        train_step = pure_train_step(graphdef)

        def step(state: Any, batch: Any) -> tuple[Any, dict[str, jax.Array]]:
            state, loss = train_step(state, batch["image"], batch["label"])
            return state, {"loss": loss}

        self.loop = fuse(pipeline, step, donate=True)
        self.steps_per_pass = scenario.epochs_per_pass * scenario.steps_per_epoch

    def run_pass(self, first: bool = False) -> PassFigures:
        """One pass of the scenario's steps, ``loop.steps_per_call`` steps per call."""
        state, host, first_at = self.state, 0.0, None
        losses: list[np.ndarray] = []
        done = 0
        start = time.perf_counter()
        while done < self.steps_per_pass:
            chunk = 1 if first and first_at is None else self.loop.steps_per_call
            cpu = time.thread_time()
            state, metrics = self.loop.run(state, steps=min(chunk, self.steps_per_pass - done))
            host += time.thread_time() - cpu
            loss = metrics["loss"]  # a device array: its shape is known before it is
            if loss.shape[0] == 0:
                raise RuntimeError("the fused loop ran no step: its pipeline ended")
            if first_at is None:
                loss.block_until_ready()
                first_at = time.perf_counter()
            losses.append(loss)
            done += loss.shape[0]
        jax.block_until_ready((state, losses))
        wall = time.perf_counter() - start
        self.state = state
        stacked = np.concatenate([np.asarray(v) for v in losses])
        return PassFigures(done, wall, host, first_at if first else None, stacked)
