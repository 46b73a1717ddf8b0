"""The cheap look for pydantic's plugins (``custody._pydantic_plugins``) answers "none" only
where importlib.metadata would find none, and leaves everything else to pydantic's loader."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

import pytest

from custody import _pydantic_plugins as plugins


@pytest.fixture
def path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``sys.path`` of one empty directory, the stand-in's answer not yet cached."""
    monkeypatch.setattr(sys, "path", [str(tmp_path)])
    monkeypatch.setattr(plugins, "_none", None)
    return tmp_path


def distribution(where: Path, entry_points: bytes | None, suffix: str = ".dist-info") -> None:
    metadata = where / f"thing-1.0{suffix}"
    metadata.mkdir()
    if entry_points is not None:
        (metadata / "entry_points.txt").write_bytes(entry_points)


def test_a_directory_of_distributions_without_the_group_has_none(path: Path) -> None:
    distribution(path, b"[console_scripts]\nthing = thing:main\n")
    (path / "other-2.0.egg-info").write_text("Metadata-Version: 1.0\n")  # an egg-info file
    assert plugins._none_installed()


@pytest.mark.parametrize("suffix", [".dist-info", ".egg-info", ".DIST-INFO"])
def test_the_group_declared_in_any_distribution_is_found(path: Path, suffix: str) -> None:
    distribution(path, b"[pydantic]\nx = thing:plugin\n", suffix=suffix)
    assert not plugins._none_installed()


def test_entry_points_that_cannot_be_read_are_left_to_pydantic(path: Path) -> None:
    distribution(path, b"[pydant\xffic]\n")
    assert not plugins._none_installed()


def test_a_zip_on_the_path_is_left_to_pydantic(path: Path) -> None:
    archive = path / "more.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("thing-1.0.dist-info/entry_points.txt", "[pydantic]\nx = thing:plugin\n")
    sys.path.append(str(archive))
    assert not plugins._none_installed()


def test_another_finder_of_distributions_is_left_to_pydantic(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    class Finder:
        @staticmethod
        def find_distributions(*args: object, **kwargs: object) -> list[object]:
            return []

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Finder()])
    assert not plugins._none_installed()


def test_the_group_declared_in_an_egg_directory_on_the_path_is_found(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An egg directory on ``sys.path`` keeps its metadata in ``EGG-INFO``, which
    importlib.metadata reads (rev30: the stand-in looked only for ``*.dist-info`` and
    ``*.egg-info``, answered none, and the CLI never loaded such a plugin)."""
    import importlib.metadata

    egg = path / "marker_plugin-1.0-py3.11.egg"
    (egg / "EGG-INFO").mkdir(parents=True)
    (egg / "EGG-INFO" / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: marker-plugin\n")
    (egg / "EGG-INFO" / "entry_points.txt").write_text("[pydantic]\nmarker = marker:plugin\n")
    monkeypatch.setattr(sys, "path", [str(path), str(egg)])
    assert importlib.metadata.entry_points(group="pydantic")  # what pydantic's loader finds
    assert not plugins._none_installed()
