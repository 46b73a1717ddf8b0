"""pydantic's plugins, looked for without importing ``importlib.metadata`` where there are none.

pydantic asks for its plugins (entry points of the group ``pydantic``) when it builds its first
validator, and the module that asks (``pydantic.plugin._loader``) imports
``importlib.metadata`` to find them: 11 to 14 ms of every command that reads or writes the
ledger, about a tenth of a read command's whole run, spent on nearly every machine to learn
that there are none.

``install()`` puts a stand-in for that module where pydantic will import it. The stand-in
looks for the group where ``importlib.metadata`` would: the ``entry_points.txt`` of every
distribution in a directory on ``sys.path``. If it finds the group, or anything it cannot see
into (a file such as a zip on the path, a finder of distributions other than the standard
one, an ``entry_points.txt`` it cannot read), it imports pydantic's own loader, puts it in its
place and hands it every question. So a pydantic plugin installed beside custody is loaded and
called as pydantic alone would (``PYDANTIC_DISABLE_PLUGINS`` included); only the search for
none is cheaper.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import types
from collections.abc import Iterable
from importlib.machinery import PathFinder
from typing import Any

LOADER = "pydantic.plugin._loader"
# A section header naming the group, as importlib.metadata reads one (leniently: a line that
# only might name it sends the question to pydantic's own loader, which reads it exactly).
_GROUP = re.compile(r"^[ \t]*\[[ \t]*pydantic[ \t]*\][ \t]*$", re.MULTILINE)
_DISABLED = ("__all__", "1", "true")  # PYDANTIC_DISABLE_PLUGINS values that disable them all


def install() -> None:
    """Stand in for pydantic's plugin loader, unless it (or a stand-in) is imported already."""
    if LOADER in sys.modules:
        return
    stand_in = types.ModuleType(LOADER, __doc__)
    # Any other name pydantic's code asks of the module is its own loader's.
    stand_in.__dict__.update(get_plugins=_get_plugins, __getattr__=_from_pydantics_loader)
    sys.modules[LOADER] = stand_in


def _get_plugins() -> Iterable[Any]:
    if os.getenv("PYDANTIC_DISABLE_PLUGINS") in _DISABLED or _none_installed():
        return ()
    return _pydantics_loader().get_plugins()  # type: ignore[no-any-return]


def _from_pydantics_loader(name: str) -> Any:
    if name.startswith("__"):  # what the import system probes (__path__, __spec__ ...)
        raise AttributeError(name)
    return getattr(_pydantics_loader(), name)


def _pydantics_loader() -> types.ModuleType:
    """pydantic's own loader, imported in the stand-in's place."""
    if getattr(sys.modules.get(LOADER), "get_plugins", None) is _get_plugins:
        del sys.modules[LOADER]
    return importlib.import_module(LOADER)


_none: bool | None = None


def _none_installed() -> bool:
    """True if no distribution on ``sys.path`` can declare a pydantic plugin (looked for once
    a process, as pydantic's loader does)."""
    global _none
    if _none is None:
        _none = _searched_all() and not any(_declares_plugin(d) for d in _distributions())
    return _none


def _searched_all() -> bool:
    """Whether the directories of ``sys.path`` are all that importlib.metadata would search."""
    for finder in sys.meta_path:
        if finder is not PathFinder and hasattr(finder, "find_distributions"):
            return False
    # importlib.metadata reads into a zip (or any file) on the path; this does not.
    files = [entry for entry in sys.path if isinstance(entry, str) and os.path.isfile(entry or ".")]
    return not files


def _distributions() -> Iterable[str]:
    """The metadata directory of each distribution in a directory on ``sys.path``."""
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        try:
            names = os.listdir(entry or ".")
        except OSError:  # not a directory, or gone: importlib.metadata finds nothing there
            continue
        # An egg directory on the path keeps its metadata in EGG-INFO, which importlib.metadata
        # reads too (rev30: a plugin installed as an egg was never loaded by the CLI).
        egg = entry.lower().endswith(".egg")
        for name in names:
            if name.lower().endswith((".dist-info", ".egg-info")) or (
                egg and name.lower() == "egg-info"
            ):
                yield os.path.join(entry or ".", name)


def _declares_plugin(metadata: str) -> bool:
    """Whether a distribution's entry points may name the group (True if they cannot be read:
    pydantic's loader then decides)."""
    path = os.path.join(metadata, "entry_points.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return _GROUP.search(f.read()) is not None
    except (FileNotFoundError, NotADirectoryError):  # none declared, or an egg-info file
        return False
    except (OSError, UnicodeDecodeError):
        return True
