"""End to end: the command line in a locale that is not UTF-8. ``LC_ALL=C`` with
``PYTHONUTF8=0`` makes ASCII the encoding of the filesystem and of stdout (``LC_ALL`` set, Python
does not coerce the C locale to C.UTF-8; ``PYTHONCOERCECLOCALE=0`` says so twice). CSV and JSON
on stdout stay exact, tables line up, and a file's name typed in UTF-8 reaches the disk as
typed. On SQLite and PostgreSQL, read as the bytes written."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from pathlib import Path
from typing import NamedTuple

import pytest
from cli_process import LOOKS, MODULE, TIMEOUT_S

from ledger import Checkout, Ledger, RegisterProfile, Release

ASCII = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
ACCOUNT = "accé"  # Latin-1 has it: stdout's ASCII wrote it '\xe9', a Latin-1 locale as one byte
# Two workers that read the same once escaped: ASCII wrote both as 'w\u0131' (rev40).
DOTLESS, TYPED = "w\u0131", "w\\u0131"  # a dotless i; a backslash, a u and four digits


class Raw(NamedTuple):
    code: int
    out: bytes
    err: str


def in_ascii(*args: str, cwd: Path) -> Raw:
    """``python -m custody ARGS`` under ``ASCII``, its arguments UTF-8 bytes (as a UTF-8
    terminal types them), its stdout as bytes."""
    environ = {k: v for k, v in os.environ.items() if k not in ("CUSTODY_STORE", *LOOKS)}
    environ.update(ASCII)
    done = subprocess.run(
        [*MODULE, *args], cwd=cwd, env=environ, stdin=subprocess.DEVNULL,
        capture_output=True, timeout=TIMEOUT_S, check=False,
    )  # fmt: skip
    return Raw(done.returncode, done.stdout, done.stderr.decode("utf-8", "backslashreplace"))


def ok(run: Raw) -> bytes:
    assert run.code == 0, f"exit {run.code}: {run.err}"
    return run.out


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store where p1 and p2, of account ``ACCOUNT``, each had one lease ended by a
    failure: p1's held by ``DOTLESS`` (run r1), p2's by ``TYPED`` (run r2)."""
    url = (
        f"sqlite:///{tmp_path / 'custody.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("pg_url")
    )
    with Ledger.init(url) as ledger:
        for profile, worker, run in (("p1", DOTLESS, "r1"), ("p2", TYPED, "r2")):
            ledger.handle(RegisterProfile(profile_id=profile, account_id=ACCOUNT, proxy_id="x"))
            lease = ledger.handle(
                Checkout(profile_id=profile, worker_id=worker, run_id=run, task_type="t")
            ).lease_id
            ledger.handle(Release(lease_id=lease, fencing_token=1, outcome="failure"))
    return url


def test_the_locale_is_ascii() -> None:
    """What the other tests rest on: ``ASCII`` gives a child Python an ASCII filesystem and
    stdout, not the UTF-8 that coercing the C locale or UTF-8 mode would give."""
    environ = {**os.environ, **ASCII}
    code = "import sys; print(sys.getfilesystemencoding(), sys.stdout.encoding)"
    done = subprocess.run(
        [MODULE[0], "-c", code], env=environ, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["ascii", "ascii"]


def test_csv_and_json_on_stdout_are_exact_and_tables_line_up(store: str, tmp_path: Path) -> None:
    """rev40: CSV on stdout went through stdout's ASCII, which wrote ``DOTLESS`` as
    'w\\u0131', the same characters as ``TYPED``, and 'é' as '\\xe9' (a Latin-1 locale wrote
    a Latin-1 byte), while ``--output`` wrote UTF-8; ``replay --json`` and ``fleet --json``
    wrote pydantic's JSON, raw, which '\\xe9' made no JSON at all; a table measured
    ``DOTLESS`` two wide and wrote seven. CSV is UTF-8, JSON ASCII, the table laid out as
    written."""
    for args in (
        ("usage", "--account", ACCOUNT, "--format", "csv"),
        ("timeline", "--format", "csv"),
        ("health", "--format", "csv"),
    ):
        out = ok(in_ascii("--store", store, *args, cwd=tmp_path))
        cells = {c for row in csv.reader(io.StringIO(out.decode("utf-8"))) for c in row}
        assert {DOTLESS, TYPED, ACCOUNT} <= cells, args

    usage = json.loads(ok(in_ascii("--store", store, "--json", "usage", "--account", ACCOUNT,
                                   cwd=tmp_path)))  # fmt: skip
    ended = max(row["ended_at"] for row in usage)
    at = ended.replace("+00:00", "")
    for args in (("replay", "p1", "--at", at), ("fleet",), ("timeline",)):
        out = ok(in_ascii("--store", store, "--json", *args, cwd=tmp_path))
        assert out.isascii(), args
        json.loads(out)  # JSON, whatever it holds
    replayed = ok(in_ascii("--store", store, "--json", "replay", "p1", "--at", at, cwd=tmp_path))
    assert DOTLESS in json.dumps(json.loads(replayed), ensure_ascii=False)
    fleet = json.loads(ok(in_ascii("--store", store, "--json", "fleet", cwd=tmp_path)))
    assert fleet["by_account"] == {ACCOUNT: 2}

    table = ok(in_ascii("--store", store, "usage", "--account", ACCOUNT, cwd=tmp_path))
    header, *rows = table.decode("ascii").splitlines()
    assert len(rows) == 2
    for row, run in zip(rows, ("r1", "r2"), strict=True):
        assert row.index(f"  {run}  ") + 2 == header.index("RUN"), table.decode()


def test_file_names_typed_in_utf8_reach_the_disk_as_typed(store: str, tmp_path: Path) -> None:
    """rev40: the argument read as UTF-8 text, an ASCII filesystem could not take the name
    back: ``--output rép.csv`` and ``report --html rép.html`` were internal errors
    (UnicodeEncodeError, exit 1) and an existing ``--screenshot shöt.png`` was "no file at"
    (exit 2). The file gets the bytes typed; the release records the name as text."""
    ok(in_ascii("--store", store, "timeline", "--format", "csv", "--output", "rép.csv",
                cwd=tmp_path))  # fmt: skip
    assert (tmp_path / "rép.csv").read_text(encoding="utf-8").count(DOTLESS) >= 1
    ok(in_ascii("--store", store, "report", "--html", "rép.html", cwd=tmp_path))
    assert (tmp_path / "rép.html").stat().st_size > 0
    # Answered as typed, not in the OS's form, whose surrogates a strict reader refuses.
    said = ok(in_ascii("--store", store, "--json", "timeline", "--format", "csv", "--output",
                       "rép2.csv", cwd=tmp_path))  # fmt: skip
    assert json.loads(said)["output"] == "rép2.csv"
    said = ok(in_ascii("--store", store, "--json", "report", "--html", "rép2.html", cwd=tmp_path))
    assert json.loads(said)["written"] == "rép2.html"

    with Ledger.open(store) as ledger:
        ledger.handle(RegisterProfile(profile_id="p3", account_id=ACCOUNT, proxy_id="x"))
        lease = ledger.handle(
            Checkout(profile_id="p3", worker_id="w", run_id="r3", task_type="t")
        ).lease_id
    (tmp_path / "shöt.png").write_bytes(b"png")
    ok(in_ascii("--store", store, "release", lease, "--token", "1", "--outcome", "success",
                "--screenshot", "shöt.png", cwd=tmp_path))  # fmt: skip
    timeline = json.loads(ok(in_ascii("--store", store, "--json", "timeline", "p3", cwd=tmp_path)))
    details = " ".join(row["detail"] for row in timeline)
    assert f"screenshot={tmp_path / 'shöt.png'}," in details


def test_keys_digests_demo_and_a_sqlite_store_named_in_utf8(tmp_path: Path) -> None:
    """rev40: ``keygen kéy`` and ``--store sqlite:///…/störe.db`` were internal errors
    (UnicodeEncodeError, exit 1), as any file a digest, a verify or the demo named would have
    been; ``CUSTODY_STORE`` naming the same file worked. Each is the file of the bytes typed."""
    said = ok(in_ascii("--json", "keygen", "kéy", cwd=tmp_path))
    assert json.loads(said) == {"key": "kéy", "public_key": "kéy.pub"}
    assert (tmp_path / "kéy").is_file()
    assert (tmp_path / "kéy.pub").is_file()
    named = f"sqlite:///{tmp_path / 'störe.db'}"
    ok(in_ascii("--store", named, "register", "p1", "--account", ACCOUNT, "--proxy", "x",
                cwd=tmp_path))  # fmt: skip
    assert (tmp_path / "störe.db").is_file()
    who = ok(in_ascii("--store", named, "--json", "who", "p1", cwd=tmp_path))
    assert json.loads(who)["profile_id"] == "p1"
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(in_ascii("--store", store, "register", "p1", "--account", ACCOUNT, "--proxy", "x",
                cwd=tmp_path))  # fmt: skip
    said = ok(in_ascii("--store", store, "--json", "digest", "--out", "dïgest.json", "--key",
                       "kéy", cwd=tmp_path))  # fmt: skip
    assert json.loads(said)["digest"] == "dïgest.json"
    ok(in_ascii("--store", store, "verify", "--digest", "dïgest.json", "--public-key", "kéy.pub",
                cwd=tmp_path))  # fmt: skip
    ok(in_ascii("demo", "--db", "démo.db", cwd=tmp_path))
    assert (tmp_path / "démo.db").is_file()
    # The fleet's workers are handed the store too (rev40: an internal error, surrogates).
    ok(in_ascii("demo", "--db", "flëet.db", "--workers", "1", "--tasks", "1", cwd=tmp_path))
    assert (tmp_path / "flëet.db").is_file()
