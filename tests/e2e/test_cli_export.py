"""End to end: the report commands write their frames to a file (``--output FILE``): parquet
with every dtype kept, csv and json as stdout would have them; bad combinations refused
before anything is read or written. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from cli_process import MODULE, custody, custody_all, error_line, ok
from compliance_story import SHOP, write_story
from pg_cluster import create_database, drop_database

import reports
from custody._export import save
from ledger import Checkout, Ledger, RegisterProfile


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """The compliance story in a store of each kind (read only by the tests)."""
    database = None
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('export') / 'custody.db'}"
    else:
        cluster = request.getfixturevalue("pg_cluster")
        database = f"t_{uuid.uuid4().hex[:12]}"
        url = create_database(cluster.admin_url, database)
    Ledger.init(url).close()
    write_story(url)
    yield url
    if database is not None:
        drop_database(cluster.admin_url, database)


def test_parquet_round_trips_the_report_frames(store: str, tmp_path: Path) -> None:
    """timeline and usage --format parquet --output FILE: pandas reads back frames equal to
    the reports' own, dtypes included (times datetime64[us, UTC], Int64, string); stdout
    gets one summary line."""
    timeline_run, usage_run = custody_all(
        [
            ["timeline", "--format", "parquet", "--output", "t.parquet"],
            ["--json", "usage", "--account", SHOP, "--format", "parquet", "--output", "u.parquet"],
        ],
        cwd=tmp_path,
        store=store,
    )
    expected = reports.timeline(ledger=store)
    assert ok(timeline_run).out == f"wrote {len(expected)} timeline rows to t.parquet (parquet)\n"
    assert ok(usage_run).json() == {"output": "u.parquet", "format": "parquet", "rows": 5}
    read = pd.read_parquet(tmp_path / "t.parquet")
    pd.testing.assert_frame_equal(read, expected, check_exact=True)
    assert (str(read["at"].dtype), str(read["position"].dtype)) == ("datetime64[us, UTC]", "Int64")
    assert read["profile_id"].dtype == pd.StringDtype(na_value=pd.NA)
    usage = pd.read_parquet(tmp_path / "u.parquet")
    pd.testing.assert_frame_equal(usage, reports.usage(SHOP, ledger=store), check_exact=True)
    assert str(usage["ended_at"].dtype) == "datetime64[us, UTC]"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.parquet", "u.parquet"]


def test_csv_and_json_files_hold_what_stdout_would(store: str, tmp_path: Path) -> None:
    """--output with csv or json (or --json alone) writes exactly what stdout gets without it."""
    runs = custody_all(
        [
            ["timeline", "--format", "csv"],
            ["timeline", "--format", "csv", "--output", "t.csv"],
            ["usage", "--account", SHOP, "--format", "json"],
            ["--json", "usage", "--account", SHOP, "--output", "u.json"],
        ],
        cwd=tmp_path,
        store=store,
    )
    csv_out, csv_file, json_out, json_file = (ok(r) for r in runs)
    assert (tmp_path / "t.csv").read_text(encoding="utf-8") == csv_out.out
    assert (tmp_path / "u.json").read_text(encoding="utf-8") == json_out.out
    assert json_file.json() == {"output": "u.json", "format": "json", "rows": 5}
    assert csv_file.out.startswith("wrote ")


def test_bad_combinations_are_refused_and_write_nothing(store: str, tmp_path: Path) -> None:
    """parquet without --output (to a terminal or a pipe), a table into a file, a file in a
    missing directory or one that is a directory: one line, exit 2, nothing on stdout, no file
    made and an existing one left as it was."""
    (tmp_path / "kept.csv").write_text("mine\n")
    runs = custody_all(
        [
            ["timeline", "--format", "parquet"],
            ["usage", "--account", SHOP, "--format", "parquet"],
            ["timeline", "--output", "kept.csv"],
            ["usage", "--account", SHOP, "--format", "csv", "--output", "nowhere/u.csv"],
            ["timeline", "--format", "parquet", "--output", "."],
        ],
        cwd=tmp_path,
        store=store,
    )
    lines = [error_line(r) for r in runs]
    assert [r.code for r in runs] == [2] * 5
    assert [r.out for r in runs] == [""] * 5
    assert all("give --output FILE" in line for line in lines[:2])
    assert "not a table" in lines[2]
    assert "cannot write a file in 'nowhere'" in lines[3]
    assert "is a directory" in lines[4]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept.csv"]
    assert (tmp_path / "kept.csv").read_text() == "mine\n"
    refused = custody("--json", "timeline", "--format", "parquet", cwd=tmp_path, store=store)
    assert (refused.code, refused.json()["field"]) == (2, "output")


def test_a_failed_write_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """A frame pyarrow cannot write (a column mixing numbers and text) fails the save and
    leaves the old file untouched, with no partial file beside it."""
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old")
    frame = pd.DataFrame({"mixed": pd.Series([1, "a"], dtype=object)})
    with pytest.raises((pa.ArrowTypeError, pa.ArrowInvalid), match="mixed"):
        save([frame], "parquet", target, lambda _: None)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.parquet"]


def test_an_export_never_replaces_a_store_its_journal_or_a_key(tmp_path: Path) -> None:
    """--output and report --html naming the store's own file (a reused $CUSTODY_STORE path, a
    tab completed to fleet.db), the journal beside it, or a signing key: one line, exit 2,
    the file byte for byte as it was and the log still verifying. An empty name says so."""
    db = tmp_path / "fleet.db"
    url = f"sqlite:///{db}"
    Ledger.init(url).close()
    write_story(url)
    key = tmp_path / "signing.key"
    ok(custody("keygen", str(key), cwd=tmp_path, store=url))
    # A copy of the store with a rollback journal beside it (beside the store itself, a
    # journal nobody wrote would be taken as one to roll back).
    (tmp_path / "copy.db").write_bytes(db.read_bytes())
    journal = tmp_path / "copy.db-journal"
    journal.write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7")  # a rollback journal's magic
    kept = {path: path.read_bytes() for path in (db, journal, key)}
    runs = [
        custody(*args, cwd=tmp_path, store=url)
        for args in (
            ["timeline", "--format", "csv", "--output", "fleet.db"],
            ["usage", "--account", SHOP, "--format", "json", "--output", "copy.db-journal"],
            ["timeline", "--format", "parquet", "--output", "signing.key"],
            ["report", "--html", "fleet.db"],
            ["timeline", "--format", "csv", "--output", ""],
            ["report", "--html", ""],
            ["timeline", "--format", "csv", "--output", "-"],
            ["report", "--html", "-"],
        )
    ]
    lines = [error_line(r) for r in runs]
    assert [r.code for r in runs] == [2] * 8, lines
    assert "--output - names no file" in lines[6]  # rev22: it wrote a file named "-"
    assert "--html - names no file" in lines[7]
    assert not (tmp_path / "-").exists()
    assert "holds an SQLite database" in lines[0]
    assert "never replaces it" in lines[0]
    assert "holds the journal of an SQLite database" in lines[1]
    assert "holds a PEM key" in lines[2]
    assert "holds an SQLite database" in lines[3]
    assert "--output is empty" in lines[4]
    assert "--html is empty" in lines[5]
    assert {path: path.read_bytes() for path in kept} == kept
    assert ok(custody("verify", cwd=tmp_path, store=url)).out.startswith("checked ")


def test_a_file_written_that_is_the_commands_own_redirected_output_is_refused(
    tmp_path: Path,
) -> None:
    """rev40: ``--output /dev/stdout >> kept.csv`` followed /dev/stdout to the file the shell
    opened and replaced it: what ``>>`` kept there was lost, and the summary line went to the
    file unlinked. The file a command's standard output or error is, by any name, is refused
    (exit 2) and left as it was, by the exports, the HTML report and ``digest --out``."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(url).close()
    write_story(url)
    kept = tmp_path / "kept.txt"
    earlier = b"what the shell kept here\n"
    environ = {k: v for k, v in os.environ.items() if k != "CUSTODY_STORE"}
    for args, stream in [
        (["timeline", "--format", "csv", "--output", "/dev/stdout"], "stdout"),
        (["timeline", "--format", "csv", "--output", str(kept)], "stdout"),
        (["report", "--html", "/dev/stdout"], "stdout"),
        (["usage", "--account", SHOP, "--format", "json", "--output", "/dev/stderr"], "stderr"),
        (["digest", "--out", str(kept)], "stdout"),  # what it holds: a digest to follow
    ]:
        kept.write_bytes(earlier)
        if args[0] == "digest":
            kept.unlink()
            ok(custody("digest", "--out", str(kept), cwd=tmp_path, store=url))
            earlier = kept.read_bytes()
        with kept.open("ab") as redirect:
            ran = subprocess.run(
                [*MODULE, "--store", url, *args], cwd=tmp_path, env=environ,
                stdout=redirect if stream == "stdout" else subprocess.PIPE,
                stderr=redirect if stream == "stderr" else subprocess.PIPE,
            )  # fmt: skip
        said = kept.read_bytes()
        assert ran.returncode == 2, (args, said, ran.stderr)
        assert said.startswith(earlier), (args, said)
        told = said[len(earlier) :] if stream == "stderr" else ran.stderr
        assert f"this command's standard {'error' if stream == 'stderr' else 'output'}" in (
            told.decode()
        ), (args, told)
        # before any work, for what prints without the option; a digest's, at its write
        assert (b"to print, leave the option out" in told) is (args[0] != "digest"), told
    # A file the command reads as its standard input is no output of it: replaced, as asked.
    kept.write_bytes(earlier)
    with kept.open("rb") as given:
        ran = subprocess.run(
            [*MODULE, "--store", url, "timeline", "--format", "csv", "--output", str(kept)],
            cwd=tmp_path, env=environ, stdin=given, capture_output=True,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert kept.read_bytes().startswith(b"position,")


def test_an_export_onto_a_fifo_or_a_link_to_one_is_refused_without_waiting(
    tmp_path: Path,
) -> None:
    """The look at what a target holds opened a FIFO for reading, which waits for a writer:
    an export onto one hung for ever. Then it replaced the FIFO by a file, and as root
    ``--output /dev/stdout`` or ``report --html /dev/stdout`` replaced the machine's
    /dev/stdout (a link to the process's stdout) by a file (rev22). A FIFO, a device or a link
    to one is refused (exit 2) at once and left as it was."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(url).close()
    write_story(url)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "stdout").symlink_to(tmp_path / "pipe")  # as /dev/stdout names a pipe
    (tmp_path / "null").symlink_to("/dev/null")
    runs = [
        custody(*args, cwd=tmp_path, store=url)
        for args in (
            ["timeline", "--format", "csv", "--output", "pipe"],
            ["timeline", "--format", "csv", "--output", "stdout"],
            ["report", "--html", "stdout"],
            ["usage", "--account", SHOP, "--format", "json", "--output", "null"],
        )
    ]
    lines = [error_line(r) for r in runs]
    assert [r.code for r in runs] == [2] * 4, lines
    assert all("a FIFO (a pipe), not a regular file" in line for line in lines[:3]), lines
    assert "holds a device, not a regular file" in lines[3]
    assert stat.S_ISFIFO((tmp_path / "pipe").lstat().st_mode)
    assert [(tmp_path / n).is_symlink() for n in ("stdout", "null")] == [True, True]


def test_a_link_to_a_journal_or_a_loop_of_links_is_refused(tmp_path: Path) -> None:
    """rev23: an export writes through a link, and the journal check read the link's own
    name: ``latest.csv -> v.db-wal`` turned a store's write-ahead log into CSV, losing what
    was committed only there. And a loop of links was an internal error. Both are bad input
    (exit 2) and left as they were."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(url).close()
    write_story(url)
    (tmp_path / "v.db").write_bytes((tmp_path / "fleet.db").read_bytes())
    wal = tmp_path / "v.db-wal"
    wal.write_bytes(b"\x37\x7f\x06\x82 a write-ahead log's frames")
    (tmp_path / "latest.csv").symlink_to("v.db-wal")
    (tmp_path / "a.csv").symlink_to("b.csv")
    (tmp_path / "b.csv").symlink_to("a.csv")
    runs = [
        custody(*args, cwd=tmp_path, store=url)
        for args in (
            ["timeline", "--format", "csv", "--output", "latest.csv"],
            ["report", "--html", "latest.csv"],
            ["timeline", "--format", "csv", "--output", "a.csv"],
            ["report", "--html", "a.csv"],
        )
    ]
    lines = [error_line(r) for r in runs]
    assert [r.code for r in runs] == [2] * 4, lines
    assert all("holds the journal of an SQLite database" in line for line in lines[:2]), lines
    assert all("a path that cannot be followed" in line for line in lines[2:]), lines
    assert wal.read_bytes().startswith(b"\x37\x7f\x06\x82")


def test_an_export_through_a_link_replaces_the_file_it_names_and_keeps_its_mode(
    tmp_path: Path,
) -> None:
    """``latest.csv -> 2026-12.csv``: the export replaces 2026-12.csv, whole, with the mode
    it had (0600 stays 0600), and the link stays a link (it was replaced by a file)."""
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(url).close()
    write_story(url)
    month = tmp_path / "2026-12.csv"
    month.write_text("old")
    month.chmod(0o600)
    (tmp_path / "latest.csv").symlink_to("2026-12.csv")
    args = ("timeline", "--format", "csv", "--output", "latest.csv")
    ok(custody(*args, cwd=tmp_path, store=url))
    assert (tmp_path / "latest.csv").is_symlink()
    assert month.read_text().startswith("position,")
    assert stat.S_IMODE(month.stat().st_mode) == 0o600
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_a_file_the_disk_cannot_hold_is_named_with_the_disk_s_reason(tmp_path: Path) -> None:
    """rev22: a full file system under ``report --html`` was an internal error, and under
    ``--output`` it read "could not write the output", as a closed standard output does. Each
    names the file and why (one line; JSON under --json) and leaves nothing behind. rev25: it
    was exit 2, bad input, which a script reads as "fix your arguments" and never retries; a
    disk's refusal is exit 1 (``LedgerError``). The disk is filled by a file size limit
    (RLIMIT_FSIZE) above what SQLite's read needs and below the export's."""
    import resource

    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(store).close()
    with Ledger.open(store) as ledger:
        for n in range(150):  # leases, so that the report draws them: a page over the limit
            pid = f"p{n:03}"
            ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
            ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id=f"r{n}", task_type="t"))
    # Every read model caught up first (the report's too), so the runs below only read.
    ok(custody("report", "--html", str(tmp_path / "first.html"), cwd=tmp_path, store=store))
    ok(custody("timeline", cwd=tmp_path, store=store))

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (48_000, 48_000))

    outs = tmp_path / "outs"
    outs.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CUSTODY_STORE"}
    for args in (
        ["timeline", "--format", "csv", "--output", str(outs / "t.csv")],
        ["--json", "timeline", "--output", str(outs / "t.json")],
        ["report", "--html", str(outs / "r.html")],
    ):
        run = subprocess.run(
            [*MODULE, "--store", store, *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            preexec_fn=limited,  # the child's own limit, set before it execs
            check=False,
        )
        assert run.returncode == 1, run.stderr
        (line,) = run.stderr.splitlines()
        said = (
            r"custody: cannot write '.*': File too large; the file is as it was, nothing half "
            r"written"
        )
        assert re.fullmatch(said, line), line
        if "--json" in args:
            assert json.loads(run.stdout)["error"] == "LedgerError"
    assert list(outs.iterdir()) == []


def test_a_read_only_file_is_never_replaced_by_an_export_the_report_or_a_digest(
    tmp_path: Path,
) -> None:
    """The cli review: ``timeline --output`` refused a file its owner made read-only (0444),
    while ``report --html`` and ``digest --out`` replaced it with a new, writable one; rev29:
    as root (the documented set-up) all three replaced it, root passing every ``os.access``.
    Each refuses it now, before any work, with the same line (exit 2, naming the file) as root
    and as a user who may not write it (as root, setpriv drops the capabilities that write
    any file), and it is left as it was."""
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(store).close()
    with Ledger.open(store) as ledger:
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
    ok(custody("digest", "--out", "d.json", cwd=tmp_path, store=store))
    for name in ("r.html", "t.csv"):
        (tmp_path / name).write_text("kept")
    kept = [tmp_path / name for name in ("r.html", "d.json", "t.csv")]
    for path in kept:
        path.chmod(0o444)
    before = {p: p.read_bytes() for p in kept}
    caps = "-dac_override,-dac_read_search,-fowner"
    drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    programs = [MODULE, (*drop, *MODULE)] if os.geteuid() == 0 else [MODULE]
    for args, field, name in (
        (["report", "--html", "r.html"], "--html", "r.html"),
        (["digest", "--out", "d.json"], "out", "d.json"),
        (["timeline", "--format", "csv", "--output", "t.csv"], "output", "t.csv"),
    ):
        for program in programs:
            run = custody(*args, cwd=tmp_path, store=store, program=program)
            assert run.code == 2, (program, run.err)
            said = f"{name!r} is read-only: make it writable or name another file"
            assert error_line(run) == f"custody: invalid {field}: {said}"
    assert {p: p.read_bytes() for p in before} == before
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o444 for p in before)


def test_the_report_with_a_home_it_cannot_write_says_nothing_and_makes_nothing(
    tmp_path: Path,
) -> None:
    """The cli review: ``report --html`` under a read-only home printed matplotlib's two-line
    warning on stderr, and under a missing one (a container's ``HOME=/nonexistent``) made the
    home's ``.config`` and ``.cache``. Each run now writes its page and nothing else: stderr
    empty, no directory made, no temporary one left. As root the test drops the capabilities
    that write any directory (setpriv)."""
    store = f"sqlite:///{tmp_path / 'fleet.db'}"
    Ledger.init(store).close()
    with Ledger.open(store) as ledger:  # a lease, so that the chart is drawn
        ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
        ledger.handle(Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t"))
    read_only = tmp_path / "ro_home"
    read_only.mkdir(mode=0o555)
    caps = "-dac_override,-dac_read_search,-fowner"
    drop = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"] if os.geteuid() == 0 else []
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("XDG_", "MPL", "CUSTODY_"))}
    for n, home in enumerate((tmp_path / "missing", read_only)):
        run = subprocess.run(
            [*drop, *MODULE, "--store", store, "report", "--html", f"r{n}.html"],
            cwd=tmp_path, env={**env, "HOME": str(home), "TMPDIR": str(scratch)},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert (run.returncode, run.stderr) == (0, ""), home
        assert "leases_drawn: 1" in run.stdout
    assert not (tmp_path / "missing").exists()
    assert list(read_only.iterdir()) == []
    assert list(scratch.iterdir()) == []


def test_the_summary_line_shows_the_output_path_escaped(store: str, tmp_path: Path) -> None:
    """A path holding a terminal's escape is written to as given and named in the summary
    line as its escape, as every other text a terminal is shown (rev33: the line carried the
    raw ESC, which turned the terminal red)."""
    name = "t\x1b[31mred.csv"
    run = ok(custody("timeline", "--format", "csv", "--output", name, cwd=tmp_path, store=store))
    assert "\x1b" not in run.out
    assert run.out.endswith("rows to t\\x1b[31mred.csv (csv)\n"), run.out
    assert (tmp_path / name).exists()
