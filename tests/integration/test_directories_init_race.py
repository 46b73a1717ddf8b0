"""``custody init`` beside live registrations (an upgrade run while the fleet works): its check
of the table of directories against the registrations mends nothing that is not damaged, so
every registration keeps its directory's row and one directory stays one profile's (rev36
review: init read the registrations, then the table, and deleted as "of no registration" the
rows registrations committed between the two reads; a second profile was then registered on
one of their directories). Real processes on both stores."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Event

import pytest

import ledger._stores.migrations as migrations
from ledger import InvalidInput, Ledger, RegisterProfile, audit


def _register(ledger: Ledger, profile_id: str) -> None:
    ledger.handle(
        RegisterProfile(
            profile_id=profile_id, account_id="a", proxy_id="x", user_data_dir=f"/srv/{profile_id}"
        )
    )


def _registrar(url: str, stop: Event, started: Event) -> None:
    with Ledger.open(url) as ledger:
        n = 0
        while not stop.is_set():
            _register(ledger, f"new{n}")
            n += 1
            started.set()


def test_init_beside_registrations_keeps_every_directory_row(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five inits, each reading the registrations slowly (0.3 s), while another process
    registers profiles without pause: no init says the table disagreed, verify finds every
    row, and a registration on a directory taken meanwhile is refused."""
    with Ledger.init(store_url) as ledger:
        for n in range(10):
            _register(ledger, f"pre{n}")
    read = migrations._registrations

    def slowly(self: migrations.Migrating) -> list[tuple[str, str | None]]:
        found = read(self)
        time.sleep(0.3)  # registrations commit meanwhile
        return found

    monkeypatch.setattr(migrations, "_registrations", slowly)
    context = multiprocessing.get_context("spawn")
    stop, started = context.Event(), context.Event()
    registrar = context.Process(target=_registrar, args=(store_url, stop, started))
    registrar.start()
    notes: list[str] = []
    try:
        assert started.wait(60), "the registrar never registered"
        for _ in range(5):
            with Ledger.init(store_url) as ledger:
                notes += ledger.store.notes
    finally:
        stop.set()
        registrar.join(30)
    assert registrar.exitcode == 0
    assert not [note for note in notes if "disagreed with the registrations" in note], notes
    with Ledger.open(store_url) as ledger:
        done = audit.verify(ledger)
        assert done.holds, done.problems[:3]
        rows = {d.profile_id for d in ledger.store.directories()}
        registered = set(ledger.profile_ids())
        assert rows == registered
        assert len(registered) > 12  # registrations ran beside the inits
        taken = sorted(registered - {f"pre{n}" for n in range(10)})[0]
        with pytest.raises(InvalidInput, match="user_data_dir"):
            ledger.handle(
                RegisterProfile(
                    profile_id="dup", account_id="a", proxy_id="x", user_data_dir=f"/srv/{taken}"
                )
            )
