"""``custody access grant`` of a login name PostgreSQL reserves answers "store unavailable".

Guarantee (quality bar; docs/reference/exit-codes.md): bad input is one line naming what is
wrong, exit 2; exit 6 means the store is unavailable, not busy or uninitialised, and a script
retrying on 6 would retry this for ever. docs/operations/roles.md: "``custody access grant LOGIN
--role ROLE`` makes ``LOGIN`` a member of exactly that group role".

Observed: ``custody access grant pg_monitor --role worker`` (likewise ``public``, ``none``) passes
the login check (``ledger._stores.access._LOGIN``: lower-case letters, digits and _), then
PostgreSQL refuses ``ALTER ROLE pg_monitor LOGIN`` ("role name ... is reserved"), which is
answered exit 6 "store ... unavailable: role name "pg_monitor" is reserved".
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import custody

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    "login", ["pg_monitor", "public", "none", "current_user", "session_user", "current_role"]
)
def test_a_reserved_login_name_is_bad_input_naming_thegranted(
    owner_url: str, tmp_path: Path, login: str
) -> None:
    run = custody("--store", owner_url, "access", "grant", login, "--role", "worker", cwd=tmp_path)
    assert run.code == 2, (run.code, run.err)
    assert "login" in run.err, run.err
    assert "unavailable" not in run.err, run.err


@pytest.mark.parametrize("length", [64, 200])
def test_a_login_name_over_63_characters_is_refused_naming_the_length(
    owner_url: str, tmp_path: Path, length: int
) -> None:
    """PostgreSQL cuts a longer name to 63 bytes (a notice, not an error): refused at the door,
    saying how long it is and how long a role name may be (rev46 review: it was told only to
    use lower-case letters, digits and _, which it did)."""
    login = "w" * length
    run = custody("--store", owner_url, "access", "grant", login, "--role", "worker", cwd=tmp_path)
    assert run.code == 2, (run.code, run.err)
    assert f"{length} characters" in run.err, run.err
    assert "holds 63" in run.err, run.err
    assert len(run.err.strip().splitlines()) == 1, run.err
