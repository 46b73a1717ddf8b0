"""A profile's recorded directory stays its registration's: no login but the owner's rewrites
or deletes a row of ``custody_directories``.

Observed (rev27 audit, finding 3): an operator's login (which holds UPDATE on the table: a
registration locks it) ran ``UPDATE custody_directories SET user_data_dir = '/srv/elsewhere'
WHERE profile_id = 'pd1'``; the register of pd9 on pd1's directory was then accepted, the row
put back, and both profiles were leased on one directory at once, with verify and rebuild
silent. Each step connects as the login itself, on a real server.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from cli_process import Run, custody, error_line, ok
from owned_store import granted

pytestmark = pytest.mark.postgres


def _register(url: str, profile: str, directory: str, tmp_path: Path) -> Run:
    return custody(
        "--store", url, "register", profile, "--account", f"a_{profile}", "--proxy", "x",
        "--user-data-dir", directory, cwd=tmp_path,
    )  # fmt: skip


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE custody_directories SET user_data_dir = '/srv/elsewhere' WHERE profile_id = 'pd1'",
        "DELETE FROM custody_directories WHERE profile_id = 'pd1'",
    ],
    ids=["update", "delete"],
)
def test_an_operator_login_cannot_free_a_profile_s_directory(
    owner_url: str, tmp_path: Path, statement: str
) -> None:
    """The operator's UPDATE or DELETE of pd1's row is refused by the database, and pd9's
    registration on pd1's directory stays refused (exit 2, naming pd1)."""
    operator = granted(owner_url, "operator", tmp_path)
    ok(_register(operator, "pd1", "/srv/profiles/pd1", tmp_path))
    with (
        psycopg.connect(operator, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="custody_directories"),
    ):
        conn.execute(statement)
    run = _register(operator, "pd9", "/srv/profiles/pd1", tmp_path)
    assert run.code == 2, (run.code, run.err)
    assert "pd1" in error_line(run)


def test_init_gives_an_older_store_the_directories_guard(owner_url: str, tmp_path: Path) -> None:
    """A store whose directories have no guard yet (made before it) gets it at its next init;
    the owner's own registrations still record their rows."""
    with psycopg.connect(owner_url, autocommit=True) as conn:
        conn.execute("DROP TRIGGER IF EXISTS custody_directories_kept ON custody_directories")
    ok(custody("--store", owner_url, "init", cwd=tmp_path))
    operator = granted(owner_url, "operator", tmp_path)
    ok(_register(owner_url, "pd1", "/srv/profiles/pd1", tmp_path))
    with (
        psycopg.connect(operator, autocommit=True) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="custody_directories"),
    ):
        conn.execute("UPDATE custody_directories SET user_data_dir = '/x' WHERE profile_id = 'pd1'")
