"""Fencing, lost leases, disable/enable, the audit envelope, denials and availability reasons.

The companion of ``test_rules.py`` (the issue's rules table): the guarantees around the table's
rows, on the pure Profile aggregate with a hand-driven clock (no I/O).
"""

from __future__ import annotations

import pickle
from collections.abc import Callable

import pytest
from profile_scene import DONE_URL, Scene

from ledger._domain.denials import state_denial
from ledger._domain.errors import CheckoutDenied, InvalidInput, LeaseLost, NotAllowed
from ledger._domain.model import DenialReason, Outcome, ProfileState, Role
from ledger._domain.policies import ReleaseReport
from ledger._domain.profile import CheckoutRequest, Context
from ledger._domain.view import availability_of

# -- fencing and lost leases --------------------------------------------------------------------


def test_fencing_tokens_increase_by_one_per_lease() -> None:
    """Each lease of a profile carries the previous token plus one, whatever ended it."""
    s = Scene()
    tokens = [s.checkout().fencing_token]
    s.release(s.live)
    tokens.append(s.checkout().fencing_token)
    s.force_release()
    s.review()
    tokens.append(s.checkout().fencing_token)
    assert tokens == [1, 2, 3]


# Each way to lose a lease returns the token the worker then presents (None: its own).
def _wrong_token(s: Scene) -> int | None:
    return s.live.fencing_token + 1


def _marked_stale(s: Scene) -> int | None:
    s.advance(301)
    s.profile.mark_stale(s.ctx("sweeper", Role.SCHEDULER))
    s.collect()
    return None


def _ended(s: Scene) -> int | None:
    s.release(s.live)
    s.checkout("worker-b")
    return None


def _past_deadline(s: Scene) -> int | None:
    s.advance(301)
    return None


def _force_released(s: Scene) -> int | None:
    s.force_release()
    return None


# Each loss: how it is made, what the ledger says, and whether it says the ledger ended it.
_LOSSES: dict[str, tuple[Callable[[Scene], int | None], str, bool]] = {
    "wrong token": (_wrong_token, "fencing token 2 is not the lease's token 1", False),
    "stale lease": (_marked_stale, "the lease was marked stale", True),
    "after deadline": (_past_deadline, "renewal deadline", False),
    "ended lease": (_ended, "lease ended clean at ", True),
    "force-released": (_force_released, "lease ended forced (force_release) at ", True),
}


@pytest.mark.parametrize("loss", list(_LOSSES))
def test_heartbeat_on_lost_lease_raises_lease_lost(loss: str) -> None:
    """Heartbeat with a wrong token, a stale lease, past the deadline or an ended lease: lost;
    ``ended`` says whether the ledger ended the lease or marked it stale (a worker reads it as
    revoked), not the worker's own miss (its deadline, its token)."""
    s = Scene()
    lease = s.checkout("worker-a")
    lose, why, ended = _LOSSES[loss]
    token = lose(s)
    version = s.profile.version
    with pytest.raises(LeaseLost) as lost:
        s.heartbeat(lease, step="still_here", token=token)
    assert lost.value.lease_id == lease.lease_id
    assert why in lost.value.why
    assert lost.value.ended is ended
    assert s.profile.version == version
    assert s.profile.pending_events == []


def test_extend_and_release_with_wrong_token_raise_lease_lost() -> None:
    """Extend and release must present the current token too; a wrong one appends nothing."""
    s = Scene()
    lease = s.checkout()
    with pytest.raises(LeaseLost, match="fencing token 7"):
        s.profile.extend(lease.lease_id, 7, 600, s.ctx())
    with pytest.raises(LeaseLost, match="fencing token 7"):
        s.profile.release(lease.lease_id, 7, ReleaseReport(Outcome.SUCCESS, DONE_URL), s.ctx())
    assert s.profile.pending_events == []
    assert s.profile.state is ProfileState.LEASED


@pytest.mark.parametrize(
    "named", ["lease-2@profile_shop_17", "lease-02@profile_shop_17", "lease-0@profile_shop_17"]
)
def test_a_lease_never_issued_is_not_said_to_have_lost_the_profile(named: str) -> None:
    """rev28: a heartbeat naming a lease id the profile never issued, while lease-1 held it,
    answered "now held under lease-1", as if that lease had existed and lost it: it says the
    profile never issued it (still lease lost: stop), and writes nothing. A past lease of the
    profile's is still told where the profile went."""
    s = Scene()
    first = s.checkout()
    with pytest.raises(LeaseLost, match=f"profile_shop_17 never issued a lease {named}$") as never:
        s.profile.extend(named, 2, 600, s.ctx())
    assert not never.value.ended  # nothing the ledger ended: the caller's own mistake
    assert s.profile.pending_events == []
    for _ in range(2):
        s.force_release()
        s.review()
        s.checkout()
    with pytest.raises(LeaseLost, match="is now held under lease-3@profile_shop_17") as held:
        s.profile.extend(first.lease_id, first.fencing_token, 600, s.ctx())
    assert held.value.ended


# A LeaseLost as pickled before ``ended`` (c0d2562): its attributes have no "ended".
_PICKLED_BEFORE_ENDED = (
    b"\x80\x04\x95\xca\x00\x00\x00\x00\x00\x00\x00\x8c\x15ledger._domain.errors\x94"
    b"\x8c\x08_rebuilt\x94\x93\x94h\x00\x8c\tLeaseLost\x94\x93\x94\x8c?lease lost: lease-1@p1: "
    b"lease ended forced (force_release) at T\x94\x85\x94}\x94(\x8c\x08lease_id\x94\x8c\n"
    b"lease-1@p1\x94\x8c\x03why\x94\x8c'lease ended forced (force_release) at T\x94u\x87\x94R"
    b"\x94."
)


def test_a_lease_lost_pickled_before_ended_reads_ended_false() -> None:
    """A LeaseLost pickled by a version without ``.ended`` (a process pool, a queue, a file
    written before the upgrade) unpickles with ``ended`` False, the default of a loss the
    ledger does not say it ended (rev39: unpickling skips ``__init__``, AttributeError)."""
    back = pickle.loads(_PICKLED_BEFORE_ENDED)  # noqa: S301 (bytes this test holds)
    assert type(back) is LeaseLost
    assert str(back) == "lease lost: lease-1@p1: lease ended forced (force_release) at T"
    assert (back.lease_id, back.why, back.ended) == (
        "lease-1@p1",
        "lease ended forced (force_release) at T",
        False,
    )


# -- disable and enable -------------------------------------------------------------------------


def test_disable_of_leased_profile_ends_lease_and_enable_brings_back_review() -> None:
    """Disabling a leased profile ends its lease; enabling returns it to review, not the pool."""
    s = Scene()
    lease = s.checkout()
    assert s.types(s.disable()) == ["lease_revoked", "review_requested", "profile_disabled"]
    assert s.profile.lease is None
    with pytest.raises(LeaseLost):
        s.heartbeat(lease)
    s.enable()
    assert s.profile.state is ProfileState.REVIEW_REQUIRED


def test_disable_of_available_profile_and_enable_returns_to_pool() -> None:
    """A profile disabled while idle goes back to the pool when enabled."""
    s = Scene()
    assert s.types(s.disable()) == ["profile_disabled"]
    assert availability_of(s.profile).reason is DenialReason.DISABLED
    assert s.types(s.enable()) == ["profile_enabled"]
    assert s.profile.state is ProfileState.AVAILABLE


def test_a_disabled_profile_is_quarantined_without_passing_through_the_pool() -> None:
    """Quarantining a disabled profile ends the disable and quarantines in one write, so no
    worker can check it out in between (rev28: it was refused as "already disabled", and the
    only way was `enable` first, which put it in the pool); one disabled from quarantine is
    quarantined already, and `enable` returns it there."""
    for blocked_first in (False, True):
        s = Scene()
        if blocked_first:
            s.checkout()
            s.force_release()
        s.disable()
        events = s.quarantine()
        assert s.types(events) == ["profile_enabled", "profile_quarantined"]
        assert s.profile.state is ProfileState.QUARANTINED
        assert s.profile.disabled is None
        assert availability_of(s.profile).reason is DenialReason.QUARANTINED
    s.disable()
    with pytest.raises(NotAllowed, match="already quarantined, and disabled: `custody enable`"):
        s.quarantine()
    assert s.profile.pending_events == []
    s.enable()
    assert s.profile.state is ProfileState.QUARANTINED


# -- the envelope, denials and availability -----------------------------------------------------


def test_every_event_carries_the_context_envelope() -> None:
    """Each event's envelope holds the context's actor, role, reason, ids and time."""
    s = Scene()
    s.checkout()
    ctx = Context("ops-olga", Role.OPERATOR, s.advance(17), "cmd-x", "corr-x", "cause-x", "hung")
    s.profile.force_release(ctx)
    events = s.collect()
    assert len(events) == 2
    for event in events:
        envelope = event.envelope
        assert (envelope.actor_id, envelope.actor_role, envelope.reason) == (
            "ops-olga",
            Role.OPERATOR,
            "hung",
        )
        assert (envelope.command_id, envelope.correlation_id) == ("cmd-x", "corr-x")
        assert envelope.at == event.at == ctx.now
    assert events[0].envelope.causation_id == "cause-x"


@pytest.mark.parametrize("command", ["release", "review", "force_release"])
def test_later_events_of_a_command_are_caused_by_the_one_before(command: str) -> None:
    """In a multi-event command each event after the first names its predecessor as cause."""
    s = Scene()
    lease = s.checkout()
    if command == "release":
        s.release(lease)
    elif command == "force_release":
        s.force_release()
    else:
        s.release(lease, prompt_seen=True)
        s.review()
    events = s.history[-2:]
    assert len(events) == 2
    assert events[0].envelope.causation_id.startswith("cause-")
    assert events[1].envelope.causation_id == events[0].event_id


def test_state_denial_names_holder_and_remediation() -> None:
    """The already_leased denial names worker and run; each blocked state says what unblocks."""
    s = Scene()
    lease = s.checkout("worker-a")
    denial = state_denial(s.profile, s.now)
    assert denial is not None
    assert "worker-a" in denial.message
    assert lease.run_id in denial.message
    assert "custody force-release" in denial.remediation
    assert denial.until == lease.expires_at
    s.force_release()
    denial = state_denial(s.profile, s.now)
    assert denial is not None
    assert denial.holder is not None
    assert denial.holder.lease_id == lease.lease_id
    assert "ops-olga" in denial.message
    assert "custody review" in denial.remediation
    s.disable(actor="ops-otto")
    denial = state_denial(s.profile, s.now)
    assert denial is not None
    assert "disabled by ops-otto" in denial.message
    assert "custody enable" in denial.remediation


@pytest.mark.parametrize("block", ["quarantine", "review"])
def test_a_profile_disabled_from_a_block_is_told_the_review_it_still_needs(block: str) -> None:
    """rev28: a profile disabled from quarantine or review was told only ``custody enable``,
    after which a checkout met the block's denial; it says the state it returns to and the
    review, while one disabled from the pool needs the enable alone."""
    s = Scene()
    if block == "quarantine":
        s.quarantine()
    else:
        s.checkout()
        s.force_release()
    blocked = s.profile.state
    s.disable(actor="ops-otto")
    denial = state_denial(s.profile, s.now)
    assert denial is not None
    assert f"(it was {blocked.value})" in denial.message
    assert "custody enable" in denial.remediation
    assert f"custody review {s.profile.profile_id}" in denial.remediation
    s.enable()
    after = state_denial(s.profile, s.now)
    assert after is not None
    assert "custody review" in after.remediation

    pooled = Scene()
    pooled.disable()
    denial = state_denial(pooled.profile, pooled.now)
    assert denial is not None
    assert "custody enable" in denial.remediation
    assert "custody review" not in denial.remediation


@pytest.mark.parametrize("blocked", ["quarantine", "disable"])
def test_a_wrong_proxy_on_a_blocked_profile_says_what_else_unblocks_it(blocked: str) -> None:
    """rev28: a quarantined or disabled profile checked out through the wrong proxy was told
    proxy_mismatch, "launch through proxy ...", which earned only the block's denial: the
    mismatch is still named first, and its remediation says what unblocks the block too."""
    s = Scene()
    with pytest.raises(CheckoutDenied) as free:
        s.checkout(proxy_id="proxy_elsewhere")
    assert free.value.denial.reason is DenialReason.PROXY_MISMATCH
    assert "also" not in free.value.denial.remediation
    getattr(s, blocked)()
    state = state_denial(s.profile, s.now)
    assert state is not None
    with pytest.raises(CheckoutDenied) as denied:
        s.checkout(proxy_id="proxy_elsewhere")
    denial = denied.value.denial
    assert denial.reason is DenialReason.PROXY_MISMATCH
    assert denial.remediation == (
        f"{free.value.denial.remediation}; the profile is also blocked ({state.reason.value}):"
        f" {state.remediation}"
    )
    with pytest.raises(CheckoutDenied) as account:
        s.checkout(account_id="acct_elsewhere")
    assert account.value.denial.reason is DenialReason.ACCOUNT_MISMATCH
    assert account.value.denial.remediation.endswith(state.remediation)
    for told in (denial, account.value.denial):
        assert (told.holder, told.since, told.until) == (state.holder, state.since, state.until)


@pytest.mark.parametrize(
    ("account_id", "proxy_id", "reason"),
    [
        ("acct_elsewhere", None, DenialReason.ACCOUNT_MISMATCH),
        (None, "proxy_elsewhere", DenialReason.PROXY_MISMATCH),
    ],
)
def test_a_mismatch_on_a_leased_profile_names_the_holder_it_says_to_wait_for(
    account_id: str | None, proxy_id: str | None, reason: DenialReason
) -> None:
    """rev39: a wrong account or proxy on a profile another worker holds said "wait for the
    holder to release" with holder, since and until null; the denial keeps the mismatch's
    reason and carries the lease's holder and times, as the already_leased denial does."""
    s = Scene()
    lease = s.checkout()
    with pytest.raises(CheckoutDenied) as denied:
        s.checkout("worker-b", account_id=account_id, proxy_id=proxy_id)
    denial = denied.value.denial
    assert denial.reason is reason
    assert "also blocked (already_leased)" in denial.remediation
    assert denial.holder is not None
    assert (denial.holder.worker_id, denial.holder.lease_id) == (lease.worker_id, lease.lease_id)
    assert (denial.since, denial.until) == (lease.lease_started_at, lease.expires_at)


def test_availability_reason_for_expired_lease_is_previous_run_unknown() -> None:
    """A profile in review because its lease expired reads previous_run_unknown."""
    s = Scene()
    s.checkout(ttl=60)
    s.advance(61)
    s.sweep()
    row = availability_of(s.profile)
    assert (row.state, row.reason, row.cause) == (
        ProfileState.REVIEW_REQUIRED,
        DenialReason.PREVIOUS_RUN_UNKNOWN,
        "lease_expired",
    )


def test_availability_reason_for_verification_prompt_is_review_required() -> None:
    """A profile in review because of a verification prompt reads review_required."""
    s = Scene()
    s.release(s.checkout(), prompt_seen=True)
    row = availability_of(s.profile)
    assert (row.reason, row.cause) == (DenialReason.REVIEW_REQUIRED, "verification_prompt")


@pytest.mark.parametrize("command", ["force_release", "quarantine", "disable"])
@pytest.mark.parametrize("role", [Role.WORKER, Role.SCHEDULER, Role.REVIEWER])
def test_operator_commands_need_the_operator_role(command: str, role: Role) -> None:
    """force_release, quarantine and disable are refused to any role but operator."""
    s = Scene()
    s.checkout()
    with pytest.raises(NotAllowed, match="needs the operator role"):
        getattr(s.profile, command)(s.ctx("someone", role))
    assert s.profile.pending_events == []


def test_unnamed_mutating_or_safe_step_is_refused() -> None:
    """A safe or mutating heartbeat must name its step, so no mutation record is erased."""
    s = Scene()
    lease = s.checkout()
    s.heartbeat(lease, step="pay", mutating=True)
    for flags in ({"mutating": True}, {"safe": True}):
        with pytest.raises(InvalidInput, match="step"):
            s.heartbeat(lease, **flags)  # type: ignore[arg-type]
    assert s.live.mutating_step == "pay"


def test_causation_never_links_across_commands() -> None:
    """Events still pending from one command do not become the cause of the next command's."""
    s = Scene()
    lease = s.profile.checkout(
        CheckoutRequest(worker_id="w", run_id="r", task_type="t", ttl_seconds=60), s.ctx("w")
    )
    heartbeat_ctx = s.ctx("w")
    s.profile.heartbeat(
        lease.lease_id, 1, heartbeat_ctx, step="s", url=None, safe=False, mutating=False
    )
    acquired, beat = s.profile.collect_events()
    assert acquired.envelope.causation_id != beat.envelope.causation_id
    assert beat.envelope.causation_id == heartbeat_ctx.causation_id
