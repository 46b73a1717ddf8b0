"""``custody access grant --password-stdin`` with a password PostgreSQL cannot take: the wrong
exit code, and a login created though the command failed.

Guarantee (quality bar; docs/reference/exit-codes.md): bad input is one line naming what is
wrong, exit 2, and a refused command writes nothing; exit 6 is "store unavailable", and an
"internal error" is never the answer to input.

Observed (``custody access grant LOGIN --role worker --password-stdin``):

- a password holding a NUL byte: exit 6, "store ... unavailable: PostgreSQL text fields cannot
  contain NUL (0x00) bytes";
- a password of bytes that are not UTF-8: exit 1, "internal error: UnicodeEncodeError: 'utf-8'
  codec can't encode characters ... surrogates not allowed";

and in both cases the login was created anyway (``CREATE ROLE LOGIN`` runs before the password
is set, ``ledger._stores.access.grant``), with no password and no custody role, so
``custody access list`` does not show it.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    "password", [b"pass\x00word\n", b"\xff\xfepassword\n"], ids=["nul", "not-utf8"]
)
def test_a_password_postgresql_cannot_take_is_bad_input_and_creates_nogranted(
    owner_url: str, tmp_path: Path, password: bytes
) -> None:
    login = f"w_{uuid.uuid4().hex[:8]}"
    run = subprocess.run(
        [sys.executable, "-m", "custody", "--store", owner_url, "access", "grant", login,
         "--role", "worker", "--password-stdin"],
        input=password, capture_output=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    err = run.stderr.decode(errors="replace")
    with psycopg.connect(owner_url, autocommit=True) as conn:
        made = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchall()
        conn.execute(f"DROP ROLE IF EXISTS {login}")  # roles outlive the test's database
    assert run.returncode == 2, (run.returncode, err)
    assert "password" in err, err
    assert "internal error" not in err, err
    assert made == [], f"the refused grant created the login {login}"


def test_a_closed_standard_input_is_an_empty_password_not_an_internal_error(
    owner_url: str, tmp_path: Path
) -> None:
    """rev22: ``--password-stdin <&-`` was an internal error; standard input closed reads as
    empty, which is bad input naming the password (exit 2), and no login is made."""
    login = f"w_{uuid.uuid4().hex[:8]}"
    shell = f'"$0" -m custody --store "$1" access grant {login} --role worker --password-stdin <&-'
    run = subprocess.run(
        ["bash", "-c", shell, sys.executable, owner_url],
        capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
    )  # fmt: skip
    with psycopg.connect(owner_url, autocommit=True) as conn:
        made = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (login,)).fetchall()
        conn.execute(f"DROP ROLE IF EXISTS {login}")
    assert (run.returncode, run.stderr) == (
        2,
        "custody: invalid password: standard input gave an empty line\n",
    )
    assert made == []
