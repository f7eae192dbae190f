"""The training scenarios (T16, T256, TCNN): one model, one optimizer, one jitted step.

Every system trains the same Flax NNX model (parameters from ``nnx.Rngs(0)``) with the
same Optax Adam, float32 softmax cross-entropy. The per-batch systems run the loop
their users write::

    for batch in loader:
        state, loss = train_step(state, batch["image"], batch["label"])

where ``train_step`` is a pure function of the model and optimizer state (split once
with ``nnx.split``, jitted once, state donated): the hot loop never walks the NNX graph.
The fused system (``datarax-fused``) compiles the pipeline's transform and the same step
into one ``lax.scan`` per chunk of steps (see its adapter).

What a pass measures (:class:`PassFigures`):

- **steps per second**: train steps of the pass over the pass's wall time, from asking
  the loader for its iterator to the last step's result being ready;
- **wait ratio**: the part of that wall time spent asking the loader for batches, i.e.
  inside ``iter(loader)`` and ``next()`` (for the fused loop, see
  ``adapters/datarax_fused.py``). Work a loader dispatches to a device asynchronously
  is counted where it is waited for, in the step;
- **time to first step** (cold pass only): from the start of the loader's construction
  to the first train step's loss being ready, compilation included.

Example:
    >>> model, optimizer = make_model("mlp16")
    >>> import numpy as np
    >>> image, label = np.zeros((4, 28, 28, 1), np.float32), np.zeros(4, np.int32)
    >>> float(loss_fn(model, image, label)) > 0
    True
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import jax
import numpy as np
import optax
from flax import nnx

from datarax.benchmarking.monitor import ResourceMonitor
from datarax.benchmarking.scenarios import Scenario

#: Adam's learning rate in every training scenario.
LEARNING_RATE = 1e-3
#: Labels of W1 and W2.
NUM_CLASSES = 10

#: Returns an iterator over one pass's training batches (mappings with ``image`` and
#: ``label``: NumPy or JAX arrays).
MakeBatches = Callable[[], Iterator[Mapping[str, Any]]]
#: ``(state, image, label) -> (state, loss)``: the jitted train step.
TrainStep = Callable[[Any, Any, Any], tuple[Any, jax.Array]]


class MLP(nnx.Module):
    """Flattened image, one hidden ReLU layer of ``hidden`` units, 10 logits."""

    def __init__(self, in_features: int, hidden: int, *, rngs: nnx.Rngs) -> None:
        self.hidden = nnx.Linear(in_features, hidden, rngs=rngs)
        self.out = nnx.Linear(hidden, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits of a batch of images ``(batch, height, width, channels)``."""
        x = x.reshape(x.shape[0], -1)
        return self.out(nnx.relu(self.hidden(x)))


class CNN(nnx.Module):
    """Two 3x3 convolutions (16, 32 channels) each with ReLU and 2x2 average pooling,
    then a dense head (128 ReLU units, 10 logits), for 32x32x3 images."""

    def __init__(self, *, rngs: nnx.Rngs) -> None:
        self.conv1 = nnx.Conv(3, 16, (3, 3), rngs=rngs)
        self.conv2 = nnx.Conv(16, 32, (3, 3), rngs=rngs)
        self.dense = nnx.Linear(8 * 8 * 32, 128, rngs=rngs)
        self.out = nnx.Linear(128, NUM_CLASSES, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        """Logits of a batch of images ``(batch, 32, 32, 3)``."""
        x = nnx.avg_pool(nnx.relu(self.conv1(x)), (2, 2), (2, 2))
        x = nnx.avg_pool(nnx.relu(self.conv2(x)), (2, 2), (2, 2))
        x = x.reshape(x.shape[0], -1)
        return self.out(nnx.relu(self.dense(x)))


#: The models of the training scenarios, built from ``nnx.Rngs(0)``.
MODELS: dict[str, Callable[[nnx.Rngs], nnx.Module]] = {
    "mlp16": lambda rngs: MLP(28 * 28, 16, rngs=rngs),
    "mlp256": lambda rngs: MLP(28 * 28, 256, rngs=rngs),
    "cnn": lambda rngs: CNN(rngs=rngs),
}


def make_model(name: str) -> tuple[nnx.Module, nnx.Optimizer]:
    """The model ``name`` (parameters from ``nnx.Rngs(0)``) and its Adam optimizer."""
    model = MODELS[name](nnx.Rngs(0))
    return model, nnx.Optimizer(model, optax.adam(LEARNING_RATE), wrt=nnx.Param)


def loss_fn(model: nnx.Module, image: Any, label: Any) -> jax.Array:
    """Mean softmax cross-entropy of ``model`` on a batch (float32)."""
    logits = model(image)
    return optax.softmax_cross_entropy_with_integer_labels(logits, label).mean()


def nnx_train_step(model: nnx.Module, optimizer: nnx.Optimizer, image: Any, label: Any) -> Any:
    """One Adam step on ``model`` in place; returns the batch's loss (before the update)."""
    loss, grads = nnx.value_and_grad(loss_fn)(model, image, label)
    optimizer.update(model, grads)
    return loss


def pure_train_step(graphdef: Any) -> Callable[[Any, Any, Any], tuple[Any, jax.Array]]:
    """``(state, image, label) -> (state, loss)`` for the ``(model, optimizer)`` split
    into ``graphdef`` and ``state``: a pure function, to jit once and run in a hot loop.

    Example:
        >>> graphdef, state = nnx.split(make_model("mlp16"))
        >>> step = jax.jit(pure_train_step(graphdef))
        >>> image, label = np.ones((2, 28, 28, 1), np.float32), np.arange(2, dtype=np.int32)
        >>> state, first = step(state, image, label)
        >>> _, second = step(state, image, label)
        >>> bool(second < first)
        True
    """

    def step(state: Any, image: Any, label: Any) -> tuple[Any, jax.Array]:
        model, optimizer = nnx.merge(graphdef, state)
        loss = nnx_train_step(model, optimizer, image, label)
        return nnx.state((model, optimizer)), loss

    return step


@dataclass
class PassFigures:
    """What one pass of a training loop measured.

    Args:
        steps: Train steps run.
        wall_s: Seconds from asking for the loader's iterator to the last result.
        wait_s: Seconds of ``wall_s`` spent waiting for the loader (see the module doc).
        first_step_at: ``time.perf_counter()`` when the first step's loss was ready
            (measured in the cold pass only, else ``None``).
        losses: The loss of every step, in order.
    """

    steps: int
    wall_s: float
    wait_s: float
    first_step_at: float | None = None
    losses: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


class TrainLoop(Protocol):
    """A training loop that runs one pass (the scenario's epochs) per call."""

    def run_pass(self, first: bool = False) -> PassFigures:
        """Run one pass; ``first``: also time the first step (the cold pass)."""
        ...


class PerBatchLoop:
    """``for batch in loader: state, loss = train_step(state, image, label)``.

    Args:
        scenario: A training scenario (its ``model``).
        make_batches: One pass of the loader's batches per call.
    """

    def __init__(self, scenario: Scenario, make_batches: MakeBatches) -> None:
        if scenario.model is None:
            raise ValueError(f"scenario {scenario.name} is not a training scenario")
        self._make_batches = make_batches
        graphdef, self.state = nnx.split(make_model(scenario.model))
        self.traces = 0
        step = pure_train_step(graphdef)

        def counted(state: Any, image: Any, label: Any) -> tuple[Any, jax.Array]:
            self.traces += 1  # runs when jax traces the step, not per call
            return step(state, image, label)

        self.train_step: TrainStep = jax.jit(counted, donate_argnums=0)

    def run_pass(self, first: bool = False) -> PassFigures:
        """One pass over the loader, training as it goes."""
        state, train_step, losses = self.state, self.train_step, []
        first_at = None
        start = time.perf_counter()
        loader = WaitTimer(self._make_batches)
        for batch in loader:
            state, loss = train_step(state, batch["image"], batch["label"])
            losses.append(loss)
            if first and first_at is None:
                loss.block_until_ready()
                first_at = time.perf_counter()
        jax.block_until_ready(state)
        wall = time.perf_counter() - start
        self.state = state
        return PassFigures(len(losses), wall, loader.wait_s, first_at, _stack(losses))


class WaitTimer:
    """Iterates over ``make_batches()``, adding up the time spent in the loader.

    The loader's ``iter()`` (called on the first ``next``) and every ``next()``
    count in :attr:`wait_s`.

    Example:
        >>> timer = WaitTimer(lambda: iter([{"x": 1}, {"x": 2}]))
        >>> [b["x"] for b in timer], timer.wait_s >= 0
        ([1, 2], True)
    """

    def __init__(self, make_batches: MakeBatches) -> None:
        self._make_batches = make_batches
        self._iterator: Iterator[Mapping[str, Any]] | None = None
        self.wait_s = 0.0

    def __iter__(self) -> WaitTimer:
        return self

    def __next__(self) -> Mapping[str, Any]:
        began = time.perf_counter()
        try:
            if self._iterator is None:
                self._iterator = iter(self._make_batches())
            return next(self._iterator)
        finally:
            self.wait_s += time.perf_counter() - began


def time_training(
    loop: TrainLoop,
    scenario: Scenario,
    repetitions: int,
    *,
    start: float,
    monitor: ResourceMonitor | None = None,
) -> dict[str, Any]:
    """One cold pass of ``loop``, then ``repetitions`` timed passes; a result row's figures.

    Args:
        loop: The system's training loop, just built.
        scenario: Its training scenario (batch size).
        repetitions: Timed passes after the cold one.
        start: ``time.perf_counter()`` when the loader's construction began: the time
            to first step counts from it.
        monitor: Measures the CPU time of the timed passes when given.

    Returns:
        ``elements_per_s`` (records per second: steps per second x batch size),
        ``steps_per_s`` and ``wait_ratio`` (median, min, max over the timed passes),
        ``first_step_s``, ``steps_per_pass``, ``elements_per_pass``, the first and last
        losses, and with a monitor ``cpu_percent``.
    """
    cold = loop.run_pass(first=True)
    if cold.first_step_at is None:
        raise RuntimeError("the cold pass ran no train step")
    passes = []
    cpu_start = monitor.cpu_seconds() if monitor else 0.0
    timed_start = time.perf_counter()
    for _ in range(repetitions):
        passes.append(loop.run_pass())
    timed_wall = time.perf_counter() - timed_start
    steps = [p.steps / p.wall_s for p in passes]
    records = [s * scenario.batch_size for s in steps]
    waits = [min(p.wait_s / p.wall_s, 1.0) for p in passes]
    out: dict[str, Any] = {
        "elements_per_s": _spread(records),
        "steps_per_s": _spread(steps),
        "wait_ratio": _spread(waits),
        "first_step_s": cold.first_step_at - start,
        "steps_per_pass": passes[-1].steps,
        "elements_per_pass": passes[-1].steps * scenario.batch_size,
        "loss_first": float(cold.losses[0]),
        "loss_last": float(passes[-1].losses[-1]),
    }
    traces = getattr(loop, "traces", None)
    if traces is not None:
        out["step_compiles"] = int(traces)
    if monitor is not None:
        cpu = monitor.cpu_seconds() - cpu_start
        out["cpu_percent"] = 100.0 * cpu / timed_wall if timed_wall else 0.0
    return out


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _stack(losses: list[Any]) -> np.ndarray:
    if not losses:
        return np.zeros(0, np.float32)
    return np.asarray(jax.device_get(losses), np.float32).reshape(-1)
