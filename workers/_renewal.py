"""The worker's lease commands, each resent under its own command id after
``StoreUnavailable`` (so one that did land is not applied twice): checkout, renewal (a
heartbeat: a step the task sends), release. Background renewals, several leases at a time, are
the process's renewal hub's (``workers._hub``).

None of this touches a Playwright object: a renewal says what it learned through
``LeaseGuard``. The functions block; the asyncio flavour runs them on its ledger's own thread.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Protocol, TypeVar

from ledger import (
    Command,
    Heartbeat,
    InvalidInput,
    Lease,
    LeaseLost,
    LeaseStatus,
    Ledger,
    Release,
    ReleaseResult,
    StoreUnavailable,
)
from workers._evidence import Evidence
from workers._guard import Clock, LeaseGuard
from workers._termination import STOP_WAIT_SECONDS, Signalled

R = TypeVar("R")


class Handles(Protocol):
    """The part of ``ledger.Ledger`` the worker's commands need (a fake in the unit tests)."""

    def handle(self, command: Command[R]) -> R: ...

    def close(self) -> None: ...


Wait = Callable[[float], bool]  # sleep up to n seconds; True: stop was asked for


def heartbeat(
    lease: Lease, *, step: str | None, url: str | None, safe: bool = False, mutating: bool = False
) -> Heartbeat:
    """The heartbeat a worker sends under ``lease``, with a command id of its own, so that
    resending it after ``StoreUnavailable`` applies it once. ``InvalidInput`` for a step or
    URL the ledger refuses."""
    return Heartbeat(
        lease_id=lease.lease_id,
        fencing_token=lease.fencing_token,
        step=step,
        url=url,
        safe=safe,
        mutating=mutating,
        command_id=uuid.uuid4().hex,
    )


def renew(
    ledger: Handles,
    beat: Heartbeat,
    guard: LeaseGuard,
    *,
    wait: Wait,
    clock: Clock = time.monotonic,
) -> bool:
    """Send one heartbeat; after ``StoreUnavailable`` send it again (under its own command id,
    so a heartbeat that did land is not applied twice), every retry period while the lease is
    held. True: renewed, and the guard's deadline moved. False: the lease is lost (the ledger
    said ``LeaseLost``, or the deadline passed; the guard says why) or ``wait`` was stopped."""
    started = clock()
    while guard.held():
        try:
            answer = ledger.handle(beat)
        except LeaseLost as lost:
            guard.refused(lost)
            return False
        except StoreUnavailable as down:
            guard.failed(str(down))
            if wait(guard.timing.retry_period):
                return False
            continue
        if (why := ended(answer)) is not None:
            guard.revoked(why)
            return False
        guard.renewed(started)
        return True
    return False


def ended(answer: Lease) -> str | None:
    """Why a lease the ledger answered is no longer held (None: it is): a resent command is
    answered with the lease as it stands now, which may have ended (or been marked stale)
    since the first landed: the ledger took it back (``LeaseGuard.revoked``)."""
    if answer.lease_status is LeaseStatus.ACTIVE:
        return None
    return f"the ledger answered the lease as {answer.lease_status.value}"


# A checkout is resent for this long at most: long enough to recover a lease whose grant was
# lost on the way back, short enough that a store that is not there fails the worker promptly.
CHECKOUT_RESEND_SECONDS = 3.0


def checkout(send: Callable[[str], Lease], *, clock: Clock, pause: float = 0.25) -> Lease:
    """``send(command_id)`` (a checkout), resent under the same id after ``StoreUnavailable``
    for up to ``CHECKOUT_RESEND_SECONDS``; then the error propagates. A grant that landed but
    whose answer was lost is returned by the resend (the ledger replays the command id)."""
    command_id = uuid.uuid4().hex
    until = clock() + CHECKOUT_RESEND_SECONDS
    while True:
        try:
            granted = send(command_id)
        except StoreUnavailable:
            if clock() + pause >= until:
                raise
            time.sleep(pause)
            continue
        if (why := ended(granted)) is not None:  # granted, then ended before the resend
            raise LeaseLost(granted.lease_id, why, ended=True)
        return granted


def release(
    ledger: Ledger,
    lease: Lease,
    guard: LeaseGuard,
    record: Evidence,
    signalled: Signalled | None = None,
) -> tuple[ReleaseResult, Evidence]:
    """Release with the evidence, resent while the store is unavailable and the lease held;
    ``LeaseLost`` when the ledger refuses it or the deadline passes first. Once the process
    was stopped (``signalled``: SIGTERM, SIGINT), resent for what is left of
    ``STOP_WAIT_SECONDS`` only: then ``StoreUnavailable`` saying the lease is left to go stale
    (``workers._termination``); but once a try's answer was lost (``StoreUnavailable.lost``: it
    may have committed), resent once more past it, under the same command id, which a release
    that landed is answered by; if that fails too, the error says the release may have been
    taken. A report the ledger refuses as bad input is sent again without
    the refused field, saying so (``Evidence.refused``): the lease ends, unproven, rather than
    being left to expire. A field refused twice raises ``InvalidInput``. Returns the result and
    the record sent."""
    command_id = uuid.uuid4().hex  # a refused command wrote nothing: the id stays unused
    refused: set[str] = set()
    answer_lost = last_try = False
    while True:
        try:
            result = ledger.handle(
                Release(
                    lease_id=lease.lease_id,
                    fencing_token=lease.fencing_token,
                    command_id=command_id,
                    **record.release_arguments(),
                )
            )
        except InvalidInput as bad:
            if bad.field in refused:
                raise
            refused.add(bad.field)
            record = record.refused(bad.field, bad.problem)
        except LeaseLost as lost:  # said as the guard says it, whoever heard first (rev39)
            guard.refused(lost)
            raise guard.lost_error() from lost
        except StoreUnavailable as down:
            guard.failed(str(down))
            if not guard.held():
                raise guard.lost_error() from down
            answer_lost = answer_lost or down.lost
            if signalled is not None and signalled.waited_enough():
                if answer_lost and not last_try:
                    last_try = True  # the release may have landed: its resend says so
                    continue
                raise StoreUnavailable(_left_to_go_stale(lease, down, answer_lost)) from down
            pause = guard.timing.retry_period
            time.sleep(pause if signalled is None else signalled.store_wait(pause))
        else:
            return result, record


def _left_to_go_stale(lease: Lease, down: StoreUnavailable, answer_lost: bool) -> str:
    if answer_lost:
        return (
            f"the process was stopped and the store's answer to the release was lost, then "
            f"not given again within {STOP_WAIT_SECONDS:g}s: the release may have been taken; "
            f"if not, {lease.lease_id} is left live, to go stale at its deadline ({down})"
        )
    return (
        f"the process was stopped and the store did not take the release within "
        f"{STOP_WAIT_SECONDS:g}s: {lease.lease_id} is left live, to go stale at its deadline "
        f"({down})"
    )
