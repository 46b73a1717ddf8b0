"""The public packages import their names when first asked for: each one a package lists must
resolve, nothing outside the list may, and what mypy is shown (the ``TYPE_CHECKING`` imports) is
the same list."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import ModuleType

import pytest

import ledger
import projections
import reports
import workers

# Each lazy package, and the names it imports at once.
PACKAGES = [
    (ledger, set()),
    (projections, set()),
    (reports, {"ENDED_UNKNOWN", "OVERDUE"}),
    (workers, {"CheckoutDenied", "LeaseLost"}),
]
ids = [package.__name__ for package, _ in PACKAGES]


def type_checking_imports(init: Path) -> dict[str, str]:
    """Each name the ``if TYPE_CHECKING:`` block of ``init`` imports, and from where
    (``module:name`` when imported under another name); every one must be a re-export
    (``import X as X``, or ``import X as Y``)."""
    tree = ast.parse(init.read_text())
    (block,) = [
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    ]
    found: dict[str, str] = {}
    for statement in block.body:
        assert isinstance(statement, ast.ImportFrom), ast.unparse(statement)
        for alias in statement.names:
            assert alias.asname is not None, f"{alias.name} is not re-exported"
            module = statement.module or ""
            found[alias.asname] = module if alias.asname == alias.name else f"{module}:{alias.name}"
    return found


def home_of(package: ModuleType, name: str) -> object:
    module, _, there = package._HOMES[name].partition(":")
    return getattr(importlib.import_module(module), there or name)


@pytest.mark.parametrize(("package", "eager"), PACKAGES, ids=ids)
def test_every_public_name_resolves_to_its_home(package: ModuleType, eager: set[str]) -> None:
    """``__all__`` and the map of where each name lives stay one list."""
    for name in package._HOMES:
        assert getattr(package, name) is home_of(package, name), name
    assert set(package.__all__) == set(package._HOMES) | eager


@pytest.mark.parametrize(("package", "eager"), PACKAGES, ids=ids)
def test_mypy_is_shown_the_same_names_from_the_same_homes(
    package: ModuleType, eager: set[str]
) -> None:
    """The ``TYPE_CHECKING`` imports name exactly the lazily imported names, each from the
    module the lazy ``__getattr__`` imports it from."""
    assert package.__file__ is not None
    assert type_checking_imports(Path(package.__file__)) == package._HOMES


@pytest.mark.parametrize("package", [p for p, _ in PACKAGES], ids=ids)
def test_an_unknown_name_is_an_attribute_error(package: ModuleType) -> None:
    """A name outside the list is an AttributeError naming it, as for any module."""
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = package.Nope
