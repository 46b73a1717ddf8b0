"""The README's examples run, so they cannot rot."""

from __future__ import annotations

from pathlib import Path

from doc_examples import README, Scene, run_page, scene_env


def test_the_readme_examples_run(tmp_path: Path) -> None:
    """Every example of the README runs as written, in order, in a fresh directory: the demo
    from the repository (the story ends with a second lease, token 2), then the first lease on
    the command line and from Python on a new SQLite file, which release cleanly; only the
    test suite's own command is not run here (it is what runs this)."""
    ran = run_page(README, Scene(tmp_path, scene_env(tmp_path)))
    assert [r.block.language for r in ran] == ["sh", "sh", "python"]
    demo, first_lease, _ = ran
    assert "with a higher fencing token: lease-2@profile_shop_17 token 2" in demo.stdout
    assert "lease-1@profile_shop_17 token 1" in first_lease.stdout
    assert "released cleanly" in first_lease.stdout
    assert "last used by worker worker_03" in first_lease.stdout
    assert (tmp_path / "custody.db").exists()
