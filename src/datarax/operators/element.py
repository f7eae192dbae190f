"""`ElementOperator`: a per-record function, vmapped over the batch."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import Config, require_bool
from datarax.core.element import Element
from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.core.identity import function_identity
from datarax.operators.base import Fields, Operator, spec_of

ElementFn = Callable[..., Element]


@dataclass(frozen=True)
class ElementOperatorConfig(Config):
    """Args:
    stochastic: Whether the function takes a random key.
    stream_name: Name of the random stream (keys differ between names).
    """

    stochastic: bool = False
    stream_name: str | None = None

    def validate(self) -> None:
        require_bool(self, "stochastic")
        if self.stream_name is not None and (
            not isinstance(self.stream_name, str) or not self.stream_name
        ):
            raise ConfigError(
                "must be a non-empty string or None",
                where=f"{type(self).__name__}.stream_name",
                expected="a name such as 'augmentations'",
                found=repr(self.stream_name),
            )


class ElementOperator(Operator):
    """Applies ``fn(element, key)`` to every record of a batch with ``jax.vmap``.

    Deterministic operators are called with ``key=None``; stochastic ones with the
    record's own key. Subclasses may override :meth:`transform` instead of passing
    ``fn`` (to use ``nnx.Param`` attributes, for example).

    Example:
        >>> import jax.numpy as jnp
        >>> from datarax.core.element import Element
        >>> double = ElementOperator(ElementOperatorConfig(),
        ...     fn=lambda e, key=None: e.update_data({"x": e.data["x"] * 2}))
        >>> double(Element(data={"x": jnp.float32(1.5)})).data["x"].item()
        3.0
    """

    config_type = ElementOperatorConfig
    config: ElementOperatorConfig

    def __init__(
        self,
        config: ElementOperatorConfig,
        *,
        fn: ElementFn | None = None,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        if fn is None and type(self).transform is ElementOperator.transform:
            raise OperatorError(
                "no function given",
                where=name or type(self).__name__,
                expected="fn=callable(element, key)",
                found="fn=None",
            )
        super().__init__(
            config,
            stochastic=config.stochastic,
            stream_name=config.stream_name,
            rngs=rngs,
            name=name or _default_name(fn, type(self)),
        )
        self.fn = fn
        takes_key = True if fn is None else accepts_key(fn, self.name)
        self._pass_key = config.stochastic if takes_key is None else takes_key
        if config.stochastic and not self._pass_key:
            raise OperatorError(
                "a stochastic operator's function must accept a key",
                where=self.name,
                expected="fn(element, key)",
                found="fn(element)",
            )

    def transform(self, element: Element, key: jax.Array | None) -> Element:
        """The per-record function (``fn`` unless overridden)."""
        fn = self.fn
        assert fn is not None  # subclasses without fn override transform
        return fn(element, key) if self._pass_key else fn(element)

    def __call__(self, element: Element, key: jax.Array | None = None) -> Element:
        """Apply to one unbatched element."""
        if self.stochastic and key is None:
            raise OperatorError(
                "a stochastic operator needs a key",
                where=self.name,
                expected="op(element, key)",
                found="key=None",
            )
        return self._checked(element, key)

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        keys = self.keys_for(record_ids, epoch, seed) if self.stochastic else None

        def one(d, s, rid, key):
            out = self._checked(Element(d, s, {"record_id": rid}), key)
            self.check_spec(spec_of((d, s)), spec_of((out.data, out.state)))
            return out.data, out.state

        in_axes = (0, 0, 0, 0 if keys is not None else None)
        return jax.vmap(one, in_axes=in_axes)(data, states, record_ids, keys)

    def fingerprint(self) -> dict[str, Any]:
        fn = self.fn if self.fn is not None else type(self).transform
        return {**super().fingerprint(), "fn": function_identity(fn)}

    def _checked(self, element: Element, key: jax.Array | None) -> Element:
        out = self.transform(element, key)
        if not isinstance(out, Element):
            raise SchemaError(
                "function must return an Element",
                where=self.name,
                expected="Element (use element.update_data(...))",
                found=type(out).__name__,
            )
        for path, leaf in jax.tree_util.tree_leaves_with_path((out.data, out.state)):
            if not isinstance(leaf, (jax.Array, jnp.ndarray)) and not hasattr(leaf, "dtype"):
                raise SchemaError(
                    "function returned a non-array value",
                    where=f"{self.name}, field {jax.tree_util.keystr(path)}",
                    expected="a JAX array",
                    found=type(leaf).__name__,
                )
        return out


def accepts_key(fn: Callable, where: str) -> bool | None:
    """Whether ``fn`` takes a key argument; ``None`` when its signature cannot tell.

    Callables taking ``*args`` (NumPy-style ufuncs, for example) or without an
    inspectable signature are called with a key only by stochastic operators.

    Raises:
        OperatorError: ``fn`` is not callable, or takes no argument.
    """
    if not callable(fn):
        raise OperatorError(
            "not a function",
            where=where,
            expected="fn=callable(element) or callable(element, key)",
            found=f"{type(fn).__name__}: {fn!r}"[:200],
        )
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 2:
        return True
    if any(p.kind == p.VAR_POSITIONAL for p in params):
        return None
    if len(positional) == 1:
        return False
    raise OperatorError(
        "function takes no element argument",
        where=where,
        expected="fn(element) or fn(element, key)",
        found=f"fn{inspect.signature(fn)}",
    )


def _default_name(fn: Callable | None, cls: type) -> str:
    name = getattr(fn, "__name__", None)
    return cls.__name__ if name in (None, "<lambda>") else f"{cls.__name__}({name})"
