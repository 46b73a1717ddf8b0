"""A process forked inside a worker's checkout block leaves its parent's lease alone, with a
real ``os.fork`` and no browser (the block needs none).

rev35: a child that left normally (``sys.exit(0)``) unwound its copy of the parent's block and
released the parent's live lease as a failure ("SystemExit: 0"), sending the profile to
review; the parent's next ``lease.step`` raised ``LeaseLost``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from worker_scene import history, leases_on, sdk_settings, sdk_store

from ledger import Outcome
from ledger._domain import events as ev


def test_a_child_forked_in_the_block_that_exits_leaves_the_parent_s_lease_held(
    tmp_path: Path,
) -> None:
    """The child steps and exits normally inside the block: nothing of it reaches the stream;
    the parent's heartbeats go on past the lease's deadline, its next step is taken, and
    leaving the block releases the lease once, cleanly."""
    store = sdk_store(tmp_path)
    leases = leases_on(store, sdk_settings(tmp_path))
    parent = os.getpid()
    try:
        with leases.checkout("p1", run_id="r1", task_type="t", ttl_seconds=3) as lease:
            lease.step("before_fork", safe=True)
            child = os.fork()
            if child == 0:
                lease.step("in_the_child")  # the parent's lease: nothing is sent
                sys.exit(0)  # leaves the block, in the child, as a task's normal end would
            _, status = os.waitpid(child, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            after_child = history(store)
            assert type(after_child[-1]) is ev.LeaseHeartbeat, after_child[-1]
            time.sleep(2.5)  # past the 2 s renewal deadline of a 3 s lease: renewed meanwhile
            assert not lease.lost.is_set(), lease.why_lost
            lease.visited("https://shop.example/done")
            lease.step("after_fork", safe=True)
    except BaseException:
        if os.getpid() != parent:  # the child, leaving the block: never pytest's code
            os._exit(0 if isinstance(sys.exc_info()[1], SystemExit) else 1)
        raise
    finally:
        if os.getpid() == parent:
            leases.close()
    assert lease.result is not None
    assert "released cleanly" in lease.result.message
    events = history(store)
    steps = [e.step for e in events if isinstance(e, ev.LeaseHeartbeat)]
    assert "in_the_child" not in steps
    assert steps[-1] == "after_fork"
    releases = [e for e in events if isinstance(e, ev.LeaseReleaseRequested)]
    assert [r.outcome for r in releases] == [Outcome.SUCCESS]
    assert not any(isinstance(e, ev.ReviewRequested) for e in events)
