"""The ``workers`` package imports its public names when first asked for: each one it lists
must resolve, and nothing outside the list may."""

from __future__ import annotations

import importlib

import pytest

import workers


def test_every_public_name_resolves_to_its_home() -> None:
    """``__all__`` and the map of where each name lives stay one list."""
    for name, home in workers._HOMES.items():
        assert getattr(workers, name) is getattr(importlib.import_module(home), name), name
    assert set(workers.__all__) == set(workers._HOMES) | {"CheckoutDenied", "LeaseLost"}


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = workers.Nope  # type: ignore[attr-defined]
