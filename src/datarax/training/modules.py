"""`NNXLoop`: a fused loop whose carry is Flax NNX modules (a model and its optimizer).

The step is written as for ``nnx.jit``: it receives the modules and the batch,
updates the modules in place and returns its metrics. The loop splits the modules
into a graph definition and a state once, carries the state through the scan, and
writes the final state back into the modules after each :meth:`NNXLoop.run`.

Example:
    >>> import jax.numpy as jnp, numpy as np, optax
    >>> from flax import nnx
    >>> from datarax import from_source
    >>> from datarax.sources import MemorySource, MemorySourceConfig
    >>> data = {"x": np.linspace(0, 1, 64, dtype=np.float32)[:, None]}
    >>> data["y"] = 3 * data["x"]
    >>> pipeline = from_source(MemorySource(MemorySourceConfig(), data=data), 16, num_epochs=50)
    >>> model = nnx.Linear(1, 1, rngs=nnx.Rngs(0))
    >>> optimizer = nnx.Optimizer(model, optax.sgd(0.5), wrt=nnx.Param)
    >>> def step(model, optimizer, batch):
    ...     def loss_fn(model):
    ...         return jnp.mean((model(batch["x"]) - batch["y"]) ** 2)
    ...     loss, grads = nnx.value_and_grad(loss_fn)(model)
    ...     optimizer.update(model, grads)
    ...     return loss
    >>> loop = fuse_nnx(pipeline, step, model, optimizer)
    >>> losses = loop.run(steps=200)
    >>> losses.shape, bool(losses[-1] < 1e-3 < losses[0])
    ((200,), True)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flax import nnx

from datarax.training.fused import FusedLoop

if TYPE_CHECKING:
    from datarax.dag.pipeline import Pipeline
    from datarax.dag.state import Cursor

#: ``step(*modules, batch) -> metrics``, updating the modules in place.
ModuleStep = Callable[..., Any]


def fuse_nnx(
    pipeline: Pipeline,
    step: ModuleStep,
    *modules: nnx.Module | nnx.Pytree,
    steps_per_call: int | None = None,
) -> NNXLoop:
    """An :class:`NNXLoop` training ``modules`` with ``step`` on ``pipeline``'s batches.

    Args:
        pipeline: As for :func:`~datarax.training.fuse`.
        step: ``step(*modules, batch) -> metrics``, written as for ``nnx.jit``.
        modules: The modules the step updates (a model, an ``nnx.Optimizer``, ...).
        steps_per_call: Steps per dispatch (default: the full batches of an epoch).

    Raises:
        FusionError: The pipeline cannot be fused; the message says why.
    """
    return NNXLoop(pipeline, step, *modules, steps_per_call=steps_per_call)


class NNXLoop:
    """A :class:`~datarax.training.FusedLoop` over NNX modules (see the module doc)."""

    def __init__(
        self,
        pipeline: Pipeline,
        step: ModuleStep,
        *modules: nnx.Module | nnx.Pytree,
        steps_per_call: int | None = None,
    ) -> None:
        self._modules = modules
        self._graphdef = graphdef = nnx.graphdef(modules)

        def pure(state: Any, batch: Any) -> tuple[Any, Any]:
            live = nnx.merge(graphdef, state)
            metrics = step(*live, batch)
            return nnx.state(live), metrics

        self._loop = FusedLoop(pipeline, pure, steps_per_call=steps_per_call, donate=True)

    @property
    def loop(self) -> FusedLoop:
        """The underlying fused loop (position, state, steps per call)."""
        return self._loop

    @property
    def pipeline(self) -> Pipeline:
        """The pipeline whose batches the step receives."""
        return self._loop.pipeline

    @property
    def cursor(self) -> Cursor:
        """The position of the next step's batch."""
        return self._loop.cursor

    @property
    def done(self) -> bool:
        """Whether the pipeline's epochs are over."""
        return self._loop.done

    def get_state(self) -> dict[str, Any]:
        """The position of the next step (the iterator's state format)."""
        return self._loop.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue from a state of :meth:`get_state` or of a pipeline iterator."""
        self._loop.set_state(state)

    def run(self, steps: int | None = None) -> Any:
        """Run ``steps`` steps (default: to the end of the epoch), updating the modules.

        Returns:
            The step's metrics stacked over the steps run (device arrays).
        """
        state, metrics = self._loop.run(nnx.state(self._modules), steps)
        nnx.update(self._modules, state)
        return metrics
