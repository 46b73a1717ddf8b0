"""The ``workers`` package imports its public names when first asked for: each one it lists
must resolve, nothing outside the list may, and what mypy is shown (the ``TYPE_CHECKING``
imports) is the same list."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import workers


def type_checking_imports(init: Path) -> dict[str, str]:
    """Each name the ``if TYPE_CHECKING:`` block of ``init`` imports, and from where; every
    one must be an explicit re-export (``import X as X``)."""
    tree = ast.parse(init.read_text())
    (block,) = [
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    ]
    found: dict[str, str] = {}
    for statement in block.body:
        assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
        for alias in statement.names:
            assert alias.asname == alias.name, f"{alias.name} is not re-exported as itself"
            found[alias.name] = statement.module or ""
    return found


def test_every_public_name_resolves_to_its_home() -> None:
    """``__all__`` and the map of where each name lives stay one list."""
    for name, home in workers._HOMES.items():
        assert getattr(workers, name) is getattr(importlib.import_module(home), name), name
    assert set(workers.__all__) == set(workers._HOMES) | {"CheckoutDenied", "LeaseLost"}


def test_mypy_is_shown_the_same_names_from_the_same_homes() -> None:
    """The ``TYPE_CHECKING`` imports name exactly the lazily imported names, each from the
    module the lazy ``__getattr__`` imports it from."""
    assert workers.__file__ is not None
    assert type_checking_imports(Path(workers.__file__)) == workers._HOMES


def test_an_unknown_name_is_an_attribute_error() -> None:
    """A name outside the list is an AttributeError naming it, as for any module."""
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = workers.Nope  # type: ignore[attr-defined]
