"""``/metrics`` reads the fleet once for any number of scrapes at a time (rev25: 8 scrapers in
a loop held every reader thread and took a heartbeat's p90 from 11 to 114 ms), and never
answers a scrape with a read that began before it."""

from __future__ import annotations

import asyncio

import pytest

from service._metrics import Shared


class _Store:
    """A fleet read that takes a while and says which read it was."""

    def __init__(self) -> None:
        self.reads = 0
        self.running = 0
        self.most_at_once = 0

    async def read(self) -> int:
        self.reads += 1
        number = self.reads
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        await asyncio.sleep(0.05)
        self.running -= 1
        return number


def test_scrapes_that_arrive_together_share_one_read() -> None:
    store = _Store()
    shared = Shared(store.read)

    async def scrapes() -> list[int]:
        return await asyncio.gather(*(shared() for _ in range(8)))

    answers = asyncio.run(scrapes())
    assert store.most_at_once == 1
    assert store.reads <= 2, f"{store.reads} reads for 8 scrapes at once"
    assert set(answers) <= {1, 2}


def test_a_scrape_never_gets_a_read_that_began_before_it() -> None:
    store = _Store()
    shared = Shared(store.read)

    async def scenario() -> tuple[int, int, int]:
        first = asyncio.ensure_future(shared())
        await asyncio.sleep(0.01)  # the first read is running
        later = [asyncio.ensure_future(shared()) for _ in range(3)]
        got = await asyncio.gather(first, *later)
        return got[0], min(got[1:]), max(got[1:])

    first, earliest_later, latest_later = asyncio.run(scenario())
    assert first == 1
    assert earliest_later == latest_later == 2  # the read after the running one, shared
    assert store.reads == 2


def test_a_failed_read_is_not_shared_and_the_next_scrape_reads_again() -> None:
    calls = []

    async def read() -> int:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("store gone")
        return len(calls)

    shared = Shared(read)

    async def scenario() -> int:
        with pytest.raises(OSError, match="store gone"):
            await shared()
        return await shared()

    assert asyncio.run(scenario()) == 2


def test_a_refusal_is_answered_on_one_line_as_the_command_line_says_it() -> None:
    """rev35 review: a caller's line break and tab in a refusal came back as the escapes
    ``\\n`` and ``\\t``, where the command line joins the lines with a space; a control
    character is still shown as its escape, and text that is no control is kept."""
    from ledger import InvalidInput
    from service._errors import problem_of

    _, problem, _ = problem_of(InvalidInput("reason", "結果不明\n\tセッション切れ café \x1b[2J"))
    assert problem.message == "invalid reason: 結果不明 セッション切れ café \\x1b[2J"
