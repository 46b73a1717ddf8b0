"""The ledger's errors cross a process boundary whole: an integrator's process pool hands a
denial raised in a worker process to the scheduler as ``CheckoutDenied`` with its reason
(rev31 library review: unpickling called each class's constructor with the message alone and
failed, so ``ProcessPoolExecutor`` broke on the first denial and ``multiprocessing.Pool`` hung).
"""

from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest
from conftest import register
from pool_task import checkout

from ledger import (
    Checkout,
    CheckoutDenied,
    DenialReason,
    Heartbeat,
    InvalidInput,
    LeaseLost,
    Ledger,
    LedgerError,
    UnknownProfile,
)
from ledger._domain.errors import UnreadableEvent, UnreadableSnapshot


def test_a_denial_in_a_worker_process_reaches_the_scheduler_as_a_denial(store_url: str) -> None:
    """Two checkouts of one profile in a pool of spawned processes: one lease, and one
    CheckoutDenied in the parent, reason already_leased, naming the holder."""
    with Ledger.open(store_url) as ledger:
        register(ledger)
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=spawn) as pool:
        granted = pool.submit(checkout, store_url, "r1").result(timeout=120)
        denied = pool.submit(checkout, store_url, "r2")
        with pytest.raises(CheckoutDenied) as raised:
            denied.result(timeout=120)
    assert granted == "lease-1@profile_shop_17"
    assert raised.value.reason is DenialReason.ALREADY_LEASED
    assert "r1" in str(raised.value)


def _raised(make: object) -> LedgerError:
    try:
        make()  # type: ignore[operator]
    except LedgerError as error:
        return error
    raise AssertionError("nothing raised")


def test_every_kind_of_error_pickles_whole(ledger: Ledger) -> None:
    """A denial, a lost lease, bad input, an unknown profile, an unreadable event and snapshot
    come back from pickle as the same class, message and attributes."""
    pid = register(ledger)
    ledger.handle(Checkout(profile_id=pid, worker_id="w", run_id="r", task_type="t"))
    errors = [
        _raised(
            lambda: ledger.handle(
                Checkout(profile_id=pid, worker_id="x", run_id="y", task_type="t")
            )
        ),
        _raised(lambda: ledger.handle(Heartbeat(lease_id=f"lease-1@{pid}", fencing_token=7))),
        _raised(
            lambda: Checkout(
                profile_id=pid, worker_id="w", run_id="r", task_type="t", ttl_seconds=0
            )
        ),
        _raised(lambda: ledger.view("nobody")),
        UnreadableEvent("p v3", "not JSON"),
        UnreadableSnapshot(50, "not JSON", "p"),
    ]
    kinds = [
        CheckoutDenied,
        LeaseLost,
        InvalidInput,
        UnknownProfile,
        UnreadableEvent,
        UnreadableSnapshot,
    ]
    for error, kind in zip(errors, kinds, strict=True):
        assert type(error) is kind
        back = pickle.loads(pickle.dumps(error))  # noqa: S301 (our own bytes)
        assert type(back) is kind
        assert str(back) == str(error)
        assert back.__dict__ == error.__dict__
