"""The service's writer thread (group commit): it answers each request on its own, survives a
request that went away and a command that fails unforeseen, and refuses at once once stopped."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest

from ledger import Command, Heartbeat, LeaseLost, Ledger, StoreUnavailable
from service._writer import Writer


class Slow:
    """A ledger whose first command waits for ``go``; ``Boom`` steps fail unforeseen."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.taken = threading.Event()  # the first command is in the writer's hands
        self.batches: list[int] = []
        self.first = True

    def _one(self, command: Any) -> Any:
        if self.first:
            self.first = False
            self.taken.set()
            self.go.wait(10)
        if command.step == "boom":
            raise RuntimeError("a bug")
        if command.step == "lost":
            raise LeaseLost(command.lease_id, "ended")
        return f"ok {command.step}"

    def handle(self, command: Command[Any]) -> Any:
        self.batches.append(1)
        return self._one(command)

    def handle_together(self, commands: list[Command[Any]]) -> list[Any]:
        self.batches.append(len(commands))
        answers = []
        for command in commands:
            try:
                answers.append(self._one(command))
            except LeaseLost as e:
                answers.append(e)
        return answers

    def close(self) -> None:
        pass


def _beat(step: str) -> Heartbeat:
    return Heartbeat(lease_id="lease-1@p1", fencing_token=1, step=step)


@pytest.fixture
def slow() -> Slow:
    return Slow()


@pytest.fixture
def writer(slow: Slow) -> Writer:
    started = Writer(lambda: cast(Ledger, slow))
    started.start()
    return started


def test_commands_queued_together_are_written_together_and_answered_each(
    slow: Slow, writer: Writer
) -> None:
    first = writer.submit(_beat("a"))
    assert slow.taken.wait(5)
    rest = [writer.submit(_beat(s)) for s in ("b", "lost", "c")]
    slow.go.set()
    assert first.result(5) == "ok a"
    assert rest[0].result(5) == "ok b"
    with pytest.raises(LeaseLost):
        rest[1].result(5)
    assert rest[2].result(5) == "ok c"
    assert slow.batches == [1, 3]
    writer.stop()


def test_a_request_that_went_away_does_not_stop_the_writer(slow: Slow, writer: Writer) -> None:
    first = writer.submit(_beat("a"))
    assert slow.taken.wait(5)
    gone = writer.submit(_beat("b"))
    assert gone.cancel()  # the client left, or a stop's grace ran out
    slow.go.set()
    assert first.result(5) == "ok a"
    assert writer.submit(_beat("c")).result(5) == "ok c"
    writer.stop()


def test_a_command_failing_unforeseen_fails_alone(slow: Slow, writer: Writer) -> None:
    first = writer.submit(_beat("a"))
    assert slow.taken.wait(5)
    futures = [writer.submit(_beat(s)) for s in ("x", "boom", "y")]  # queued: one batch
    slow.go.set()
    assert first.result(5) == "ok a"
    answers = []
    for future in futures:
        try:
            answers.append(future.result(5))
        except RuntimeError as e:
            answers.append(str(e))
    assert answers == ["ok x", "a bug", "ok y"]
    writer.stop()


def test_a_stopped_writer_refuses_at_once(writer: Writer, slow: Slow) -> None:
    slow.go.set()
    writer.stop()
    with pytest.raises(StoreUnavailable, match="not running"):
        writer.submit(_beat("late")).result(1)
