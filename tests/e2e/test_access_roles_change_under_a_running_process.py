"""A process that runs for long (``custody serve``, the sweeper, a worker) answers a role
refusal on the roles its login holds now, not on those it read at its first command.

Guarantee (docs/operations/roles.md: ``custody access grant`` is run while the fleet runs; a
stolen credential's login is narrowed to what it needs): a login narrowed while a process runs
is refused with the one line a fresh process gives ("may act as worker; this command needs the
scheduler role", exit 7), never a sweep answered as done with each profile failed by the
database's text, nor the trigger's "may not write custody_commands"; and a login given its roles
back records again without a restart.

Found by review 43: the roles were read once per process. Narrowed, the service answered a
sweep 200 listing every overdue profile as failed ("login svc may not record events as
scheduler"), or 403 with the trigger's text; given back, it went on refusing ("may act as
worker") until restarted, while the command line as the same login swept.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from owned_store import as_login

from ledger import Checkout, Forbidden, Heartbeat, Ledger, RegisterProfile, Role, Sweep
from ledger.access import grant

pytestmark = pytest.mark.postgres

ROLE_GONE = "may act as worker; this command needs the scheduler role"


def test_roles_taken_and_given_back_are_what_a_running_process_answers_on(
    owner_url: str, tmp_path: Path
) -> None:
    owner = Ledger.open(owner_url)
    grant(owner, "svc_roles", [Role.SCHEDULER, Role.WORKER])
    # Two processes of the login (two replicas of a service): each path to the refusal is
    # met by one that still holds the roles it read.
    service, replica = (Ledger.open(as_login(owner_url, "svc_roles")) for _ in range(2))
    try:
        for n in range(2):
            owner.handle(RegisterProfile(profile_id=f"p{n}", account_id="a1", proxy_id="x1"))
            service.handle(
                Checkout(
                    profile_id=f"p{n}", worker_id="w1", run_id="r", task_type="t", ttl_seconds=1
                )
            )
        for process in (service, replica):  # the roles read, scheduler among them
            assert process.handle(Sweep()).settled == []
        time.sleep(1.2)  # both leases overdue

        grant(owner, "svc_roles", Role.WORKER)  # narrowed while they run
        with pytest.raises(Forbidden, match=ROLE_GONE):
            service.handle(Sweep(command_id="sweep-1"))  # its id refused by the database first
        with pytest.raises(Forbidden, match=ROLE_GONE):
            replica.handle(Sweep())  # its first profile's events refused by the database first

        grant(owner, "svc_roles", [Role.SCHEDULER, Role.WORKER])  # given back
        report = service.handle(Sweep(command_id="sweep-2"))
        assert sorted(s.profile_id for s in report.settled) == ["p0", "p1"]
        assert report.failed == []

        for n in range(2, 5):
            owner.handle(RegisterProfile(profile_id=f"p{n}", account_id="a1", proxy_id="x1"))
        held = [
            service.handle(Checkout(profile_id=f"p{n}", worker_id="w1", run_id="r", task_type="t"))
            for n in (2, 3)
        ]
        grant(owner, "svc_roles", Role.SCHEDULER)  # a command of the role taken: said so
        worker_gone = "may act as scheduler; this command needs the worker role"
        with pytest.raises(Forbidden, match=worker_gone):
            replica.handle(Checkout(profile_id="p4", worker_id="w1", run_id="r", task_type="t"))
        assert [e.event_type for e in owner.history("p4")] == ["profile_registered"]
        # A batch (the SDK's renewal hub, the service's writer): each command answered so,
        # not the batch refused whole in the database's text (rev43's review).
        beats = [Heartbeat(lease_id=x.lease_id, fencing_token=x.fencing_token) for x in held]
        answers = service.handle_together(beats)
        assert [type(a).__name__ for a in answers] == ["Forbidden", "Forbidden"]
        assert all(worker_gone in str(a) for a in answers), answers
    finally:
        service.close()
        replica.close()
        owner.close()
