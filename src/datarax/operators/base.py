"""`Operator`: a batch transformation the compiled pipeline runs on the device.

An operator maps a batch (``data`` and per-record ``states``, each a dict of arrays
with the batch on axis 0) to a new batch, as a pure JAX function. Stochastic
operators draw one key per record from (their stream key, pipeline seed, epoch,
record id), so a record's randomness never depends on where it sits in a batch.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import Config
from datarax.core.errors import OperatorError, SchemaError
from datarax.core.module import DataraxModule
from datarax.core.rng import mix32, record_keys, stream_key

Fields = dict[str, Any]


class OperatorKey(nnx.Variable):
    """The base random key of a stochastic operator's stream (not a learnable parameter)."""


class Operator(DataraxModule, abc.ABC):
    """Base of device-plane operators.

    Subclasses implement :meth:`apply_batch`. Stochastic ones call
    :meth:`keys_for` to get their per-record keys.
    """

    #: Whether the operator sees its batch as a whole (MixUp pairs records of a
    #: batch): a pipeline then hands it one batch at a time, never a chunk of
    #: several, so its output does not depend on how batches are grouped in calls.
    mixes_batch: bool = False

    def __init__(
        self,
        config: Config,
        *,
        stochastic: bool,
        stream_name: str | None,
        rngs: nnx.Rngs | None,
        name: str | None = None,
    ) -> None:
        super().__init__(config, name=name)
        self.stochastic = stochastic
        self.stream_name = stream_name or "default"
        if stochastic:
            if rngs is None:
                raise OperatorError(
                    "a stochastic operator needs random keys",
                    where=self.name,
                    expected="rngs=nnx.Rngs(seed)",
                    found="rngs=None",
                )
            self.base_key = OperatorKey(_stream_base_key(rngs, self.stream_name))
        self._specs = _SpecMemo()

    @abc.abstractmethod
    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        """Transform one batch; ``record_ids`` and ``epoch`` identify the records."""

    def keys_for(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array:
        """One key per record, from (stream key, pipeline seed, epoch, record id)."""
        key = stream_key(self.base_key[...], self.stream_name, seed)
        return record_keys(key, epoch, record_ids)

    def fusion_group(self) -> Any:
        """Operators with equal, non-``None`` groups run as one when adjacent.

        The compiler hands each run of adjacent operators of one group to
        :meth:`apply_fused` of the first; the result must equal applying them one by
        one. ``None`` (the default) means this operator always runs alone.
        """
        return None

    @classmethod
    def apply_fused(
        cls,
        operators: Sequence[Operator],
        data: Fields,
        states: Fields,
        record_ids: jax.Array,
        epoch: jax.Array,
        seed: int,
    ) -> tuple[Fields, Fields]:
        """Apply a run of operators of one fusion group (default: one by one)."""
        for op in operators:
            data, states = op.apply_batch(data, states, record_ids, epoch, seed)
        return data, states

    def random_words(self, record_ids: jax.Array, epoch: jax.Array, seed: int) -> jax.Array:
        """Two pseudo-random ``uint32`` words per record, shape ``(batch, 2)``.

        They are the data of the record's key (a Threefry hash of stream key, seed,
        epoch and record id), so a batched operator gets its per-record random
        numbers without drawing from the key again.
        """
        words = jax.random.key_data(self.keys_for(record_ids, epoch, seed))
        return words.reshape(record_ids.shape[0], -1)[:, :2]

    def uniforms(self, record_ids: jax.Array, epoch: jax.Array, seed: int, count: int) -> jax.Array:
        """``count`` uniform floats in [0, 1) per record, shape ``(batch, count)``.

        Drawn from the record's key, so they depend only on (stream, seed, epoch,
        record id): see :func:`uniforms_from_words`.
        """
        return uniforms_from_words(self.random_words(record_ids, epoch, seed), count)

    def fingerprint(self) -> dict[str, Any]:
        """What determines this operator's output apart from its parameter values."""
        return {
            "type": type(self).__name__,
            "name": self.name,
            "config": {k: repr(v) for k, v in self.config.to_dict().items()},
        }

    def check_spec(self, spec_in: Any, spec_out: Any) -> None:
        """Raise if this operator's output spec changed for the same input spec.

        Called at every trace: a function whose output shape or dtype differs between
        two traces of the same input would silently change the stream.
        """
        seen = self._specs.get(spec_in)
        if seen is None:
            self._specs[spec_in] = spec_out
            return
        if seen != spec_out:
            field, expected, found = _first_difference(seen, spec_out)
            raise SchemaError(
                "operator output changed between calls with the same input",
                where=f"{self.name}, field '{field}'",
                expected=expected,
                found=found,
            )


class ConfiguredOperator(Operator):
    """An operator built from its config alone: ``Thing(ThingConfig(...), rngs=..., name=...)``.

    The config must have a ``stream_name`` (``None``: the class name names the
    random stream). Whether the operator draws random numbers is decided from its
    config by :meth:`is_stochastic`. The image and audio operators are built so.
    """

    stochastic_default: ClassVar[bool] = False

    def __init__(
        self, config: Any, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        self.require_config(config)
        stream = config.stream_name or type(self).__name__
        super().__init__(
            config, stochastic=self.is_stochastic(config), stream_name=stream, rngs=rngs, name=name
        )

    @classmethod
    def is_stochastic(cls, config: Any) -> bool:
        """Whether operators built from ``config`` draw random numbers per record.

        ``stochastic_default`` unless a subclass decides from its config (an
        operator with a ``(low, high)`` magnitude is stochastic, one with a fixed
        value is not).
        """
        return cls.stochastic_default


def field_of(data: Fields, field: str, where: str, kind: str = "") -> Any:
    """``data[field]``, or a :class:`SchemaError` naming ``where`` and the fields there are.

    ``kind`` says what the field holds in the message (``"image"``, ``"waveform"``).

    Example:
        >>> field_of({"x": 1}, "image", "Rotate", "image")
        Traceback (most recent call last):
        ...
        datarax.core.errors.SchemaError: Rotate: image field missing; expected a field \
'image' among ['x'], found no such field
    """
    if field not in data:
        raise SchemaError(
            f"{kind} field missing".strip(),
            where=where,
            expected=f"a field '{field}' among {sorted(data)}",
            found="no such field",
        )
    return data[field]


def uniform(words: jax.Array) -> jax.Array:
    """A float in [0, 1) per ``uint32`` word (its top 24 bits)."""
    return (words >> 8).astype(jnp.float32) * (1.0 / (1 << 24))


def uniforms_from_words(words: jax.Array, count: int) -> jax.Array:
    """``count`` uniforms in [0, 1) per record from its ``(B, 2)`` random words.

    The first two are the words themselves (24 bits each); column ``c >= 2`` is an
    integer hash of both words and ``c``. One vectorised hash is cheap to compile,
    where drawing from each record's key again (a vmapped ``jax.random.uniform``)
    costs seconds of compilation on CPU.
    """
    first = uniform(words[:, : min(count, 2)])
    if count <= 2:
        return first
    columns = jnp.arange(2, count, dtype=jnp.uint32) * jnp.uint32(0x9E3779B9)
    extra = mix32(jnp, words[:, :1], mix32(jnp, words[:, 1:2], columns[None, :]))
    return jnp.concatenate([first, uniform(extra)], axis=1)


def apply_in_order(
    operators: Sequence[Operator],
    data: Fields,
    states: Fields,
    record_ids: jax.Array,
    epoch: jax.Array,
    seed: int,
) -> tuple[Fields, Fields]:
    """Apply ``operators`` one after another, each with its own per-record keys.

    Adjacent operators of one fusion group run as one, through ``apply_fused`` of
    the first (see :meth:`Operator.fusion_group`), as they do in a pipeline.
    """
    for run in fusion_runs(operators):
        data, states = type(run[0]).apply_fused(run, data, states, record_ids, epoch, seed)
    return data, states


def fusion_runs(operators: Sequence[Operator]) -> list[list[Operator]]:
    """``operators`` cut into runs of adjacent ones that share a non-``None`` fusion group.

    An operator whose group is ``None`` is a run of its own.
    """
    runs: list[list[Operator]] = []
    for op in operators:
        group = op.fusion_group()
        if runs and group is not None and runs[-1][0].fusion_group() == group:
            runs[-1].append(op)
        else:
            runs.append([op])
    return runs


class _SpecMemo(dict):
    """Output specs seen per input spec.

    All memos compare equal, so two operators built alike (same function and config)
    have equal graph definitions and share compiled code.
    """

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(_SpecMemo)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _SpecMemo)


def _stream_base_key(rngs: nnx.Rngs, stream_name: str) -> jax.Array:
    # Read the stream's key without drawing from it, so building the operator is pure.
    stream = getattr(rngs, stream_name) if stream_name in _stream_names(rngs) else rngs.default
    return stream.key[...]


def _stream_names(rngs: nnx.Rngs) -> set[str]:
    return {name for name, value in vars(rngs).items() if isinstance(value, nnx.RngStream)}


def spec_of(tree: Any) -> tuple:
    """Hashable (field path, shape, dtype) description of a pytree of arrays.

    Paths read like field names: ``image``, ``meta/size``; entries of an element's
    ``state`` (the second item of a ``(data, state)`` pair) read ``state:name``.
    """
    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return tuple((_path_name(path), tuple(leaf.shape), str(leaf.dtype)) for path, leaf in leaves)


def _path_name(path) -> str:
    parts = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
    if len(parts) > 1 and parts[0] in ("0", "1"):
        prefix = "state:" if parts[0] == "1" else ""
        return prefix + "/".join(parts[1:])
    return "/".join(parts)


def _first_difference(expected: tuple, found: tuple) -> tuple[str, str, str]:
    e, f = dict((p, (s, d)) for p, s, d in expected), dict((p, (s, d)) for p, s, d in found)
    for path in list(e) + [p for p in f if p not in e]:
        if e.get(path) != f.get(path):
            fmt = lambda v: "absent" if v is None else f"{v[1]}{v[0]}"  # noqa: E731
            return path, fmt(e.get(path)), fmt(f.get(path))
    return "?", str(expected), str(found)
