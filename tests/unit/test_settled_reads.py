"""A read of the log hands on no event past a gap an append in progress may fill
(``ledger._stores.settled``): the rule, on rows and snapshots made by hand. The same reads
against a real server, many writers and rolled-back appends:
``tests/integration/test_followers.py``."""

from __future__ import annotations

from typing import Any

from ledger._stores.settled import Running, first_gap, read_settled


def test_a_snapshot_reads_as_the_server_writes_it_without_the_readers_own_transaction() -> None:
    running = Running.parse("100:105:100,103", "103")
    assert running == Running(100, 105, frozenset({100}))
    assert Running.parse("7:7:", None) == Running(7, 7, frozenset())


def test_a_transaction_has_ended_below_xmin_or_below_xmax_unlisted() -> None:
    later = Running.parse("101:106:103")
    assert [later.ended(x) for x in (100, 101, 103, 105, 106)] == [True, True, False, True, False]
    assert [later.may_have_run(x) for x in (100, 103, 105, 106, 107)] == [
        False,
        True,
        False,
        True,  # at or past xmax: the snapshot cannot say
        True,
    ]


def test_a_locks_32_bit_transaction_id_takes_the_snapshots_epoch() -> None:
    epoch = 3 << 32
    running = Running.parse(f"{epoch + 10}:{epoch + 20}:")
    assert running.widen(15) == epoch + 15
    assert running.widen(2**32 - 5) == epoch - 5  # just before the epoch turned
    near_end = Running.parse(f"{epoch - 10}:{epoch - 2}:")
    assert near_end.widen(3) == epoch + 3  # just after


def test_rows_are_handed_on_up_to_the_first_gap_not_known_to_stay_empty() -> None:
    assert first_gap(4, [5, 6, 8, 9]) == 2
    assert first_gap(4, [6, 7]) == 0  # the gap is right after the checkpoint
    assert first_gap(4, [5, 6, 7]) == 3
    assert first_gap(4, [5, 6, 8, 9, 12], settled_upto=9) == 4  # 7 settled; 10 and 11 not
    assert first_gap(4, [5, 6, 8, 12], settled_upto=10) == 3  # 11 not settled


class _Log:
    """A log whose id 7 is drawn by transaction 50 (past the snapshot's xmax, so no
    snapshot lists it), in progress for the first ``polls`` snapshots, then committed (or
    rolled back)."""

    def __init__(self, polls: int, *, commits: bool) -> None:
        self.polls = polls
        self.commits = commits
        self.snapshots = 0

    def _running(self) -> bool:
        return self.snapshots < self.polls

    def _snapshot(self) -> str:
        return "49:50:" if self._running() else "51:51:"

    def select(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        ids = [5, 6, 8, 9]
        if not self._running() and self.commits:
            ids = [5, 6, 7, 8, 9]
        return [(i, f"e{i}", self._snapshot(), None) for i in ids if i > after][:limit]

    def snapshot(self) -> Running:
        self.snapshots += 1
        return Running.parse(self._snapshot())

    def running(self) -> list[int]:
        return [50, 12] if self._running() else [12]  # 12: an old transaction, not a drawer


def _read(log: _Log, after: int = 4, limit: int = 10, **kw: Any) -> list[int]:
    kw.setdefault("sleep", lambda s: None)
    rows = read_settled(log.select, log.snapshot, log.running, after, limit, 5.0, **kw)
    return [r[0] for r in rows]


def test_a_read_waits_for_the_gap_to_be_filled_and_misses_nothing() -> None:
    log = _Log(polls=3, commits=True)
    assert _read(log) == [5, 6, 7, 8, 9]
    assert log.snapshots == 3  # waited for transaction 50 alone
    assert read_settled(log.select, log.snapshot, log.running, 4, 1, 5.0) == [(5, "e5")]


def test_a_gap_left_by_a_rollback_is_passed_once_its_transaction_has_ended() -> None:
    assert _read(_Log(polls=2, commits=False)) == [5, 6, 8, 9]


def test_past_its_bound_a_read_hands_on_what_is_settled_and_never_skips_the_gap() -> None:
    log = _Log(polls=10**9, commits=True)
    ticks = iter(range(100))
    assert _read(log, clock=lambda: next(ticks)) == [5, 6]
    assert _read(log, after=6, clock=lambda: next(ticks)) == []


def test_a_read_stops_at_its_limit() -> None:
    assert _read(_Log(polls=0, commits=True), limit=2) == [5, 6]


def test_a_transaction_waited_out_once_is_not_waited_for_again_until_a_timeout_passes() -> None:
    """rev25: one command's reads of the read models each waited the store's timeout on the
    same open append (`why` 10 s and two notes, `report --html` 16 s and four). A read that
    meets a transaction a read waited out less than a timeout ago hands on what is settled at
    once, never past the gap; once a timeout has passed it waits again."""
    log = _Log(polls=10**9, commits=True)
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    given_up: dict[int, float] = {}
    kw: dict[str, Any] = {"clock": lambda: now[0], "sleep": sleep, "given_up": given_up}
    assert _read(log, **kw) == [5, 6]
    first = sum(slept)
    assert first >= 5.0  # waited the timeout out
    assert given_up == {50: now[0]}
    assert _read(log, **kw) == [5, 6]
    assert sum(slept) == first  # not again
    now[0] += 5.1
    assert _read(log, **kw) == [5, 6]
    assert sum(slept) >= first + 5.0  # a timeout later: waited again
    log.polls = 0  # transaction 50 commits: the gap is filled, and read
    assert _read(log, **kw) == [5, 6, 7, 8, 9]
