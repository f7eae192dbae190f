"""The operator library as data: every operator, its family, what gradients reach, its reference.

Each library operator class says what it is checked against (``reference``) and
what it is differentiable in (``differentiable_in``: ``"input"`` and the names of its
learnable magnitudes; empty when no gradient flows). :func:`library` collects them,
so documentation and configuration files refer to operators by one name.

Example:
    >>> entry = operator_entry("Brightness")
    >>> entry.family, entry.differentiable_in
    ('image: colour', ('input', 'factor'))
    >>> operator_entry("Blur")
    Traceback (most recent call last):
    ...
    datarax.core.errors.ConfigError: operator_entry: no such operator; expected a name \
among the library's operators (e.g. 'Brightness'), found 'Blur'
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

from datarax.core.errors import ConfigError

#: Modules of the library, in the order the catalog lists them, with their family.
_FAMILIES: tuple[tuple[str, str], ...] = (
    ("datarax.operators.image.normalize", "image: colour"),
    ("datarax.operators.image.color", "image: colour"),
    ("datarax.operators.image.tone", "image: colour"),
    ("datarax.operators.image.affine", "image: geometry"),
    ("datarax.operators.image.resize", "image: geometry"),
    ("datarax.operators.image.crop", "image: geometry"),
    ("datarax.operators.image.crops", "image: geometry"),
    ("datarax.operators.image.flip", "image: geometry"),
    ("datarax.operators.image.noise", "image: noise and occlusion"),
    ("datarax.operators.image.occlusion", "image: noise and occlusion"),
    ("datarax.operators.mixing", "batch mixing"),
    ("datarax.operators.policies", "policies and wrappers"),
    ("datarax.operators.relaxed", "policies and wrappers"),
    ("datarax.operators.adapters", "adapters"),
    ("datarax.operators.text.tokenize", "text"),
    ("datarax.operators.text.masking", "text"),
    ("datarax.operators.text.causal", "text"),
    ("datarax.operators.audio.gain", "audio"),
    ("datarax.operators.audio.noise", "audio"),
    ("datarax.operators.audio.shift", "audio"),
    ("datarax.operators.audio.resample", "audio"),
    ("datarax.operators.audio.spectral", "audio"),
    ("datarax.operators.audio.mel", "audio"),
    ("datarax.operators.audio.specaugment", "audio"),
    ("datarax.operators.audio.loudness", "audio"),
)


@dataclass(frozen=True)
class OperatorEntry:
    """One operator of the library.

    Attributes:
        name: The class name, which configuration files use.
        family: ``"image: colour"``, ``"audio"``, ...
        cls: The operator class.
        config_cls: Its config class (``None`` for one built without a config).
        differentiable_in: ``"input"`` and learnable magnitudes gradients reach.
        reference: What its tests compare it with.
        summary: The first line of its docstring.
    """

    name: str
    family: str
    cls: type
    config_cls: type | None
    differentiable_in: tuple[str, ...]
    reference: str
    summary: str


@functools.cache
def library() -> tuple[OperatorEntry, ...]:
    """Every operator of the library, by family, in the order the modules define them."""
    import importlib

    entries: list[OperatorEntry] = []
    seen: set[type] = set()
    for module_name, family in _FAMILIES:
        module = importlib.import_module(module_name)
        for cls in _operators_of(module):
            if cls in seen:
                continue
            seen.add(cls)
            config_cls = getattr(cls, "config_type", None) or _annotated_config(cls, module)
            entries.append(
                OperatorEntry(
                    name=cls.__name__,
                    family=family,
                    cls=cls,
                    config_cls=config_cls if inspect.isclass(config_cls) else None,
                    differentiable_in=tuple(cast(Any, cls).differentiable_in),
                    reference=str(cast(Any, cls).reference),
                    summary=(inspect.getdoc(cls) or "").split("\n")[0],
                )
            )
    return tuple(entries)


def operator_entry(name: str) -> OperatorEntry:
    """The library operator called ``name`` (its class name)."""
    for entry in library():
        if entry.name == name:
            return entry
    raise ConfigError(
        "no such operator",
        where="operator_entry",
        expected="a name among the library's operators (e.g. 'Brightness')",
        found=repr(name),
    )


def _annotated_config(cls: type, module: ModuleType) -> type | None:
    """The class a constructor's ``config`` argument is annotated with, if any."""
    parameter = inspect.signature(cls).parameters.get("config")
    annotation = getattr(parameter, "annotation", None)
    return getattr(module, annotation, None) if isinstance(annotation, str) else None


def _operators_of(module: ModuleType) -> list[type]:
    """Classes defined in ``module`` that name a reference (the library's operators)."""
    found = []
    for _, cls in inspect.getmembers(module, inspect.isclass):
        if cls.__module__ != module.__name__ or inspect.isabstract(cls):
            continue
        if getattr(cls, "reference", "") and hasattr(cls, "differentiable_in"):
            found.append(cls)
    return sorted(found, key=lambda c: inspect.getsourcelines(c)[1])
