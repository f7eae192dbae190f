"""The operator catalog: every library operator, named once, with what gradients reach."""

from __future__ import annotations

import dataclasses
import importlib
import inspect

import pytest

from datarax.core.errors import ConfigError
from datarax.operators import Operator
from datarax.operators.catalog import library, operator_entry

#: Learnable magnitudes that are not config fields of the same name.
PARAMETERS = {
    "RandomAffine": ("rotation", "translate_x", "translate_y", "scale", "shear_x", "shear_y"),
    "MelSpectrogram": ("filterbank",),
    "MFCC": ("filterbank",),
    "MixNoise": ("noise",),
}

PACKAGES = ("datarax.operators.image", "datarax.operators.audio", "datarax.operators.text")


def test_every_exported_operator_is_in_the_catalog_once():
    names = [e.name for e in library()]
    assert len(names) == len(set(names))
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in module.__all__:
            obj = getattr(module, name)
            concrete = inspect.isclass(obj) and not inspect.isabstract(obj)
            if concrete and issubclass(obj, Operator) and getattr(obj, "reference", ""):
                assert name in names, f"{package}.{name} is not in the catalog"
    assert len(names) >= 50


def test_entries_name_a_reference_and_real_magnitudes():
    for e in library():
        assert e.reference and e.summary, e.name
        assert e.config_cls is not None and dataclasses.is_dataclass(e.config_cls), e.name
        fields = {f.name for f in dataclasses.fields(e.config_cls)}
        magnitudes = [d for d in e.differentiable_in if d != "input"]
        for name in magnitudes:  # a learnable magnitude is a config field of that name
            assert name in fields or name in PARAMETERS.get(e.name, ()), (e.name, name)


def test_an_unknown_name_is_a_config_error():
    assert operator_entry("Rotate").family == "image: geometry"
    with pytest.raises(ConfigError, match="^operator_entry: no such operator; expected a name"):
        operator_entry("Rotation")
