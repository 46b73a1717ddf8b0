"""Read models damaged beside their rows, on every store: a checkpoint moved back or ahead, a
row edited or put back as it was, the checkpoints lost. A read never serves the damage as an
answer (it folds each event once, or refuses naming the rebuild), ``projections status`` names
it, and ``projections rebuild`` repairs it."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import StepClock, register
from log_checks import rows, take_lease

from ledger import Disable, Heartbeat, Ledger, Release
from ledger.feed import CHECKPOINTS_TABLE, ReadModelDamaged
from projections import (
    LEASES_READ_MODEL,
    ReadModel,
    catch_up,
    read_model_status,
    rebuild,
)
from projections._leases import LEASES


def _sql(ledger: Ledger, statement: str, params: tuple[Any, ...] = ()) -> None:
    with ledger.feed.transaction() as tx:
        tx.execute(statement, params)


def _move(ledger: Ledger, name: str, position: int) -> None:
    _sql(ledger, f"UPDATE {CHECKPOINTS_TABLE} SET position = ? WHERE name = ?", (position, name))


def _problems(ledger: Ledger, model: ReadModel) -> list[str]:
    (found,) = read_model_status(ledger, [model])
    return found.problems


def _lease_with_beats(ledger: Ledger, clock: StepClock, beats: int = 3) -> tuple[str, int]:
    """p1 registered, one lease with ``beats`` heartbeats and a clean release; returns the
    lease id and the position of its acquisition."""
    register(ledger, "p1")
    lid, token = take_lease(ledger, "p1")
    acquired = ledger.feed.head()
    for step in range(beats):
        clock.advance(1)
        ledger.handle(Heartbeat(lease_id=lid, fencing_token=token, step=f"s{step}", safe=True))
    ledger.handle(
        Release(lease_id=lid, fencing_token=token, outcome="success", final_url="https://x/")
    )
    return lid, acquired


def _lease_row(ledger: Ledger, lid: str) -> dict[str, Any]:
    (row,) = ledger.feed.query(f"SELECT * FROM {LEASES.name} WHERE lease_id = ?", (lid,))
    return row


@pytest.mark.parametrize("back_to", ["before-acquisition", "after-acquisition"])
def test_a_leases_checkpoint_moved_back_folds_no_event_twice(
    ledger: Ledger, clock: StepClock, back_to: str
) -> None:
    """A leases checkpoint set back (a restored checkpoint row): the next catch-up reads the
    events again but folds none twice (each row knows the last version folded into it), so the
    heartbeats are counted once and the row is what the log gives. Guard: the version check in
    ``LeasesReadModel.fold`` (without it, 6 heartbeats for 3 and status saw nothing)."""
    lid, acquired = _lease_with_beats(ledger, clock)
    catch_up(ledger, LEASES_READ_MODEL)
    before = _lease_row(ledger, lid)
    _move(ledger, "leases", acquired - 1 if back_to == "before-acquisition" else acquired)
    assert catch_up(ledger, LEASES_READ_MODEL, batch=2) > 0
    assert _lease_row(ledger, lid) == before
    assert before["heartbeats"] == 3
    assert _problems(ledger, LEASES_READ_MODEL) == []


def test_a_fold_never_builds_on_an_edited_row(ledger: Ledger) -> None:
    """A live lease's row edited by hand (another worker, run and count): the lease's next
    event is not folded onto it, which would write the edit again under a fresh digest and
    leave status nothing to find; the read refuses, naming the read model and its rebuild,
    status still names the edit, and the rebuild puts back what the events say. Guard: the
    digest check in ``LeasesReadModel._load``."""
    register(ledger, "p1")
    lid, token = take_lease(ledger, "p1")
    catch_up(ledger, LEASES_READ_MODEL)
    _sql(ledger, f"UPDATE {LEASES.name} SET worker_id = 'w9', heartbeats = 0 WHERE lease_id = ?",
         (lid,))  # fmt: skip
    ledger.handle(Heartbeat(lease_id=lid, fencing_token=token, step="s", safe=True))
    with pytest.raises(ReadModelDamaged) as damaged:
        catch_up(ledger, LEASES_READ_MODEL)
    said = str(damaged.value)
    assert f"the row of lease {lid} (profile p1) is unlike the digest" in said
    assert said.endswith("custody projections rebuild leases")
    assert damaged.value.exit_code == 1
    assert any("edited" in p for p in _problems(ledger, LEASES_READ_MODEL))
    rebuild(ledger, LEASES_READ_MODEL)
    row = _lease_row(ledger, lid)
    assert (row["worker_id"], row["heartbeats"]) == ("w-r", 1)
    assert _problems(ledger, LEASES_READ_MODEL) == []


@pytest.mark.parametrize("batch", [1, 500])
def test_a_disable_of_a_leased_profile_sends_it_to_disabled(ledger: Ledger, batch: int) -> None:
    """Disabling a leased profile revokes the lease, requests review and disables the
    profile in one command: the lease's row says the profile went to disabled, whether that
    last event is folded in the batch of the revocation or in a later one (``batch`` 1).
    Guard: ``profile_disabled`` in ``_AFTER``."""
    register(ledger, "p1")
    lid, _ = take_lease(ledger, "p1")
    ledger.handle(Disable(profile_id="p1", actor="op", reason="account banned"))
    catch_up(ledger, LEASES_READ_MODEL, batch=batch)
    row = _lease_row(ledger, lid)
    assert (row["ending"], row["profile_state_after"]) == ("forced", "disabled")
    assert [r["profile_state_after"] for r in rows(ledger, LEASES.name, "lease_id")] == ["disabled"]
