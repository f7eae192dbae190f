"""`DataraxModule`: the base of every component (sources, operators, samplers).

Components are Flax NNX modules built as ``Thing(ThingConfig(...), *, rngs=..., name=...)``,
so learnable parameters are ``nnx.Param`` and gradients flow through them.
"""

from __future__ import annotations

from flax import nnx

from datarax.core.config import Config
from datarax.core.errors import ConfigError


class DataraxModule(nnx.Module):
    """Base module holding a frozen config and a display name.

    Args:
        config: The component's frozen config.
        name: A name shown in errors and pipeline descriptions (defaults to the class name).
    """

    config_type: type[Config] = Config

    def __init__(self, config: Config, *, name: str | None = None) -> None:
        self.require_config(config)
        self.config = config
        self.name = name or type(self).__name__

    @classmethod
    def require_config(cls, config: object) -> None:
        """Raise :class:`ConfigError` unless ``config`` is this module's config type."""
        if not isinstance(config, cls.config_type):
            raise ConfigError(
                "wrong config type",
                where=cls.__name__,
                expected=cls.config_type.__name__,
                found=type(config).__name__,
            )
