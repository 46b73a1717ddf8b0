"""``custody sweep --watch`` as real processes: two watchers on one store (SQLite and
PostgreSQL) while leases expire settle each expired lease exactly once, leave a renewed one
alone, and stop with exit 0 on SIGTERM or SIGINT."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from conftest import register

from ledger import Checkout, Heartbeat, Ledger, ProfileState
from projections import timeline

# Six batches expire one after another: each is one more chance for the two watchers' passes
# to overlap (on a loaded machine one pass can finish before the other begins). A round whose
# watchers never raced is run again on new profiles, with new watchers, up to ROUNDS times.
ROUNDS = 3
_TEXT_LINE = re.compile(
    r"\S+ (lease-1@\S+): marked stale; \S+ is review_required \(lease_expired\)"
)
_STOPPED = re.compile(r"custody: sweeper stopped after (\d+) pass\(es\); (\d+) version race")


def _start_watcher(
    store_url: str, out: Path, err: Path, *, as_json: bool
) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "custody", "--store", store_url, *(["--json"] if as_json else [])]
    with out.open("wb") as stdout, err.open("wb") as stderr:
        return subprocess.Popen(
            [*argv, "sweep", "--watch", "--interval", "0.3"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
        )


def _wait_for(what: str, done: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.slow
def test_two_watchers_settle_each_expired_lease_once_and_stop_on_signals(
    sql_store_url: str, tmp_path: Path
) -> None:
    """Two watcher processes start together on 40 overdue leases (so their passes collide:
    version races are counted and must happen, over six such batches, in one of up to
    ``ROUNDS`` rounds of new watchers on new profiles), then six more leases pass their
    deadlines one after another while they run. The history holds exactly one
    lease_marked_stale and one review_requested per lease, the watchers' JSON lines name each
    lease exactly once between them, a lease kept renewed is never touched, and SIGTERM (one)
    and SIGINT (the other) stop them with exit 0, no traceback. Without the SIGTERM handler
    the first exits -15, and without the unit of work's retry after a lost race a lease is
    logged twice: both fail."""
    races = 0
    for round_ in range(ROUNDS):
        races += _watch_a_round(sql_store_url, tmp_path / f"round{round_}", f"r{round_}_")
        if races:
            break
    assert races > 0, f"the watchers never raced in {ROUNDS} rounds: this test proved nothing"


def _watch_a_round(store_url: str, here: Path, prefix: str) -> int:
    """One round of two watchers on profiles named with ``prefix``; the version races they
    lost between them."""
    here.mkdir()
    batches = [[f"{prefix}batch{k}_{i:02}" for i in range(40)] for k in range(6)]
    batch = [pid for each in batches for pid in each]
    expiring = [f"{prefix}exp_{i}" for i in range(6)]
    renewed = f"{prefix}renewed"
    with Ledger.open(store_url) as ledger:
        for pid in [*batch, *expiring, renewed]:
            register(ledger, pid)
    outs = [(here / f"w{n}.out", here / f"w{n}.err") for n in range(2)]
    watchers = [  # one logs JSON lines, the other text lines
        _start_watcher(store_url, out, err, as_json=n == 0) for n, (out, err) in enumerate(outs)
    ]
    try:
        for _, err in outs:
            _wait_for("the watchers to start", lambda err=err: b"sweeping" in err.read_bytes())
        with Ledger.open(store_url) as ledger:
            # The batch expires only once both watchers are polling, so both passes find it
            # at once and must race for it, however slowly either process started.
            for pid in batches[0]:
                ledger.handle(
                    Checkout(
                        profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=1
                    )
                )
            kept = ledger.handle(
                Checkout(
                    profile_id=renewed, worker_id="w", run_id="r", task_type="t", ttl_seconds=3
                )
            )
            for n, pid in enumerate(expiring):  # deadlines spread over the watchers' passes
                ledger.handle(
                    Checkout(
                        profile_id=pid,
                        worker_id="w",
                        run_id=f"r{n}",
                        task_type="t",
                        ttl_seconds=1 + n % 3,
                    )
                )
                time.sleep(0.3)

            expired = [*batches[0], *expiring]

            def settled() -> bool:
                ledger.handle(Heartbeat(lease_id=kept.lease_id, fencing_token=kept.fencing_token))
                done = (ledger.view(p).state for p in expired)
                return all(state is ProfileState.REVIEW_REQUIRED for state in done)

            _wait_for("every expired lease to be settled", settled)
            for each in batches[1:]:
                for pid in each:
                    ledger.handle(
                        Checkout(
                            profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=1
                        )
                    )
                expired += each
                _wait_for("every expired lease to be settled", settled)
            time.sleep(1.0)  # a few more passes: nothing more may happen
            ledger.handle(Heartbeat(lease_id=kept.lease_id, fencing_token=kept.fencing_token))
        watchers[0].send_signal(signal.SIGTERM)
        watchers[1].send_signal(signal.SIGINT)
        codes = [w.wait(timeout=30) for w in watchers]
    finally:
        for w in watchers:
            if w.poll() is None:
                w.kill()
                w.wait()

    errs = [err.read_text() for _, err in outs]
    assert codes == [0, 0], errs
    races = 0
    for text in errs:
        assert "Traceback" not in text
        stopped = _STOPPED.match(text.splitlines()[-1])
        assert stopped is not None, text
        races += int(stopped[2])
    as_json = [json.loads(line) for line in outs[0][0].read_text().splitlines()]
    assert all(entry["transition"] == "settled" for entry in as_json), as_json
    as_text = [_TEXT_LINE.fullmatch(line) for line in outs[1][0].read_text().splitlines()]
    assert all(as_text), outs[1][0].read_text()
    logged = [e["lease_id"] for e in as_json] + [m[1] for m in as_text if m]
    assert sorted(logged) == sorted(f"lease-1@{p}" for p in [*batch, *expiring])
    with Ledger.open(store_url) as ledger:
        for pid in [*batch, *expiring]:
            types = [e.event_type for e in ledger.history(pid)]
            assert types.count("lease_marked_stale") == 1, (pid, types)
            assert types.count("review_requested") == 1, (pid, types)
        assert ledger.view(renewed).state is ProfileState.LEASED
    return races


def test_a_watch_line_is_stamped_with_its_events_time(store_url: str, tmp_path: Path) -> None:
    """``custody --json sweep --watch``: a settled lease's line says when its events were
    written, as the timeline shows them, so the sweeper's log is matched to the timeline
    (rev30: it said when the pass began, before them: .223328 against the timeline's
    .234731)."""
    with Ledger.open(store_url) as ledger:
        register(ledger, "p1")
        ledger.handle(
            Checkout(profile_id="p1", worker_id="w", run_id="r", task_type="t", ttl_seconds=1)
        )
    out, err = tmp_path / "out.jsonl", tmp_path / "err.txt"
    watcher = _start_watcher(store_url, out, err, as_json=True)
    try:
        _wait_for("the settled line", lambda: out.read_text().endswith("\n"))
    finally:
        watcher.send_signal(signal.SIGTERM)
        assert watcher.wait(timeout=60) == 0, err.read_text()
    [line] = [json.loads(text) for text in out.read_text().splitlines()]
    with Ledger.open(store_url) as ledger:
        rows = [r for r in timeline(ledger, "p1") if r.actor_id == "sweeper"]
    assert [r.event_type for r in rows] == ["lease_marked_stale", "review_requested"]
    assert [r.at for r in rows] == [datetime.fromisoformat(line["at"])] * 2
    assert line["transition"] == "settled", line
    assert "browser" in line, line


def test_watch_refuses_a_bad_interval_and_interval_needs_watch(tmp_path: Path) -> None:
    """--interval below 0.1 s is bad input (exit 2); --interval without --watch too."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    Ledger.init(store).close()
    base = [sys.executable, "-m", "custody", "--store", store, "sweep"]
    for extra in (["--watch", "--interval", "0"], ["--interval", "3"]):
        done = subprocess.run([*base, *extra], capture_output=True, text=True, check=False)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        assert "interval" in done.stderr
