"""`from_function`: any JAX function of one field (dm_pix, augmax, jax.numpy) as an operator.

A function of one image, ``fn(image)`` or, when stochastic, ``fn(image, key)``, is
vmapped over the batch; with ``batched=True`` it gets the whole batch instead,
``fn(images)`` or ``fn(images, keys)``. The key of a record is the operator's
per-record key, derived from (operator key, stream, pipeline seed, epoch, record id),
so the record is transformed the same way at any batch size or position.

Example:
    >>> import dm_pix as pix
    >>> from flax import nnx
    >>> contrast = from_function(lambda image: pix.adjust_contrast(image, 1.5))
    >>> brighten = from_function(
    ...     lambda image, key: pix.random_brightness(key, image, 0.2),
    ...     stochastic=True, rngs=nnx.Rngs(0))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import jax
from flax import nnx

from datarax.core.config import Config, require_bool
from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.core.identity import function_identity
from datarax.operators.base import Fields, Operator, field_of, spec_of
from datarax.operators.element import accepts_key

FieldFn = Callable[..., jax.Array]

__all__ = ["FunctionOperator", "FunctionOperatorConfig", "from_function"]


@dataclass(frozen=True)
class FunctionOperatorConfig(Config):
    """Args:
    field: The data field the function transforms (its result replaces it).
    stochastic: Whether the function takes a key: ``fn(value, key)``.
    batched: Whether the function takes the whole batch (``fn(values[, keys])``,
        leading axis the batch) instead of one record's value.
    stream_name: Random stream of a stochastic operator (default: named after the
        function and a digest of its code).
    """

    field: str = "image"
    stochastic: bool = False
    batched: bool = False
    stream_name: str | None = None

    def validate(self) -> None:
        if not isinstance(self.field, str) or not self.field:
            raise ConfigError(
                "must be a field name",
                where="FunctionOperatorConfig.field",
                expected="a non-empty string",
                found=repr(self.field),
            )
        require_bool(self, "stochastic")
        require_bool(self, "batched")
        if self.stream_name is not None and (
            not isinstance(self.stream_name, str) or not self.stream_name
        ):
            raise ConfigError(
                "must be a non-empty string or None",
                where="FunctionOperatorConfig.stream_name",
                expected="a name such as 'augmentations'",
                found=repr(self.stream_name),
            )


class FunctionOperator(Operator):
    """Runs a JAX function on one field of every record (vmapped) or of the batch.

    Deterministic functions are called without a key; stochastic ones with the
    record's key (one key per record, ``(B,)`` keys when batched). The function's
    output may change the field's shape or dtype, but must be the same for the
    same input every time (checked at each trace).

    Example:
        >>> import jax.numpy as jnp
        >>> op = FunctionOperator(FunctionOperatorConfig(field="x"), fn=jnp.sqrt)
    """

    config_type = FunctionOperatorConfig
    config: FunctionOperatorConfig
    differentiable_in: ClassVar[tuple[str, ...]] = ("input",)  # where the function is
    reference: ClassVar[str] = "the wrapped function called on each record by hand"

    def __init__(
        self,
        config: FunctionOperatorConfig,
        *,
        fn: FieldFn,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        name = name or _default_name(fn)
        takes_key = accepts_key(fn, name)
        if config.stochastic and takes_key is False:
            form = "fn(images, keys)" if config.batched else "fn(image, key)"
            raise OperatorError(
                "a stochastic function must accept a key",
                where=name,
                expected=form,
                found="a function of one argument",
            )
        super().__init__(
            config,
            stochastic=config.stochastic,
            stream_name=config.stream_name or function_identity(fn),
            rngs=rngs,
            name=name,
        )
        self.fn = fn

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        field = self.config.field
        values = field_of(data, field, self.name)
        args: tuple[Any, ...] = (values,)
        if self.stochastic:
            args += (self.keys_for(record_ids, epoch, seed),)
        out = self.fn(*args) if self.config.batched else jax.vmap(self.fn)(*args)
        self._check_output(values, out)
        self.check_spec(spec_of({field: values}), spec_of({field: out}))
        return {**data, field: out}, states

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "fn": function_identity(self.fn)}

    def _check_output(self, values: jax.Array, out: Any) -> None:
        where = f"{self.name}, field '{self.config.field}'"
        if not hasattr(out, "shape") or not hasattr(out, "dtype"):
            raise SchemaError(
                "function returned a non-array value",
                where=where,
                expected="a JAX array",
                found=type(out).__name__,
            )
        if out.ndim == 0 or out.shape[0] != values.shape[0]:
            raise SchemaError(
                "batched function changed the batch size",
                where=where,
                expected=f"leading axis {values.shape[0]}",
                found=f"shape {tuple(out.shape)}",
            )


def from_function(
    fn: FieldFn,
    *,
    field: str = "image",
    stochastic: bool = False,
    batched: bool = False,
    name: str | None = None,
    stream_name: str | None = None,
    rngs: nnx.Rngs | None = None,
) -> FunctionOperator:
    """An operator applying ``fn`` to ``field`` of every record, in one call.

    Args:
        fn: ``fn(image)`` or, when ``stochastic``, ``fn(image, key)``; with
            ``batched`` it takes the batch: ``fn(images)`` / ``fn(images, keys)``.
            Functions whose key comes first (dm_pix, augmax) are wrapped in a lambda.
        field: The field transformed.
        stochastic: Hand ``fn`` each record's key.
        batched: Call ``fn`` once on the batch instead of vmapping it.
        name: Display name (default: derived from ``fn``).
        stream_name: Random stream (default: named after ``fn`` and a digest of its
            code, so two different functions draw unrelated keys).
        rngs: Source of the operator's base key when stochastic (default
            ``nnx.Rngs(0)``: keys then differ by pipeline seed, stream, epoch and record).

    Example:
        >>> import augmax
        >>> chain = augmax.Chain(augmax.RandomBrightness(), augmax.HorizontalFlip())
        >>> op = from_function(lambda image, key: chain(key, image), stochastic=True)
    """
    config = FunctionOperatorConfig(
        field=field, stochastic=stochastic, batched=batched, stream_name=stream_name
    )
    if config.stochastic and rngs is None:
        rngs = nnx.Rngs(0)
    return FunctionOperator(config, fn=fn, rngs=rngs, name=name)


def _default_name(fn: Callable) -> str:
    name = getattr(fn, "__name__", None)
    return "FunctionOperator" if name in (None, "<lambda>") else f"FunctionOperator({name})"
