"""Batch-level mixing: `MixUp` and `CutMix`.

Unlike per-record operators these see the whole batch: each record is mixed with a
*partner* record of the same batch. The partner, the mixing weight ``lambda`` and
the CutMix box all come from the records' own keys (operator stream, pipeline seed,
epoch, record id), so a batch is mixed the same way whenever it is computed: the
stream is reproducible and resumes exactly.

Pairing: every record gets a score (the first random word of its key); the batch's
distinct records, sorted by (score, record id), form one cycle, and each record's
partner is the next one in it. So the pairing is a permutation of the batch in which
every record is some other record's partner exactly once (when the batch holds two
or more distinct records), and it depends on *which* records share the batch, not
on their order. Rows repeating a record id (the padding of a short last batch) get
exactly the output of the row they repeat and never change the others' partners.

Batch-size dependence: a record's ``lambda`` (and CutMix box) depends only on the
record, but its partner is drawn from its batch, so a record's output changes when
the batch size (or the shuffle) puts it in another batch. These operators therefore
cannot give the same output per record at every batch size, unlike per-record
operators; everything else of the determinism contract holds.

In a pipeline the operator is handed one batch at a time (``mixes_batch``), however
many batches a compiled call computes, so records are paired within their batch
and a resumed iterator pairs them exactly as an uninterrupted one.

Labels: integer class labels ``(B,)`` become one-hot vectors of ``num_classes``;
soft labels ``(B, K)`` (floats) are mixed as they are. Both results are ``float32``
and every mixed label sums to the sum of its inputs' (1 for one-hot labels).
"""

from __future__ import annotations

import abc
import math
import numbers
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from datarax.core.config import Config, check_int, require_bool
from datarax.core.errors import ConfigError, SchemaError
from datarax.operators.base import ConfiguredOperator, Fields, uniform
from datarax.operators.image.noise import back_to, compute_dtype
from datarax.operators.image.occlusion import box_mask

__all__ = [
    "CutMix",
    "CutMixConfig",
    "MixUp",
    "MixUpConfig",
    "partners",
]


@dataclass(frozen=True)
class MixUpConfig(Config):
    """Args:
    image_field: The data field mixed as inputs (any shape per record for MixUp;
        ``(H, W)`` or ``(H, W, C)`` images for CutMix).
    label_field: The labels: integer classes ``(B,)`` or soft labels ``(B, K)``.
    num_classes: Classes of integer labels (needed for them; checked against soft labels).
    alpha: ``lambda ~ Beta(alpha, alpha)`` per record (``alpha > 0``).
    probability: Chance that a record is mixed at all (``lambda = 1`` otherwise).
    learnable: Hold ``alpha`` in an ``nnx.Param`` (MixUp only: ``lambda`` is
        reparametrised, so gradients reach ``alpha``).
    stream_name: Random stream of the operator.
    """

    image_field: str = "image"
    label_field: str = "label"
    num_classes: int | None = None
    alpha: float = 1.0
    probability: float = 1.0
    learnable: bool = False
    stream_name: str | None = None

    def validate(self) -> None:
        name = type(self).__name__
        for field in ("image_field", "label_field"):
            value = getattr(self, field)
            if not isinstance(value, str) or not value:
                raise ConfigError(
                    "must be a field name",
                    where=f"{name}.{field}",
                    expected="a non-empty string",
                    found=repr(value),
                )
        if self.image_field == self.label_field:
            raise ConfigError(
                "images and labels must be different fields",
                where=f"{name}.label_field",
                expected=f"a field other than {self.image_field!r}",
                found=repr(self.label_field),
            )
        check_int(self.num_classes, where=f"{name}.num_classes", minimum=1, allow_none=True)
        alpha = self.alpha
        if not _is_real(alpha) or not math.isfinite(alpha) or alpha <= 0:
            raise ConfigError(
                "alpha must be positive",
                where=f"{name}.alpha",
                expected="a finite number > 0",
                found=repr(alpha),
            )
        if not _is_real(self.probability) or not 0.0 <= self.probability <= 1.0:
            raise ConfigError(
                "probability out of range",
                where=f"{name}.probability",
                expected="a number in [0, 1]",
                found=repr(self.probability),
            )
        require_bool(self, "learnable")


@dataclass(frozen=True)
class CutMixConfig(MixUpConfig):
    """The fields of :class:`MixUpConfig`; ``learnable`` is refused (box sizes are integers)."""

    def validate(self) -> None:
        super().validate()
        if self.learnable:
            raise ConfigError(
                "CutMix is not differentiable in alpha",
                where="CutMixConfig.learnable",
                expected="False",
                found=repr(self.learnable),
            )


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def partners(scores: jax.Array, record_ids: jax.Array) -> jax.Array:
    """The batch row each row is mixed with ``(B,)`` int32 (see the module doc).

    Distinct records sorted by ``(score, record id)`` form one cycle; a row
    repeating an earlier record id gets the partner of that record.

    Example:
        >>> import jax.numpy as jnp
        >>> partners(jnp.array([30, 10, 20]), jnp.array([7, 8, 9])).tolist()
        [1, 2, 0]
        >>> partners(jnp.array([30, 10, 20, 30]), jnp.array([7, 8, 9, 7])).tolist()
        [1, 2, 0, 1]
    """
    order = jnp.lexsort((record_ids, scores))  # by score, ties by record id
    sorted_ids = record_ids[order]
    repeat = jnp.concatenate([jnp.zeros(1, bool), sorted_ids[1:] == sorted_ids[:-1]])
    rank = jnp.cumsum(~repeat) - 1  # rank among distinct records; repeats share it
    distinct = rank[-1] + 1
    firsts = order[jnp.argsort(repeat, stable=True)]  # rows of distinct records, by rank
    partner_sorted = firsts[(rank + 1) % distinct]
    return jnp.zeros_like(order).at[order].set(partner_sorted).astype(jnp.int32)


class _Mixer(ConfiguredOperator):
    """What MixUp and CutMix share: fields, pairing, labels and the per-record draws."""

    config: MixUpConfig
    differentiable_in: tuple[str, ...] = ("input",)
    mixes_batch = True
    stochastic_default = True

    def __init__(
        self, config: MixUpConfig, *, rngs: nnx.Rngs | None = None, name: str | None = None
    ) -> None:
        super().__init__(config, rngs=rngs, name=name)
        alpha = jnp.asarray(config.alpha, jnp.float32)
        self.alpha: nnx.Param | float = nnx.Param(alpha) if config.learnable else config.alpha

    def apply_batch(
        self, data: Fields, states: Fields, record_ids: jax.Array, epoch: jax.Array, seed: int
    ) -> tuple[Fields, Fields]:
        images, labels = self._fields(data)
        record_ids = jnp.asarray(record_ids)
        keys = self.keys_for(record_ids, epoch, seed)
        words = jax.random.key_data(keys).reshape(record_ids.shape[0], -1)
        partner = partners(words[:, 0], record_ids)
        mixed = uniform(words[:, 1]) < self.config.probability
        mixed_images, lam = self.mix(images, images[partner], keys, mixed)
        lam_labels = lam.reshape((-1,) + (1,) * (labels.ndim - 1))
        mixed_labels = lam_labels * labels + (1.0 - lam_labels) * labels[partner]
        out = {**data, self.config.image_field: mixed_images}
        out[self.config.label_field] = mixed_labels
        return out, states

    def lambdas(self, keys: jax.Array) -> jax.Array:
        """Each record's ``Beta(alpha, alpha)`` draw ``(B,)`` (before any correction)."""
        alpha = self.alpha[...] if isinstance(self.alpha, nnx.Param) else self.alpha
        lam_keys = jax.vmap(lambda key: jax.random.fold_in(key, 0))(keys)
        return jax.vmap(lambda key: jax.random.beta(key, alpha, alpha))(lam_keys)

    @abc.abstractmethod
    def mix(
        self, images: jax.Array, partner_images: jax.Array, keys: jax.Array, mixed: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Mixed images and the label weight ``lambda`` of each record's own label."""

    def _where(self, field: str) -> str:
        return f"{self.name}, field '{field}'"

    def _fields(self, data: Fields) -> tuple[jax.Array, jax.Array]:
        cfg = self.config
        for field in (cfg.image_field, cfg.label_field):
            if field not in data:
                raise SchemaError(
                    "field missing",
                    where=self.name,
                    expected=f"a field '{field}' among {sorted(data)}",
                    found="no such field",
                )
        images, labels = data[cfg.image_field], data[cfg.label_field]
        if not (jnp.issubdtype(images.dtype, jnp.number)) or images.ndim < 2:
            raise SchemaError(
                "inputs to mix must be numeric arrays per record",
                where=self._where(cfg.image_field),
                expected="a numeric array of rank >= 1 per record",
                found=f"{images.dtype}{tuple(images.shape[1:])}",
            )
        return images, self._labels(labels)

    def _labels(self, labels: jax.Array) -> jax.Array:
        cfg = self.config
        where = self._where(cfg.label_field)
        if jnp.issubdtype(labels.dtype, jnp.integer) and labels.ndim == 1:
            if cfg.num_classes is None:
                raise SchemaError(
                    "integer labels need a number of classes",
                    where=where,
                    expected=f"{type(cfg).__name__}(num_classes=...)",
                    found="integer labels, num_classes=None",
                )
            return jax.nn.one_hot(labels, cfg.num_classes, dtype=jnp.float32)
        if jnp.issubdtype(labels.dtype, jnp.floating) and labels.ndim == 2:
            if cfg.num_classes is not None and labels.shape[1] != cfg.num_classes:
                raise SchemaError(
                    "soft labels do not match num_classes",
                    where=where,
                    expected=f"{cfg.num_classes} classes per record",
                    found=f"{labels.shape[1]}",
                )
            return labels.astype(jnp.promote_types(labels.dtype, jnp.float32))
        raise SchemaError(
            "labels must be class ids or soft labels",
            where=where,
            expected="integer labels (B,) or floating soft labels (B, K)",
            found=f"{labels.dtype}{tuple(labels.shape)}",
        )


class MixUp(_Mixer):
    """``x = lam * x + (1 - lam) * x_partner``, labels alike, ``lam ~ Beta(alpha, alpha)``.

    One ``lam`` per record, drawn with ``jax.random.beta(fold_in(key, 0), alpha,
    alpha)`` from the record's key; a record is mixed when the uniform of its second
    key word is below ``probability`` (else ``lam = 1``). Integer inputs are rounded
    back to their dtype. Differentiable in the inputs, soft labels and, with
    ``learnable=True``, in ``alpha`` (JAX's implicit reparametrisation of the Beta draw).
    See the module doc for the pairing and its batch-size dependence.

    Example:
        >>> from flax import nnx
        >>> mixup = MixUp(MixUpConfig(num_classes=10, alpha=0.2), rngs=nnx.Rngs(0))
    """

    config_type = MixUpConfig
    config: MixUpConfig
    differentiable_in: tuple[str, ...] = ("input", "alpha")
    reference: str = "mixup (Zhang et al. 2018), per-record lambda; NumPy with the same draws"

    def mix(
        self, images: jax.Array, partner_images: jax.Array, keys: jax.Array, mixed: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        lam = jnp.where(mixed, self.lambdas(keys), 1.0)
        dtype = compute_dtype(images.dtype)
        weight = lam.astype(dtype).reshape((-1,) + (1,) * (images.ndim - 1))
        out = weight * images.astype(dtype) + (1 - weight) * partner_images.astype(dtype)
        return back_to(out, images.dtype, clip=False), lam.astype(jnp.float32)


class CutMix(_Mixer):
    """Pastes a box of each record's partner into it; labels weighted by the box area.

    With ``lam ~ Beta(alpha, alpha)`` (as in :class:`MixUp`) the box follows
    torchvision's ``CutMix``: centre ``(r_y, r_x)`` uniform over the pixels
    (``floor(u * H)``, ``floor(u' * W)`` for ``u, u' =
    jax.random.uniform(fold_in(key, 1), (2,))``), half sizes
    ``floor(0.5 * sqrt(1 - lam) * H)`` and ``... * W``, clipped to the image, so its
    area is at most ``(1 - lam) * H * W``. The label weight is then corrected to the
    actual box: ``lam = 1 - box_area / (H * W)``. Differentiable in the inputs and
    soft labels (not in ``alpha``: the box is integer).

    Example:
        >>> from flax import nnx
        >>> cutmix = CutMix(CutMixConfig(num_classes=10), rngs=nnx.Rngs(0))
    """

    config_type = CutMixConfig
    config: CutMixConfig
    reference: str = "torchvision.transforms.v2.CutMix box rule, per record; NumPy"

    def boxes(self, keys: jax.Array, mixed: jax.Array, height: int, width: int) -> jax.Array:
        """``(B, 4)`` int32 ``(top, left, bottom, right)`` (exclusive); empty when not mixed."""
        lam = self.lambdas(keys)
        box_keys = jax.vmap(lambda key: jax.random.fold_in(key, 1))(keys)
        u = jax.vmap(lambda key: jax.random.uniform(key, (2,)))(box_keys)
        r_y = jnp.floor(u[:, 0] * height).astype(jnp.int32)
        r_x = jnp.floor(u[:, 1] * width).astype(jnp.int32)
        r = 0.5 * jnp.sqrt(1.0 - lam)
        half_h = jnp.floor(r * height).astype(jnp.int32)
        half_w = jnp.floor(r * width).astype(jnp.int32)
        box = jnp.stack(
            [
                jnp.maximum(r_y - half_h, 0),
                jnp.maximum(r_x - half_w, 0),
                jnp.minimum(r_y + half_h, height),
                jnp.minimum(r_x + half_w, width),
            ],
            axis=1,
        )
        return jnp.where(mixed[:, None], box, 0)

    def mix(
        self, images: jax.Array, partner_images: jax.Array, keys: jax.Array, mixed: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        if images.ndim not in (3, 4):
            raise SchemaError(
                "CutMix mixes images",
                where=self._where(self.config.image_field),
                expected="(H, W) or (H, W, C) per record",
                found=f"shape {tuple(images.shape[1:])}",
            )
        height, width = images.shape[1:3]
        box = self.boxes(keys, mixed, height, width)
        inside = box_mask(box, height, width)
        if images.ndim == 4:
            inside = inside[..., None]
        area = (box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1])
        lam = 1.0 - area.astype(jnp.float32) / (height * width)
        return jnp.where(inside, partner_images, images), lam
