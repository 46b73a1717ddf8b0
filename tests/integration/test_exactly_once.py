"""Exactly once, on every store: the conformance suite of custody's read models.

Each case runs unchanged on SQLite and PostgreSQL (``sql_store_url``) against every read model
fed from the log (``projections.READ_MODELS``), as the library's conformance suites do for a
recorder. What it holds custody's catch-up to, one section each:

- each event is folded once across batches, whatever their size and however many a
  transaction folds, by one read model at a time or by all of them together (``catch_up_all``:
  one read of the log for every read model, each from its own checkpoint);
- a crash between the rows and the checkpoint (either way round, or a SIGKILL of a runner
  process) leaves both as they were, and the next catch-up goes on exactly;
- two runners of one read model (threads, then processes) take turns on its checkpoint;
- a rebuild into a shadow table, beside writer processes, equals a twin kept incrementally.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from conftest import StepClock, register
from log_checks import (
    assert_exact,
    every_ending,
    rows,
    take_lease,
    twin as twin_of,
    twins as twins_of,
    whole_log,
)
from runner_processes import WORKER, background_runner, backlog, caught_up, custody, wait_for

from ledger import (
    Checkout,
    Heartbeat,
    InvalidInput,
    Ledger,
    Release,
    StoreUnavailable,
    feed as feed_module,
)
from ledger.feed import FeedTransaction
from projections import (
    LEASES_READ_MODEL,
    READ_MODELS,
    catch_up,
    catch_up_all,
    read_model_status,
    rebuild,
    run,
    timeline,
)

PROFILES = ["race_a", "race_b", "race_c"]


@pytest.fixture
def ledger(sql_store_url: str, clock: StepClock) -> Iterator[Ledger]:
    """A ledger on a fresh SQLite or PostgreSQL store, judging deadlines on ``clock``."""
    with Ledger.open(sql_store_url, clock=clock) as opened:
        yield opened


# -- each event once, across batches


def test_each_event_is_folded_once_whatever_the_batches(ledger: Ledger, clock: StepClock) -> None:
    """Catch-ups in batches of 1, 3 and 500, run between commands (so a batch ends anywhere:
    mid-lease, mid-profile), leave each read model's twins equal, row for row, and each equal
    to the log: every event once, every heartbeat counted once."""
    small, tiny = twins_of("by3"), twins_of("by1")
    for n in range(3):
        pid = register(ledger, f"p{n}")
        lid, tok = take_lease(ledger, pid, run=f"r{n}")
        for beat in range(7 + n):
            ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{beat}"))
            if beat % 3 == n:
                for model in small:
                    catch_up(ledger, model, batch=3)
        for model in tiny:
            catch_up(ledger, model, batch=1)
        ledger.handle(
            Release(lease_id=lid, fencing_token=tok, outcome="success", final_url="https://x/ok")
        )
    for models, batch in ((READ_MODELS.values(), 500), (small, 3), (tiny, 1)):
        for model in models:
            catch_up(ledger, model, batch=batch)
    for model, by3, by1 in zip(READ_MODELS.values(), small, tiny, strict=True):
        key = model.table.key
        live = rows(ledger, model.table.name, key)
        assert live == rows(ledger, by3.table.name, key) == rows(ledger, by1.table.name, key)
    for models in (small, tiny):
        leases, timeline_twin = (m.table.name for m in models)
        assert_exact(ledger, timeline=timeline_twin, leases=leases)
    assert_exact(ledger)


def test_batches_applied_in_one_transaction_equal_a_catch_up(
    ledger: Ledger, clock: StepClock
) -> None:
    """A rebuild's last step applies every batch that arrived meanwhile in one transaction, so
    one lease can be upserted by several batches before a commit. Each batch's rows go in on
    their own: the same as a catch-up. Guard: the bulk upsert empties its load table (on
    PostgreSQL, rows were kept until commit and the next batch upserted a lease twice)."""
    every_ending(ledger, clock)
    twin = twin_of(LEASES_READ_MODEL, "twin")
    catch_up(ledger, twin)
    catch_up(ledger, LEASES_READ_MODEL)
    with ledger.feed.transaction() as tx:
        tx.execute("DELETE FROM custody_leases")
        for n in ledger.feed.read(0, 1000):
            LEASES_READ_MODEL.fold(tx, "custody_leases", [n])
    assert rows(ledger, "custody_leases", "lease_id") == rows(ledger, twin.table.name, "lease_id")


def test_read_models_caught_up_together_read_and_decode_each_event_once(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``catch_up_all`` of read models at different checkpoints (one behind the other, one
    already at the head) folds into each only the events after its own checkpoint, reading the
    log once per batch for all of them and decoding each event's JSON once, however many read
    models fold it. Guards: the one read (a catch-up of each read model read the log once
    each) and ``LoggedEvent.data``'s decoded dict (each read model decoded it again)."""
    pid = register(ledger)
    lid, tok = take_lease(ledger, pid)
    beat = iter(range(100))

    def beats(n: int) -> None:
        for _ in range(n):
            ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{next(beat)}"))

    beats(10)
    ahead, behind, never = twins_of("ahead"), twins_of("behind"), twins_of("never")
    for model in (*ahead, *behind):
        catch_up(ledger, model)
    beats(10)
    for model in ahead:
        catch_up(ledger, model)
    at_head = twin_of(LEASES_READ_MODEL, "at_head")
    catch_up(ledger, at_head)
    beats(10)
    catch_up(ledger, at_head)
    logged = len(whole_log(ledger))
    reads, decoded = [], []
    read, decode = FeedTransaction.events_after, feed_module.decode_shown
    monkeypatch.setattr(
        FeedTransaction, "events_after", lambda tx, *a: reads.append(a) or read(tx, *a)
    )
    monkeypatch.setattr(feed_module, "decode_shown", lambda *a: decoded.append(a) or decode(*a))
    folded = catch_up_all(ledger, (*ahead, *behind, *never, at_head))
    assert folded == 2 * 10 + 2 * 20 + 2 * logged  # each read model's own events, once
    assert reads == [(0, 500)]  # from the least checkpoint (``never``'s), in one batch
    assert len(decoded) == logged  # each event's JSON once, for every read model folding it
    monkeypatch.undo()
    for suffix, models in (("ahead", ahead), ("behind", behind), ("never", never)):
        leases, timeline_twin = (m.table.name for m in models)
        assert_exact(ledger, timeline=timeline_twin, leases=leases), suffix
    assert rows(ledger, at_head.table.name, "lease_id")[0]["heartbeats"] == 30


def test_a_read_model_named_twice_is_caught_up_once(ledger: Ledger) -> None:
    """A read model given twice, to ``catch_up_all`` or to ``run`` (a caller building its list
    from names with a repeat), folds each event once: its checkpoint claimed twice in one
    transaction would give both claims the same position, and every event would be folded
    twice (each heartbeat counted twice; the timeline's rows inserted again). Two different
    read models under one name are refused: they would share a checkpoint. Guard:
    ``_once_each`` in ``projections._runner`` (found by a review: 10 heartbeats for 5)."""
    pid = register(ledger)
    lid, tok = take_lease(ledger, pid)
    leases, timeline_twin = twins_of("named_twice")
    catch_up(ledger, leases)
    for step in range(5):
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{step}"))
    catch_up_all(ledger, [leases, timeline_twin, leases, timeline_twin])
    assert rows(ledger, leases.table.name, "lease_id")[0]["heartbeats"] == 5
    for step in range(5, 8):
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{step}"))
    run(ledger, [leases, leases, timeline_twin, timeline_twin], rounds=1)
    assert rows(ledger, leases.table.name, "lease_id")[0]["heartbeats"] == 8
    assert_exact(ledger, timeline=timeline_twin.table.name, leases=leases.table.name)
    impostor = twin_of(LEASES_READ_MODEL, "impostor")
    impostor.name = leases.name
    with pytest.raises(InvalidInput, match="two different read models are named"):
        catch_up_all(ledger, [leases, impostor])


# -- a crash between the rows and the checkpoint


def _crash_at(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every catch-up die at ``where``: when it writes the position (its rows written),
    or right after a read model wrote its rows."""

    def crash(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"killed {where}")

    if where == "at the position":
        monkeypatch.setattr(FeedTransaction, "move_checkpoint", crash)
        return
    for model in READ_MODELS.values():
        wrote = type(model).fold

        def fold_then_crash(self: object, *args: object, _wrote: object = wrote) -> None:
            _wrote(self, *args)  # type: ignore[operator]
            crash()

        monkeypatch.setattr(type(model), "fold", fold_then_crash)


@pytest.mark.parametrize("together", [False, True], ids=["each alone", "together"])
@pytest.mark.parametrize("where", ["at the position", "after the rows"])
def test_a_crash_mid_batch_applies_nothing_and_the_next_catch_up_is_exact(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch, where: str, together: bool
) -> None:
    """A catch-up that dies between writing a batch's rows and writing its position (either
    way round; one read model's catch-up, or all of them together, where the first read model
    has written its rows when the crash comes) leaves rows and positions as they were; the next
    catch-up applies each event once: no duplicate, no gap, every heartbeat counted once."""
    pid = register(ledger)
    lid, tok = take_lease(ledger, pid)
    for n in range(30):
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{n}"))
    for model in READ_MODELS.values():
        catch_up(ledger, model, batch=7)
    for n in range(30, 50):
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{n}"))
    tables = {name: (p.table.name, p.table.key) for name, p in READ_MODELS.items()}
    before = {p.name: p.position for p in read_model_status(ledger, READ_MODELS.values())}
    stored = {name: rows(ledger, *table) for name, table in tables.items()}
    with monkeypatch.context() as patched:
        _crash_at(where, patched)
        if together:
            with pytest.raises(RuntimeError, match="killed"):
                catch_up_all(ledger, READ_MODELS.values(), batch=7)
        for model in READ_MODELS.values():
            with pytest.raises(RuntimeError, match="killed"):
                catch_up(ledger, model, batch=7)
    after = {p.name: p.position for p in read_model_status(ledger, READ_MODELS.values())}
    assert after == before
    assert {name: rows(ledger, *table) for name, table in tables.items()} == stored
    for model in READ_MODELS.values():
        catch_up(ledger, model, batch=7)
    assert_exact(ledger)
    assert rows(ledger, "custody_leases", "lease_id")[0]["heartbeats"] == 50


@pytest.mark.slow
def test_a_projection_process_killed_mid_catch_up_resumes_without_duplicate_or_gap(
    sql_store_url: str,
) -> None:
    """`custody projections run` is killed (SIGKILL) while it is half-way through a backlog,
    one small transaction at a time; the next catch-up continues from the position the last
    committed batch left: each event applied once, every heartbeat counted once."""
    with Ledger.open(sql_store_url) as ledger:
        backlog(ledger, 600)
        head = ledger.feed.head()
        runner = custody(sql_store_url, "projections", "run", "--rounds", "1", "--batch", "5")
        killed_at = None
        deadline = time.time() + 120
        while time.time() < deadline and runner.poll() is None:
            positions = ledger.feed.checkpoints()
            done = positions.get("leases", 0)
            if 0 < done < head:
                os.kill(runner.pid, signal.SIGKILL)
                killed_at = positions
                break
            time.sleep(0.01)
        runner.communicate(timeout=60)
        assert killed_at is not None, "the runner finished before it could be killed"
        assert runner.returncode == -signal.SIGKILL
        for model in READ_MODELS.values():
            catch_up(ledger, model, batch=50)
        assert_exact(ledger)
        assert rows(ledger, "custody_leases", "lease_id")[0]["heartbeats"] == 600


# -- two runners take turns


def test_concurrent_catch_ups_apply_each_event_once(sql_store_url: str) -> None:
    """Four ledgers (one per thread) catch the same read models up at once in small batches,
    two one read model at a time and two all together: they take turns on the checkpoints,
    and every event is applied exactly once."""
    with Ledger.open(sql_store_url) as ledger:
        for n in range(4):
            pid = register(ledger, f"p{n}")
            lid, tok = take_lease(ledger, pid)
            for step in range(40):
                ledger.handle(Heartbeat(lease_id=lid, fencing_token=tok, step=f"s{step}"))
    errors: list[BaseException] = []

    def catch(together: bool) -> None:
        try:
            with Ledger.open(sql_store_url) as mine:
                if together:
                    catch_up_all(mine, READ_MODELS.values(), batch=5)
                for model in READ_MODELS.values():
                    catch_up(mine, model, batch=5)
        except BaseException as e:  # the test asserts there are none
            errors.append(e)

    threads = [threading.Thread(target=catch, args=(n % 2 == 1,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with Ledger.open(sql_store_url) as ledger:
        assert_exact(ledger)


@pytest.mark.slow
def test_two_runners_apply_each_event_exactly_once(sql_store_url: str, tmp_path: Path) -> None:
    """Two runner processes on one store while leases are taken, beaten and released: between
    them they apply each event once per read model (their counts add up to exactly twice the
    log, both did some of the work), and the read models match the log."""
    # Two intervals, so the runners' wake-ups keep sliding past each other: with one interval,
    # a runner that always woke a few ms first could take every event (it did once in ~20 runs).
    intervals = (0.2, 0.13)
    with Ledger.open(sql_store_url) as ledger, ExitStack() as stack:
        runners = [
            stack.enter_context(background_runner(sql_store_url, tmp_path, every, name=f"run{n}"))
            for n, every in enumerate(intervals)
        ]
        for runner, every in zip(runners, intervals, strict=True):
            wait_for(
                "both runners to start",
                lambda runner=runner, every=every: runner.said(f"every {every} s") > 0,
            )
        for n in range(4):
            pid = register(ledger, f"shared_{n}")
            lease = ledger.handle(
                Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=60)
            )
            for beat in range(25):
                ledger.handle(
                    Heartbeat(
                        lease_id=lease.lease_id, fencing_token=lease.fencing_token, step=f"s{beat}"
                    )
                )
                time.sleep(0.01)
            ledger.handle(
                Release(
                    lease_id=lease.lease_id, fencing_token=lease.fencing_token, outcome="success"
                )
            )
        wait_for("the runners to catch up", lambda: caught_up(ledger))
        stopped = [
            r.stop(sig) for r, sig in zip(runners, (signal.SIGINT, signal.SIGTERM), strict=True)
        ]
        assert [code for code, _ in stopped] == [0, 0]
        counts = [answer["applied"] for _, answer in stopped]
        assert sum(counts) == 2 * len(whole_log(ledger)), counts
        assert min(counts) > 0, f"one runner did all the work: {counts}"
        assert_exact(ledger)


# -- rebuild beside writers


def test_rebuild_equals_the_incremental_read_model(ledger: Ledger, clock: StepClock) -> None:
    """A read model rebuilt from the whole log and swapped in equals, row for row, a twin
    kept incrementally in small batches, and reading goes on from the swapped position."""
    every_ending(ledger, clock)
    twins = twins_of()
    for twin in twins:
        catch_up(ledger, twin, batch=3)
    for model in READ_MODELS.values():
        catch_up(ledger, model, batch=1000)
    # Damage the live tables: the rebuild must not start from them.
    with ledger.feed.transaction() as tx:
        tx.execute("DELETE FROM custody_timeline WHERE version = 1")
        tx.execute("UPDATE custody_leases SET heartbeats = 99")
    for model in READ_MODELS.values():
        done = rebuild(ledger, model)
        assert done.position == ledger.feed.head()
    for model, twin in zip(READ_MODELS.values(), twins, strict=True):
        key = model.table.key
        assert rows(ledger, model.table.name, key) == rows(ledger, twin.table.name, key)
    take_lease(ledger, "clean", run="after")
    assert timeline(ledger, "clean")[-1].run_id == "after"
    catch_up(ledger, LEASES_READ_MODEL)
    assert_exact(ledger)


@pytest.mark.slow
def test_rebuild_beside_live_writers_equals_the_incremental_read_model(sql_store_url: str) -> None:
    """Writer processes check out, heartbeat and release while `custody projections rebuild`
    runs (twice at once: one may be refused, never both run) and readers catch up the live
    read models; afterwards each rebuilt read model equals, row for row, a twin kept only
    incrementally the whole time."""
    twins = twins_of()
    with Ledger.open(sql_store_url) as ledger:
        for pid in PROFILES:
            register(ledger, pid)
        backlog(ledger, 300)
        for model in (*READ_MODELS.values(), *twins):
            catch_up(ledger, model)
    start_at = time.time() + 2.0
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                str(WORKER),
                sql_store_url,
                f"w{n}",
                "16",
                ",".join(PROFILES),
                str(start_at),
                "0.3",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    rebuilds: list[subprocess.CompletedProcess[str]] = []
    overlapped = 0
    with Ledger.open(sql_store_url) as ledger:
        while time.time() < start_at:
            time.sleep(0.05)
        while any(w.poll() is None for w in writers):
            pair = [custody(sql_store_url, "projections", "rebuild") for _ in range(2)]
            for proc in pair:
                out, err = proc.communicate(timeout=300)
                rebuilds.append(subprocess.CompletedProcess(proc.args, proc.returncode, out, err))
            overlapped += any(w.poll() is None for w in writers)
            # together, as `projections run` catches up (its claims beside the rebuild's)
            catch_up_all(ledger, (*READ_MODELS.values(), *twins), batch=7)
    for writer in writers:
        writer.communicate()
        assert writer.returncode == 0
    assert overlapped >= 1, "no rebuild ran while the writers did: the test proved nothing"
    succeeded = [r for r in rebuilds if r.returncode == 0]
    assert len(succeeded) >= len(rebuilds) // 2
    for refused in (r for r in rebuilds if r.returncode != 0):
        assert "already running" in refused.stderr, refused.stderr
    with Ledger.open(sql_store_url) as ledger:
        for model in (*READ_MODELS.values(), *twins):
            catch_up(ledger, model)
        for model, twin in zip(READ_MODELS.values(), twins, strict=True):
            key = model.table.key
            assert rows(ledger, model.table.name, key) == rows(ledger, twin.table.name, key)
        assert_exact(ledger)


@pytest.mark.slow
def test_a_runner_that_finds_a_read_model_held_takes_its_turn(
    sql_store_url: str, tmp_path: Path
) -> None:
    """A runner started while another holds a read model's checkpoint past the store's
    timeout (a runner or a rebuild waiting out a gap in the log) says the store is busy and
    catches up once the holder ends, instead of exiting 6 on its first catch-up as it did
    (rev24 follow): runners take turns, as the docs say."""
    joiner = "&" if "?" in sql_store_url else "?"
    url = f"{sql_store_url}{joiner}timeout=1"
    with Ledger.open(url) as ledger:
        catch_up_all(ledger, list(READ_MODELS.values()))  # installed
        backlog(ledger, 20)
        with ledger.feed.transaction() as held, Ledger.open(url) as other:
            held.claim_checkpoint("timeline")
            with pytest.raises(StoreUnavailable, match="busy"):  # no turn to come: said
                run(other, list(READ_MODELS.values()), rounds=1)
        with background_runner(url, tmp_path, 0.2) as runner:
            with ledger.feed.transaction() as held:
                held.claim_checkpoint("timeline")
                wait_for("the runner to find the store busy", lambda: runner.said("busy") > 0)
                assert runner.process.poll() is None, runner.err.read_text()
            wait_for("the runner to catch up", lambda: caught_up(ledger))
            code, answer = runner.stop(signal.SIGTERM)
        assert code == 0, runner.err.read_text()
        assert answer["applied"] > 0, answer
        assert "catching up again at the next wake-up" in runner.err.read_text()
        assert_exact(ledger)
