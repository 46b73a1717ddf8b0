"""One directory, one profile, at the command line: ``register`` refuses a directory another
profile has (exit 2, one line, nothing written), and ``init`` migrating an older store says
which registrations share a directory."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import custody, error_line, ok

import ledger._stores.store as store_module
from ledger import Ledger, RegisterProfile


def _register(store: str, cwd: Path, profile: str, directory: str) -> list[str]:
    return ["--store", store, "register", profile, "--account", f"acct_{profile}", "--proxy",
            "x", "--user-data-dir", directory]  # fmt: skip


def test_register_on_another_profiles_directory_is_bad_input(tmp_path: Path) -> None:
    """A second profile on the same directory, or inside it, exits 2 with one line naming
    user_data_dir and the profile that has it; the refused profile does not exist after."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    shared = str(tmp_path / "profiles" / "a")
    ok(custody(*_register(store, tmp_path, "profile_a", shared), cwd=tmp_path))
    for directory in (shared, f"{shared}/inner", str(tmp_path / "profiles")):
        run = custody(*_register(store, tmp_path, "profile_b", directory), cwd=tmp_path)
        assert run.code == 2, run.err
        line = error_line(run)
        assert "invalid user_data_dir" in line
        assert "of profile profile_a" in line
    why = custody("--store", store, "why", "profile_b", cwd=tmp_path)
    assert why.code == 2
    assert "no profile 'profile_b' is registered" in error_line(why)
    again = ok(custody(*_register(store, tmp_path, "profile_a", shared), cwd=tmp_path))
    assert "registered profile_a" in again.out  # the same record again: a no-op


def test_init_of_an_older_store_names_the_profiles_sharing_a_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema 4 store (written before the rule) with two profiles on one directory: init
    succeeds and says which share it, in text and in JSON; a second init says nothing more."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(store_module, "claimed_directories", lambda profile: [])
        with Ledger.open(store) as ledger:
            for profile in ("p_first", "p_second"):
                ledger.handle(
                    RegisterProfile(
                        profile_id=profile,
                        account_id="a",
                        proxy_id="x",
                        user_data_dir="/srv/shared",
                    )
                )
            ledger.store.execute("DROP TABLE custody_directories")  # type: ignore[attr-defined]
            ledger.store.execute("UPDATE custody_schema SET version = 4")  # type: ignore[attr-defined]
    said = ok(custody("--store", store, "init", cwd=tmp_path)).out.splitlines()
    assert said[1] == "notes:"
    assert said[2].startswith("  profile p_second's user_data_dir '/srv/shared' is '/srv/shared'")
    assert "of profile p_first, registered first" in said[2]
    again = ok(custody("--store", store, "--json", "init", cwd=tmp_path)).json()
    assert "notes" not in again
