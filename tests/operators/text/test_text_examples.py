"""The Examples in the docstrings of the text modules run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "datarax.operators.text.tokenize",
    "datarax.operators.text.packing",
    "datarax.operators.text.bucketing",
    "datarax.operators.text.masking",
    "datarax.operators.text.causal",
    "datarax.dag.packing",
    "datarax.dag.bucketing",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
