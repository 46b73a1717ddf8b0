"""An id typed as an escape (``w\\u200b1``, a backslash and five letters) and the character it
names (``w`` U+200B ``1``) read apart in every line a person acts on: a denial's, a refusal's,
on the command line (``custody._text.one_line``) and in the service's problem (rev36 review:
ids went into those lines as they are, and the lines are shown keeping their backslashes, so
the two workers and the two reviewers read alike)."""

from __future__ import annotations

import pytest

from custody._text import one_line
from ledger import (
    Checkout,
    CheckoutDenied,
    Ledger,
    NotAllowed,
    RegisterProfile,
    Release,
    Review,
)
from service._errors import problem_of

REAL, TYPED = "w\u200b1", "w\\u200b1"


def _checkout(ledger: Ledger, profile_id: str, worker: str) -> tuple[str, int]:
    lease = ledger.handle(
        Checkout(profile_id=profile_id, worker_id=worker, run_id="r", task_type="t")
    )
    return lease.lease_id, lease.fencing_token


def test_a_denial_names_each_holder_apart(store_url: str) -> None:
    """Two profiles held by the two workers: the second checkout of each is denied, and the
    two lines (and the two problems' messages) differ in more than the profile's id."""
    lines, messages = [], []
    with Ledger.open(store_url) as ledger:
        for pid, worker in (("d1", REAL), ("d2", TYPED)):
            ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
            _checkout(ledger, pid, worker)
            with pytest.raises(CheckoutDenied) as denied:
                _checkout(ledger, pid, "other")
            lines.append(one_line(str(denied.value)).replace(pid, "P"))
            messages.append(problem_of(denied.value)[1].message.replace(pid, "P"))
    assert lines[0] != lines[1], lines
    assert messages[0] != messages[1], messages
    assert "'w\\u200b1'" in lines[0]
    assert "'w\\\\u200b1'" in lines[1]


def test_a_review_refused_to_its_own_worker_names_each_apart(store_url: str) -> None:
    """The worker of a profile's last lease may not review it: the refusal names the
    reviewer, and the two reviewers' lines differ."""
    lines = []
    with Ledger.open(store_url) as ledger:
        for pid, worker in (("r1", REAL), ("r2", TYPED)):
            ledger.handle(RegisterProfile(profile_id=pid, account_id="a", proxy_id="x"))
            lease_id, token = _checkout(ledger, pid, worker)
            ledger.handle(
                Release(
                    lease_id=lease_id,
                    fencing_token=token,
                    outcome="failure",
                    final_url="https://x/",
                )
            )
            version = len(ledger.history(pid))
            with pytest.raises(NotAllowed) as refused:
                ledger.handle(
                    Review(
                        profile_id=pid,
                        reviewer=worker,
                        decision="return",
                        note="fine",
                        expected_version=version,
                    )
                )
            lines.append(one_line(str(refused.value)).replace(pid, "P"))
    assert lines[0] != lines[1], lines
