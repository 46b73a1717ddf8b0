"""End to end: ``custody timeline`` writes a timeline of any length a page at a time, so its
memory is one page's whatever the store holds (rev42: a fleet's 368,000 events took 2.5 GB to
print as JSON, 1.7 GB as lines), and a failure part way leaves a file as it was. SQLite: the
pages are read through the same feed on PostgreSQL (``tests/integration/test_read_models.py``
checks them on both)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from cli_process import MODULE, custody, error_line, finish, ok, start

from ledger import Checkout, Heartbeat, Lease, Ledger, RegisterProfile

# A page's events (``projections._timeline.PAGE_ROWS``, the default): the stores are sized by
# it, a literal so that a mutant of the default leaves them as they are.
PAGE_ROWS = 5_000

PROFILES = 50
URL = "https://shop.example/checkout?" + "&".join(f"item{n}=sku-{n:04d}" for n in range(20))


def _leased(url: str) -> list[Lease]:
    """``PROFILES`` profiles registered, each leased."""
    with Ledger.open(url) as ledger:
        for n in range(PROFILES):
            ledger.handle(RegisterProfile(profile_id=f"p{n:02d}", account_id="acct", proxy_id="px"))
        checkouts = [
            Checkout(profile_id=f"p{n:02d}", worker_id="w", run_id=f"r{n}", task_type="t")
            for n in range(PROFILES)
        ]
        return ledger.handle_together(checkouts)


def _beat(url: str, leases: list[Lease], events: int) -> None:
    """About ``events`` more events: heartbeats of every lease, a batch a round."""
    beats = [
        Heartbeat(lease_id=lease.lease_id, fencing_token=lease.fencing_token, step="s", url=URL)
        for lease in leases
    ]
    with Ledger.open(url) as ledger:
        for _ in range(events // len(beats)):
            ledger.handle_together(beats)


def _events(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM custody_timeline").fetchone()[0])


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A store five pages long and a bit, and the same store grown to eleven: each past the
    pages an export's memory takes to settle (its allocators' pools fill over three or four
    pages, then hold), so what grows between them is what grows with the timeline."""
    where = tmp_path_factory.mktemp("pages")
    short, long = where / "short.db", where / "long.db"
    Ledger.init(f"sqlite:///{short}").close()
    leases = _leased(f"sqlite:///{short}")
    _beat(f"sqlite:///{short}", leases, 5 * PAGE_ROWS + 200)
    ok(custody("timeline", "--last", "1", cwd=where, store=f"sqlite:///{short}"))  # caught up
    shutil.copy(short, long)
    _beat(f"sqlite:///{long}", leases, 6 * PAGE_ROWS)
    ok(custody("timeline", "--last", "1", cwd=where, store=f"sqlite:///{long}"))
    assert _events(short) > 5 * PAGE_ROWS
    assert _events(long) > 11 * PAGE_ROWS
    return short, long


def _peak_kib(args: list[str], store: Path, cwd: Path) -> int:
    """The largest resident size (KiB) of ``custody ARGS`` on ``store``, its output dropped."""
    env = {**os.environ, "CUSTODY_STORE": f"sqlite:///{store}"}
    proc = subprocess.Popen(
        [*MODULE, *args], cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    if proc.stderr:
        proc.stderr.close()
    return usage.ru_maxrss


@pytest.mark.parametrize(
    "args",
    [
        ["timeline"],
        ["timeline", "--format", "json"],
        ["timeline", "--format", "csv"],
        ["timeline", "--format", "parquet", "--output", "t.parquet"],
    ],
    ids=["lines", "json", "csv", "parquet"],
)
def test_a_timeline_twice_as_long_takes_no_more_memory_to_write(
    stores: tuple[Path, Path], tmp_path: Path, args: list[str]
) -> None:
    """Printed or saved, a timeline of eleven pages peaks within 45 MiB of one of five (paged:
    0 to 20 MiB more; read whole, the 30,000 more events took 134 MiB more as lines, about 90
    as JSON, csv or parquet)."""
    short, long = stores
    grown = _peak_kib(args, long, tmp_path) - _peak_kib(args, short, tmp_path)
    assert grown < 45 * 1024, f"{grown // 1024} MiB more for {_events(long) - _events(short)}"


def test_an_export_of_many_pages_is_the_whole_timeline_in_order(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    """Every event once, in log order, across the pages: JSON, lines, csv and parquet agree."""
    _, long = stores
    url = f"sqlite:///{long}"
    found = ok(custody("timeline", "--format", "json", cwd=tmp_path, store=url)).json()
    positions = [row["position"] for row in found]
    assert positions == sorted(set(positions))
    assert len(positions) == _events(long)
    lines = ok(custody("timeline", cwd=tmp_path, store=url)).out.splitlines()
    csv = ok(custody("timeline", "--format", "csv", cwd=tmp_path, store=url)).out.splitlines()
    assert len(lines) == len(found) == len(csv) - 1
    ok(custody("timeline", "--format", "parquet", "--output", "t.parquet", cwd=tmp_path, store=url))
    saved = pd.read_parquet(tmp_path / "t.parquet")
    assert saved["position"].tolist() == positions
    assert saved.iloc[-1]["command_id"] == found[-1]["command_id"]


def test_a_failure_in_a_later_page_leaves_the_file_as_it_was(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    """A row of the third page damaged by hand: ``--output`` fails with the damaged read
    model's line and exit 1, the file it would replace untouched and nothing beside it; printed,
    the pages before it are out and the same line ends the command with the same code."""
    _, long = stores
    damaged = tmp_path / "store" / "damaged.db"
    damaged.parent.mkdir()
    shutil.copy(long, damaged)
    with sqlite3.connect(damaged) as db:
        (position,) = db.execute(
            "SELECT position FROM custody_timeline ORDER BY position LIMIT 1 OFFSET ?",
            (2 * PAGE_ROWS + 3,),
        ).fetchone()
        db.execute(
            "UPDATE custody_timeline SET fencing_token = 'x' WHERE position = ?", (position,)
        )
    url = f"sqlite:///{damaged}"
    kept = tmp_path / "t.json"
    kept.write_text("kept\n")
    saved = custody("timeline", "--format", "json", "--output", "t.json", cwd=tmp_path, store=url)
    assert (saved.code, saved.out) == (1, "")
    assert "read model timeline" in error_line(saved)
    assert kept.read_text() == "kept\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store", "t.json"]
    printed = custody("timeline", "--format", "csv", cwd=tmp_path, store=url)
    assert (printed.code, error_line(printed)) == (1, error_line(saved))
    assert len(printed.out.splitlines()) - 1 == 2 * PAGE_ROWS
    # Under --json, the error is no object written after the array's first pages, which no
    # reader could parse (rev43): stderr and the exit code say it. One refused before any page
    # is the object, as ever.
    cut = custody("--json", "timeline", cwd=tmp_path, store=url)
    assert (cut.code, error_line(cut)) == (1, error_line(saved))
    assert cut.out.startswith("[\n  {")
    assert '"error"' not in cut.out
    assert cut.out.count('"event_type"') == 2 * PAGE_ROWS
    refused = custody("--json", "timeline", "nobody", cwd=tmp_path, store=url)
    assert (refused.code, refused.json()["error"]) == (2, "UnknownProfile")


def test_a_json_export_interrupted_part_way_ends_its_output_where_it_stopped(
    stores: tuple[Path, Path], tmp_path: Path
) -> None:
    """Ctrl-C while ``--json timeline`` writes its pages (the reader holding the pipe full):
    exit 130 and "interrupted" on stderr; stdout holds the part written, no error object
    after it (rev43: '...},\\n{"error": "Interrupted"...', which no reader could parse)."""
    _, long = stores
    proc = start("--json", "timeline", cwd=tmp_path, store=f"sqlite:///{long}")
    assert proc.stdout is not None
    begun = proc.stdout.read(4096)  # then the pipe fills, the writer waits in write()
    time.sleep(1)
    proc.send_signal(signal.SIGINT)
    run = finish(proc)
    out = begun + run.out
    assert (run.code, run.err) == (130, "custody: interrupted\n")
    assert out.startswith("[\n  {"), out[:200]
    assert '"error"' not in out, out[-300:]
