"""`MapOperator`: a function applied to each array leaf of chosen fields."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
from flax import nnx

from datarax.core.element import Element
from datarax.core.errors import ConfigError, OperatorError, SchemaError
from datarax.core.identity import function_identity
from datarax.core.rng import stream_id
from datarax.operators.element import ElementOperator, ElementOperatorConfig, accepts_key


@dataclass(frozen=True)
class MapOperatorConfig(ElementOperatorConfig):
    """Args:
    fields: Names of the data fields to map (``None`` = every field).
    stochastic, stream_name: as for :class:`ElementOperatorConfig`.
    """

    fields: tuple[str, ...] | None = None

    def validate(self) -> None:
        super().validate()
        if self.fields is not None and (
            isinstance(self.fields, str) or not all(isinstance(f, str) for f in self.fields)
        ):
            raise ConfigError(
                "must be a tuple of field names or None",
                where="MapOperatorConfig.fields",
                expected="e.g. ('image',)",
                found=repr(self.fields),
            )


class MapOperator(ElementOperator):
    """Applies ``fn(leaf)`` (or ``fn(leaf, key)`` when stochastic) to one record's leaves.

    Each leaf of a stochastic map gets its own key, derived from the record's key
    and the leaf's path.

    Example:
        >>> import jax.numpy as jnp
        >>> from datarax.core.element import Element
        >>> scale = MapOperator(MapOperatorConfig(fields=("x",)), fn=lambda x: x / 2)
        >>> scale(Element(data={"x": jnp.float32(3.0), "y": jnp.int32(1)})).data["x"].item()
        1.5
    """

    config_type = MapOperatorConfig
    config: MapOperatorConfig

    def __init__(
        self,
        config: MapOperatorConfig,
        *,
        fn: Callable,
        rngs: nnx.Rngs | None = None,
        name: str | None = None,
    ) -> None:
        self.require_config(config)
        self.leaf_fn = fn
        takes_key = accepts_key(fn, name or "MapOperator")
        self._leaf_takes_key = config.stochastic if takes_key is None else takes_key
        super().__init__(config, fn=None, rngs=rngs, name=name or _map_name(fn))
        if config.stochastic and not self._leaf_takes_key:
            raise OperatorError(
                "a stochastic map's function must accept a key",
                where=self.name,
                expected="fn(leaf, key)",
                found="fn(leaf)",
            )

    def transform(self, element: Element, key: jax.Array | None) -> Element:
        fields = self.config.fields if self.config.fields is not None else tuple(element.data)
        updates = {}
        for field in fields:
            if field not in element.data:
                raise SchemaError(
                    "field not in the element",
                    where=f"{self.name}",
                    expected=f"one of {sorted(element.data)}",
                    found=repr(field),
                )
            updates[field] = jax.tree_util.tree_map_with_path(
                lambda path, leaf, f=field: self._map_leaf(f, path, leaf, key),
                element.data[field],
            )
        return element.update_data(updates)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "fn": function_identity(self.leaf_fn)}

    def _map_leaf(self, field, path, leaf, key):
        if not self._leaf_takes_key:
            return self.leaf_fn(leaf)
        if key is not None:
            key = jax.random.fold_in(key, stream_id(field + jax.tree_util.keystr(path)))
        return self.leaf_fn(leaf, key)


def _map_name(fn: Callable) -> str:
    name = getattr(fn, "__name__", None)
    return "MapOperator" if name in (None, "<lambda>") else f"MapOperator({name})"
