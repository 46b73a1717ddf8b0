"""Accepted means readable, forever, exactly, as a property: any text a write accepts comes back
equal from every read and export (the Python API, the read models, the reports, the command
line's JSON, CSV and parquet), on SQLite and PostgreSQL; a text a write refuses leaves the store
as it was; and no read fails after a write succeeded."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from pg_cluster import PostgresCluster, create_database, drop_database

import reports
from custody._output import undefanged
from custody.cli import main
from ledger import (
    Checkout,
    Heartbeat,
    InvalidInput,
    Ledger,
    LedgerError,
    RegisterProfile,
    Release,
    Review,
)
from projections import explain, timeline, who

# Texts that pandas, CSV, spreadsheets or a table might take for something else.
LOOKALIKES = (
    "NaT", "<NA>", "None", "null", "nan", "NaN", "", " ", "-", "0", "True",
    "2026-12-02T10:00:00-worker-7", "2026-12-02", "=1+1", "+cmd|' /C calc'!A0", "-2", "@SUM(A1)",
    "\tx", "\rx", "'=x", "''+y", "a,b", 'say "hi"', "line\nbreak", "\x1b[2J", "é", "日本",
    "\U0001f600", "\u2028", "\ufeffbom", "x" * 300,
)  # fmt: skip
HOSTILE = st.one_of(
    st.text(max_size=30),
    st.text(st.characters(codec=None, categories=["Cc", "Cs", "Zs", "Po", "Sm"]), max_size=8),
)
# Text most writes accept: no controls or surrogates, no spaces around, not empty.
NAMES = st.text(
    st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]), min_size=1, max_size=30
).filter(lambda s: s == s.strip() and s != "")
FREE = st.text(st.characters(exclude_categories=["Cs"]), max_size=60).map(
    lambda s: s.replace("\x00", "")
)


def mostly(accepted: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Look-alikes and hostile text among texts the field accepts, so most histories go far."""
    return st.one_of(accepted, accepted, st.sampled_from(LOOKALIKES), HOSTILE)


_PROFILE_ID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
# Profile ids are a closed alphabet (refusals of other text are pinned by the unit tests).
PROFILE_IDS = st.one_of(st.sampled_from(("NaT", "None", "nan", "null", "p.1:2-3")), _PROFILE_ID)


@dataclass
class Written:
    """What the writes accepted, by field, for the reads to give back."""

    fields: dict[str, str] = field(default_factory=dict)


@contextlib.contextmanager
def fresh_store(kind: str, cluster: PostgresCluster | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as where:
            url = f"sqlite:///{Path(where) / 'custody.db'}"
            Ledger.init(url).close()
            yield url
        return
    assert cluster is not None
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = create_database(cluster.admin_url, name)
    try:
        Ledger.init(url).close()
        yield url
    finally:
        drop_database(cluster.admin_url, name)


def attempt(ledger: Ledger, write: Callable[[], Any]) -> bool:
    """Run a write: True if accepted; if refused as bad input, the store is unchanged."""
    before = ledger.store.event_count()
    try:
        write()
    except InvalidInput:
        assert ledger.store.event_count() == before
        return False
    return True


def write_history(ledger: Ledger, t: dict[str, str]) -> Written:
    """Register, lease, heartbeat, release as a failure, review and quarantine, each with the
    texts drawn; a refused write ends the history there."""
    w = Written()
    steps: list[tuple[dict[str, str], Callable[[], Any]]] = [
        (
            {"profile_id": t["profile"], "account_id": t["account"], "proxy_id": t["proxy"]},
            lambda: ledger.handle(
                RegisterProfile(
                    profile_id=t["profile"], account_id=t["account"], proxy_id=t["proxy"]
                )
            ),
        ),
        (
            {"worker_id": t["worker"], "run_id": t["run"], "task_type": t["task"]},
            lambda: ledger.handle(
                Checkout(
                    profile_id=t["profile"],
                    worker_id=t["worker"],
                    run_id=t["run"],
                    task_type=t["task"],
                )
            ),
        ),
        (
            {"step": t["step"], "url": t["url"]},
            lambda: ledger.handle(
                Heartbeat(lease_id=lease(t), fencing_token=1, step=t["step"], url=t["url"])
            ),
        ),
        (
            {"reason": t["reason"]},
            lambda: ledger.handle(
                Release(lease_id=lease(t), fencing_token=1, outcome="failure", reason=t["reason"])
            ),
        ),
        (
            {"note": t["note"]},
            lambda: ledger.handle(
                Review(
                    profile_id=t["profile"], reviewer="reviewer", decision="return", note=t["note"]
                )
            ),
        ),
    ]
    for fields, write in steps:
        if not attempt(ledger, write):
            break
        w.fields.update(fields)
    return w


def lease(t: dict[str, str]) -> str:
    return f"lease-1@{t['profile']}"


def cli(store: str, *args: str) -> str:
    """Run the command line in this process; its stdout (it must exit 0)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--store", store, *args])
    assert code == 0, (args, err.getvalue())
    return out.getvalue()


def check_reads(store: str, w: Written, where: Path) -> None:
    """Every read gives back what was written; none fails."""
    f = w.fields
    if "profile_id" not in f:
        return
    pid = f["profile_id"]
    with Ledger.open(store) as ledger:
        view = ledger.view(pid)
        assert (view.record.account_id, view.record.proxy_id) == (f["account_id"], f["proxy_id"])
        rows = timeline(ledger, pid)
        assert {(r.profile_id, r.account_id) for r in rows} == {(pid, f["account_id"])}
        why = explain(ledger, pid)
        assert (why.profile_id, why.account_id, why.proxy_id) == (
            pid,
            f["account_id"],
            f["proxy_id"],
        )
        used = who(ledger, pid)
        frame = reports.timeline(pid, ledger=ledger)
        usage = reports.usage(f["account_id"], ledger=ledger)
        for everything in (reports.fleet, reports.health, reports.checklist):
            everything(ledger=ledger)
    exported = cli(store, "--json", "timeline", pid)
    csv_rows = list(csv.DictReader(io.StringIO(cli(store, "timeline", pid, "--format", "csv"))))
    parquet = where / "t.parquet"
    cli(store, "timeline", pid, "--format", "parquet", "--output", str(parquet))
    from_parquet = pd.read_parquet(parquet)
    cli(store, "timeline", pid)  # the table for a person, too, must not fail
    cli(store, "report", "--html", str(where / "r.html"))

    assert list(frame["profile_id"]) == [pid] * len(rows)
    assert [undefanged(r["profile_id"]) for r in csv_rows] == [pid] * len(rows)
    assert list(from_parquet["profile_id"]) == [pid] * len(rows)
    assert exported.count('"profile_id"') == len(rows)
    if "worker_id" not in f:
        return
    leased = [r for r in rows if r.lease_id is not None]
    assert {(r.worker_id, r.run_id) for r in leased} == {(f["worker_id"], f["run_id"])}
    assert used.lease is not None
    assert (used.lease.worker_id, used.lease.run_id, used.lease.task_type) == (
        f["worker_id"],
        f["run_id"],
        f["task_type"],
    )
    assert list(usage["worker_id"]) == [f["worker_id"]]
    assert list(usage["task_type"]) == [f["task_type"]]
    assert list(usage["proxy_id"]) == [f["proxy_id"]]
    assert why.lease is not None
    assert why.lease.worker_id == f["worker_id"]
    for r in csv_rows:
        if r["lease_id"]:
            assert undefanged(r["worker_id"]) == f["worker_id"]
    if "step" not in f:
        return
    beat = next(r for r in rows if r.event_type == "lease_heartbeat")
    assert (beat.step, beat.url) == (f["step"], f["url"])
    (csv_beat,) = [r for r in csv_rows if r["event_type"] == "lease_heartbeat"]
    assert (undefanged(csv_beat["step"]), undefanged(csv_beat["url"])) == (f["step"], f["url"])
    parquet_beat = from_parquet.loc[from_parquet["event_type"] == "lease_heartbeat"].iloc[0]
    assert (parquet_beat["step"], parquet_beat["url"]) == (f["step"], f["url"])
    assert list(usage["last_url"]) == [f["url"]]
    if "reason" not in f:
        return
    (released,) = [r for r in rows if r.event_type == "lease_release_requested"]
    assert released.reason == f["reason"]
    (csv_release,) = [r for r in csv_rows if r["event_type"] == "lease_release_requested"]
    assert undefanged(csv_release["reason"]) == f["reason"]
    if "note" in f:
        (reviewed,) = [r for r in rows if r.event_type == "profile_reviewed"]
        assert reviewed.reason == f["note"]


DRAWS = st.fixed_dictionaries(
    {
        "profile": PROFILE_IDS,
        "account": mostly(NAMES),
        "proxy": mostly(NAMES),
        "worker": mostly(NAMES),
        "run": mostly(NAMES),
        "task": mostly(NAMES),
        "step": mostly(NAMES),
        "url": mostly(FREE),
        "reason": mostly(FREE),
        "note": mostly(NAMES),
    }
)


@pytest.mark.parametrize(
    ("kind", "examples"),
    [("sqlite", 60), pytest.param("postgresql", 30, marks=pytest.mark.postgres)],
)
def test_every_accepted_text_reads_back_exactly(
    kind: str, examples: int, request: pytest.FixtureRequest
) -> None:
    """Hostile texts in every field a caller fills: accepted ones come back equal from every
    read and export; refused ones write nothing; no read fails after an accepted write."""
    cluster = request.getfixturevalue("pg_cluster") if kind == "postgresql" else None

    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(texts=DRAWS)
    def run(texts: dict[str, str]) -> None:
        with fresh_store(kind, cluster) as store, tempfile.TemporaryDirectory() as where:
            with Ledger.open(store) as ledger:
                written = write_history(ledger, texts)
            event(f"accepted up to: {list(written.fields)[-1] if written.fields else 'nothing'}")
            check_reads(store, written, Path(where))

    try:
        run()
    except LedgerError as e:  # a refusal other than bad input is a finding, said plainly
        raise AssertionError(f"a write or read failed: {e!r}") from e
