"""How we know the tests can fail: break one domain guard at a time and watch the tests catch it.

For each named guard the script copies the repository to a temporary directory, applies one
exact text substitution to the copy (the real files are never touched), runs the unit tests
there and reports

    KILLED    the tests failed, naming the tests that failed: the guard is pinned down
    SURVIVED  the tests passed without the guard: they cannot tell it is gone

A substitution that does not find its text exactly once stops the script: a refactor that
moves a guard must update the mutant, never let it pass unnoticed. Before any mutant, the
unmodified copy must pass the same tests, or every mutant would look killed.

Usage (from the repository root):

    .venv/bin/python tests/mutation/run.py                 # every guard, tests/unit
    .venv/bin/python tests/mutation/run.py fencing-token deadline
    .venv/bin/python tests/mutation/run.py --tests tests/unit/test_state_machine.py
    .venv/bin/python tests/mutation/run.py --list

Exit status: 0 when every mutant was killed; 1 when one survived or its run broke (a
collection error or a timeout proves nothing); 2 when a mutation could not be applied.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TESTS = ("tests/unit",)
# Set in every run this script starts, so that a run never starts this script again.
NESTED = "CUSTODY_MUTANT"
TIMEOUT_SECONDS = 300
_IGNORED_ANYWHERE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.egg-info",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
    ".hypothesis",
    "custody.db*",
)
# Builds, left out where this repository makes them (the TypeScript client's: a copy builds its
# own from the mutated sources), never inside node_modules, whose packages ship theirs as
# dist/ or build/ (openapi-typescript's: a copy without it failed the client's type check).
_BUILDS = {ROOT: {"build", "dist"}, ROOT / "clients" / "typescript": {"dist"}}


def IGNORED(directory: str, names: list[str]) -> set[str]:  # noqa: N802 - a copytree ignore
    return set(_IGNORED_ANYWHERE(directory, names)) | (
        _BUILDS.get(Path(directory), set()) & set(names)
    )


@dataclass(frozen=True)
class Mutant:
    """One guard deleted or weakened by replacing ``find`` (present exactly once) in ``path``."""

    name: str
    path: str
    find: str
    replace: str
    breaks: str
    # The tests that must kill it, when not the unit tests (a guard the database enforces is
    # seen only by tests on a real server); ``--tests`` overrides them.
    tests: tuple[str, ...] = ()


MUTANTS = (
    Mutant(
        "fencing-token",
        "ledger/_domain/leasing.py",
        "        if fencing_token != lease.fencing_token:\n",
        "        if False:\n",
        "live_lease accepts any fencing token for the live lease id",
    ),
    Mutant(
        "deadline",
        "ledger/_domain/leasing.py",
        "        if lease.overdue_at(now):\n",
        "        if False:\n",
        "live_lease accepts a heartbeat, extend or release past the renewal deadline",
    ),
    Mutant(
        "account-proxy",
        "ledger/_domain/denials.py",
        'differs from the profile\'s registration."""\n',
        'differs from the profile\'s registration."""\n    return None\n',
        "context_denial never denies: a checkout for another account or proxy is granted",
    ),
    Mutant(
        "deadline-boundary",
        "ledger/_domain/model.py",
        "    return now > deadline\n",
        "    return now >= deadline\n",
        "a lease counts as overdue at its deadline already, not only past it",
    ),
    Mutant(
        "lease-id",
        "ledger/_domain/leasing.py",
        "        if lease is None or lease.lease_id != lease_id:\n",
        "        if lease is None:\n",
        "live_lease does not check that the lease id presented is the live lease's",
    ),
    Mutant(
        "stale-lease",
        "ledger/_domain/leasing.py",
        "        if lease.lease_status is LeaseStatus.STALE:\n",
        "        if False:\n",
        "live_lease does not refuse a lease the sweep marked stale",
    ),
    Mutant(
        "checkout-state",
        "ledger/_domain/leasing.py",
        " or state_denial(\n            self, ctx.now\n        )\n",
        " or None\n",
        "checkout ignores the profile's state (leased, stale, review, quarantine, disabled)",
    ),
    Mutant(
        "overdue-checkout-says-stale",
        "ledger/_domain/denials.py",
        "    return DenialReason.STALE if overdue and reason is DenialReason.ALREADY_LEASED else"
        " reason\n",
        "    return reason\n",
        "a checkout of a profile whose lease is overdue says already_leased, not stale",
    ),
    Mutant(
        "mark-stale-needs-overdue",
        "ledger/_domain/leasing.py",
        "        if lease is None or not self.is_overdue(ctx.now):\n",
        "        if lease is None:\n",
        "mark_stale marks a lease that is still within its deadline",
    ),
    Mutant(
        "reviewer-not-worker",
        "ledger/_domain/profile.py",
        "            if same_identity(who, ctx.actor_id):\n",
        "            if False:\n",
        "the worker whose run is under review may review it",
    ),
    Mutant(
        "review-needs-block",
        "ledger/_domain/profile.py",
        "        if self.state not in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED):\n",
        "        if False:\n",
        "a review may return a leased, available or disabled profile to the pool",
    ),
    Mutant(
        "roles",
        "ledger/_domain/aggregate.py",
        "    if ctx.role not in roles:\n",
        "    if False:\n",
        "any role may issue operator, sweep and review commands",
    ),
    Mutant(
        "release-mutation-quarantine",
        "ledger/_domain/policies.py",
        "            report.outcome is not Outcome.SUCCESS and lease.mutating_step is not None,\n",
        "            False,\n",
        "a failed run after an unconfirmed mutating step goes to review, not quarantine",
    ),
    Mutant(
        "stale-mutation-quarantine",
        "ledger/_domain/policies.py",
        "    if lease.mutating_step is not None:\n",
        "    if False:\n",
        "a stale lease after an unconfirmed mutating step goes to review, not quarantine",
    ),
    Mutant(
        "force-release-mutation-quarantine",
        "ledger/_domain/profile.py",
        "        verdict = judge_stale(lease) if lease.mutating_step else None\n",
        "        verdict = None\n",
        "a force-release after an unconfirmed mutating step goes to review, not quarantine",
    ),
    Mutant(
        "unclean-limit",
        "ledger/_domain/policies.py",
        "    if len(recent) + 1 >= limit:\n",
        "    if len(recent) + 1 > limit:\n",
        "the unclean_limit-th unclean ending in the window does not quarantine yet",
    ),
    Mutant(
        "unclean-window",
        "ledger/_domain/policies.py",
        "if at >= since and lid != lease_id]",
        "if lid != lease_id]",
        "unclean endings older than the window still count towards quarantine",
    ),
    Mutant(
        "stale-ending",
        "ledger/_domain/endings.py",
        "        if stale:\n",
        "        if False:\n",
        "a lease the sweep settled after its deadline ends as review or quarantine, not stale",
    ),
    Mutant(
        "evidence-failed",
        "ledger/_domain/policies.py",
        "        (report.evidence_problem is not None, policy.on_unknown, Cause.EVIDENCE_FAILED)"
        ",\n",
        "",
        "a release whose evidence could not be collected may return the profile to the pool",
    ),
    Mutant(
        "hard-limit",
        "ledger/_domain/leasing.py",
        "        if lease.hard_limit_at is not None and now > lease.hard_limit_at:\n",
        "        if False:\n",
        "live_lease accepts a heartbeat, extend or release past the lease's hard limit",
    ),
    Mutant(
        "hard-limit-cap",
        "ledger/_domain/model.py",
        "        return min(deadline, self.hard_limit_at)\n",
        "        return deadline\n",
        "a renewal moves the lease's deadline past its hard limit",
    ),
    Mutant(
        "role-of-the-login",
        "ledger/_unit_of_work.py",
        "        self.require(acting.role)  # before anything is read\n",
        "",
        "the ledger runs a command whose role its store login does not hold",
        ("tests/unit/test_authority.py", "tests/e2e/test_cli_access.py"),
    ),
    Mutant(
        "event-of-the-role",
        "ledger/_domain/aggregate.py",
        "        check_records(ctx.role, cls.event_type)  # the table the database enforces too\n",
        "",
        "the aggregate triggers an event its acting role may not record",
        ("tests/unit/test_authority.py",),
    ),
    Mutant(
        "database-role-check",
        "ledger/_stores/access.py",
        "    IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),\n",
        "    IF true OR pg_has_role(current_user,"
        " (SELECT relowner FROM pg_class WHERE oid = TG_RELID),\n",
        "PostgreSQL's insert trigger lets any login append any event as any role",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "database-role-check-skipped",
        "ledger/_stores/access.py",
        '        f"ON {events} FOR EACH ROW "\n'
        "        f\"WHEN (pg_has_role(current_user, {int(owner)}::oid, 'MEMBER') IS NOT TRUE) \"\n",
        '        f"ON {events} FOR EACH ROW "\n        "WHEN (false) "\n',
        "PostgreSQL's insert trigger checks no login's events, not only the owner's",
        ("tests/integration/test_append_only.py",),
    ),
    Mutant(
        "transaction-id-first",
        "ledger/_stores/access.py",
        '        f"ON {events} FOR EACH STATEMENT WHEN (pg_current_xact_id() IS NULL) "\n',
        '        f"ON {events} FOR EACH STATEMENT WHEN (false) "\n',
        "an insert into the events draws its position before its transaction has an id",
        ("tests/integration/test_append_only.py",),
    ),
    Mutant(
        "event-position-granted",
        "ledger/_stores/access.py",
        """            return ["SELECT", f"INSERT ({', '.join(EVENT_COLUMNS)})"]\n""",
        """            return ["SELECT", "INSERT"]\n""",
        "a custody role's login may choose an event's position in the log",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "stream-past-its-head",
        "ledger/_stores/access.py",
        "        AND h.originator_version = NEW.originator_version - 1\n",
        "        AND h.originator_version < NEW.originator_version\n",
        "a login's event may go past its stream's head, leaving a gap no fold crosses",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "stream-begun-by-a-worker",
        "ledger/_stores/access.py",
        "        IF NEW.topic <> '{registered}' THEN\n",
        "        IF false THEN\n",
        "a login may begin a stream of its own with any event (an id taken, a timeline broken)",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "stream-of-another-profile",
        "ledger/_stores/access.py",
        "        AND convert_from(r.state, 'UTF8')::json ->> 'profile_id' = named\n",
        "        AND (convert_from(r.state, 'UTF8')::json ->> 'profile_id' = named OR true)\n",
        "a login's event may name another profile than its stream's registration",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "lease-on-unavailable-folded",
        "ledger/_domain/state.py",
        "        if p.state is not ProfileState.AVAILABLE\n",
        "        if False\n",
        "a load believes a lease appended past the ledger on a profile that was not available",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "verify-folds-only-to-snapshots",
        "ledger/_audit/snapshots.py",
        "            self._name_never(fold)\n",
        "            pass\n",
        "verify names no lease the ledger never grants in a stream without snapshots",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "append-after-a-lost-connection",
        "ledger/_stores/replaced.py",
        "    if replaced is not None and replaced.count != replaced.trusted:\n",
        "    if False:\n",
        "an append decided on a profile held across a lost connection is sent as it was decided",
        ("tests/integration/test_lost_commits.py",),
    ),
    Mutant(
        "held-across-a-lost-connection",
        "ledger/_stores/store.py",
        "        replaced.trusted = replaced.count\n",
        "        return\n",
        "a process keeps the profiles it held across a lost connection",
        ("tests/integration/test_lost_commits.py",),
    ),
    Mutant(
        "resend-in-any-role",
        "ledger/_unit_of_work.py",
        "        if found is not None and found.envelope.actor_role != acting.role:\n",
        "        if False:\n",
        "a command id a worker recorded beside its own event answers a reviewer's command",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "internal-500-keeps-alive",
        "service/_errors.py",
        '        return _answer(status, problem, **headers, Connection="close")\n',
        "        return _answer(status, problem, **headers)\n",
        "an unforeseen failure's 500 leaves the client believing its connection is kept alive",
        ("tests/integration/test_service_unforeseen.py",),
    ),
    Mutant(
        "runner-quits-when-busy",
        "projections/_runner.py",
        "                if done == 0 and (last or not e.busy):  # no store: said at once\n",
        "                if done == 0:\n",
        "a runner that finds a read model held by another exits 6 instead of taking its turn",
        ("tests/integration/test_exactly_once.py",),
    ),
    Mutant(
        "runner-busy-with-no-turn-to-come",
        "projections/_runner.py",
        "                if done == 0 and (last or not e.busy):  # no store: said at once\n",
        "                if done == 0 and not e.busy:\n",
        "a runner with one round that found the store busy answers as if it had caught up",
        ("tests/integration/test_exactly_once.py",),
    ),
    Mutant(
        "clean-end-of-no-lease-folded",
        "ledger/_domain/state.py",
        "    p._held(e)  # only the live lease's clean end returns the profile to the pool\n",
        "",
        "a clean end of no lease, appended past the ledger, returns a profile to the pool",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "heartbeat-on-no-lease-folded",
        "ledger/_domain/state.py",
        "    lease = p._held(e)\n    wrong = _beyond(lease, e.at, lease.ttl_seconds",
        "    lease = p.lease\n    wrong = _beyond(lease, e.at, lease.ttl_seconds",
        "a heartbeat on no lease breaks every load of its profile with an internal error",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "blocks-judged-in-no-role",
        "ledger/_domain/state.py",
        "        if role is Role.WORKER:\n            self._held(event)\n"
        "        elif role is Role.SCHEDULER:\n",
        "        if False:\n            pass\n        elif False:\n",
        "a worker's review of a lease it does not hold, or a sweep's of a live one, is believed",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "second-registration-folded",
        "ledger/_domain/state.py",
        "    if p.profile_id:  # a profile's account context never changes",
        "    if False:  # a profile's account context never changes",
        "a second registration moves a profile to another account",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "registration-again-taken",
        "ledger/_stores/access.py",
        "    ELSIF NEW.topic = '{registered}' THEN\n",
        "    ELSIF false THEN\n",
        "an operator's login appends a second registration to a registered profile's stream",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "registration-of-a-registered-id-taken",
        "ledger/_stores/access.py",
        "        IF EXISTS (SELECT 1 FROM {availability} a WHERE a.profile_id = named) THEN\n",
        "        IF false THEN\n",
        "an operator's login registers a registered profile again in a stream of its own",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "stop-waits-for-watches",
        "custody/_serve.py",
        "            stopping.set()\n",
        "            pass\n",
        "a graceful stop waits out every long poll in flight, refusing requests meanwhile",
        ("tests/integration/test_service_process.py",),
    ),
    Mutant(
        "runner-keeps-leftover-rebuilds",
        "projections/_runner.py",
        "    _drop_leftovers(ledger, models, announce or _unheard)\n",
        "",
        "a copy a failed rebuild could not drop makes status call the read models damaged",
        ("tests/integration/test_read_model_checks.py",),
    ),
    Mutant(
        "store-cut-short-refused",
        "ledger/_stores/sql.py",
        "        if version is None and tables <= _CUT_SHORT:\n",
        "        if False:\n",
        "a store whose making a full disk cut short sends every later command to custody init",
        ("tests/e2e/test_cli_hostile.py",),
    ),
    Mutant(
        "waits-again-for-a-stuck-append",
        "ledger/_stores/settled.py",
        "    left = waiting if waiting & recent else _ended(",
        "    left = _ended(",
        "each read of one command waits the store's timeout again on the same open append",
        ("tests/unit/test_settled_reads.py",),
    ),
    Mutant(
        "schema-15-keeps-old-snapshots",
        "ledger/_stores/migrations.py",
        "    elif found < 16:\n        _delete_snapshots(self)\n",
        "",
        "init keeps snapshots without their last event's time, which verify calls mismatched",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "schema-19-rechecks",
        "ledger/_stores/migrations.py",
        "SCHEMA_VERSION = 20\n",
        "SCHEMA_VERSION = 18\n",
        "a store whose insert check takes a login's lease started in 2099 is opened without "
        "init (rev37; rev35 the same for a lease event past its deadline)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_worker_login_acquires_only_a_lease_started_at_its_event_s_time",
        ),
    ),
    Mutant(
        "identity-invisible-fold",
        "ledger/_domain/aggregate.py",
        '    shown = INVISIBLE.sub("", unicodedata.normalize("NFKC", identity))\n',
        '    shown = unicodedata.normalize("NFKC", identity)\n',
        "a reviewer passes for another than the lease's worker with a character that shows nothing",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "body-size-streamed",
        "service/_bodies.py",
        "                if size > MAX_BODY_BYTES:\n",
        "                if False:\n",
        "the service reads a chunked body of any size whole before it answers",
        ("tests/integration/test_service_input.py",),
    ),
    Mutant(
        "database-encoding-refused",
        "ledger/_stores/sql.py",
        '        _refuse_encoding(settings, conn.info.parameter_status("server_encoding"))\n',
        "",
        "a store on a database that is not UTF8 takes texts its read models cannot keep",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "client-encoding-utf8",
        "ledger/_stores/postgres.py",
        '        pool.kwargs["client_encoding"] = CLIENT_ENCODING\n',
        "",
        "the store's sessions speak the client encoding PGCLIENTENCODING names",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "lease-check-deadline",
        "ledger/_domain/row.py",
        "        live = row.state is ProfileState.LEASED and not overdue\n",
        "        live = row.state is ProfileState.LEASED\n",
        "a lease past its renewal deadline is answered live until a sweep marks it",
        ("tests/unit/test_lease_check_rule.py",),
    ),
    Mutant(
        "read-only-store-authority",
        "ledger/_stores/sql.py",
        "            if not self._pg and self.read_only:\n",
        "            if False:\n",
        "a store this process may only read takes commands, which fail in the database",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "identity-folded-again",
        "ledger/_domain/aggregate.py",
        '    return unicodedata.normalize("NFKC", shown).casefold().strip()\n',
        "    return shown.casefold().strip()\n",
        "an accent kept from its letter by a character that shows nothing makes another identity",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "immutable-only-frozen",
        "ledger/_stores/settings.py",
        "        immutable = not self.sqlite_journal_beside() and path.exists()"
        " and _frozen(path)\n",
        "        immutable = not self.sqlite_journal_beside() and path.exists()"
        " and self.sqlite_unwritable()\n",
        "a store its owner may still write is read as immutable by a user who may not write it",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "unwritable-wal-beside",
        "ledger/_stores/settings.py",
        "        return not all(p.exists() and os.access(p, os.W_OK) for p in beside)\n",
        "        return True\n",
        "a writable store whose directory alone may not be written is taken for read-only",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "append-only",
        "ledger/_stores/access.py",
        "    RAISE EXCEPTION '{_REFUSAL}: % refused', TG_OP"
        " USING ERRCODE = 'insufficient_privilege';\n",
        "    RETURN OLD;\n",
        "PostgreSQL lets the owner (or a superuser) UPDATE, DELETE and TRUNCATE events",
        ("tests/integration/test_append_only.py", "tests/e2e/test_cli_access.py"),
    ),
    Mutant(
        "append-only-sqlite",
        "ledger/_stores/access.py",
        '            for op in ("UPDATE", "DELETE")\n',
        "            for op in ()\n",
        "SQLite lets anyone with the file UPDATE and DELETE events",
        ("tests/integration/test_append_only.py",),
    ),
    Mutant(
        "worker-snapshots",
        "ledger/_stores/store.py",
        "        if not due or app.snapshots is None or not app.takes_snapshots:\n",
        "        if not due or app.snapshots is None:\n",
        "a login that may not write snapshots tries to (and fails after its events committed)",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "watchdog-deadline",
        "workers/_watchdog.py",
        '            return _stop(pids, user_data_dir, label, "the local deadline passed")\n',
        "            deadline += 3600\n            continue\n",
        "the watchdog lets the browser run past the local deadline (a frozen worker's redirects)",
        ("tests/e2e/test_worker_redirects.py",),
    ),
    Mutant(
        "follower-gaps",
        "ledger/_stores/settled.py",
        "    count = first_gap(base, ids)\n",
        "    count = len(ids)\n",
        "a read of the log on PostgreSQL hands on rows past a gap an append in progress fills",
        ("tests/integration/test_followers.py",),
    ),
    Mutant(
        "follower-past-xmax",
        "ledger/_stores/settled.py",
        "        return xid in self.xip or xid >= self.xmax\n",
        "        return xid in self.xip\n",
        "a gap's append whose id is past the snapshot's xmax is not waited for",
        ("tests/unit/test_settled_reads.py",),
    ),
    Mutant(
        "follower-running",
        "ledger/_stores/settled.py",
        """    "AND x.mode = 'ExclusiveLock' AND x.granted AND x.virtualtransaction IN "\n""",
        """    "AND false AND x.virtualtransaction IN "\n""",
        "a read of the log waits for no append in progress before it passes a gap",
        ("tests/integration/test_followers.py",),
    ),
    Mutant(
        "group-commit",
        "ledger/_unit_of_work.py",
        "        self._batch = batch = _Batch(self.now())\n",
        "        return [_answer(call) for call in calls]\n        batch = _Batch(self.now())\n",
        "commands run together each take a transaction of their own",
        ("tests/unit/test_group_commit.py",),
    ),
    Mutant(
        "trusted-refusal",
        "ledger/_unit_of_work.py",
        "        except LedgerError:\n            return None\n",
        "        except LedgerError:\n            raise\n",
        "a refusal is made on the profile this process holds, which may be behind the store",
        ("tests/integration/test_trusted_cache.py",),
    ),
    Mutant(
        "trusted-no-append",
        "ledger/_unit_of_work.py",
        "        return (held, in_time) if held.pending_events else None\n",
        "        return held, in_time\n",
        "a decision that appends nothing is made on the profile this process holds",
        ("tests/integration/test_trusted_cache.py",),
    ),
    Mutant(
        "catch-up-once-each",
        "projections/_runner.py",
        "    return list(named.values())\n",
        "    return list(models)\n",
        "a read model named twice in one catch-up folds every event twice",
        (
            "tests/integration/test_exactly_once.py::test_a_read_model_named_twice_is_caught_up_once",
        ),
    ),
    Mutant(
        "together-answers-what-was-written",
        "ledger/_application.py",
        "                if not start:  # nothing was written: the call failed as a whole\n",
        "                if True:\n",
        "a failure after a written transaction of handle_together hides the answers written",
        ("tests/integration/test_group_commit_stores.py",),
    ),
    Mutant(
        "beside-ends-with-verify",
        "ledger/_audit/beside.py",
        "    threading.Thread(target=_end_with_the_parent, daemon=True).start()\n",
        "    pass\n",
        "verify's second process goes on reading the store after verify was killed",
        ("tests/integration/test_verify_beside.py",),
    ),
    Mutant(
        "snapshot-fold-decode",
        "ledger/_audit/snapshots.py",
        '                self.broken = f"an event after v{self.version} cannot be read ({e})"\n'
        "                return\n",
        "                raise\n",
        "junk in a profile with snapshots crashes verify instead of being named",
        ("tests/integration/test_verify_beside.py",),
    ),
    Mutant(
        "wakeup-after-commit",
        "ledger/_stores/postgres.py",
        """                if committing.statusmessage != "COMMIT":\n""",
        """                if True:\n""",
        "a wake-up that fails after the append's COMMIT is raised as the append's failure",
        ("tests/integration/test_append_wakeup.py",),
    ),
    Mutant(
        "wakeup-behind-append",
        "ledger/_stores/postgres.py",
        """                    curs.execute(b"BEGIN")\n                    self._insert_events(""",
        """                    self._queue_notify(curs)\n"""
        """                    curs.execute(b"BEGIN")\n                    self._insert_events(""",
        "the wake-up is queued before the append, so a failed append still wakes the listeners",
        ("tests/integration/test_append_wakeup.py",),
    ),
    Mutant(
        "wakeup-after-commit-one-round-trip",
        "ledger/_stores/postgres.py",
        "    for at, result in enumerate(results[: commit + 1]):  # prepares, BEGIN ... COMMIT\n",
        """    for at, result in enumerate(results[:-1]):\n""",
        "a wake-up that fails after the one-round-trip append's COMMIT is raised as its failure",
        ("tests/integration/test_append_wakeup.py",),
    ),
    Mutant(
        "wakeup-behind-append-one-round-trip",
        "ledger/_stores/postgres.py",
        """        for n, text in preparing\n    ]\n""",
        """        for n, text in preparing\n    ]"""
        """ + [partial(pgconn.send_query_prepared, wake, None)]\n""",
        "the wake-up is queued before the one-round-trip append: a failed one still wakes",
        ("tests/integration/test_append_wakeup.py",),
    ),
    Mutant(
        "service-lease-owner",
        "service/_service.py",
        "        if caller.role is not Role.WORKER:\n            return\n",
        "        return\n",
        "a worker's token speaks under another worker's lease, knowing its fencing token",
        ("tests/integration/test_service.py::test_who_is_calling_comes_from_the_token",),
    ),
    Mutant(
        "service-idempotency",
        "service/_app.py",
        "    if key is None:\n        return None\n",
        "    return None\n",
        "a request resent with its Idempotency-Key appends again",
        (
            "tests/integration/test_service.py::test_a_resent_request_returns_the_first_answer_and_appends_nothing",
        ),
    ),
    Mutant(
        "service-group-commit",
        "service/_writer.py",
        "MAX_BATCH = 200\n",
        "MAX_BATCH = 1\n",
        "heartbeats arriving together at the service each take a transaction",
        (
            "tests/integration/test_service.py::test_heartbeats_arriving_together_share_a_transaction",
        ),
    ),
    Mutant(
        "hub-group-commit",
        "workers/_hub.py",
        "    return ledger.handle_together(beats)\n",
        "    return [ledger.handle(beat) for beat in beats]\n",
        "a worker's due heartbeats each take a transaction of their own",
        ("tests/unit/test_renewal_hub.py", "tests/integration/test_heartbeat_batches.py"),
    ),
    Mutant(
        "hub-lost-alone",
        "workers/_hub.py",
        '            self.guard.refused(answer)  # "revoked: ..." when the ledger ended the lease\n'
        "            return False\n",
        "            raise answer\n",
        "a LeaseLost answered for one heartbeat of a batch ends the renewals of every lease",
        ("tests/unit/test_renewal_hub.py", "tests/integration/test_heartbeat_batches.py"),
    ),
    Mutant(
        "hub-resend-same-id",
        "workers/_hub.py",
        "            self.guard.failed(str(answer))\n"
        "            self.retry_at = now + self.guard.timing.retry_period\n",
        "            self.failed(answer, now)\n",
        "a heartbeat the store could not take is resent under a new command id",
        ("tests/unit/test_renewal_hub.py",),
    ),
    Mutant(
        "hub-leave-waits",
        "workers/_hub.py",
        "            while renewal in self._sending:\n",
        "            while False:\n",
        "a lease leaves the hub while a batch carrying its heartbeat is on its way",
        ("tests/unit/test_renewal_hub.py",),
    ),
    Mutant(
        "walk-orjson-header",
        "ledger/_audit/walk.py",
        '    if not encoded.isascii() or b"\\\\" in encoded or b"\\x7f" in encoded:\n',
        "    if False:\n",
        "verify's shortcut hashes orjson's header bytes where json writes them otherwise",
        ("tests/unit/test_audit_walk.py",),
    ),
    Mutant(
        "walk-orjson-types",
        "ledger/_audit/walk.py",
        "    if not _PLAIN.issuperset(map(type, fields)):\n",
        "    if False:\n",
        "verify's shortcut trusts orjson with a float, an object or an integer past 64 bits",
        ("tests/unit/test_audit_walk.py",),
    ),
    Mutant(
        "walk-orjson-depth",
        "ledger/_audit/walk.py",
        '    if body.count(b"{") + body.count(b"[") > _NESTED:\n',
        "    if False:\n",
        "verify's shortcut reads a body nested past json's recursion limit with orjson",
        ("tests/unit/test_audit_walk.py",),
    ),
    Mutant(
        "walk-closing-byte",
        "ledger/_audit/walk.py",
        '            if not state.endswith(b"}"):  # ``split`` reads past the last byte\n',
        "            if False:\n",
        "verify reads past a stored event's last byte, so an edit of it goes unnamed",
        ("tests/unit/test_audit_walk.py",),
    ),
    Mutant(
        "direct-append-committed",
        "ledger/_stores/postgres.py",
        "            if not (isinstance(lost, Exception) and _committed(results, commit)):\n",
        "            if True:\n",
        "a committed append whose connection is lost after COMMIT is reported as failed",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "direct-append-encoding",
        "ledger/_stores/postgres.py",
        '        if conn.info.encoding != "utf-8":\n            return None\n',
        "        if False:\n            return None\n",
        "the one-round-trip append sends UTF-8 text to a connection of another encoding",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "direct-append-nul",
        "ledger/_stores/postgres.py",
        '    if b"\\0" in b"".join(value for value in texts if value is not None):  # one search\n',
        "    if False:\n",
        "the one-round-trip append lets libpq cut a text at its first NUL",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "event-hashes-as-stored",
        "ledger/_domain/events.py",
        "        _STORED.__set__(self, (body, header))\n",
        "        pass\n",
        "an event stored before hash chains hashes as upcast, not as stored: its head forks",
    ),
    Mutant(
        "event-copies-keep-stored",
        "ledger/_domain/events.py",
        "        _STORED.__set__(copied, stored)\n",
        "        pass\n",
        "a copy of an event stored before hash chains hashes as upcast: another hash, one event",
    ),
    Mutant(
        "event-pickle-keeps-stored",
        "ledger/_domain/events.py",
        '        return state if stored is None else {**state, "_stored": stored}\n',
        "        return state\n",
        "a pickled event stored before hash chains comes back hashing as upcast",
    ),
    Mutant(
        "lent-connection-translated",
        "ledger/_stores/postgres.py",
        "            raise _translated(error) from error\n",
        "            raise\n",
        "a version another writer took is an internal error, not a conflict decided again",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "lent-connection-given-back",
        "ledger/_stores/postgres.py",
        "            self._datastore.pool.putconn(conn)\n",
        "            pass\n",
        "every append keeps its pooled connection: the pool runs dry",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "direct-append-bounded",
        "ledger/_stores/postgres.py",
        "    if name not in prepared and len(prepared) >= PREPARED_AT_MOST:\n",
        "    if False:\n",
        "a connection keeps a prepared append for every shape of batch it ever wrote",
        ("tests/integration/test_append_direct.py",),
    ),
    Mutant(
        "sdk-ended-answer",
        "workers/_renewal.py",
        "    if answer.lease_status is LeaseStatus.ACTIVE:\n",
        "    if True:\n",
        "the SDK takes a lease the ledger answered as revoked for a renewal or a grant",
        ("tests/unit/test_worker_renewal.py", "tests/unit/test_renewal_hub.py"),
    ),
    Mutant(
        "service-token-before-body",
        "service/_bodies.py",
        "            if needs_token:  # raises Unauthorised (401)"
        " before any byte of the body is read\n",
        "            if False:\n",
        "the service reads and parses a stranger's body before it asks for the token",
        ("tests/integration/test_service_strangers.py",),
    ),
    Mutant(
        "digest-out-only-a-digest",
        "ledger/audit.py",
        '    before = load(previous, "previous") if previous is not None else None\n',
        "    before = None\n",
        "a digest follows whatever bytes it is given as the previous digest",
        ("tests/e2e/test_digest_files.py",),
    ),
    Mutant(
        "verify-reads-every-event",
        "ledger/audit.py",
        "    state.reads = read_of\n",
        "    state.reads = None\n",
        "verify vouches for an event its chain links though no read can decode it",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "unreadable-event-named-on-load",
        "ledger/_stores/mapper.py",
        "        except Exception as e:  # one line naming the event, not a traceback\n",
        "        except KeyboardInterrupt as e:\n",
        "a load that meets an event it cannot decode fails with the decoder's traceback",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "unreadable-event-named-in-folds",
        "projections/_runner.py",
        "    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:\n",
        "    except KeyboardInterrupt as error:\n",
        "a read model's fold that meets an event it cannot decode fails as an internal error",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "sqlite-statements-kept",
        "ledger/_stores/recorders.py",
        "                cached_statements=SQLITE_STATEMENTS_KEPT,\n",
        "                cached_statements=True,\n",
        "SQLite connections keep one prepared statement, as the library opens them",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "pydantic-plugins-group",
        "custody/_pydantic_plugins.py",
        "            return _GROUP.search(f.read()) is not None\n",
        "            return False\n",
        "the cheap look for pydantic's plugins misses one a distribution declares",
        ("tests/unit/test_pydantic_plugins.py",),
    ),
    Mutant(
        "pydantic-plugins-unseen",
        "custody/_pydantic_plugins.py",
        "    return not files\n",
        "    return True\n",
        "the cheap look for pydantic's plugins answers none for a zip on the path it cannot read",
        ("tests/unit/test_pydantic_plugins.py",),
    ),
    Mutant(
        "init-newer-store",
        "ledger/_stores/sql.py",
        "    if version is not None and version > SCHEMA_VERSION:\n",
        "    if False:\n",
        "init (and every command) takes a store a newer custody migrated",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "directory-bytes",
        "ledger/_domain/model.py",
        '    if len(value.encode("utf-8")) > MAX_DIRECTORY_BYTES:\n',
        "    if False:\n",
        "the door takes a directory PostgreSQL's index of directories cannot hold",
        ("tests/integration/test_directories.py",),
    ),
    Mutant(
        "password-alone",
        "ledger/_stores/connections.py",
        '        first = re.sub(alone, "***", first)\n',
        '        first = first.replace(settings.password, "***")\n',
        "a store's failure hides the password's letters inside the driver's words",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "tls-pool",
        "ledger/_stores/postgres.py",
        '        pool.kwargs.update(parse_qsl(self.env.get(TLS_ENV) or ""))',
        "        pass",
        "the library's pool forgets the URL's sslmode and sslrootcert",
        ("tests/integration/test_store_tls.py",),
    ),
    Mutant(
        "tls-direct",
        "ledger/_stores/connections.py",
        "**{**settings.libpq_tls(), **options}",
        "**options",
        "a direct connection (every command's first, LISTEN) forgets the URL's TLS parameters",
        ("tests/integration/test_store_tls.py",),
    ),
    Mutant(
        "tls-read-path",
        "ledger/_stores/sql_views.py",
        """            + "".join(f"&{name}={quote(value, safe='')}" for name, value in s.tls)\n""",
        "",
        "the pandas read path (ADBC) forgets the URL's TLS parameters",
        ("tests/integration/test_store_tls.py",),
    ),
    Mutant(
        "pool-empty-password",
        "ledger/_stores/postgres.py",
        '            pool.kwargs.pop("password", None)',
        "            pass",
        "the library's pool is handed an empty password: PGPASSWORD never reaches it",
        ("tests/integration/test_store_passwords.py",),
    ),
    Mutant(
        "foreign-lease-written",
        "ledger/_domain/leasing.py",
        "            if named is not None and named.worker_id != worker_id:",
        "            if False:",
        "a lease command naming its worker is written on another worker's lease",
        ("tests/unit/test_service_layer.py", "tests/integration/test_service.py"),
    ),
    Mutant(
        "service-worker-unsent",
        "service/_app.py",
        "command_id=command_id(who, key), worker_id=who.actor, **fields",
        "command_id=command_id(who, key), **fields",
        "the service sends no caller with a lease command: only its racy read guards the lease",
        ("tests/integration/test_service.py",),
    ),
    Mutant(
        "export-over-store",
        "custody/_whole.py",
        "    if head.startswith(SQLITE_HEADER):",
        "    if False:",
        "an export or the HTML report replaces the store's own SQLite file: its log is gone",
        ("tests/e2e/test_cli_export.py",),
    ),
    Mutant(
        "export-over-journal",
        "custody/_whole.py",
        "    if journal is not None and _head(",
        "    if False and _head(",
        "an export replaces the journal beside an SQLite store",
        ("tests/e2e/test_cli_export.py",),
    ),
    Mutant(
        "seconds-nan",
        "custody/_wiring.py",
        "        if seconds != seconds:  # nan",
        "        if False:  # nan",
        "nan seconds pass the range: a poll without a pause, a grace that never ends",
    ),
    Mutant(
        "store-url-fragment",
        "ledger/_stores/settings.py",
        '        if "#" in url:',
        "        if False:",
        "a '#' in a store URL cuts the path there: two stores named apart are one file",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "blank-final-url-proves",
        "ledger/_domain/policies.py",
        "    return url is not None and says_something(url)",
        "    return url is not None",
        "a final URL of spaces counts as the page the run ended on: straight back to the pool",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "invisible-final-url-proves",
        "ledger/_domain/model.py",
        "any(\n        unicodedata.category(c) not in _BLANK_CATEGORIES and not c.isspace()\n"
        '        for c in INVISIBLE.sub("", text)\n    )',
        "bool(text.strip())",
        "a final URL, a reason or a name of a zero-width space counts as saying something",
        ("tests/unit/test_rules.py", "tests/unit/test_commands.py"),
    ),
    Mutant(
        "invisible-expected-failure-explains",
        "ledger/_commands.py",
        'not says_something(\n            reason or ""\n        )',
        'not (reason or "").strip()',
        "an expected failure whose reason is a zero-width space goes back to the pool (rev28)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "empty-screenshot-proves",
        "ledger/_domain/policies.py",
        "report.screenshot_sha256 not in (None, EMPTY_SHA256)",
        "report.screenshot_sha256 not in (None,)",
        "a screenshot file of no bytes counts as the screenshot a strict policy asks for",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "quarantine-of-disabled-refused",
        "ledger/_domain/profile.py",
        "            self._trigger(ev.ProfileEnabled, ctx, state=self.disabled.previous_state)",
        '            raise NotAllowed(f"profile {self.profile_id} is already disabled")',
        "a disabled profile can be quarantined only by enabling it into the pool first (rev28)",
        ("tests/unit/test_fencing_and_audit.py",),
    ),
    Mutant(
        "undigested-screenshot-proves",
        "ledger/_domain/policies.py",
        "report.screenshot_sha256 not in (None, EMPTY_SHA256)",
        "report.screenshot_sha256 != EMPTY_SHA256",
        "a screenshot path without a digest (a file that may not exist) counts (rev28)",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "status-reason-unjudged",
        "projections/_availability.py",
        "        reason = reason_at(r.reason, overdue)\n",
        "        reason = r.reason\n",
        "status gives an overdue lease's reason as already_leased where checkout says stale",
        ("tests/integration/test_lifecycle.py",),
    ),
    Mutant(
        "who-overdue-unsaid",
        "projections/_explain.py",
        "        overdue=view.lease is not None and view.lease.overdue_at(ledger.now()),",
        "        overdue=False,",
        "who says a lease past its deadline is held until a time gone by",
        ("tests/integration/test_lifecycle.py",),
    ),
    Mutant(
        "directory-aliases-unresolved",
        "ledger/_here.py",
        "    real = os.path.realpath(spelled)",
        "    real = spelled",
        "a directory reached through a symbolic link is registered to a second profile",
        ("tests/integration/test_directories.py",),
    ),
    Mutant(
        "registration-spelling-compared",
        "ledger/_domain/profile.py",
        '    return normalised(value) if name == "user_data_dir" and value is not None else value',
        "    return value",
        "registering a profile again with its directory spelled /dir/ is refused as another record",
        ("tests/integration/test_directories.py",),
    ),
    Mutant(
        "window-backwards",
        "projections/_base.py",
        "    if since is not None and until is not None and str(iso(since)) > str(iso(until)):",
        "    if False:",
        "a timeline or usage window that ends before it starts answers empty, as a quiet time",
        ("tests/integration/test_lifecycle.py",),
    ),
    Mutant(
        "until-to-the-instant",
        "reports/_frames.py",
        "        parsed = _through_its_last_instant(text.strip(), parsed)\n",
        "        pass\n",
        "until=TIME to the second misses that second's events after its first instant",
        ("tests/integration/test_report_times.py",),
    ),
    Mutant(
        "console-bidi-raw",
        "service/_console.py",
        "            finalize=_visible,  # a worker's bidi override must not reorder what the page",
        "the console writes a worker's bidi override raw, so safe<RLO>gnp.exe reads safeexe.png",
        ("tests/integration/test_console_forms.py",),
    ),
    Mutant(
        "service-docs-pages",
        "service/_app.py",
        "        docs_url=None,\n        redoc_url=None,\n",
        "",
        "/docs and /redoc run a CDN's scripts on the console's origin",
        ("tests/integration/test_console_forms.py",),
    ),
    Mutant(
        "review-version-unchecked",
        "ledger/_domain/profile.py",
        "        if expected_version is not None and expected_version != self.version:\n",
        "        if False:\n",
        "a verdict drawn on one run of a profile lands on a later run its reviewer never saw",
        ("tests/unit/test_review_version.py", "tests/integration/test_console_forms.py"),
    ),
    Mutant(
        "console-opens-a-fifo",
        "service/_console_reads.py",
        "        if not stat.S_ISREG(os.stat(path).st_mode):\n",
        "        if False:\n",
        "viewing a review page opens the FIFO a worker named, waking its writer",
        ("tests/integration/test_console_forms.py",),
    ),
    Mutant(
        "resent-overdue-active",
        "ledger/_unit_of_work.py",
        "live = current.live_lease(acted.lease_id, acted.fencing_token, self.now())",
        "live = self._lease_now(current, acted)",
        "a lease command resent past the deadline or after its lease ended answers it as active",
        ("tests/integration/test_command_ids.py",),
    ),
    Mutant(
        "expected-failure-after-mutation-clean",
        "ledger/_domain/policies.py",
        "            report.outcome is not Outcome.SUCCESS and lease.mutating_step is not None,\n",
        "            report.outcome is Outcome.FAILURE and lease.mutating_step is not None,\n",
        "an expected failure after an unconfirmed mutating step returns the profile to the pool",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "status-stale-filter-misses-overdue",
        "projections/_availability.py",
        "        stale = state is ProfileState.STALE and reason is DenialReason.STALE\n",
        "        stale = False\n",
        "status --state stale lists no lease past its deadline before the sweep",
        ("tests/integration/test_lifecycle.py",),
    ),
    Mutant(
        "because-without-renewal",
        "projections/_explain.py",
        "    return entered + _renewed(ledger, view.lease)\n",
        "    return entered\n",
        "why cites a lease's checkout, not the renewal that set the deadline it missed",
        ("tests/integration/test_explain_because.py",),
    ),
    Mutant(
        "pool-dead-one-at-a-time",
        "ledger/_stores/postgres.py",
        "        pool.check()\n        raise\n",
        "        raise\n",
        "after a restart the pool is handed its dead connections one at a time: the first "
        "command waits seconds, or fails",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "sqlite-foreign-availability-taken",
        "ledger/_stores/sql.py",
        "        if not _SQLITE_COLUMNS[table] <= columns:\n",
        "        if False:\n",
        "init writes custody's tables beside another application's custody_availability (the"
        " check of every table of custody's name since rev38)",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "pg-foreign-tables-taken",
        "ledger/_stores/sql.py",
        "            cls._refuse_foreign_tables(settings)\n",
        "            pass\n",
        "init on PostgreSQL builds beside another application's table of custody's name",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "url-quoted-as-another-path",
        "ledger/_stores/settings.py",
        '    if scheme == "sqlite" and body.startswith("/"):  # no authority',
        "    if False:  # no authority",
        "a refused SQLite URL with an '@' in its file name is quoted as a login (rev29 moved it)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "init-on-read-only-unavailable",
        "ledger/_stores/sql.py",
        "if create and sqlite_here and settings.sqlite_unwritable():  # init, register: exit 7",
        "if False:",
        "init or register on a read-only SQLite store is 'unavailable' (exit 6), not forbidden",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "init-cut-short-foreign",
        "ledger/_stores/sql.py",
        "        if not tables - _UNFINISHED:",
        "        if not tables:",
        "an init cut short leaves a file every later init refuses as another application's",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "until-a-week-its-monday",
        "reports/_frames.py",
        "            day += timedelta(days=6)\n",
        "            pass\n",
        "--until 2026-W48 reaches only through the week's Monday",
        ("tests/integration/test_report_times.py",),
    ),
    Mutant(
        "window-naive-compared",
        "projections/_base.py",
        "and str(iso(since)) > str(iso(until)):",
        "and since > until:",
        "a window of one naive and one aware time is a TypeError, not an answer",
        ("tests/integration/test_lifecycle.py",),
    ),
    Mutant(
        "export-target-blocks",
        "custody/_whole.py",
        "        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)",
        "        fd = os.open(path, os.O_RDONLY)",
        "the look at an export's target waits for a FIFO's writer: the export hangs",
        ("tests/e2e/test_cli_export.py",),
    ),
    Mutant(
        "availability-unchecked",
        "custody/_reading.py",
        "[availability_status(ledger), *read_model_status(ledger, READ_MODELS.values())]",
        "read_model_status(ledger, READ_MODELS.values())",
        "projections status checks no availability row: a deleted or forged one goes unnoticed",
        ("tests/e2e/test_cli_availability_damage.py",),
    ),
    Mutant(
        "why-hides-row-problem",
        "custody/_render.py",
        "    if e.row_problem:  # what status and fleet read is not what the events say",
        "    if False:",
        "the text why says nothing of a profile's wrong availability row (only --json did)",
        ("tests/e2e/test_cli_availability_damage.py",),
    ),
    Mutant(
        "csv-terminal-raw",
        "custody/_output.py",
        "write_csv_pages(pages, out, for_a_terminal=for_a_person(out))",
        "write_csv_pages(pages, out)",
        "CSV to a terminal writes a worker's terminal escapes raw",
        ("tests/e2e/test_cli_csv_terminal.py",),
    ),
    Mutant(
        "walk-from-position-1",
        "ledger/_audit/walk.py",
        "    after: int | None = None\n",
        "    after: int | None = 0\n",
        "verify walks from position 1: an event stored at -1, which every load reads, is not",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "audit-reads-past-a-gap-silently",
        "ledger/_stores/settled.py",
        "        if strict:\n",
        "        if False:\n",
        "verify checks the log up to an append left open and passes, saying nothing",
        ("tests/integration/test_audit_pending_append.py",),
    ),
    Mutant(
        "digest-ignores-its-previous",
        "ledger/audit.py",
        "    if lost:\n",
        "    if False:\n",
        "digest signs a history rewritten since the digest it names as its previous",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "odd-version-read-round",
        "ledger/_audit/walk.py",
        "        if type(version) is not int:  # SQLite keeps whatever a hand writes into a cell\n",
        "        if False:\n",
        "an event's version edited to 2.5 or text is read as a whole number, or crashes verify",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "odd-snapshot-version-loops",
        "ledger/_audit/snapshots.py",
        "        if type(version) is not int:  # SQLite keeps whatever a hand writes into a cell\n",
        "        if False:\n",
        "a snapshot's version edited to 2.5: the check pages on it for ever",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "read-model-behind-silent",
        "projections/_runner.py",
        "            _note(ReadModelBehind(model.name, feed.lag(position)), 3)\n",
        "            pass\n",
        "a read-only copy's read model behind its log answers without a word of what it leaves out",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "fleet-cut-hides-junk-position",
        "reports/_sources.py",
        '        where.append("CAST(position AS BIGINT) <= ?")\n',
        '        where.append("position <= ?")\n',
        "a timeline row whose position a hand made text vanishes from health and fleet",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "webrtc-pin-opens-preferences",
        "workers/_launch.py",
        "        os.fchmod(file.fileno(), mode)  # whatever the umask took away\n",
        "        os.fchmod(file.fileno(), 0o644)\n",
        "pinning WebRTC leaves the profile's preferences readable by every user of the host",
        ("tests/integration/test_profile_marker.py",),
    ),
    Mutant(
        "query-password-shown",
        "ledger/_stores/settings.py",
        'v if k in known else "***"',
        "v",
        "an error quotes the value of an option custody does not know: ?password=",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "popup-first-page-seen",
        "workers/_browser.py",
        "            if shows_a_page(frame.url):\n                navigated(frame)\n",
        "            pass\n",
        "a popup's first page (reported only after it committed) is never a navigation",
        ("tests/e2e/test_worker_browser.py::test_a_verification_page_opened_as_a_popup_is_seen",),
    ),
    Mutant(
        "launch-switches-refused",
        "workers/_settings.py",
        "        if switch_name(arg) in RESERVED_SWITCHES:\n",
        "        if False:\n",
        "a --proxy-server (or --user-data-dir, a WebRTC policy) in args passes LaunchRefused",
        (
            "tests/unit/test_worker_settings.py",
            "tests/e2e/test_worker_browser.py::test_webrtc_sends_no_udp_around_the_profiles_proxy",
        ),
    ),
    Mutant(
        "webrtc-policy-pinned",
        "workers/_launch.py",
        '    if webrtc.get("ip_handling_policy") == WEBRTC_POLICY:\n        return\n',
        "    return\n",
        "WebRTC sends STUN straight from the host, around the profile's proxy",
        ("tests/e2e/test_worker_browser.py::test_webrtc_sends_no_udp_around_the_profiles_proxy",),
    ),
    Mutant(
        "marker-ahead-refused-not-lost",
        "workers/_profile_dir.py",
        "        raise LaunchRefused(_ahead(path, token, lease))\n",
        "        from ledger import LeaseLost\n\n"
        "        raise LeaseLost(lease.lease_id, _ahead(path, token, lease))\n",
        "a marker ahead of the lease's token says LeaseLost, though the lease was not lost",
        (
            "tests/integration/test_profile_marker.py",
            "tests/integration/test_worker_sdk.py::"
            "test_a_directory_marked_by_a_later_lease_refuses_the_launch",
        ),
    ),
    Mutant(
        "screenshot-failure-asks-the-browser",
        "workers/_browser.py",
        "            unanswered = isinstance(failed, PlaywrightError) and not self._answers()\n",
        "            unanswered = isinstance(failed, PlaywrightError)\n",
        "a screenshot stalled by a web font or failed by a crashed tab gets a healthy browser "
        "killed, its cookies lost (rev43)",
        (
            "tests/e2e/test_worker_evidence.py::"
            "test_a_screenshot_stalled_by_a_web_font_closes_the_browser_and_keeps_its_cookies",
            "tests/e2e/test_worker_evidence.py::"
            "test_a_crashed_last_tab_closes_the_browser_and_keeps_its_cookies",
        ),
    ),
    Mutant(
        "hub-stale-beat-made-anew",
        "workers/_hub.py",
        "            self.beat = None  # it may have landed:"
        " before the step, which waited for it\n",
        "            pass\n",
        "a heartbeat resent after a step landed puts the ledger's last step back to an older one",
        ("tests/unit/test_renewal_hub.py",),
    ),
    Mutant(
        "hub-step-waits-for-heartbeat",
        "workers/_hub.py",
        "    return renewal.alone if renewal is not None else contextlib.nullcontext()\n",
        "    return contextlib.nullcontext()\n",
        "a step and an older heartbeat of the hub's are on their way together: either lands last",
        ("tests/unit/test_renewal_hub.py",),
    ),
    Mutant(
        "recorded-url-without-userinfo",
        "workers/_guard.py",
        "    kept = without_nested_passwords(without_userinfo(storable(url)))\n",
        "    kept = without_nested_passwords(storable(url))\n",
        "a password in a page's URL (http://user:pass@host/) is written into the ledger",
        (
            "tests/e2e/test_worker_browser.py::test_credentials_in_a_page_url_are_never_recorded",
            "tests/integration/test_worker_sdk.py"
            "::test_a_url_the_ledger_reads_a_password_in_is_reported_without_it",
        ),
    ),
    Mutant(
        "door-takes-a-password",
        "ledger/_domain/model.py",
        "    found = _AUTHORITY.match(value)\n",
        "    found = None\n",
        "a page URL or a proxy id with its password in it is written into the append-only log",
        ("tests/unit/test_commands.py", "tests/integration/test_command_ids.py"),
    ),
    Mutant(
        "review-wait-state-kept",
        "reports/_reviews.py",
        '            open_[pid]["state"] = state\n',
        "            pass\n",
        "a review wait keeps the state it began in after an operator quarantines the profile",
        ("tests/unit/test_fleet_folds.py",),
    ),
    Mutant(
        "gap-share-last-ttl",
        "projections/_leases.py",
        '    row["worst_gap_share"] = max(row["worst_gap_share"], gap / window)\n',
        '    row["worst_gap_share"] = max(row["worst_gap_share"], gap / row["ttl_seconds"])\n',
        "a heartbeat gap is judged against the lease's TTL as it stands, not the deadline then",
        ("tests/unit/test_fleet_folds.py",),
    ),
    Mutant(
        "silence-share-last-ttl",
        "reports/_health.py",
        '    shares = pd.concat([leases["worst_gap_share"], frame["silent_seconds"] / window], '
        "axis=1)\n",
        '    shares = (worst / leases["ttl_seconds"].astype("float64")).to_frame()\n',
        "health judges the longest gap and the silence against the last TTL set (after extend)",
        ("tests/unit/test_fleet_folds.py", "tests/integration/test_fleet_reports.py"),
    ),
    Mutant(
        "sources-outside-snapshot",
        "reports/_sources.py",
        "                leases=judged(_leases(snapshot, account), at),\n",
        "                leases=judged(_leases(ledger.feed, account), at),\n",
        "the fleet reports read the leases outside the snapshot the availability was read in",
        ("tests/integration/test_report_sources.py",),
    ),
    Mutant(
        "availability-ahead-of-read-models",
        "projections/_availability.py",
        "        if version is not None or row is None:\n",
        "        if row is None:\n",
        "a fleet read keeps availability rows written beside events its read models lack",
        ("tests/integration/test_report_sources.py",),
    ),
    Mutant(
        "timeline-not-cut-at-moment",
        "reports/_sources.py",
        "                events=read_events(snapshot, account, upto=moment),\n",
        "                events=read_events(snapshot, account),\n",
        "a fleet read shows timeline events after the leases read model's checkpoint",
        ("tests/integration/test_report_sources.py",),
    ),
    Mutant(
        "timeline-behind-read-anyway",
        "reports/_sources.py",
        "            if behind and attempt + 1 < ATTEMPTS and ledger.feed.maintains():\n",
        "            if False:\n",
        "a fleet read whose timeline is behind the leases reads them without catching up again",
        ("tests/integration/test_report_sources.py",),
    ),
    Mutant(
        "empty-public-key-as-none",
        "ledger/_audit/digest.py",
        "expected = _public_hex(public_pem) if public_pem is not None else None",
        "expected = _public_hex(public_pem) if public_pem else None",
        "an empty --public-key file counts as no key: verify accepts an unsigned forged digest",
        ("tests/e2e/test_digest_unusable_keys.py",),
    ),
    Mutant(
        "private-key-unsupported-algorithm",
        "ledger/_audit/digest.py",
        "    except (ValueError, TypeError, UnsupportedAlgorithm) as e:\n"
        '        raise InvalidInput("key",',
        '    except (ValueError, TypeError) as e:\n        raise InvalidInput("key",',
        "digest --key with a key on a curve OpenSSL lacks is an internal error, not bad input",
        ("tests/e2e/test_digest_unusable_keys.py",),
    ),
    Mutant(
        "public-key-unsupported-algorithm",
        "ledger/_audit/digest.py",
        "    except (ValueError, TypeError, UnsupportedAlgorithm) as e:\n"
        '        raise InvalidInput("public_key",',
        '    except (ValueError, TypeError) as e:\n        raise InvalidInput("public_key",',
        "verify --public-key with a key on a curve OpenSSL lacks is an internal error",
        ("tests/e2e/test_digest_unusable_keys.py",),
    ),
    Mutant(
        "grant-keeps-what-a-login-holds",
        "ledger/_stores/holdings.py",
        '            raise InvalidInput("login", _holds_more(login, held))',
        "            pass",
        "access grant leaves an existing login its owner membership, CREATEROLE, SUPERUSER...",
        ("tests/e2e/test_grant_exactly_the_role.py",),
    ),
    Mutant(
        "grant-keeps-what-a-group-holds",
        "ledger/_stores/holdings.py",
        '            raise InvalidInput("role", _holds_more(f"the group role {group}", held))',
        "            pass",
        "access grant gives a group role that was made a member of the owner's role",
        ("tests/e2e/test_grant_exactly_the_role.py",),
    ),
    Mutant(
        "grant-keeps-direct-privileges",
        "ledger/_stores/access.py",
        'store.execute("; ".join(holdings.revocations(store, login)))',
        'store.execute("SELECT 1")',
        "access grant leaves an existing login the privileges granted to it on custody's tables",
        ("tests/e2e/test_grant_exactly_the_role.py",),
    ),
    Mutant(
        "grant-keeps-public-privileges",
        "ledger/_stores/access.py",
        'statements = [f"REVOKE ALL ON {table} FROM PUBLIC, {every}"]',
        'statements = [f"REVOKE ALL ON {table} FROM {every}"]',
        "what PUBLIC was given on custody's tables every custody login keeps",
        ("tests/e2e/test_grant_exactly_the_role.py",),
    ),
    Mutant(
        "access-list-hides-more",
        "ledger/_stores/holdings.py",
        "    return {(login, group): by_login[login] + by_group[group] for login, group in found}",
        "    return {(login, group): [] for login, group in found}",
        "access list shows a login as its custody role alone while it holds more",
        ("tests/e2e/test_grant_exactly_the_role.py",),
    ),
    Mutant(
        "leases-fold-once",
        "projections/_leases.py",
        """            if n.event_type != "lease_acquired" and n.version <= row["version"]:\n""",
        "            if False:\n",
        "a leases checkpoint moved back folds every heartbeat after it again",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "leases-edited-row-refused",
        "projections/_leases.py",
        "                if self.table.digest(self.table.params(row)) != digest:\n",
        "                if False:\n",
        "a fold builds on a row edited by hand and launders the edit under a fresh digest",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "leases-disabled-after",
        "projections/_leases.py",
        """    "profile_disabled": "disabled",\n""",
        "",
        "a lease ended by disabling its profile says the profile went to review",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-row-conflict-named",
        "projections/_runner.py",
        "    except RowConflict as error:  # a row written already: its checkpoint was set back\n",
        "    except ZeroDivisionError as error:\n",
        "a timeline checkpoint set back fails every read as an internal error",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-ahead-refused",
        "projections/_runner.py",
        "    if position is not None and position > head:\n",
        "    if False:\n",
        "a checkpoint past the log's head makes the events written up to it vanish from reads",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-position-lost",
        "ledger/feed.py",
        "            if cursor.table_columns(table):  # rows there, their position unknown\n",
        "            if False:\n",
        "a read model's lost checkpoint fails every read, rebuild and init as 'store unavailable'",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-position-lost-status",
        "projections/_runner.py",
        "            elif snapshot.columns(model.table.name):  # its checkpoint lost\n",
        "            elif False:\n",
        "status says a read model whose checkpoint was lost is 'not installed yet', exit 0",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-position-lost-upgrade",
        "projections/_runner.py",
        "            damaged = bool(found)  # a table, its checkpoint lost\n",
        "            damaged = False\n",
        "init leaves a read model whose checkpoint was lost unrepaired",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "leases-row-behind-its-events",
        "projections/_verify.py",
        "        if version < lasts.get(n, 0)\n",
        "        if False\n",
        "status finds nothing wrong with a lease row restored from an older backup",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-junk-row-named",
        "projections/_base.py",
        "        return validate(rows)\n    except ValidationError as error:\n",
        "        return validate(rows)\n    except ZeroDivisionError as error:\n",
        "a junk value in a read model's cell is 'internal error: ValidationError' for its reads",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-model-junk-frame-named",
        "reports/_frames.py",
        "            if read_model is None:\n                raise\n",
        "            raise\n",
        "a junk value in a read model's cell is 'internal error: ValueError' for its reports",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "projections-run-beside-damage",
        "projections/_runner.py",
        "                except ReadModelDamaged:  # the others one by one: an outage there is "
        "one too\n",
        "                except ReadModelDamaged:\n                    raise\n",
        "projections run stops at a damaged read model, and the others stop being kept current",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "timeline-edited-row-not-copied",
        "projections/_timeline.py",
        "        if TIMELINE.digest([row[c] for c in TIMELINE.column_names]) != row[DIGEST]:\n",
        "        if False:\n",
        "a timeline row edited by hand is copied (account, run, worker) into the rows after it",
        ("tests/integration/test_read_model_damage.py",),
    ),
    Mutant(
        "read-only-position-lost-named",
        "projections/_runner.py",
        "        if position is None and feed.columns(model.table.name):  # its checkpoint lost\n",
        "        if False:\n",
        "a read-only store whose checkpoint was lost says the read model was never installed",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "metrics-scrapes-read-each",
        "service/_metrics.py",
        "            if self._ended >= wanted:  # a read that started after this call came\n",
        "            if False:\n",
        "scrapes that arrive together each read the fleet, holding a reader thread each",
        ("tests/unit/test_service_metrics.py",),
    ),
    Mutant(
        "metrics-scrape-shares-older-read",
        "service/_metrics.py",
        "        wanted = self._started + 1  # the first read to start after this call\n",
        "        wanted = self._started + (self._started == self._ended)\n",
        "a scrape that arrives while a read runs gets that read, which may predate a write it saw",
        ("tests/unit/test_service_metrics.py",),
    ),
    Mutant(
        "allow-names-one-route",
        "service/_errors.py",
        '            headers["Allow"] = ", ".join(sorted(said | set(allowed(request))))\n',
        "            pass\n",
        "a 405 on a path of two routes names the methods of the first alone",
        ("tests/integration/test_service_strangers.py",),
    ),
    Mutant(
        "full-sqlite-disk-unnamed",
        "ledger/_stores/connections.py",
        "        msg += free_space(settings.sqlite_opened())\n",
        "        pass\n",
        "a SQLite store on a full disk says only 'disk I/O error', naming no room left",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "enable-to-any-state",
        "ledger/_domain/state.py",
        "    if e.state is not p.disabled.previous_state:\n",
        "    if False:\n",
        "an operator's login enables a quarantined, disabled profile straight to the pool",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "disable-from-any-state",
        "ledger/_domain/state.py",
        "        if e.previous_state is not p.state\n",
        "        if False\n",
        "a disable recorded from a state the profile was not in, which the next enable returns to",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "disable-keeps-the-lease",
        "ledger/_domain/state.py",
        "        if p.lease is not None\n",
        "        if False\n",
        "a disable that leaves the lease live: the holder's release undoes it",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "acquired-lease-any-status",
        "ledger/_domain/state.py",
        "        if lease.lease_status is not LeaseStatus.ACTIVE\n",
        "        if False\n",
        "a lease acquired already stale or ended is believed",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "acquired-lease-any-id",
        "ledger/_domain/state.py",
        "        if lease.lease_id != lease_id_for(p.profile_id, token)\n",
        "        if False\n",
        "a lease acquired under an id that names another profile or token is believed",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "interrupts-ignored-by-a-function",
        "custody/__init__.py",
        "            signal.signal(signal.SIGINT, signal.SIG_IGN)\n",
        "            signal.signal(signal.SIGINT, lambda *_: None)\n",
        "a Ctrl-C as the interpreter exits kills a command that answered (its handler reset)",
        ("tests/e2e/test_cli_hostile.py",),
    ),
    Mutant(
        "interrupted-answer-exits-0",
        "custody/cli.py",
        "        return _outcome(result)  # a rebuild that left rows as they were still exits 1\n",
        "        return 0\n",
        "a Ctrl-C while a rebuild's answer is written turns its exit 1 into 0",
        ("tests/e2e/test_cli_hostile.py",),
    ),
    Mutant(
        "sigterm-at-checkout-runs-the-block",
        "workers/_leases.py",
        "                held.stop_if_terminated()  # SIGTERM came during the checkout\n",
        "",
        "a SIGTERM that came while the checkout was decided lets the block run",
        ("tests/integration/test_sdk_sigterm.py",),
    ),
    Mutant(
        "sigterm-at-denial-lost",
        "workers/_leases.py",
        "                    if signalled.must_stop and signalled.signal is not None:\n",
        "                    if False:\n",
        "a SIGTERM that came while a denied checkout was decided is forgotten",
        ("tests/integration/test_sdk_sigterm.py",),
    ),
    Mutant(
        "kill-any-browser-on-the-directory",
        "workers/_launch.py",
        "    if check.pid != launched:  # another lease's browser, or one never known here\n",
        "    if False:\n",
        "a worker waking after its lease was lost kills whatever browser runs on the directory",
        ("tests/e2e/test_worker_zombie.py",),
    ),
    Mutant(
        "reason-keeps-url-passwords",
        "workers/_reasons.py",
        "        said = without_passwords(first_line(str(error)))\n",
        "        said = first_line(str(error))\n",
        "a failure's reason keeps the password of a URL the exception names",
        ("tests/integration/test_worker_reasons.py",),
    ),
    Mutant(
        "direct-profile-through-the-environments-proxy",
        "workers/_settings.py",
        '            arguments["args"] = [*arguments.get("args", ()), DIRECT_SWITCH]\n',
        "            pass\n",
        "a direct profile's browser goes through whatever proxy its environment names",
    ),
    Mutant(
        "prompt-patterns-compiled-only-after-the-checkout",
        "workers/_settings.py",
        "            re.compile(pattern, re.IGNORECASE)\n",
        "            pass\n",
        "a prompt pattern that is not a regular expression is found only once a lease was granted",
    ),
    Mutant(
        "shown-leaves-marks-unescaped",
        "ledger/_domain/model.py",
        "        astray = mark and (not before or ",
        "        astray = False and (not before or ",
        "a decomposed text, or a mark on an escape, reads as another text",
    ),
    Mutant(
        "normal-forms-not-told-apart",
        "ledger/_domain/model.py",
        '    if a == b or unicodedata.normalize("NFC", a) != unicodedata.normalize("NFC", b):\n',
        "    if True:\n",
        "a refusal names two texts in two Unicode forms without saying how they differ",
        ("tests/integration/test_normal_forms.py",),
    ),
    Mutant(
        "lone-surrogate-in-pydantics-words",
        "service/_errors.py",
        '        if first.get("type") == "string_unicode":  # the ledger\'s words\n',
        "        if False:\n",
        "a lone surrogate sent over HTTP is refused as raw data that is not a string",
        ("tests/integration/test_service_input.py",),
    ),
    Mutant(
        "evidence-unwritable-raises",
        "workers/_evidence.py",
        "            return replace(self, evidence_problem=also(self.evidence_problem, said))\n",
        "            raise\n",
        "an evidence directory that cannot be written leaves the lease unreleased",
        ("tests/integration/test_worker_sdk.py",),
    ),
    Mutant(
        "visited-takes-an-empty-url",
        "workers/_held.py",
        "        if not isinstance(url, str) or not url.strip():\n",
        "        if not isinstance(url, str):\n",
        "lease.visited takes an empty URL, which every later heartbeat is refused for",
        ("tests/integration/test_worker_sdk.py",),
    ),
    Mutant(
        "userinfo-only-after-slashes",
        "ledger/_domain/model.py",
        'r"([A-Za-z][A-Za-z0-9+.-]*):[\\\\/]*([^/\\\\?#]*)@")',
        'r"([A-Za-z][A-Za-z0-9+.-]*):[\\\\/]{2,}([^/\\\\?#]*)@")',
        "https:user:pw@host keeps its password in what the SDK records, and heartbeats are refused",
        ("tests/integration/test_worker_sdk.py",),
    ),
    Mutant(
        "last-unbounded-above",
        "projections/_base.py",
        "        if not whole or not self.low <= value <= self.high:\n",
        "        if not whole or not self.low <= value:\n",
        "the API takes a count the command line bounds (an OverflowError from SQLite)",
        ("tests/integration/test_read_models.py::test_leases_say_how_each_lease_ended",),
    ),
    Mutant(
        "status-takes-any-state",
        "projections/_availability.py",
        "    state = _state(state)\n",
        "    pass\n",
        "projections.status answers [] for a state that does not exist",
        ("tests/integration/test_read_models.py::test_leases_say_how_each_lease_ended",),
    ),
    Mutant(
        "replay-events-unbounded",
        "reports/_replay.py",
        "    EVENTS_AROUND.checked(events)\n",
        "    pass\n",
        "reports.replay takes a negative number of events around",
        ("tests/integration/test_read_models.py::test_leases_say_how_each_lease_ended",),
    ),
    Mutant(
        "health-last-unbounded",
        "reports/_health.py",
        "    LEASES_JUDGED.checked(last)\n",
        "    pass\n",
        "reports.health judges a window the command line refuses",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "health-failing-at-unreachable",
        "reports/_health.py",
        "    reachable(last, failing_at)\n",
        "    pass\n",
        "reports.health takes a failing threshold no window can reach",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "error-page-is-the-final-url",
        "workers/_guard.py",
        "        if url is not None and url.startswith(ERROR_PAGE):\n",
        "        if False:\n",
        "a navigation that failed makes Chromium's error page the final URL",
        ("tests/e2e/test_worker_browser.py",),
    ),
    Mutant(
        "junk-stream-folded",
        "ledger/_stores/sql.py",
        "if type(v) is int and _STREAM_HEX.fullmatch(s)",
        "if type(v) is int",
        "verify folds a row under no stream id and crashes (internal error) instead of naming it",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "origin-cell-trusted",
        "ledger/_stores/sql.py",
        "if type(version) is int and type(position) is int and isinstance(head, str):",
        "if True:",
        "a chain-origin row custody never writes crashes verify, or 2.5 reads as 2",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "null-topic-sliced",
        "ledger/_stores/mapper.py",
        "shown = topic[:40] if isinstance(topic, str) else topic",
        "shown = topic[:40]",
        "an event with no type is an internal error in why, checkout and rebuild",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "junk-row-unowned",
        "ledger/_audit/walk.py",
        "owner = self._owner(stream_id)  # a load of that profile meets it",
        "owner = None",
        "verify names a junk row of a walked profile without its profile and version",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "tokens-squatted-issued",
        "ledger/_stores/tokens.py",
        'refuse_squatted(store, events, "no token was issued")',
        "pass",
        "access token issues into a tokens table a worker's login made and owns",
        ("tests/e2e/test_tokens_table_owned.py",),
    ),
    Mutant(
        "init-keeps-squatted",
        "ledger/_stores/migrations.py",
        "if self._pg:  # before a grant on it fails, or the version says the store is whole",
        "if False:",
        "init takes a custody table another login owns as the store's",
        ("tests/e2e/test_tokens_table_owned.py",),
    ),
    Mutant(
        "tokens-table-lazy",
        "ledger/_stores/migrations.py",
        "        TOKENS_DDL,",
        "",
        "init leaves the tokens table for the first login that makes it",
        ("tests/e2e/test_tokens_table_owned.py",),
    ),
    Mutant(
        "grant-ignores-owned-objects",
        "ledger/_stores/holdings.py",
        "return held + owned_objects(store, role, events)",
        "return held",
        "access grant says nothing of the objects a login owns in the store's schema",
        ("tests/e2e/test_tokens_table_owned.py",),
    ),
    Mutant(
        "holder-trusts-squatted",
        "ledger/_stores/tokens.py",
        "params += (TOKENS_TABLE, events)",
        'owned = ""',
        "the lease service trusts a token in a tokens table a worker's login made",
        ("tests/e2e/test_tokens_table_owned.py",),
    ),
    Mutant(
        "previous-signature-unchecked",
        "ledger/audit.py",
        "signed = signature_problem(before, public_pem(key)) if before is not None else None",
        "signed = None",
        "digest --key signs on from a previous digest that key did not sign",
        ("tests/integration/test_digest_previous_signed.py",),
    ),
    Mutant(
        "replace-at-a-position",
        "ledger/_stores/access.py",
        'f"OR (NEW.rowid > 0 AND EXISTS (SELECT 1 FROM {events} WHERE rowid = NEW.rowid)) "',
        '"OR 0 "',
        "INSERT OR REPLACE at a stored event's position rewrites it in place on SQLite",
        ("tests/integration/test_append_only.py",),
    ),
    Mutant(
        "replace-same-version",
        "ledger/_stores/access.py",
        '"AND originator_version = NEW.originator_version) "',
        '"AND 0) "',
        "INSERT OR REPLACE of a stored version at a new position rewrites it on SQLite",
        ("tests/integration/test_append_only.py",),
    ),
    Mutant(
        "other-store-unsaid",
        "ledger/audit.py",
        "if found and _place(recorded.store) != _place(here):  # a restored copy too: said",
        "if False:",
        "a digest of another store is reported as this store's tampering",
        ("tests/integration/test_digest_of_another_store.py",),
    ),
    Mutant(
        "store-login-compared",
        "ledger/audit.py",
        'else re.sub(r"^(postgresql://)[^@/]*@", r"\\1", described)',
        "else described",
        "the owner's digest checked under another login is called another store's",
        ("tests/integration/test_digest_of_another_store.py",),
    ),
    Mutant(
        "sqlite-store-compared-as-typed",
        "ledger/audit.py",
        "return _SQLITE + os.path.realpath(described[len(_SQLITE) :])",
        "return described",
        "the same SQLite file named otherwise is another store, another's custody.db this (rev29)",
        ("tests/integration/test_digest_of_another_store.py",),
    ),
    Mutant(
        "directory-update-allowed",
        "ledger/_stores/access.py",
        'f"CREATE OR REPLACE TRIGGER {directories}_kept BEFORE UPDATE OR DELETE "',
        'f"CREATE OR REPLACE TRIGGER {directories}_kept BEFORE DELETE "',
        "an operator's login moves a profile's recorded directory, freeing it for another",
        ("tests/e2e/test_directories_kept.py",),
    ),
    Mutant(
        "overlap-unwalked",
        "ledger/_audit/walk.py",
        "        state.registered(row, raw, profile_id)",
        "        pass",
        "verify passes two profiles registered on one directory",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "legacy-overlap-named",
        "ledger/_audit/walk.py",
        "            if found is not None and position > legacy:",
        "            if found is not None:",
        "verify names the shared directories a store older than the rule legitimately holds",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "why-step-unquoted",
        "ledger/_domain/model.py",
        "    if value == NOTHING or any(c.isspace() or c in '\";,' for c in value):\n",
        "    if value == NOTHING:\n",
        "a step holding '; last URL: ' reads in why's line as a URL before the real one",
        ("tests/e2e/test_cli_hostile.py",),
    ),
    Mutant(
        "braille-blank-shown",
        "ledger/_domain/model.py",
        '    "\\u202a-\\u202e\\u2060-\\u206f\\u2800\\u3164',
        '    "\\u202a-\\u202e\\u2060-\\u206f\\u3164',
        "an account with U+2800 in place of a space displays as the one with the space",
        ("tests/unit/test_shown_text.py",),
    ),
    Mutant(
        "queue-hides-overdue",
        "service/_console_reads.py",
        "    rows = [r for r in status(ledger) if r.state in WAITING or r.overdue]\n",
        "    rows = [r for r in status(ledger) if r.state in WAITING]\n",
        "the console's queue is empty while a lease past its deadline waits for a sweep",
        ("tests/integration/test_console_queue.py",),
    ),
    Mutant(
        "screenshot-recorded-as-typed",
        "custody/_commands.py",
        "    where = typed(os.path.abspath(screenshot))\n",
        "    where = typed(screenshot)\n",
        "a screenshot named relative to the shell's directory is recorded so, naming no file later",
        ("tests/e2e/test_cli_evidence.py",),
    ),
    Mutant(
        "evidence-dir-by-token-alone",
        "workers/_evidence.py",
        '    return evidence_dir / lease.profile_id / f"lease-{lease.fencing_token}-{started}"\n',
        '    return evidence_dir / lease.profile_id / f"lease-{lease.fencing_token}"\n',
        "two stores on one host write their leases' evidence over each other's",
        ("tests/integration/test_worker_reasons.py",),
    ),
    Mutant(
        "owners-command-refused-raw",
        "custody/_wiring.py",
        '                if ledger is None or not getattr(e, "by_database", False):\n',
        "                if True:\n",
        "an owner's command under a role's login answers PostgreSQL's raw permission error",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "verify-unsigned-in-silence",
        "custody/_audit_commands.py",
        "    if digests and key is None and found.holds:  # what it holds without: said\n",
        "    if False:\n",
        "verify against an unsigned digest, or without --public-key, says nothing of signatures",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "queue-shows-lease-start",
        "projections/_availability.py",
        "        since = r.until if overdue else r.since\n",
        "        since = r.since\n",
        "an overdue lease in the queue, status and fleet shows it waiting since the lease began, "
        "not its deadline (rev37: status alone did)",
        (
            "tests/integration/test_console_queue.py",
            "tests/integration/test_explain_because.py::"
            "test_every_read_says_a_lease_past_its_deadline_is_stale_since_the_deadline",
        ),
    ),
    Mutant(
        "make-room-with-room",
        "ledger/_stores/connections.py",
        "    if free < FULL_BELOW:\n",
        "    if True:\n",
        "a disk I/O error with gigabytes free tells to make room",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "revoke-of-any-lease",
        "ledger/_domain/state.py",
        "    p._held(e, status=held)\n",
        "    pass\n",
        "an operator's login revokes a lease no profile holds, and the fold believes it",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "anything-after-a-revoke-alone",
        "ledger/_domain/state.py",
        "        if revoked is not None and not isinstance(\n",
        "        if False and not isinstance(\n",
        "after a revoke appended alone, an honest disable then enable makes it leased, no lease",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "revoke-alone-unnamed",
        "ledger/_audit/snapshots.py",
        "        if revoked is not None:\n",
        "        if False:\n",
        "verify says every chain holds over a revoke appended with nothing after it",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "deadline-any-distance",
        "ledger/_domain/state.py",
        "    if expires_at > at + timedelta(seconds=ttl_seconds):\n",
        "    if False:\n",
        "a worker's login acquires a lease with a deadline in the year 9999",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "hard-limit-optional",
        "ledger/_domain/state.py",
        "    if lease.hard_limit_at is None or lease.hard_limit_at > latest:\n",
        "    if False:\n",
        "a lease acquired without its profile's --max-lease hard limit is believed",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "heartbeat-deadline-any",
        "ledger/_domain/state.py",
        "    wrong = _beyond(lease, e.at, lease.ttl_seconds, e.expires_at)\n",
        "    wrong = None\n",
        "a heartbeat's deadline past its TTL is believed",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "extension-deadline-any",
        "ledger/_domain/state.py",
        "    wrong = _beyond(lease, e.at, e.ttl_seconds, e.expires_at)\n",
        "    wrong = None\n",
        "an extension to the year 9999 is believed",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "worker-event-after-deadline",
        "ledger/_domain/state.py",
        "    if e.at > lease.expires_at:\n",
        "    if False:\n",
        "a worker's login renews its lease by hand after the deadline, out of the sweep's sight",
        ("tests/unit/test_never_decided.py",),
    ),
    Mutant(
        "screenshot-deep-recorded-absolute",
        "custody/_commands.py",
        "    if len(where) <= MAX_NAME:\n",
        "    if True:\n",
        "a CLI release from a deep directory records a path too long and is refused (rev28)",
        ("tests/e2e/test_cli_evidence.py",),
    ),
    Mutant(
        "screenshot-long-relative-not-refused",
        "custody/_commands.py",
        "    if len(here) <= MAX_NAME:\n",
        "    if True:\n",
        "a screenshot path too long even from here is not named in one line (rev28)",
        ("tests/e2e/test_cli_evidence.py",),
    ),
    Mutant(
        "disabled-from-a-block-says-enable-alone",
        "ledger/_domain/denials.py",
        "    if was is not ProfileState.AVAILABLE:\n",
        "    if False:\n",
        "a profile disabled from review is told enable alone, and meets the block (rev28)",
        ("tests/unit/test_fencing_and_audit.py",),
    ),
    Mutant(
        "mismatch-hides-the-block",
        "ledger/_domain/denials.py",
        '    return denial.model_copy(update={"remediation": denial.remediation + also})\n',
        "    return denial\n",
        "a wrong-proxy checkout of a blocked profile is not told the block (rev28)",
        ("tests/unit/test_fencing_and_audit.py",),
    ),
    Mutant(
        "standing-hides-the-block",
        "ledger/_application.py",
        "        return None if denial is None else also_blocked(profile, denial, now)\n",
        "        return denial\n",
        "routing's standing of a blocked profile differs from checkout's denial (rev28)",
        ("tests/integration/test_routing.py",),
    ),
    Mutant(
        "operator-records-stale-marks",
        "ledger/_domain/authority.py",
        "# a force-release's review\n",
        "# a force-release's review\n            ev.LeaseMarkedStale,\n",
        "an operator's login may record a stale mark the sweep alone decides (rev28)",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "operator-marks-stale",
        "ledger/_domain/leasing.py",
        'checked ``is_overdue``)."""\n        require(ctx, Role.SCHEDULER)\n',
        'checked ``is_overdue``)."""\n        require(ctx, Role.SCHEDULER, Role.OPERATOR)\n',
        "an operator marks a lease stale, which the roles give the scheduler alone (rev28)",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "why-says-leased-stale",
        "custody/_render.py",
        '        reason = " (overdue; reason stale)"\n',
        '        reason = " (stale)"\n',
        "why names an overdue lease leased (stale), status leased (overdue) (rev28)",
        ("tests/integration/test_explain_because.py",),
    ),
    Mutant(
        "never-issued-said-held",
        "ledger/_domain/leasing.py",
        "elif not self._issued(lease_id):",
        "elif False:",
        "a never-issued lease id is told the profile is now held under another (rev28)",
        ("tests/unit/test_fencing_and_audit.py",),
    ),
    Mutant(
        "replay-around-reads-no-unfolded-events",
        "projections/_around.py",
        "    unfolded = _unfolded(ledger, profile_id, checkpoint)",
        "    unfolded: list[dict[str, Any]] = []",
        "replay on a lagging timeline lists no events after T (rev28)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "resumed-wait-loses-its-cause",
        "reports/_reviews.py",
        '        "cause": resumed["cause"] if resumed else _text(row["cause"]),',
        '        "cause": _text(row["cause"]),',
        "a review wait resumed by enable has no cause (rev28)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "quarantine-evidence-says-after-none",
        "reports/_checks.py",
        'if pd.notna(r["lease_id"]) else "")',
        'if True else "")',
        "the checklist says an operator's quarantine came after None (rev28)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "status-counts-leases-behind-the-position",
        "projections/_verify.py",
        "    return bool(rows.beyond) and not model.one_row_per_event",
        "    return False",
        "a leases position set back reads as missing rows (rev28)",
        ("tests/integration/test_read_model_checks.py",),
    ),
    Mutant(
        "html-floats-to-two-places",
        "reports/_html.py",
        '    return f"{value:,.3f}".rstrip("0").rstrip(".")',
        '    return f"{value:,.2f}"',
        "the HTML report shows a missed deadline's 1.001 as 1.00 (rev28)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "chart-labels-cut-at-40",
        "reports/_chart.py",
        '    cut = [p if len(p) <= LABEL else f"{p[: LABEL - 16]}…{p[-15:]}" for p in profiles]',
        "    cut = [p[:LABEL] for p in profiles]",
        "two long profile ids get one label in the chart (rev28)",
        ("tests/unit/test_fleet_folds.py",),
    ),
    Mutant(
        "lag-note-said-per-read",
        "projections/_runner.py",
        "    if said is not None and str(behind) in said:",
        "    if False:",
        "a lag note is said once per blocked profile (rev28)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "health-csv-columns-of-tables-with-rows",
        "custody/_fleet_output.py",
        "for f in tables.values() for c in f.columns",
        "for f in tables.values() if not f.empty for c in f.columns",
        "health's CSV columns change on a quiet day (rev28)",
        ("tests/e2e/test_cli_fleet.py",),
    ),
    Mutant(
        "sweep-joins-the-batch",
        "ledger/_handlers.py",
        "    uow.alone()",
        "    pass",
        "a sweep in a group commit records its id before the batch keeps its writes (rev28)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "resend-refused-by-its-first-copy",
        "ledger/_unit_of_work.py",
        "            if resent := self._resent(given, fingerprint, profile_id, decision):",
        "            if False:",
        "a command sent twice at once is refused by its own first copy (rev28)",
        ("tests/integration/test_concurrent_resends.py",),
    ),
    Mutant(
        "sweep-copy-not-looked-up-again",
        "ledger/_handlers.py",
        "        # A copy of it that held the lock before this one may have swept and answered "
        "since.\n        first = _swept(uow, c)\n",
        "        first = None\n",
        "two sweeps with one id sent at once both sweep (rev28)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "sweep-copies-unlocked",
        "ledger/_handlers.py",
        "    with _only_copy(uow, c.command_id):",
        "    with ExitStack():",
        "two sweeps with one id sent at once both sweep, unlocked (rev28)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "command-time-not-raised-to-last-event",
        "ledger/_unit_of_work.py",
        "            now = last\n",
        "            pass\n",
        "a command acts earlier than its profile's last event (rev28)",
        ("tests/integration/test_event_times_in_order.py",),
    ),
    Mutant(
        "fold-forgets-last-event-time",
        "ledger/_domain/state.py",
        "        self.last_at = event.at",
        "        pass",
        "the fold forgets the last event's time a command must not act before (rev28)",
        ("tests/integration/test_event_times_in_order.py",),
    ),
    Mutant(
        "listed-run-reviews-its-quarantine",
        "ledger/_domain/profile.py",
        "            if ran in listed\n",
        "            if False\n",
        "the worker of an earlier run a repeated-unclean quarantine lists clears it (rev28)",
        ("tests/unit/test_rules.py",),
    ),
    Mutant(
        "command-time-raised-past-a-clock-step",
        "ledger/_unit_of_work.py",
        "now < last <= now + RAISED_AT_MOST:",
        "now < last:",
        "a clock set back an hour stretches every deadline decided on it by the hour (rev28)",
        ("tests/integration/test_event_times_in_order.py",),
    ),
    Mutant(
        "unknown-letters-say-nothing",
        "ledger/_domain/model.py",
        "unicodedata.category(c) not in _BLANK_CATEGORIES and",
        "c.isprintable() and",
        "an emoji newer than this Python's Unicode, or a private-use letter, reads as empty",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "hint-cut-with-the-denial",
        "custody/_render.py",
        'return f"{one_line(str(error))} -- to unblock: {one_line(error.remediation, MAX_HINT)}"',
        'return one_line(f"{error} -- to unblock: {error.remediation}")',
        "a long quoted reason cuts the steps that unblock out of a denial's line (rev28)",
        ("tests/e2e/test_cli_hostile.py",),
    ),
    Mutant(
        "sdk-reason-saying-nothing-taken",
        "workers/_held.py",
        "if not says_something(reason) or len(reason) > MAX_REASON:",
        "if not reason.strip() or len(reason) > MAX_REASON:",
        "a zero-width space as an expected failure's reason costs the lease at release (rev29)",
        ("tests/integration/test_worker_reasons.py",),
    ),
    Mutant(
        "deleted-tail-passes-verify",
        "ledger/audit.py",
        "        if row.version > have:\n",
        "        if False:\n",
        "a profile's newest events deleted pass verify without a digest (rev29)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "rebuild-erases-the-deleted-tail",
        "custody/_render.py",
        'if any(" ahead of the " in p for s in damaged for p in s.problems):',
        "if False:",
        "projections status sends the user to rebuild away the trace of deleted events (rev29)",
        ("tests/e2e/test_cli_availability_damage.py",),
    ),
    Mutant(
        "store-url-at-after-authority",
        "ledger/_stores/settings.py",
        'if parts.netloc and ("@" in after_at or in_options):',
        "if parts.netloc and in_options:",
        "a password holding a raw '/' is echoed in the refusal (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "store-url-options-before-at",
        "ledger/_stores/settings.py",
        'if "?" in userinfo:',
        "if False:",
        "a password holding a raw '?' shows its halves in the refusal (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "store-url-unsafe-user",
        "ledger/_stores/settings.py",
        '        who = "***@"',
        "        who = who",
        "a user part that may hold a password is shown (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "store-url-port-quoted",
        "ledger/_stores/settings.py",
        'where = f" in {shown}" if "@" in parts.netloc else',
        'where = f" in {shown}" if True else',
        "a 'malformed port' line quotes a password in the port's place (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "store-settings-password-repr",
        "ledger/_stores/settings.py",
        'password: str = Field(default="", repr=False)',
        'password: str = Field(default="")',
        "a store's settings show its password in a repr or a traceback (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "sqlite-url-one-slash",
        "ledger/_stores/settings.py",
        '            if not url.lstrip().partition(":")[2].startswith("//"):',
        "            if False:",
        "sqlite:/abs/path.db is quietly a relative path (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "sqlite-unreachable-directory",
        "ledger/_stores/sql.py",
        "        _refuse_unreachable(settings)",
        "        pass",
        "a store behind a directory this user may not enter is an internal error (rev29)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "sqlite-symlink-target-directory",
        "ledger/_stores/sql.py",
        "settings.sqlite_real().parent.is_dir()",
        "settings.sqlite_file().parent.is_dir()",
        "a dangling symlink store is called read-only (rev29)",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "pool-timeout-reason",
        "ledger/_stores/postgres.py",
        'raise PoolTimeout(f"{e}; the last connection attempt failed: {reason}") from e',
        "raise",
        "a pool that cannot connect loses the server's reason (rev29)",
        ("tests/integration/test_pool_failures.py",),
    ),
    Mutant(
        "pool-connect-failure-kept",
        "ledger/_stores/postgres.py",
        "            failed[:] = [e]",
        "            pass",
        "a pool's failed connection attempt is forgotten (rev29)",
        ("tests/integration/test_pool_failures.py",),
    ),
    Mutant(
        "statement-timeout-named",
        "ledger/_stores/connections.py",
        "    elif _STATEMENT_TIMEOUT in first.lower():",
        "    elif False:",
        "a login's statement_timeout reads as a lock wait (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "statement-timeout-not-busy",
        "ledger/_stores/connections.py",
        '_BUSY = ("database is locked", "lock timeout")',
        '_BUSY = ("database is locked", "lock timeout", "statement timeout")',
        "a statement timeout is told to retry as busy (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "pipe-forced-terminal",
        "custody/_text.py",
        "        return bool(isatty and isatty())",
        "        return colour_asked() or bool(isatty and isatty())",
        "FORCE_COLOR makes a pipe a terminal: CSV escaped, ids wrapped (rev29)",
        ("tests/e2e/test_cli_csv_terminal.py",),
    ),
    Mutant(
        "pipe-colour-lost",
        "custody/_tables.py",
        "    if colour_asked():  # FORCE_COLOR in a pipe",
        "    if False:  # FORCE_COLOR in a pipe",
        "FORCE_COLOR no longer colours a pipe's table lines (rev29)",
        ("tests/e2e/test_cli_output.py",),
    ),
    Mutant(
        "fleet-live-in-pipe",
        "custody/_fleet/display.py",
        "if for_a_person(out) and self._console.is_terminal:",
        "if self._console.is_terminal:",
        "FORCE_COLOR draws the fleet's live table into a pipe (rev29)",
        ("tests/e2e/test_cli_output.py",),
    ),
    Mutant(
        "read-only-by-access-alone",
        "custody/_whole.py",
        "(not found.st_mode & WRITE_BITS or not os.access(path, os.W_OK))",
        "not os.access(path, os.W_OK)",
        "root replaces a file its owner made read-only (rev29)",
        ("tests/e2e/test_cli_export.py",),
    ),
    Mutant(
        "export-read-only-unchecked",
        "custody/_export.py",
        '    refuse_read_only("output", output)',
        "    pass",
        "an export's --output replaces a read-only file (rev29)",
        ("tests/e2e/test_cli_export.py",),
    ),
    Mutant(
        "shm-left-by-another-reader",
        "ledger/_stores/settings.py",
        "            return self._shm_left_behind(path)",
        "            return None",
        "another user's read leaves a -shm that blocks the owner's writes (rev29)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "frozen-needs-its-directory",
        "ledger/_stores/settings.py",
        "    return not path.stat().st_mode & 0o222",
        "    return not path.stat().st_mode & 0o222 and not path.parent.stat().st_mode & 0o222",
        "a read-only file in a writable directory gets -shm of its mode, blocking writes (rev29)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "keygen-half-left",
        "custody/_audit_commands.py",
        "key_file.unlink(missing_ok=True)",
        "pass",
        "a private key left without its public half makes every retry refused (rev29)",
        ("tests/integration/test_audit_inputs.py",),
    ),
    Mutant(
        "unreadable-store-file-unnamed",
        "ledger/_stores/sql.py",
        "if stat.S_ISREG(found.st_mode) and not os.access(settings.sqlite_opened(), os.R_OK):",
        "if False:",
        "a store file this user may not read says only 'unable to open database file' (rev29)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "wal-copy-without-shm-unnamed",
        "ledger/_stores/settings.py",
        "if frozen and wal.exists() and not shm.exists() and _in_wal_mode(path):",
        "if False:",
        "a read-only copy with its -wal and no -shm says only 'unable to open' (rev29)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "damaged-store-bad-input",
        "ledger/_stores/sql.py",
        'if "malformed" in str(e):  # an SQLite file, damaged',
        "if False:  # an SQLite file, damaged",
        "a store cut short is 'not an SQLite database', exit 2, a damaged page exit 6 (rev29)",
        ("tests/integration/test_stores.py",),
    ),
    Mutant(
        "rebuild-cleans-what-it-never-made",
        "projections/_runner.py",
        "        _fresh_shadow(feed, model, shadow)\n        try:\n",
        "        try:\n            _fresh_shadow(feed, model, shadow)\n",
        "a rebuild behind a held lock waits twice the timeout and says once (rev29)",
        ("tests/integration/test_bounded_waits.py",),
    ),
    Mutant(
        "stop-refusal-says-sweep-for-a-live-lease",
        "ledger/_domain/browser.py",
        "    if overdue or lease.lease_status is not LeaseStatus.ACTIVE:",
        "    if True:",
        "an orphan's stop under a live lease is told 'custody sweep', which does nothing (rev29)",
        ("tests/unit/test_browser_rules.py",),
    ),
    Mutant(
        "console-note-cut-by-utf16",
        "service/templates/profile.html",
        'maxlength="400"',
        'maxlength="200"',
        "a note of 150 emoji the ledger takes is cut to 100 by the browser (rev29)",
        ("tests/integration/test_review_console.py",),
    ),
    Mutant(
        "libpq-string-quoted",
        "ledger/_stores/settings.py",
        'if "=" in url and not _SCHEME.match(url):',
        "if False:",
        "a libpq key=value store string is quoted whole, its password with it (rev29)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "owner-createrole-unsaid",
        "custody/_wiring.py",
        'if "create role" in str(e)',
        "if False",
        "an owner without CREATEROLE is told, in effect, never to grant it (rev29)",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "rebuild-not-the-owners",
        "custody/_profiles.py",
        '@owners_only("rebuild")  # rev29',
        "# owners_only gone  # rev29",
        "rebuild under a role's login is refused in a trigger's words alone (rev29)",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "revoked-login-unexplained",
        "ledger/_stores/connections.py",
        "            if _names(said, _NO_ROLE):  # every custody role reads it: this login holds "
        "none\n",
        "            if False:\n",
        "a login whose custody role was revoked is refused in the database's words alone (rev29)",
        ("tests/e2e/test_cli_access.py",),
    ),
    Mutant(
        "clock-step-back-held",
        "ledger/_stores/clock.py",
        "if self._last - HELD_AT_MOST_S <= given < self._last:",
        "if given < self._last:",
        "a process that measured before the server's clock stepped back keeps its old time (rev30)",
        ("tests/unit/test_store_clock.py",),
    ),
    Mutant(
        "beside-relative-path",
        "ledger/_stores/sql.py",
        'update={"path": str(settings.sqlite_real())}',
        'update={"path": settings.path, "directory": ""}',
        "verify's child checks another directory's file of the same relative name (rev30)",
        ("tests/integration/test_verify_beside.py",),
    ),
    Mutant(
        "snapshot-failure-fails-command",
        "ledger/_stores/store.py",
        "with contextlib.suppress(StoreUnavailable, Forbidden), store_errors(self.settings):",
        "with store_errors(self.settings):",
        "a committed command is reported as failed when its snapshot cannot be taken (rev30)",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "url-read-not-as-a-browser",
        "ledger/_domain/model.py",
        "    return url.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE)",
        "    return url",
        "a password behind a tab, a line break or a control at the URL's start is stored (rev30)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "password-with-at-tail-kept",
        "ledger/_domain/model.py",
        'text.rfind("@", *m.span())',
        'text.find("@", *m.span())',
        "a failure reason keeps the tail of a password holding an '@' (rev30)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "hard-limit-blamed-on-worker",
        "ledger/_domain/policies.py",
        "    if lease.ended_by_hard_limit():",
        "    if False:",
        "a lease swept at its hard limit is recorded as a worker gone silent (rev30)",
        ("tests/integration/test_hard_limit.py",),
    ),
    Mutant(
        "hard-limit-silence-counted",
        "reports/_health.py",
        'limited = leases["cause"].eq("hard_limit_reached").fillna(False).astype(bool)',
        'limited = leases["cause"].eq("never").fillna(False).astype(bool)',
        "the health report counts the time past a hard limit as the worker's silence (rev30)",
        ("tests/integration/test_hard_limit.py",),
    ),
    Mutant(
        "older-snapshot-trusted",
        "ledger/_stores/mapper.py",
        "if isinstance(data, dict) and not all(k in data for k in _CARRIED_SINCE_SCHEMA_15):",
        "if False:",
        "a load starts from a snapshot that lacks fields the fold keeps, and forgets them (rev30)",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "older-snapshot-named-unreadable",
        "ledger/_audit/snapshots.py",
        "        except OlderSnapshot as e:  # passed over by every load",
        "        except ZeroDivisionError as e:  # passed over by every load",
        "verify calls a snapshot of an older form unreadable, not what it is (rev30)",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "older-snapshot-ends-the-read",
        "ledger/_stores/store.py",
        "            if not (passed and limit):  # all asked for given",
        "            if True:  # all asked for given",
        "a load whose latest snapshot is of an older form folds every event, not from the one "
        "before it (rev30)",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "usage-as-of-reads-now",
        "projections/_usage_as_of.py",
        "        elif (stood := _as_it_stood(ledger, row, at, histories)) is not None:",
        "        elif (stood := row) is not None:",
        "the notebook's AS_OF lists a lease as it ended after AS_OF (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "usage-as-of-folds-later-events",
        "projections/_usage_as_of.py",
        "        if event.envelope.at > at:",
        "        if False:",
        "usage as of a moment folds events written after it (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "usage-as-of-drops-heartbeats",
        "projections/_usage_as_of.py",
        '            _fold_heartbeat(row, event.model_dump(mode="json"))',
        "            pass",
        "usage as of a moment forgets a live lease's heartbeats (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "usage-as-of-since-after-moment-unsaid",
        "projections/_usage_as_of.py",
        "    if since is not None and since > at:",
        "    if False:",
        "usage as of a moment before its since is not refused in its own words (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "usage-as-of-future-moment",
        "projections/_usage_as_of.py",
        "    if at > now:",
        "    if False:",
        "usage as of a moment past the store's time is answered (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "reviewer-disable-parks-no-wait",
        "reports/_reviews.py",
        '            if kind == "profile_disabled" or _decision(row) == "disable":',
        '            if kind == "profile_disabled":',
        "a wait resumed after a reviewer's disable loses its cause and lease (rev30)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "blocked-since-is-the-block-s",
        "ledger/_domain/denials.py",
        "        since=p.since or block.since,",
        "        since=block.since,",
        "why dates a blocked profile from its block, not from the state it is in (rev30)",
        ("tests/integration/test_explain_because.py",),
    ),
    Mutant(
        "init-migration-unsaid",
        "ledger/_stores/migrations.py",
        "    if found < SCHEMA_VERSION:  # rev30",
        "    if False:  # rev30",
        "init migrates a store and says nothing of it, as a no-op init does (rev30)",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "sweep-id-not-on-settle-events",
        "ledger/_commands.py",
        "        return self.sweep_id",
        "        return super().issued_id()",
        "a sweep's --command-id is on none of the events it writes (rev30)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "sweep-without-id-shares-no-id",
        "ledger/_handlers.py",
        "    sweep_id = c.issued_id()  # on every event of the sweep",
        '    sweep_id = c.command_id or "sweep"  # on every event of the sweep',
        "one sweep without an id writes its profiles' events under no id they share (rev30)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "settle-fingerprint-not-the-sweeps",
        "ledger/_commands.py",
        "        return Sweep(actor=self.actor).fingerprint()",
        "        return super().fingerprint()",
        "a sweep's events carry a fingerprint other than the sweep's record (rev30)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "sweep-result-time-dropped",
        "ledger/_handlers.py",
        "        at=ending.at,",
        "        at=None,",
        "a sweep's answer does not say when each lease was settled (rev30)",
        ("tests/integration/test_sweep_watch.py", "tests/integration/test_sweep_command_ids.py"),
    ),
    Mutant(
        "watch-line-at-pass-start",
        "custody/_watch.py",
        "        at = settled.at or began",
        "        at = began",
        "a sweep --watch line is stamped with the pass's start, not its events' time (rev30)",
        ("tests/integration/test_sweep_watch.py",),
    ),
    Mutant(
        "old-sweep-answer-refused",
        "ledger/_domain/results.py",
        "    at: datetime | None = None",
        "    at: datetime",
        "a resent sweep recorded before answers had times fails to read its answer (rev30)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "hard-limit-reason-missed-renewal",
        "ledger/_domain/leasing.py",
        "reason=HARD_LIMIT_REACHED if limited else RENEWAL_DEADLINE_MISSED",
        "reason=RENEWAL_DEADLINE_MISSED",
        "a lease swept at its hard limit is recorded as 'renewal deadline missed' (rev30)",
        ("tests/integration/test_hard_limit.py",),
    ),
    Mutant(
        "final-url-is-the-page-screenshotted",
        "workers/_browser.py",
        "        if self._last_page is not None and page is not self._last_page:\n",
        "        if False:\n",
        "the release names a page that closed, the screenshot another (rev30)",
        (
            "tests/e2e/test_worker_final_page.py::test_a_popup_that_closed_itself_is_not_the_final_url",
        ),
    ),
    Mutant(
        "final-url-kept-when-nothing-navigated",
        "workers/_browser.py",
        "        if self._last_page is not None and page is not self._last_page:\n",
        "        if page is not self._last_page:\n",
        "a run that navigated nowhere loses the URL it reported for about:blank (rev30)",
        (
            "tests/e2e/test_worker_final_page.py::test_a_run_that_navigated_nowhere_keeps_the_url_it_reported",
        ),
    ),
    Mutant(
        "step-catches-up-with-the-page",
        "workers/_leases.py",
        "            self._session.catch_up()\n",
        "            pass\n",
        "a step records a URL the page has already left (rev30)",
        (
            "tests/e2e/test_worker_final_page.py::test_a_step_names_the_url_the_page_moved_to_while_the_task_was_busy",
        ),
    ),
    Mutant(
        "step-after-close-names-the-open-page",
        "workers/_browser.py",
        "            self._progress.update(url=shown.url)\n",
        "            pass\n",
        "a step after the last page closed names the page that is gone (rev30)",
        (
            "tests/e2e/test_worker_final_page.py::test_a_step_after_the_last_page_closed_names_the_page_left_open",
        ),
    ),
    Mutant(
        "replay-takes-a-later-earlier-event",
        "projections/_timeline.py",
        'WHERE profile_id = ? AND at > ?) "',
        'WHERE profile_id = ? AND at > ? AND 1 = 0) "',
        "replay --at folds an event recorded after one stamped past the moment (rev30)",
        ("tests/integration/test_report_times.py",),
    ),
    Mutant(
        "url-other-scheme-ends-at-backslash",
        "ledger/_domain/model.py",
        'r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)@")',
        'r"([A-Za-z][A-Za-z0-9+.-]*)://([^/\\\\?#]*)@")',
        "a password holding a backslash in a URL of a scheme that is not special is stored (rev30)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "userinfo-cut-once",
        "ledger/_domain/model.py",
        "    for _ in range(_CUTS_AT_MOST):  # what is left may read as a userinfo again (rev30)",
        "    for _ in range(1):  # what is left may read as a userinfo again (rev30)",
        "the SDKs record a URL whose userinfo, cut once, leaves one the ledger refuses (rev30)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "plugin-egg-unseen",
        "custody/_pydantic_plugins.py",
        '        egg = entry.lower().endswith(".egg")',
        "        egg = False",
        "a pydantic plugin installed as an egg directory is never loaded by the CLI (rev30)",
        ("tests/unit/test_pydantic_plugins.py",),
    ),
    Mutant(
        "leases-command-id-spans-profiles",
        "projections/_leases.py",
        "    return (event.profile_id, event.envelope.command_id)",
        '    return ("", event.envelope.command_id)',
        "a disable under a sweep's id is folded into a lease the sweep settled (rev30)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "usage-as-of-by-stored-times",
        "projections/_usage_as_of.py",
        'as_of = versions_as_of(ledger, {str(row["profile_id"]) for row in rows}, at) if kept_up',
        "as_of = {} if kept_up",
        "usage as of a moment lists a lease written after a clock set back (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "final-page-opened-last",
        "workers/_launch.py",
        "(*reversed(navigated), *reversed(pages))",
        "(*navigated[-1:], *reversed(pages))",
        "a step and the release name the tab opened last, not the page navigated last (rev30)",
        (
            "tests/e2e/test_worker_final_page.py::test_a_step_after_the_last_page_closed_names_the_page_left_open",
        ),
    ),
    Mutant(
        "step-catch-up-on-any-thread",
        "workers/_browser.py",
        "        if threading.get_ident() == self._thread:  # else: the URL last delivered",
        "        if True:  # else: the URL last delivered",
        "a step taken on another thread than Playwright's fails and records nothing (rev30)",
        (
            "tests/e2e/test_worker_final_page.py::test_a_step_from_another_thread_is_recorded_with_the_url_last_seen",
        ),
    ),
    Mutant(
        "url-nested-unread",
        "ledger/_domain/model.py",
        '_NESTED = r"(?:(?:[vV][iI][eE][wW]-[sS][oO][uU][rR][cC][eE]|[bB][lL][oO][bB]):',
        '_NESTED = r"(?:(?:(?!)):',
        "a password in a URL nested in view-source: or blob: is stored (rev30)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "usage-as-of-trusts-a-stale-model",
        "projections/_usage_as_of.py",
        "    kept_up = ledger.feed.maintains()",
        "    kept_up = True",
        "usage as of a moment on a worker's login reads a released lease as live (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "usage-as-of-window-on-stored-ends",
        "projections/_usage_as_of.py",
        "account_id=account_id, until=end)",
        "account_id=account_id, since=since, until=end)",
        "usage from a start as of a moment leaves out a lease live then, by its later end (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "usage-as-of-window-unchecked",
        "projections/_usage_as_of.py",
        "    require_window(since, until)  # as ``read_usage`` does",
        "    pass  # as ``read_usage`` does",
        "usage as of a moment answers for a window that ends before it starts (rev30)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "older-form-names-both-fields",
        "ledger/_stores/mapper.py",
        "        lacks = [k for k in _CARRIED_SINCE_SCHEMA_15 if k not in data]",
        "        lacks = list(_CARRIED_SINCE_SCHEMA_15)",
        "verify's older-form line names a field the snapshot has (rev30)",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "usage-cli-at",
        "projections/_usage_as_of.py",
        "    if at is None:\n        rows = read_usage(",
        "    if True:\n        rows = read_usage(",
        "custody usage --at, as a table, lists the leases as they stand now",
        ("tests/e2e/test_cli_reports.py",),
    ),
    Mutant(
        "url-nested-after-space",
        "ledger/_domain/model.py",
        r"[bB][lL][oO][bB]):[\x00-\x20]*)*",
        r"[bB][lL][oO][bB]):)*",
        "view-source: with a space before the inner URL hides its password from the door (rev31)",
    ),
    Mutant(
        "url-scheme-relative",
        "ledger/_domain/model.py",
        "    found = _RELATIVE_AUTHORITY.match(value)\n",
        "    found = None\n",
        "a scheme-relative //user:pw@host goes past the door (rev31)",
    ),
    Mutant(
        "text-user-holding-at",
        "ledger/_domain/model.py",
        r'+ r")([^\s/\\?#:]*):)"',
        r'+ r")([^\s/\\?#@:]*):)"',
        "a failure reason keeps the password of a URL whose user holds an @ (rev31)",
    ),
    Mutant(
        "review-waits-as-they-stood",
        "reports/_reviews.py",
        "waits(_as_they_stood(events, when), when)",
        'waits(events.loc[events["at"] <= when], when)',
        "waits as of a moment end by a verdict written later, stamped earlier (rev31)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "health-capped-live-lease",
        "reports/_health.py",
        ".fillna(False).astype(bool) | capped\n",
        ".fillna(False).astype(bool)\n",
        "health counts a live lease silent past its hard limit until the sweep runs (rev31)",
        ("tests/integration/test_hard_limit.py",),
    ),
    Mutant(
        "origin-row-trusted",
        "ledger/_audit/walk.py",
        "            wrong = mismatch(origin, linked_from, self.first_linked, self.last_position)",
        "            wrong = None",
        "a forged chain-origin row switches off the shared-directory check (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "origin-past-the-end-trusted",
        "ledger/_audit/origins.py",
        "    elif position > end:",
        "    elif False:",
        "verify trusts a chain-origin row past the log's end (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "origin-after-a-linked-event-trusted",
        "ledger/_audit/origins.py",
        "    elif first_linked is not None and position >= first_linked[0]:",
        "    elif False:",
        "verify trusts a chain-origin row after the first linked event (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "unlinked-past-the-origin-believed",
        "ledger/_audit/walk.py",
        "        if origin is None or version > origin[0] or position > origin[2]:",
        "        if origin is None or version > origin[0]:",
        "an unlinked event stored past its origin's position passes verify (rev31)",
        ("tests/integration/test_chain_migration.py",),
    ),
    Mutant(
        "snapshot-undecodable-internal-error",
        "ledger/_stores/mapper.py",
        "            return _readable_snapshot(stored_event)",
        "            return _snapshot(stored_event)",
        "a snapshot no load can decode is an internal error on every command (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "snapshot-odd-version-names-stream",
        "ledger/_audit/snapshots.py",
        "            owner = self._in_hand(stream, stream_hex, 1) if stream is not None else None",
        "            owner = None",
        "verify names a snapshot of an odd version by its stream, not its profile (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "digest-previous-of-another-store-unsaid",
        "ledger/audit.py",
        "_of_another_store(_holds(walked, before), before, here)",
        "_holds(walked, before)",
        "digest over another store's digest claims tampering first (rev31)",
        ("tests/integration/test_digest_of_another_store.py",),
    ),
    Mutant(
        "progress-line-left-open",
        "custody/_audit_commands.py",
        "        if shown:",
        "        if False:",
        "the progress line on a terminal runs into the answer (rev31)",
        ("tests/e2e/test_cli_verify.py",),
    ),
    Mutant(
        "prev-edit-blames-the-header",
        "ledger/_audit/walk.py",
        "            if body == digest and own == event_hash(stream.head, header, digest):",
        "            if False:",
        "an edited link's prev is also blamed on the header (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "unknown-profile-of-many-events-unsaid",
        "ledger/audit.py",
        "        first = stream.first_position  # rev31: read only of a profile with one event",
        "        first = stream.position if stream.version == 1 else 0",
        "a digest's unknown profile of many events goes unnamed (rev31)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "passwords-cut-by-backtracking",
        "ledger/_domain/model.py",
        "    return _without_passwords(text, nested_only=False)\n",
        '    return _PASSWORD_IN_URL.sub(r"\\1", text)\n',
        "a long message's passwords are cut by backtracking: minutes a million characters (rev31)",
    ),
    Mutant(
        "errors-pickle-by-constructor",
        "ledger/_domain/errors.py",
        "        return _rebuilt, (type(self), self.args, self.__dict__)",
        "        return super().__reduce__()",
        "a denial raised in a worker process breaks the pool, not reaching the scheduler (rev31)",
        ("tests/integration/test_errors_cross_processes.py",),
    ),
    Mutant(
        "naive-read-as-local",
        "projections/_base.py",
        "    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)",
        "    return value.astimezone(UTC)",
        "usage reads a time without an offset as the host's local time (rev31)",
        ("tests/integration/test_usage_as_of.py",),
    ),
    Mutant(
        "command-copy-unchecked",
        "ledger/_door.py",
        "copied if not update else type(self).model_validate({**dict(copied), **update})",
        "super().model_copy(update=update, deep=deep)",
        "a command copied with changes skips the door (rev31)",
    ),
    Mutant(
        "forked-child-uses-parent-session",
        "ledger/_application.py",
        "        if self._uow is not None and self._pid != os.getpid():",
        "        if False:",
        "a forked child uses its parent's PostgreSQL session (rev31)",
        ("tests/integration/test_ledger_after_fork.py",),
    ),
    Mutant(
        "store-url-trailing-space",
        "ledger/_stores/settings.py",
        '        if url and (url[-1].isspace() or unicodedata.category(url[-1]) in ("Cc", "Cf")):',
        "        if False:",
        "a store URL ending in a space names a second store (rev31)",
    ),
    Mutant(
        "relative-two-slashes-only",
        "ledger/_domain/model.py",
        '()[\\\\/]{2,}([^/\\\\?#]*)@")',
        '()[\\\\/]{2}([^/\\\\?#]*)@")',
        "///user:pw@host goes past the door (rev31 reread)",
    ),
    Mutant(
        "snapshot-topic-read-as-event",
        "ledger/_stores/mapper.py",
        "    if stored.topic != SNAPSHOT_TOPIC:\n",
        "    if False:\n",
        "a snapshot row's edited topic is named an unreadable event (rev31 reread)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "userinfo-cut-without-end",
        "ledger/_domain/model.py",
        "    for _ in range(_CUTS_AT_MOST):  # what is left",
        "    while True:  # what is left",
        "'//@//@...' is cut once for each @: minutes for a million (rev31 reread2)",
    ),
    Mutant(
        "file-url-userinfo",
        "ledger/_domain/model.py",
        '_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})',
        '_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})',
        "a file URL's name is read as a userinfo (rev31 reread2)",
    ),
    Mutant(
        "store-url-invisible-end",
        "ledger/_stores/settings.py",
        'unicodedata.category(url[-1]) in ("Cc", "Cf")',
        'url[-1] < " "',
        "a store URL ending in DEL or U+200B names a second store (rev31 reread2)",
    ),
    Mutant(
        "aio-fork-parent-thread",
        "workers/aio/_flavour.py",
        "        if self._pid != os.getpid():\n            self._executor",
        "        if False:\n            self._executor",
        "an asyncio SDK used after a fork waits on its parent's thread (rev31 reread2)",
        ("tests/integration/test_ledger_after_fork.py",),
    ),
    Mutant(
        "link-in-place-fields-set",
        "ledger/_domain/events.py",
        '        self.__pydantic_fields_set__.add("chain")\n',
        "",
        "a command's event linked in place is not marked as having its link set, as linked() does",
    ),
    Mutant(
        "availability-index-with-deadline",
        "ledger/_stores/recorders.py",
        'ON {AVAILABILITY_TABLE} (state)",\n',
        'ON {AVAILABILITY_TABLE} (state, until)",\n',
        "the availability index takes the deadline again: every heartbeat adds index entries",
        ("tests/integration/test_availability_index.py",),
    ),
    Mutant(
        "availability-old-index-kept",
        "ledger/_stores/migrations.py",
        "    _drop_older_availability_index(self)\n",
        "",
        "init keeps a store's older index on (state, until) beside the new one",
        ("tests/integration/test_availability_index.py",),
    ),
    Mutant(
        "snapshot-inside-a-save-takes-the-last",
        "ledger/_stores/store.py",
        "        upto = [e for e in events if e.originator_version <= version]\n",
        "        upto = list(events)\n",
        "a snapshot due inside a save of several events holds the state after the save's last",
        ("tests/integration/test_snapshots.py",),
    ),
    Mutant(
        "older-index-dropped-by-name",
        "ledger/_stores/migrations.py",
        '        "WHERE i.indrelid = to_regclass(?) AND c.relname = ?",\n',
        '        "WHERE (i.indrelid = to_regclass(?) OR true) AND c.relname = ?",\n',
        "init drops an index of the older one's name on another table (review of this stop)",
        ("tests/integration/test_availability_index.py",),
    ),
    Mutant(
        "older-index-dropped-in-the-way",
        "ledger/_stores/migrations.py",
        "DROP INDEX CONCURRENTLY IF EXISTS",
        "DROP INDEX IF EXISTS",
        "init's drop of the older index queues every heartbeat behind it (review of this stop)",
        ("tests/integration/test_availability_index.py",),
    ),
    Mutant(
        "older-index-by-name-on-sqlite",
        "ledger/_stores/migrations.py",
        "WHERE type = 'index' AND tbl_name = ? AND name = ?\",\n"
        "            (AVAILABILITY_TABLE, OLDER_AVAILABILITY_INDEX),",
        "WHERE type = 'index' AND name = ?\",\n            (OLDER_AVAILABILITY_INDEX,),",
        "init drops an index of the older one's name on another SQLite table",
        ("tests/integration/test_availability_index.py",),
    ),
    Mutant(
        "link-in-place-past-a-plugin",
        "ledger/_domain/events.py",
        "        if type(type(self).__pydantic_validator__) is not SchemaValidator:\n",
        "        if False:\n",
        "an event a pydantic plugin was handed is linked in place, changing what it holds",
    ),
    Mutant(
        "search-path-without-public",
        "ledger/_stores/sql.py",
        '    if "public" not in schemas:\n',
        "    if False:\n",
        "a login whose search_path leaves public out makes the events, then fails with a traceback",
        ("tests/integration/test_search_path.py",),
    ),
    Mutant(
        "older-index-drop-past-a-statement-timeout",
        "ledger/_stores/migrations.py",
        "    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):\n",
        "    except psycopg.errors.LockNotAvailable:\n",
        "init fails where a statement timeout shorter than the lock timeout ends its drop",
        ("tests/integration/test_availability_index.py",),
    ),
    Mutant(
        "new-store-split-by-a-schema",
        "ledger/_stores/sql.py",
        '    if schemas[:1] != ["public"]:\n',
        "    if False:\n",
        "init makes a store split between a login's own schema and public (review of this stop)",
        ("tests/integration/test_search_path.py",),
    ),
    Mutant(
        "lock-timeout-busy-by-sqlstate",
        "ledger/_stores/connections.py",
        " or state == _LOCK_NOT_AVAILABLE\n",
        "\n",
        "a lock timeout said in another language is 'unavailable', without retry (a review)",
    ),
    Mutant(
        "service-body-keys-capped",
        "service/_bodies.py",
        "    if len(pairs) > MAX_KEYS:\n",
        "    if False:\n",
        "a body of 80,000 unknown keys is validated key by key, holding the event loop (rev32)",
        (
            "tests/integration/test_service_input.py::test_a_body_of_more_keys_than_any_command_takes_is_refused_before_validation",
        ),
    ),
    Mutant(
        "service-headers-once",
        "service/_bodies.py",
        "        if given[name] > 1:\n",
        "        if False:\n",
        "two Idempotency-Key headers are read as the first (rev32)",
        (
            "tests/integration/test_service_input.py::test_a_query_parameter_or_header_given_twice_or_not_utf8_is_refused",
        ),
    ),
    Mutant(
        "service-query-once",
        "service/_bodies.py",
        "        if seen[name] > 1:\n",
        "        if False:\n",
        "?account=a&account=b is read as b (rev32)",
        (
            "tests/integration/test_service_input.py::test_a_query_parameter_or_header_given_twice_or_not_utf8_is_refused",
        ),
    ),
    Mutant(
        "service-query-utf8",
        "service/_bodies.py",
        '            value = unquote_to_bytes(raw_value.replace(b"+", b" ")).decode()\n',
        '            value = ""\n',
        "%ff in a query is read as U+FFFD, a text nobody sent (rev32)",
        (
            "tests/integration/test_service_input.py::test_a_query_parameter_or_header_given_twice_or_not_utf8_is_refused",
        ),
    ),
    Mutant(
        "service-reads-noted",
        "service/_app.py",
        "    app.add_middleware(Noted)\n",
        "\n",
        "a worker-only service answers a timeline missing events without a word (rev32)",
        (
            "tests/integration/test_service_process.py::test_a_worker_only_service_says_what_its_reads_leave_out",
        ),
    ),
    Mutant(
        "service-metrics-behind",
        "service/_metrics.py",
        "            families = [*families, behind_family(notes)]\n",
        "\n",
        "/metrics of a worker-only service reads 0 leases, and nothing says it is behind (rev32)",
        (
            "tests/integration/test_service_process.py::test_a_worker_only_service_says_what_its_reads_leave_out",
        ),
    ),
    Mutant(
        "service-timeline-capped",
        "service/_reads.py",
        "            if last is None and len(found) > MAX_EVENTS:\n",
        "            if False:\n",
        "a timeline without last is cut to 10,000 rows unsaid (rev32)",
        (
            "tests/integration/test_service_input.py::test_a_timeline_longer_than_one_answer_carries_is_refused_saying_how_to_ask",
        ),
    ),
    Mutant(
        "verify-checks-the-guards",
        "ledger/audit.py",
        "    problems += ledger.store.guard_problems()  # what would refuse the next rewrite\n",
        "\n",
        "verify passes a store whose guards are gone or an older custody's (rev32)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "guard-function-body",
        "ledger/_stores/migrations.py",
        "        other_body = kept != body\n",
        "        other_body = False\n",
        "an older custody's check function put back by its init goes unnamed (rev32)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "guard-trigger-missing",
        "ledger/_stores/migrations.py",
        "            if text is None:\n",
        "            if False:\n",
        "a dropped append-only trigger goes unnamed by verify (rev32)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "guard-trigger-disabled",
        "ledger/_stores/migrations.py",
        '            elif enabled != "A":  # disabled, or passed over by a replica\'s or an '
        "origin's\n",
        "            elif False:\n",
        "a guard trigger disabled, origin-only or replica-only goes unnamed by verify (rev39)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
            "tests/integration/test_append_only.py::"
            "test_verify_names_a_guard_trigger_not_enabled_always_and_init_enables_it",
        ),
    ),
    Mutant(
        "grant-passes-a-table-gone",
        "ledger/_stores/access.py",
        '_SKIP_GONE = "EXCEPTION WHEN undefined_table THEN NULL;"\n',
        '_SKIP_GONE = ""\n',
        "an init fails on a table another init's rebuild swapped away (rev32)",
        (
            "tests/e2e/test_access_grant_beside_live_leases.py::test_a_table_gone_between_the_look_and_its_grant_is_passed_over",
        ),
    ),
    Mutant(
        "service-hears-notes",
        "projections/_runner.py",
        "        heard.append(behind)\n",
        "        pass\n",
        "the lease service's answer leaves out the note its read warned (rev32)",
        (
            "tests/integration/test_service_process.py::test_a_worker_only_service_says_what_its_reads_leave_out",
        ),
    ),
    Mutant(
        "digest-out-directory-first",
        "custody/_audit_commands.py",
        '        refuse_no_directory("out", out)\n',
        "        pass\n",
        "digest --out in no directory answers 5 for a forged previous digest, 2 otherwise (rev32)",
        (
            "tests/e2e/test_digest_files.py::test_digest_out_in_no_directory_is_bad_input_before_the_log_is_judged",
        ),
    ),
    Mutant(
        "lost-session-names-the-id",
        "ledger/_stores/connections.py",
        '    lost = settings.kind == "postgresql" and said == "unavailable"'
        " and _connection_lost(error)\n",
        "    lost = False\n",
        "a checkout terminated at its COMMIT says only 'server closed the connection' (rev32)",
        (
            "tests/e2e/test_cli_postgres.py::test_a_write_whose_session_ends_under_it_names_the_id_that_tells",
        ),
    ),
    Mutant(
        "checklist-strict-behind",
        "custody/_fleet_output.py",
        "        if not self.strict or not (attention or self.checklist.behind):\n",
        "        if not self.strict or not attention:\n",
        "checklist --strict says 11 ok, exit 0, from read models missing a quarantine (rev32)",
        (
            "tests/e2e/test_cli_read_only_store.py::test_checklist_strict_on_a_copy_whose_read_models_lag_is_not_all_ok",
        ),
    ),
    Mutant(
        "availability-missing-named",
        "ledger/_stores/connections.py",
        "        if _availability_missing(e):  # the store answers: it is damaged, not"
        " unavailable\n",
        "        if False:\n",
        "a dropped availability table reads as a store down, exit 6 'no such table' (rev32)",
        (
            "tests/integration/test_append_only.py::test_an_availability_table_dropped_is_named_and_init_writes_its_rows_again",
        ),
    ),
    Mutant(
        "availability-restored-by-init",
        "ledger/_stores/migrations.py",
        "    if lost:  # after the guards: a login writes a row only beside its event meanwhile\n",
        "    if False:\n",
        "init makes a dropped availability table again empty: status '(none)' (rev32)",
        (
            "tests/integration/test_append_only.py::test_an_availability_table_dropped_is_named_and_init_writes_its_rows_again",
        ),
    ),
    Mutant(
        "guard-trigger-shape",
        "ledger/_stores/migrations.py",
        "            elif _trigger_shape(definition) != _trigger_shape(statement):\n",
        "            elif False:\n",
        "a guard trigger made WHEN (false) passes verify (rev32 reread)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "guard-pinned-path",
        "ledger/_stores/migrations.py",
        "        unpinned = name in pinned and path not in config\n",
        "        unpinned = False\n",
        "a guard function's pinned search path reset passes verify (rev32 reread)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "guard-sqlite-text",
        "ledger/_stores/migrations.py",
        "            elif text != _sqlite_trigger_text(statement):\n",
        "            elif False:\n",
        "an SQLite guard trigger of the same name that does nothing passes verify (rev32 reread)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "init-replaces-sqlite-guards",
        "ledger/_stores/migrations.py",
        '            self.execute(f"DROP TRIGGER {name}")\n',
        "            pass\n",
        "init keeps an SQLite guard trigger of the same name that does nothing (rev32 reread)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "restore-missing-rows",
        "ledger/_stores/migrations.py",
        "    return [profile_id for profile_id in self.profile_ids() if profile_id not in kept]\n",
        "    return []\n",
        "init leaves an availability table's missing rows missing (rev32 rereads)",
        (
            "tests/integration/test_append_only.py::test_an_availability_table_dropped_is_named_and_init_writes_its_rows_again",
        ),
    ),
    Mutant(
        "checklist-held-notes-pass",
        "reports/_checklist.py",
        "    cannot = {note.name: str(note) for note in reversed(notes) if note.held_at is None}\n",
        "    cannot = {note.name: str(note) for note in reversed(notes)}\n",
        "the owner's checklist --strict says it may not fold what an open transaction held (rev32)",
        ("tests/unit/test_checklist_behind.py",),
    ),
    Mutant(
        "guard-function-definer",
        "ledger/_stores/migrations.py",
        "        other_user = runs_as_owner != (name in definer)\n",
        "        other_user = False\n",
        "a guard function made SECURITY DEFINER (every login then passes) passes verify",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "guard-trigger-function-beside",
        "ledger/_stores/migrations.py",
        '            str(r["def"]) if r["beside"] else "a function elsewhere",\n',
        '            str(r["def"]),\n',
        "a guard trigger pointed at a same-named function in another schema passes verify (rev32)",
        (
            "tests/integration/test_append_only.py::test_verify_names_a_guard_gone_or_not_custodys_and_init_puts_it_back",
        ),
    ),
    Mutant(
        "restore-passes-unreadable",
        "ledger/_stores/migrations.py",
        "            unreadable.append(profile_id)\n",
        "            raise\n",
        "one damaged profile without a row makes every init fail (rev32 rereads)",
        (
            "tests/integration/test_append_only.py::test_init_restores_the_rows_it_can_and_names_a_profile_it_cannot_read",
        ),
    ),
    Mutant(
        "rows-counted-first",
        "ledger/_stores/migrations.py",
        '    if int(rows["n"]) >= int(streams["n"]):\n',
        "    if True:\n",
        "init's count of rows against streams hides rows that are missing (rev32 rereads)",
        (
            "tests/integration/test_append_only.py::test_an_availability_table_dropped_is_named_and_init_writes_its_rows_again",
        ),
    ),
    Mutant(
        "prepared-again-all",
        "ledger/_stores/postgres.py",
        "        prepared.clear()\n        prepared.update(_prepared_on(conn))\n",
        "        prepared.discard(name)\n",
        "after DEALLOCATE ALL only the append is prepared again: the prepared BEGIN fails again",
        (
            "tests/integration/test_append_wakeup.py::test_an_append_prepares_its_statement_again_on_a_connection_that_dropped_it",
        ),
    ),
    Mutant(
        "prepared-again-from-server",
        "ledger/_stores/postgres.py",
        "        prepared.update(_prepared_on(conn))\n",
        "",
        "a shape prepared by the failed round trip is prepared again: it already exists",
        (
            "tests/integration/test_append_wakeup.py::test_a_new_shape_of_append_after_a_rolled_back_one_is_prepared_once",
        ),
    ),
    Mutant(
        "prepared-begin-commit",
        "ledger/_stores/postgres.py",
        "        partial(pgconn.send_query_prepared, _BEGIN, None),\n",
        "        partial(pgconn.send_query_params, b'BEGIN', None),\n",
        "BEGIN sent as text, parsed and planned on every append",
        (
            "tests/integration/test_append_wakeup.py::test_an_append_sends_begin_commit_and_the_wake_up_prepared",
        ),
    ),
    Mutant(
        "text-user-without-password",
        "ledger/_domain/model.py",
        "_STAGES = ((_CANDIDATE, 2, 1), (_USER_CANDIDATE, 1, 0))\n",
        "_STAGES = ((_CANDIDATE, 2, 1),)\n",
        "a failure's reason keeps a URL's user given without a password (a token as the user)",
        ("tests/unit/test_commands.py::test_a_url_s_user_without_a_password_is_cut_from_a_text",),
    ),
    Mutant(
        "root-writes-frozen-store",
        "ledger/_stores/settings.py",
        "        if not os.access(path, os.W_OK) or _frozen(path):\n",
        "        if not os.access(path, os.W_OK):\n",
        "root writes a chmod 444 SQLite store: reads install read models, writes append",
        (
            "tests/e2e/test_cli_read_only_store.py::test_a_store_nobody_may_change_is_not_written_by_root_either",
        ),
    ),
    Mutant(
        "sqlite-file-replaced",
        "ledger/_stores/recorders.py",
        "        if self.replaced():\n",
        "        if False:\n",
        "a process writes on into a SQLite file deleted or replaced at the store's path",
        ("tests/integration/test_store_file_replaced.py",),
    ),
    Mutant(
        "marker-same-token-other-run",
        "workers/_profile_dir.py",
        "    if token == lease.fencing_token and holder not in"
        " (None, (lease.worker_id, lease.run_id)):\n",
        "    if False:\n",
        "a second lease given the same token (a store made anew) overwrites a live browser's mark",
        (
            "tests/integration/test_profile_marker.py::test_the_same_token_for_another_run_is_refused_and_the_mark_kept",
        ),
    ),
    Mutant(
        "service-slash-in-id",
        "service/_bodies.py",
        '        if b"%" not in raw or (b"%2F" not in raw and b"%2f" not in raw and _utf8(raw)):\n',
        '        if b"%" not in raw or (b"%2F" not in raw and _utf8(raw)):\n',
        "an id holding a lower-case %2f is routed as two segments: a 404 naming nothing",
        (
            "tests/integration/test_service.py::test_an_id_holding_a_slash_is_422_naming_the_field_not_a_404",
        ),
    ),
    Mutant(
        "service-slash-in-id-decoded",
        "service/_bodies.py",
        "        return unquote_to_bytes(raw).decode()\n",
        '        return raw.decode("latin-1")\n',
        "an id holding %2F reaches the door still encoded: its refusal names another text",
        (
            "tests/integration/test_service.py::test_an_id_holding_a_slash_is_422_naming_the_field_not_a_404",
        ),
    ),
    Mutant(
        "keygen-names-its-argument",
        "custody/_audit_commands.py",
        '    _write(key_file, private, mode=0o600, field="key_file")\n',
        "    _write(key_file, private, mode=0o600)\n",
        "keygen's refusal of a FILE it cannot write names an option keygen has not (out)",
        (
            "tests/integration/test_audit_inputs.py::test_a_key_file_that_cannot_be_written_is_bad_input_naming_the_argument",
        ),
    ),
    Mutant(
        "export-summary-path-escaped",
        "custody/_output.py",
        "        shown = printable(name)\n",
        "        shown = name\n",
        "the export's summary line sends an --output path's terminal escapes raw",
        ("tests/e2e/test_cli_export.py::test_the_summary_line_shows_the_output_path_escaped",),
    ),
    Mutant(
        "node-example-unknown-profile",
        "clients/typescript/examples/worker.ts",
        '    case "unknown_profile":\n',
        "",
        "the example worker exits 1, as a failed task, for an unregistered profile",
        (
            "tests/integration/test_node_worker.py::test_the_example_node_worker_exits_as_the_command_line_when_nothing_is_leased",
        ),
    ),
    Mutant(
        "report-fleet-total-apart",
        "reports/_page.py",
        '        + rows_table(["account", *states, "profiles"], rows, total=total)',
        '        + rows_table(["account", *states, "profiles"], [*rows, total])',
        "the report's fleet total is a row of data, read alike with an account named like it",
        (
            "tests/integration/test_fleet_reports.py::test_the_fleet_table_s_total_is_apart_from_an_account_named_like_it",
        ),
    ),
    Mutant(
        "why-reviewer-one-part",
        "projections/_explain.py",
        "    by = one_part(review.reviewer)\n",
        "    by = review.reviewer\n",
        "a reviewer's id holding spaces reads as a verdict's time and a second reviewer in why",
        (
            "tests/e2e/test_cli_texts.py::test_an_id_that_reads_as_more_of_a_line_is_quoted_in_why_and_timeline",
        ),
    ),
    Mutant(
        "denial-actor-one-part",
        "ledger/_domain/denials.py",
        "({block.cause}) by {in_line(block.actor_id)}{said}",
        "({block.cause}) by {block.actor_id}{said}",
        "a blocking actor's id holding spaces reads as more of why's message",
        (
            "tests/e2e/test_cli_texts.py::test_an_id_that_reads_as_more_of_a_line_is_quoted_in_why_and_timeline",
        ),
    ),
    Mutant(
        "timeline-actor-one-value",
        "custody/_render.py",
        "    actor = _said(r.actor_id)",
        "    actor = r.actor_id",
        "an actor's id holding spaces reads as more of a timeline line's fields",
        (
            "tests/e2e/test_cli_texts.py::test_an_id_that_reads_as_more_of_a_line_is_quoted_in_why_and_timeline",
        ),
    ),
    Mutant(
        "sqlite-path-absolute",
        "ledger/_stores/settings.py",
        '                "SQLITE_DBNAME": self.sqlite_opened(),\n',
        '                "SQLITE_DBNAME": self.path,\n',
        "a store opened by a relative path refuses every write after a change of directory",
        (
            "tests/integration/test_store_file_replaced.py::test_a_store_opened_by_a_relative_path_is_still_written_after_a_change_of_directory",
        ),
    ),
    Mutant(
        "console-slash-in-id",
        "service/_console.py",
        ", include_in_schema=False, route_class=page_route(console))",
        ", include_in_schema=False)",
        "a console id holding %2F is a JSON 404 naming nothing, or another page of the profile",
        (
            "tests/integration/test_console_forms.py::test_a_profile_id_holding_a_slash_is_refused_as_bad_input",
        ),
    ),
    Mutant(
        "fleet-reads-missing-row",
        "projections/_availability.py",
        "    if unheld:  # a row deleted, or a profile registered since the snapshot began",
        "    if False:",
        "a registered profile whose availability row was deleted vanishes from the fleet reads",
        (
            "tests/integration/test_read_model_damage.py::test_a_deleted_availability_row_is_counted_from_the_events_and_named",
        ),
    ),
    Mutant(
        "pool-reconnect-capped",
        "ledger/_stores/postgres.py",
        "        cap_reconnect_waits(pool)\n",
        "",
        "a long-lived process fails every command for minutes after the store is back",
        ("tests/integration/test_store_outage.py",),
    ),
    Mutant(
        "snapshot-recorder-once",
        "ledger/_stores/postgres.py",
        "    aggregate_recorder_class = OnceAggregateRecorder\n",
        "",
        "a load from a snapshot retries ten times, waiting ten store timeouts",
        ("tests/integration/test_store_outage.py",),
    ),
    Mutant(
        "listen-no-idle-timeout",
        "ledger/_stores/listen.py",
        '                conn.execute("SET idle_session_timeout = 0")\n',
        "                pass\n",
        "a database's idle_session_timeout cuts the listening connection every few seconds",
        (
            "tests/integration/test_projection_push.py::test_an_idle_session_timeout_does_not_cut_the_listening_connection",
        ),
    ),
    Mutant(
        "guard-deadline-timer",
        "workers/_guard.py",
        "            self._timer.start()\n",
        "            pass\n",
        "lease.lost is set only when someone asks: late while the heartbeat thread is blocked",
        (
            "tests/unit/test_worker_renewal.py::test_the_guard_loses_the_lease_at_its_deadline_when_no_one_asks",
        ),
    ),
    Mutant(
        "hard-limit-past-it",
        "ledger/_domain/leasing.py",
        "        if lease.hard_limit_at is not None and now > lease.hard_limit_at:\n",
        "        if lease.hard_limit_at is not None and now >= lease.hard_limit_at:\n",
        "at the hard limit's instant the lease is lost to its holder and live to everyone else",
        ("tests/unit/test_rules.py::test_renewals_never_move_the_deadline_past_the_hard_limit",),
    ),
    Mutant(
        "time-date-separator",
        "reports/_frames.py",
        '    if apart is not None and apart.group(1) not in "Tt ":',
        "    if False:",
        "2026-12-06x00:55.5 is read as 00:55:00.5, a decimal minute taken for a fraction",
        ("tests/unit/test_time_words.py::test_a_time_python_would_read_otherwise_is_refused",),
    ),
    Mutant(
        "time-beyond-microseconds",
        "reports/_frames.py",
        "    if _BEYOND_MICROSECONDS.search(text):",
        "    if False:",
        "a --since with 7 digits of a second is cut, taking in an event before it",
        ("tests/unit/test_time_words.py::test_a_time_python_would_read_otherwise_is_refused",),
    ),
    Mutant(
        "projections-usage-times-checked",
        "projections/_usage_as_of.py",
        '    since, until, at = (_instant(f, v) for f, v in (("since", since), ("until", until),'
        ' ("at", at)))\n',
        "",
        "projections.usage given text raises AttributeError, not InvalidInput naming the field",
        (
            "tests/integration/test_usage_as_of.py::test_projections_usage_refuses_what_is_no_time_naming_the_field",
        ),
    ),
    Mutant(
        "fleet-reads-registered-since",
        "projections/_availability.py",
        "sorted(p for p in unheld if p in in_snapshot)",
        "sorted(unheld)",
        "a profile registered during a fleet read is named a damaged row: checklist --strict 5",
        (
            "tests/integration/test_read_model_damage.py::test_a_profile_registered_during_a_fleet_read_is_not_named_damaged",
        ),
    ),
    Mutant(
        "sqlite-path-dir-resolved",
        "ledger/_stores/settings.py",
        "            return os.path.join(self.directory, self.path)\n",
        "            return os.path.abspath(os.path.join(self.directory, self.path))\n",
        "l/../x.db after a symlinked directory: writes go to one file, reads look for another",
        (
            "tests/integration/test_store_file_replaced.py::test_a_store_path_with_dot_dot_after_a_symlinked_directory_is_one_file",
        ),
    ),
    Mutant(
        "guard-retired-before-release",
        "workers/_leases.py",
        "        self._guard.retire()\n        self._blocking(",
        "        self._blocking(",
        "a release held up past the deadline succeeds and the lease is reported lost too",
        (
            "tests/integration/test_worker_stops.py::test_a_release_held_up_past_the_local_deadline_leaves_the_lease_not_lost",
        ),
    ),
    Mutant(
        "fleet-stuck-worker-one-part",
        "custody/_fleet_output.py",
        'one_part(s.worker_id) if s.worker_id else "-"',
        's.worker_id or "-"',
        "a worker id 'w1, worker w2' reads as two workers in the fleet's stuck lines",
        (
            "tests/e2e/test_cli_texts.py::test_an_id_that_reads_as_more_of_a_line_is_quoted_in_why_and_timeline",
        ),
    ),
    Mutant(
        "deadline-past-year-9999",
        "ledger/_domain/leasing.py",
        "        raise LedgerError(msg) from None\n",
        "        raise\n",
        "a store clock near year 10000 makes a checkout a bare OverflowError, 'internal error'",
        (
            "tests/integration/test_hard_limit.py::test_a_store_clock_too_near_year_10000_for_a_deadline_is_said_so",
        ),
    ),
    Mutant(
        "time-space-before-offset-fraction",
        "reports/_frames.py",
        '        parsed = datetime.fromisoformat(_SPACE_BEFORE_OFFSET.sub("", text.strip()))',
        "        parsed = datetime.fromisoformat(text.strip())",
        "a time with a fraction and a space before its offset is refused as no ISO 8601 time",
        (
            "tests/unit/test_time_words.py::test_an_until_with_a_space_before_its_offset_is_the_same_unit",
        ),
    ),
    Mutant(
        "login-event-any-time",
        "ledger/_stores/access.py",
        "    IF dated::timestamptz > clock_timestamp() + interval",
        "    IF false AND dated::timestamptz > clock_timestamp() + interval",
        "a worker's login renews its lease from heartbeats dated ahead of the server's clock, "
        "out of the sweep's sight (rev34)",
        (
            "tests/e2e/test_cli_access.py::test_a_worker_login_appends_only_events_dated_by_the_se"
            "rver_s_clock",
        ),
    ),
    Mutant(
        "verify-blind-to-dates-ahead",
        "ledger/_audit/walk.py",
        "        if at <= self.latest:\n",
        "        if True:\n",
        "verify says every chain holds over heartbeats dated ahead of the store's clock (rev34)",
        (
            "tests/integration/test_tamper.py::test_events_dated_ahead_of_the_store_s_clock_are_named",
        ),
    ),
    Mutant(
        "store-path-from-where-the-process-is-now",
        "ledger/_stores/settings.py",
        "        if self.directory:\n            return os.path.join(self.directory, self.path)\n",
        "",
        "a report in a process that changed directory reads another store at the relative path",
        ("tests/integration/test_store_file_replaced.py",),
    ),
    Mutant(
        "late-write-kept-sqlite",
        "ledger/_stores/recorders.py",
        '        refuse_if_late(kwargs.get("in_time"))\n',
        "",
        "a release held up past its lease's deadline by another writer's lock returns a stale "
        "profile to the pool on SQLite (rev34)",
        ("tests/integration/test_write_past_the_deadline.py",),
    ),
    Mutant(
        "late-write-kept-postgresql",
        "ledger/_stores/postgres.py",
        "    b\"SELECT 1 / (clock_timestamp() - now() <= $1::float8 * interval '1 second'\"\n"
        '    b" AND extract(epoch FROM clock_timestamp()) <= $2::float8)::int"\n',
        '    b"SELECT $1::float8 + $2::float8"\n',
        "a release held up past its lease's deadline by a lock returns a stale profile to the "
        "pool on PostgreSQL (rev34)",
        ("tests/integration/test_write_past_the_deadline.py",),
    ),
    Mutant(
        "late-write-kept-psycopg-path",
        "ledger/_stores/postgres.py",
        "                        curs.execute(sql, checked)\n",
        "                        pass\n",
        "a write held up past its lease's deadline is kept where it goes psycopg's way (rev34)",
        ("tests/integration/test_write_past_the_deadline.py",),
    ),
    Mutant(
        "late-write-never-timed",
        "ledger/_unit_of_work.py",
        "    if acting.role is not Role.WORKER or acting.lease_id is None:\n        return None\n",
        "    return None\n",
        "no worker's write is timed against its lease's deadline (rev34)",
        ("tests/integration/test_write_past_the_deadline.py",),
    ),
    Mutant(
        "keygen-takes-a-blank-name",
        "custody/_whole.py",
        "    if not given.strip():\n",
        "    if not given.strip() and False:\n",
        "keygen '' is an internal error, and a name of spaces writes a file named so (rev34)",
        ("tests/e2e/test_cli_files_to_write.py",),
    ),
    Mutant(
        "dash-writes-a-file-named-dash",
        "custody/_whole.py",
        '    if given == "-":\n',
        '    if given == "--":\n',
        "digest --out - and keygen - write a file named '-' (rev34)",
        ("tests/e2e/test_cli_files_to_write.py",),
    ),
    Mutant(
        "name-too-long-internal-error",
        "custody/_whole.py",
        "            if e.errno == errno.ENAMETOOLONG:\n",
        "            if e.errno == errno.ENAMETOOLONG and False:\n",
        "a file name over 255 bytes is an internal error, exit 1 (rev34)",
        ("tests/e2e/test_cli_files_to_write.py",),
    ),
    Mutant(
        "part-name-unchecked",
        "custody/_whole.py",
        '    beside = [path.with_name(part_name(path.name, "0" * 8))] if path.name else []\n',
        "    beside: list[Path] = []\n",
        "a name whose .part file beside it is too long is refused only after the work (rev34)",
        ("tests/e2e/test_cli_files_to_write.py",),
    ),
    Mutant(
        "register-line-unquoted",
        "custody/_render.py",
        "account {_said(result.account_id)}, proxy",
        "account {result.account_id}, proxy",
        "an account that reads as more of the register line is printed as it is (rev34)",
        ("tests/e2e/test_cli_texts.py",),
    ),
    Mutant(
        "fleet-account-unquoted",
        "custody/_fleet_output.py",
        '        f"  {one_part(a)}: {sum(c.values())} ({counted(c)})"\n',
        '        f"  {a}: {sum(c.values())} ({counted(c)})"\n',
        "an account that reads as two in the fleet summary is printed as it is (rev34)",
        ("tests/e2e/test_cli_texts.py",),
    ),
    Mutant(
        "registration-refusal-quotes-whole",
        "ledger/_domain/profile.py",
        '    return "none" if value is None else quoted(value)\n',
        '    return "none" if value is None else repr(value)\n',
        "a refused registration quotes a long value whole (rev34)",
        ("tests/unit/test_service_layer.py",),
    ),
    Mutant(
        "lock-named-by-spelling",
        "ledger/_stores/sql_views.py",
        '        path = Path(f"{self.settings.sqlite_real()}.{name}.lock")\n',
        '        path = Path(f"{self.settings.sqlite_file()}.{name}.lock")\n',
        "two sweeps under one command id run at once through a symlink and the real path (rev34)",
        ("tests/integration/test_store_file_replaced.py",),
    ),
    Mutant(
        "resend-says-now",
        "ledger/_handlers.py",
        "    return ResentAvailability(**dict(row)) if done.replayed else row\n",
        "    return row\n",
        "a resent quarantine says the profile is now quarantined after it moved on (rev34)",
        ("tests/e2e/test_cli_resent_answers.py",),
    ),
    Mutant(
        "deleted-working-directory-internal-error",
        "ledger/_stores/settings.py",
        "        except OSError:  # no working directory left to name the path against\n",
        "        except ValueError:  # no working directory left to name the path against\n",
        "a relative store in a deleted working directory is an internal error (rev34)",
        ("tests/integration/test_store_file_replaced.py",),
    ),
    Mutant(
        "worker-store-url-not-anchored",
        "workers/_held.py",
        "        self.store_url = Ledger.anchored_url(store_url)\n",
        "        self.store_url = store_url\n",
        "a worker that changes directory renews its lease in another directory's store (rev34)",
        ("tests/integration/test_store_file_replaced.py",),
    ),
    Mutant(
        "store-symlink-loop-internal-error",
        "ledger/_stores/settings.py",
        "        return Path(os.path.realpath(self.sqlite_opened()))\n",
        "        return Path(self.sqlite_opened()).resolve()\n",
        "a store path through a loop of links is an internal error (rev34)",
        ("tests/e2e/test_cli_files_to_write.py",),
    ),
    Mutant(
        "file-name-slash-dropped",
        "custody/_whole.py",
        '    if given.endswith("/"):  # rev34: pathlib drops the slash, '
        "and the file was written so\n",
        "    if False:\n",
        "digest --out new/ writes a file named new (rev34)",
        ("tests/e2e/test_cli_files_to_write.py",),
    ),
    Mutant(
        "resent-force-release-says-now",
        "ledger/_handlers.py",
        "    return release_result(done.profile, resent=done.replayed)\n",
        "    return release_result(done.profile)\n",
        "a resent force-release says the profile is review_required after it moved on (rev34)",
        ("tests/e2e/test_cli_resent_answers.py",),
    ),
    Mutant(
        "misdated-refused-not-decided-again",
        "ledger/_stores/postgres.py",
        "            if at == append and result.error_field(pq.DiagnosticField.SQLSTATE) == "
        "_MISDATED:\n",
        "            if False:\n",
        "a heartbeat decided before a stall fails as a refusal of the login's privilege (rev34)",
        ("tests/e2e/test_cli_access.py::test_a_decision_that_arrives_misdated_is_decided_again",),
    ),
    Mutant(
        "extension-ttl-unbounded",
        "ledger/_domain/events.py",
        "    ttl_seconds: TtlSeconds  # rev34 review: 10**9 s held a profile until 2058\n",
        "    ttl_seconds: int\n",
        "one extension of 10**9 s appended by a worker's login holds a profile for decades (rev34)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "naive-event-time-taken",
        "ledger/_domain/model.py",
        '    command: str = ""\n    at: AwareDatetime\n',
        '    command: str = ""\n    at: datetime\n',
        "an event dated without a zone passes verify and fails every command on its profile "
        "(rev34)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "mismatch-denial-quotes-whole",
        "ledger/_domain/denials.py",
        'message=f"profile belongs to account {p.account_id!r}, not {quoted(account_id)}"',
        'message=f"profile belongs to account {p.account_id!r}, not {account_id!r}"',
        "a checkout's 200-character account is quoted whole in its denial (rev34)",
        ("tests/unit/test_service_layer.py",),
    ),
    Mutant(
        "reused-command-id-quoted-whole",
        "ledger/_unit_of_work.py",
        'f"{quoted(command_id)} was already used on {profile_id} for {first}: send a new id"',
        'f"{command_id!r} was already used on {profile_id} for {first}: send a new id"',
        "a 200-character command id used before is quoted whole (rev34)",
        ("tests/unit/test_service_layer.py",),
    ),
    Mutant(
        "digest-refuses-only-broken-chains",
        "ledger/audit.py",
        "    _, found = _walked_and_found(ledger, walked, progress, beside)\n",
        "    _walk_and_check(ledger, walked, progress, beside)\n"
        "    found = [p.line() for p in walked.problems]\n",
        "digest signs a log whose tail was cut, or whose guards were dropped (rev35)",
        ("tests/integration/test_tamper.py", "tests/integration/test_append_only.py"),
    ),
    Mutant(
        "misdated-retried-thirty-times",
        "ledger/_unit_of_work.py",
        "                if misdated >= MISDATED_AT_MOST:\n",
        "                if False:\n",
        "a clock that is not the store's is told 'busy: 30 conflicting writes' (rev35)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_clock_that_is_not_the_stores_is_said_so_and_writes_nothing",
        ),
    ),
    Mutant(
        "misdated-clock-not-measured-again",
        "ledger/_stores/store.py",
        "            self.doubt_clock()  # the server's clock may have stepped since it was "
        "measured\n",
        "            pass\n",
        "a process decides on a clock offset the server stepped from until it ages out (rev35)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_measured_clock_the_server_stepped_from_is_measured_again_once_refused",
        ),
    ),
    Mutant(
        "ledger-threads-unturned",
        "ledger/_application.py",
        "        with self._turn():\n            return method(self, *args, **kwargs)\n",
        "        return method(self, *args, **kwargs)\n",
        "threads sharing a ledger are told an intact log cannot be read (rev35)",
        ("tests/integration/test_ledger_threads.py::test_threads_sharing_a_ledger_take_turns",),
    ),
    Mutant(
        "ledger-pickled-as-is",
        "ledger/_application.py",
        "    def __reduce__(self) -> Any:\n",
        "    def _reduce_unused(self) -> Any:\n",
        "a ledger handed to a spawned process fails on a lambda nobody wrote (rev35)",
        (
            "tests/integration/test_ledger_threads.py::test_a_ledger_is_not_pickled_and_says_what_to_do",
        ),
    ),
    Mutant(
        "commit-grace-past-the-deadline",
        "ledger/_unit_of_work.py",
        "COMMIT_GRACE_S = 0.0\n",
        "COMMIT_GRACE_S = 0.1\n",
        "a heartbeat kept after the service answered its lease lost renews it (rev35)",
        (
            "tests/integration/test_write_past_the_deadline.py::"
            "test_a_write_held_up_just_past_the_deadline_keeps_nothing",
        ),
    ),
    Mutant(
        "worker-event-past-deadline-taken",
        "ledger/_stores/access.py",
        "        IF acting = '{worker}'\n           AND due::timestamptz < clock_timestamp()",
        "        IF false AND acting = '{worker}'\n"
        "           AND due::timestamptz < clock_timestamp()",
        "a worker's login with its clock behind releases a lease past its deadline, clean (rev35)",
        (
            "tests/e2e/test_cli_access.py::test_a_worker_login_acts_on_its_lease_only_before_its_"
            "deadline_on_the_server_s_clock",
        ),
    ),
    Mutant(
        "stale-mark-before-deadline-taken",
        "ledger/_stores/access.py",
        "        IF acting = '{scheduler}'\n           AND due::timestamptz >",
        "        IF false AND acting = '{scheduler}'\n           AND due::timestamptz >",
        "a scheduler's login with its clock ahead settles a live lease (rev35)",
        (
            "tests/e2e/test_cli_access.py::test_a_scheduler_login_marks_stale_only_a_lease_past_"
            "its_deadline_on_the_server_s_clock",
        ),
    ),
    Mutant(
        "deadline-refusal-busy",
        "ledger/_unit_of_work.py",
        "                if isinstance(e, DeadlineRefused):\n",
        "                if False:\n",
        "a write the store judged past its deadline is retried 30 times, then called busy (rev35)",
        (
            "tests/e2e/test_cli_access.py::test_a_worker_login_acts_on_its_lease_only_before_its_"
            "deadline_on_the_server_s_clock",
        ),
    ),
    Mutant(
        "deadline-refusal-unmapped",
        "ledger/_stores/postgres.py",
        "            if at == append and result.error_field(pq.DiagnosticField.SQLSTATE) == "
        "_DEADLINE:\n",
        "            if False:\n",
        "the database's refusal of a late lease event reaches the worker as a driver's error",
        (
            "tests/e2e/test_cli_access.py::test_a_worker_login_acts_on_its_lease_only_before_its_"
            "deadline_on_the_server_s_clock",
        ),
    ),
    Mutant(
        "deadline-refusal-unmapped-psycopg-path",
        "ledger/_stores/postgres.py",
        "                    if isinstance(e, psycopg.Error) and e.sqlstate == DEADLINE_REFUSED:\n",
        "                    if False:\n",
        "through psycopg's way the database's refusal of a late lease event is a driver's error",
        (
            "tests/e2e/test_cli_access.py::test_a_worker_login_acts_on_its_lease_only_before_its_"
            "deadline_on_the_server_s_clock",
        ),
    ),
    Mutant(
        "door-trusts-built-commands",
        "ledger/_door.py",
        "        return _as_made(self, cls.kind, ())\n",
        "        return self\n",
        "a command built with model_construct goes past the door, recorded for good (rev35)",
        ("tests/integration/test_commands_built_unchecked.py",),
    ),
    Mutant(
        "door-check-after-the-store-is-opened",
        "ledger/_application.py",
        "        command = command.as_validated()\n        return self._handled(",
        "        return self._handled(",
        "a registration built with a bad id leaves an empty store behind (rev35)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_a_registration_built_unchecked_is_refused_before_a_store_is_made",
        ),
    ),
    Mutant(
        "door-notes-instances-let-through",
        "ledger/_door.py",
        "        if made is not data:  # made from input here, not an instance let through as it "
        "was\n",
        "        if True:\n",
        "a bad instance passed through model_validate is taken as checked (rev35)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "door-note-never-forgotten",
        "ledger/_door.py",
        "weakref.ref(made, partial(_forget, id(made)))",
        "weakref.ref(made)",
        "the door's notes of the commands it made grow for ever",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "door-held-model-unchecked",
        "ledger/_door.py",
        "            and not _holds_models(cls)\n",
        "",
        "a bad browser check inside a review built normally gets through (rev35)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "door-other-value-taken",
        "ledger/_door.py",
        "        elif held != value:\n",
        "        elif False:\n",
        "a value validation would make otherwise is recorded as given (rev35)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "door-other-types-kept",
        "ledger/_door.py",
        "    return model if same else made\n",
        "    return model\n",
        "an outcome given as text reaches the handlers instead of its enum (rev35)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "forked-child-releases-parents-lease",
        "workers/_held.py",
        "        return os.getpid() == self._taker\n",
        "        return True\n",
        "a child forked inside the checkout block releases its parent's lease (rev35)",
        ("tests/integration/test_worker_fork.py",),
    ),
    Mutant(
        "service-unknown-query-ignored",
        "service/_bodies.py",
        "        if name not in takes:\n",
        "        if False:\n",
        "POST /v1/sweep?dry_run=true sweeps for real; ?stat=stale answers every profile (rev35)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_query_parameter_the_resource_does_not_take_is_refused_writing_nothing",
        ),
    ),
    Mutant(
        "service-body-ignored-where-none-taken",
        "service/_bodies.py",
        "            else:\n                await _no_body(reading)\n",
        "            else:\n                pass\n",
        'a sweep sent {"dry_run": true} sweeps for real (rev35)',
        (
            "tests/integration/test_service_input.py::"
            "test_a_body_sent_to_a_resource_that_takes_none_is_refused_writing_nothing",
        ),
    ),
    Mutant(
        "service-body-key-field-whole",
        "service/_errors.py",
        '        field = ".".join(named(part) for part in where) or "body"\n',
        '        field = ".".join(where) or "body"\n',
        "an unknown body key is answered whole, twice, its terminal escapes raw (rev35)",
        (
            "tests/integration/test_service_input.py::"
            "test_an_unknown_body_key_is_named_cut_and_escaped",
        ),
    ),
    Mutant(
        "service-name-not-escaped",
        "service/_errors.py",
        "    return shown(quoted(name), repr_quoted=True)\n",
        "    return quoted(name)\n",
        "an invisible mark in a refused name stays hidden (rev35)",
        (
            "tests/integration/test_service_input.py::"
            "test_an_unknown_body_key_is_named_cut_and_escaped",
        ),
    ),
    Mutant(
        "service-plain-name-quoted",
        "service/_errors.py",
        "    return name if _PLAIN_NAME.fullmatch(name) else quoted_name(name)\n",
        "    return quoted_name(name)\n",
        "a plain field name comes back quoted ('account')",
        (
            "tests/integration/test_service_input.py::"
            "test_an_unknown_body_key_is_named_cut_and_escaped",
        ),
    ),
    Mutant(
        "door-trusts-altered-commands",
        "ledger/_door.py",
        "            and _same_objects(noted[1], self.__dict__)\n",
        "",
        "a command altered after validation made it is recorded, NUL and all (rev35)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_a_command_altered_after_it_was_made_is_checked_again",
        ),
    ),
    Mutant(
        "together-opens-before-the-door",
        "ledger/_application.py",
        "                checked.append((n, command.as_validated()))\n",
        "                checked.append((n, command))\n",
        "handle_together makes an empty store for a registration the door then refuses (rev35)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_a_registration_built_unchecked_is_refused_before_a_store_is_made",
        ),
    ),
    Mutant(
        "service-message-not-shown",
        "service/_errors.py",
        "    said = shown(joined, repr_quoted=True)\n",
        "    said = joined\n",
        "a refusal answers a caller's invisible characters raw (rev35)",
        (
            "tests/integration/test_service_input.py::"
            "test_an_account_no_profile_was_registered_under_is_quoted_cut_and_escaped",
        ),
    ),
    Mutant(
        "unknown-account-quoted-whole",
        "projections/_timeline.py",
        '    msg = f"no profile was ever registered under account {quoted(account_id)}"\n'
        '    raise InvalidInput("account", msg)\n',
        '    msg = f"no profile was ever registered under account {account_id!r}"\n'
        '    raise InvalidInput("account", msg)\n',
        "an account id of 60,000 characters is answered whole (rev35)",
        (
            "tests/integration/test_service_input.py::"
            "test_an_account_no_profile_was_registered_under_is_quoted_cut_and_escaped",
        ),
    ),
    Mutant(
        "service-key-taken-for-a-location",
        "service/_errors.py",
        '        where = loc[1:] if loc and loc[0] in ("body", "query", "path", "header") '
        "else loc\n",
        '        where = [p for p in loc if p not in ("body", "query", "path")]\n',
        "a body's unknown key 'query' is named 'body' (rev35)",
        (
            "tests/integration/test_service_input.py::"
            "test_an_unknown_body_key_is_named_cut_and_escaped",
        ),
    ),
    Mutant(
        "door-values-by-position",
        "ledger/_door.py",
        "    return fields is made and tuple(fields) == names and all(map(is_, values, "
        "fields.values()))\n",
        "    return all(map(is_, values, fields.values()))\n",
        "a command whose fields' names traded places after validation is recorded (rev35)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_a_command_altered_after_it_was_made_is_checked_again",
        ),
    ),
    Mutant(
        "service-lines-not-joined",
        "service/_errors.py",
        '    joined = " ".join(filter(None, (part.strip() for part in str(error).splitlines())))\n',
        "    joined = str(error)\n",
        "a caller's line break in a refusal comes back as the escape \\n (rev35)",
        (
            "tests/unit/test_service_metrics.py::"
            "test_a_refusal_is_answered_on_one_line_as_the_command_line_says_it",
        ),
    ),
    Mutant(
        "overlap-batch-unchecked",
        "ledger/_stores/recorders.py",
        "        earlier = [(p, d) for p, d in claims[:at] if overlap(directory, d)]\n",
        "        earlier: list[tuple[str, str]] = []\n",
        "two registrations in one batch on overlapping directories are both kept (rev36)",
        (
            "tests/integration/test_repository.py::"
            "test_an_overlap_names_the_first_holder_by_directory",
        ),
    ),
    Mutant(
        "rows-in-collation-order",
        "ledger/_stores/recorders.py",
        '    for row in sorted(rows, key=lambda row: str(row["profile_id"])):\n',
        "    for row in rows:\n",
        "availability rows come back in an ICU collation's order (rev36)",
        (
            "tests/integration/test_repository.py::"
            "test_an_icu_collation_changes_no_order_and_no_refusal",
        ),
    ),
    Mutant(
        "fake-batch-ids-unchecked",
        "tests/fakes.py",
        "                if command[0] in self.commands or command[0] in used:\n",
        "                if command[0] in self.commands:\n",
        "the fake keeps one command id given twice in a batch (rev36)",
        (
            "tests/integration/test_repository.py::"
            "test_a_batch_judges_each_save_against_the_saves_before_it",
        ),
    ),
    Mutant(
        "cluster-killed-by-sigterm",
        "tests/pg_cluster.py",
        "        _interrupt_on_sigterm()\n",
        "",
        "a benchmark stopped by SIGTERM leaves its server and directory behind (rev36)",
        ("tests/e2e/test_bench_fleet.py::test_sigterm_stops_the_service_the_load_and_the_cluster",),
    ),
    Mutant(
        "availability-naive-until",
        "ledger/_domain/row.py",
        "    until: AwareDatetime | None\n",
        "    until: datetime | None\n",
        "an availability deadline stored without its offset is read, and reads fail (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_an_availability_time_without_an_offset_is_a_damaged_row",
        ),
    ),
    Mutant(
        "status-shows-foreign-rows",
        "projections/_availability.py",
        "        (r, None) for r in readable if r.profile_id in registered\n",
        "        (r, None) for r in readable\n",
        "status shows a made-up row of a profile never registered (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_row_of_a_profile_never_registered_is_junk_to_every_read",
        ),
    ),
    Mutant(
        "fleet-counts-foreign-rows",
        "projections/_availability.py",
        "    readable = [r for r in readable if r.profile_id in registered]\n",
        "    readable = list(readable)\n",
        "fleet and the reports count a made-up row of a profile never registered (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_row_of_a_profile_never_registered_is_junk_to_every_read",
        ),
    ),
    Mutant(
        "status-drops-missing-rows",
        "projections/_availability.py",
        "    for pid in sorted(registered - {r.profile_id for r in readable}.union(damaged)):\n",
        "    for pid in sorted(set[str]()):\n",
        "status leaves out a registered profile whose row was deleted (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_deleted_availability_row_is_shown_by_status_marked_missing",
        ),
    ),
    Mutant(
        "availability-times-driver-text",
        "ledger/_stores/recorders.py",
        "    return kind is AwareDatetime or (isinstance(kind, type) and issubclass(kind, "
        "datetime))\n",
        "    return isinstance(kind, type) and issubclass(kind, datetime)\n",
        "availability times go to the driver as datetimes, stored in its text (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_the_ledger_writes_every_availability_time_with_its_offset",
        ),
    ),
    Mutant(
        "checklist-silent-on-foreign-rows",
        "reports/_checks.py",
        "        for pid in s.junk_rows\n",
        "        for pid in ()\n",
        "the checklist no longer names a made-up availability row (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_row_of_a_profile_never_registered_is_junk_to_every_read",
        ),
    ),
    Mutant(
        "missing-row-marked-damaged",
        "custody/_tables.py",
        "        if r.row_missing:\n",
        "        if False:\n",
        "status marks a deleted availability row as damaged, not missing (rev36)",
        (
            "tests/e2e/test_cli_availability_damage.py::"
            "test_status_shows_a_profile_whose_row_was_deleted_marked_missing",
        ),
    ),
    Mutant(
        "checkpoint-converted",
        "ledger/feed.py",
        "    return {n: p for n, p in _positions(cursor, dialect).items() if type(p) is int}\n",
        "    return {n: int(p) for n, p in _positions(cursor, dialect).items()}\n",
        "a checkpoint holding no position fails every read with a ValueError (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_junk_checkpoint_is_refused_by_reads_named_by_status_and_rebuilt",
        ),
    ),
    Mutant(
        "standing-junk-unchecked",
        "ledger/feed.py",
        '        if type(position := rows[0]["position"]) is not int:\n',
        '        if (position := rows[0]["position"]) is None:\n',
        "a read's own checkpoint holding no position is taken as one (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_junk_checkpoint_is_refused_by_reads_named_by_status_and_rebuilt",
        ),
    ),
    Mutant(
        "rebuild-claims-junk",
        "projections/_runner.py",
        "        folded = tx.claim_checkpoint(name, unreadable=0)\n",
        "        folded = tx.claim_checkpoint(name)\n",
        "the rebuild cannot repair a checkpoint holding no position (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_junk_checkpoint_is_refused_by_reads_named_by_status_and_rebuilt",
        ),
    ),
    Mutant(
        "status-junk-checkpoint-unsaid",
        "projections/_runner.py",
        "            if model.name in unreadable:  # rev36: was an internal error\n",
        "            if False:\n",
        "projections status does not name a checkpoint holding no position (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_junk_checkpoint_is_refused_by_reads_named_by_status_and_rebuilt",
        ),
    ),
    Mutant(
        "digest-converts-junk",
        "projections/_base.py",
        "                if isinstance(values[i], numbers.Real):\n",
        "                if values[i] is not None:\n",
        "projections status fails on text in a number column (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_projections_status_names_a_junk_cell_of_another_type",
        ),
    ),
    Mutant(
        "junk-by-nulls-only",
        "projections/_base.py",
        "            if not ((value is None and nullable) or type(value) in types)\n",
        "            if value is None and not nullable\n",
        "a read model's cell of another type is not named (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_projections_status_names_a_junk_cell_of_another_type",
        ),
    ),
    Mutant(
        "scan-junk-unseen",
        "projections/_verify.py",
        "                for column, value in model.unreadable(row):\n",
        "                for column, value in []:\n",
        "projections status does not name junk cells (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_projections_status_names_a_junk_cell_of_another_type",
        ),
    ),
    Mutant(
        "status-no-row-model",
        "projections/_base.py",
        "        if found or (model := self.row_model()) is None:\n",
        "        if True:\n",
        "projections status does not name a time that is no time (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_projections_status_names_a_time_that_is_no_time",
        ),
    ),
    Mutant(
        "timeline-version-unchecked",
        "projections/_timeline.py",
        "    if value is None or type(value) is int:\n",
        "    if True:\n",
        "replay --at fails on a junk version with a TypeError (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_replay_at_a_moment_refuses_a_junk_version_naming_the_rebuild",
        ),
    ),
    Mutant(
        "directory-rows-missing-unseen",
        "ledger/audit.py",
        "    kept = {row.profile_id for row in after}\n",
        "    kept = set(registered)\n",
        "verify passes a table of directories missing a registered profile's row (rev36)",
        (
            "tests/integration/test_directories.py::"
            "test_a_table_of_directories_unlike_the_registrations_is_named_by_verify_and_"
            "mended_by_init",
        ),
    ),
    Mutant(
        "directories-unmended",
        "ledger/_stores/migrations.py",
        "        _mend_directories(self)\n",
        "        pass\n",
        "custody init leaves a table of directories unlike the registrations (rev36)",
        (
            "tests/integration/test_directories.py::"
            "test_a_table_of_directories_unlike_the_registrations_is_named_by_verify_and_"
            "mended_by_init",
        ),
    ),
    Mutant(
        "shown-typed-backslash-kept",
        "ledger/_domain/model.py",
        "        if _READS_AS_AN_ESCAPE.match(after):\n",
        "        if False:\n",
        "a typed \\u200b displays as the character U+200B does (rev36)",
        (
            "tests/unit/test_shown_text.py::"
            "test_a_typed_escape_never_displays_as_the_character_it_names",
        ),
    ),
    Mutant(
        "shown-repr-quoted-ignored",
        "ledger/_domain/model.py",
        '            if c == "\\\\" and not repr_quoted:\n',
        '            if c == "\\\\":\n',
        "an error line's repr-quoted value has its backslashes doubled again (rev36)",
        ("tests/unit/test_shown_text.py::test_a_shown_text_shown_again_is_the_same",),
    ),
    Mutant(
        "shown-backslash-fast-path",
        "ledger/_domain/model.py",
        '        and (repr_quoted or "\\\\" not in text)\n',
        "",
        "text holding a typed escape takes the fast path and shows as it is (rev36)",
        (
            "tests/unit/test_shown_text.py::"
            "test_a_typed_escape_never_displays_as_the_character_it_names",
        ),
    ),
    Mutant(
        "one-line-escapes-twice",
        "custody/_text.py",
        "    line = printable(joined, repr_quoted=True)\n",
        "    line = printable(joined)\n",
        "an error line doubles the backslashes repr already wrote (rev36)",
        (
            "tests/unit/test_shown_text.py::"
            "test_an_error_line_quoting_a_value_keeps_repr_s_escapes_as_they_are",
        ),
    ),
    Mutant(
        "problem-escapes-twice",
        "service/_errors.py",
        "    said = shown(joined, repr_quoted=True)\n",
        "    said = shown(joined)\n",
        "the service's problem doubles the backslashes repr already wrote (rev36)",
        (
            "tests/unit/test_shown_text.py::"
            "test_an_error_line_quoting_a_value_keeps_repr_s_escapes_as_they_are",
        ),
    ),
    Mutant(
        "quoted-name-escapes-twice",
        "service/_errors.py",
        "    return shown(quoted(name), repr_quoted=True)\n",
        "    return shown(quoted(name))\n",
        "a quoted name in a problem doubles the backslashes repr already wrote (rev36)",
        (
            "tests/unit/test_shown_text.py::"
            "test_an_error_line_quoting_a_value_keeps_repr_s_escapes_as_they_are",
        ),
    ),
    Mutant(
        "console-refusal-escapes-twice",
        "service/_console.py",
        "        return shown(value, repr_quoted=True)\n",
        "        return shown(value)\n",
        "a console page's refusal doubles the backslashes repr already wrote (rev36)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_typed_escape_and_the_character_it_names_show_apart_on_pages",
        ),
    ),
    Mutant(
        "path-not-utf8-replaced",
        "service/_bodies.py",
        '        if b"%" not in raw or (b"%2F" not in raw and b"%2f" not in raw and _utf8(raw)):\n',
        '        if b"%" not in raw or (b"%2F" not in raw and b"%2f" not in raw):\n',
        "a path id that is no UTF-8 is quoted back as U+FFFD, never sent (rev36)",
        (
            "tests/integration/test_service_input.py::"
            "test_an_id_in_the_path_that_is_not_utf8_is_refused_quoting_what_was_sent",
            "tests/integration/test_console_forms.py::"
            "test_a_profile_id_that_is_not_utf8_is_refused_quoting_what_was_sent",
        ),
    ),
    Mutant(
        "ts-bad-port-accepted",
        "clients/typescript/src/client.ts",
        "    if (BAD_PORTS.has(base.port)) {\n",
        "    if (false) {\n",
        "the TypeScript client takes a base URL on a port fetch blocks (rev36)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "ts-bad-port-resent",
        "clients/typescript/src/worker.ts",
        "  return (error instanceof ServiceUnreachable && !refusedBeforeSending(error)) || "
        "lostAnswer(error);\n",
        "  return error instanceof ServiceUnreachable || lostAnswer(error);\n",
        "the Node worker resends a checkout fetch refused as a bad port, and warns (rev36)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "lag-of-foreign-rows",
        "service/_metrics.py",
        "        and r.profile_id in registered\n",
        "",
        "a made-up leased row sets every quantile of the heartbeat lag gauge (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_made_up_leased_row_gives_the_heartbeat_lag_gauge_nothing",
        ),
    ),
    Mutant(
        "time-form-unchecked",
        "ledger/_stores/recorders.py",
        "        if value is not None and (type(value) is not str or not "
        "_AS_WRITTEN.fullmatch(value)):\n",
        "        if False:\n",
        "an until stored as the same instant at +05:00 reads as sound; the sweep misses it (rev36)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_an_availability_time_in_another_form_is_a_damaged_row_the_sweep_takes_up",
        ),
    ),
    Mutant(
        "cluster-stopped-by-a-child",
        "tests/pg_cluster.py",
        "    if os.getpid() != _INTERRUPTED_IN:\n",
        "    if False:\n",
        "a forked child ended by SIGTERM stops its parent's cluster (rev36)",
        (
            "tests/integration/test_pg_cluster_signals.py::"
            "test_a_forked_child_ended_by_sigterm_leaves_the_sessions_server",
        ),
    ),
    Mutant(
        "init-missing-not-read-again",
        "ledger/_stores/migrations.py",
        "    if missing:  # those registered between the reads have their rows: not missing after "
        "all\n",
        "    if False:\n",
        "init beside live registrations says rows they just wrote were missing (rev36)",
        (
            "tests/integration/test_directories_init_race.py::"
            "test_init_beside_registrations_keeps_every_directory_row",
        ),
    ),
    Mutant(
        "line-ids-as-they-are",
        "ledger/_domain/model.py",
        "    return one_part(value) if shown(value) == value else repr(value)\n",
        "    return one_part(value)\n",
        "a worker typed w\\u200b1 and one holding U+200B read alike in a denial's line (rev36)",
        ("tests/integration/test_lines_tell_ids_apart.py",),
    ),
    Mutant(
        "generated-directories-unwritten",
        "bench/scale_data.py",
        "            batch.directories.append((profile_id, normalised(directory)))\n",
        "            pass\n",
        "the benchmarks' generated fleet fails verify, and bench/verify.py stops (rev36)",
        ("tests/integration/test_scale_data.py::test_a_generated_store_passes_verify",),
    ),
    Mutant(
        "fleet-damaged-rows-unnamed",
        "reports/_fleet.py",
        "        damaged_rows={r.profile_id: r.damaged for r in rows if r.damaged},\n",
        "        damaged_rows={},\n",
        "fleet counted a profile whose availability row was deleted without naming it (rev37)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_the_fleet_names_the_rows_it_counts_from_events_and_the_junk_it_leaves_out",
        ),
    ),
    Mutant(
        "fleet-junk-rows-unprinted",
        "custody/_fleet_output.py",
        "        for p in fleet.junk_rows\n",
        "        for p in ()\n",
        "fleet's lines left out a made-up row of no registered profile (rev37)",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_the_fleet_names_the_rows_it_counts_from_events_and_the_junk_it_leaves_out",
        ),
    ),
    Mutant(
        "misdated-bound-at-transaction-start",
        "ledger/_stores/access.py",
        "        OR dated::timestamptz < clock_timestamp() - interval '{CLOCK_SLACK_SECONDS} "
        "seconds' THEN\n",
        "        OR dated::timestamptz < now() - interval '{CLOCK_SLACK_SECONDS} seconds' THEN\n",
        "a login's long transaction dated an event a minute before the server's clock (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_login_s_long_transaction_dates_no_event_a_minute_before_the_server_s_clock",
        ),
    ),
    Mutant(
        "lease-started-anywhen",
        "ledger/_domain/state.py",
        "        if given != at:\n",
        "        if False:\n",
        "the fold took a lease started in 2099 by an acquisition dated now (rev37)",
        (
            "tests/unit/test_never_decided.py::"
            "test_an_event_the_ledger_never_decides_is_believed_by_no_fold",
        ),
    ),
    Mutant(
        "db-lease-started-anywhen",
        "ledger/_stores/access.py",
        "        state #>> '{{lease,lease_started_at}}' IS DISTINCT FROM dated\n",
        "        false\n",
        "the database took a worker login's lease started in 2099 (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_worker_login_acquires_only_a_lease_started_at_its_event_s_time",
        ),
    ),
    Mutant(
        "db-times-any-form",
        "ledger/_stores/access.py",
        "        IF given IS NOT NULL AND (given !~ '^{ev.TIME_FORM}$' "
        "OR given::timestamptz IS NULL) THEN\n",
        "        IF false THEN\n",
        "the database took a worker login's deadline written +00:00: no sweep settles it (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_worker_login_writes_a_lease_s_times_only_as_custody_writes_them",
        ),
    ),
    Mutant(
        "verify-times-any-form",
        "ledger/_audit/walk.py",
        "            if given is not None and not (isinstance(given, str) "
        "and _TIME.fullmatch(given)):\n",
        "            if False:\n",
        "verify said nothing of a deadline written +00:00 stored before the check (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_worker_login_writes_a_lease_s_times_only_as_custody_writes_them",
        ),
    ),
    Mutant(
        "reviewer-quarantine-forgets-runs",
        "ledger/_domain/profile.py",
        "                unclean_leases=list(listed),\n",
        "                unclean_leases=[],\n",
        "a reviewer's quarantine verdict let a worker whose run it listed clear it (rev37)",
        (
            "tests/integration/test_lifecycle.py::"
            "test_a_reviewer_s_quarantine_keeps_the_runs_its_quarantine_listed",
        ),
    ),
    Mutant(
        "replay-stale-since-lease-start",
        "reports/_replay.py",
        "        since=denial.since if denial else view.since,\n",
        "        since=view.since,\n",
        "replay said a lease past its deadline was stale since it began (rev37)",
        (
            "tests/integration/test_explain_because.py::"
            "test_every_read_says_a_lease_past_its_deadline_is_stale_since_the_deadline",
        ),
    ),
    Mutant(
        "frozen-clock-late-forever",
        "ledger/_unit_of_work.py",
        "                late = late or isinstance(e, LateSave)  "
        "# decided again, as the lease stands\n",
        "                pass\n",
        "a worker's write on a given clock frozen at its deadline ended 'busy' (rev37)",
        (
            "tests/integration/test_write_past_the_deadline.py::"
            "test_a_worker_s_write_on_a_frozen_clock_at_its_deadline_is_kept",
        ),
    ),
    Mutant(
        "sqlite-late-save-a-conflict",
        "ledger/_stores/recorders.py",
        '        raise LateSave("decided before its lease\'s deadline, written after it")\n',
        "        raise LateSave.__base__(\"decided before its lease's deadline, written after "
        'it")\n',
        "a late save on SQLite was a plain conflict, retried as contention (rev37)",
        (
            "tests/integration/test_repository.py::"
            "test_a_save_past_its_time_is_late_and_keeps_nothing",
        ),
    ),
    Mutant(
        "postgres-late-save-a-conflict",
        "ledger/_stores/postgres.py",
        "    return LateSave(said, by_the_store=by_the_store)\n",
        "    return LateSave.__base__(said)\n",
        "a late save on PostgreSQL was a plain conflict, retried as contention (rev37)",
        (
            "tests/integration/test_repository.py::"
            "test_a_save_past_its_time_is_late_and_keeps_nothing",
        ),
    ),
    Mutant(
        "db-registration-any-stream",
        "ledger/_stores/access.py",
        "        IF NEW.originator_id IS DISTINCT FROM custody_profile_stream(named) THEN\n",
        "        IF FALSE THEN\n",
        "an operator's login registered a profile in a stream of its own, or twice (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_an_operator_login_registers_a_profile_only_in_its_own_stream",
        ),
    ),
    Mutant(
        "db-uuid5-without-version",
        "ledger/_stores/access.py",
        "        || lpad(to_hex((h[2] & 4294905855) | 20480), 8, '0')\n",
        "        || lpad(to_hex(h[2]), 8, '0')\n",
        "the database's UUID 5 of a profile is not Python's: honest registrations refused (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_an_operator_login_registers_a_profile_only_in_its_own_stream",
        ),
    ),
    Mutant(
        "fold-foreign-streams",
        "projections/_runner.py",
        '        own = [n for n in events if n.of(n.data()["profile_id"])]\n',
        "        own = list(events)\n",
        "a registration outside its profile's stream wedged every timeline (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_outside_its_profile_s_stream_fails_no_read_of_the_fleet",
        ),
    ),
    Mutant(
        "stray-registration-registers",
        "ledger/_stores/store.py",
        "                    ) == stream_id(pid):\n",
        "                    ) == stream_id(pid) or True:\n",
        "status refused the whole fleet for a registration outside its stream (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_outside_its_profile_s_stream_fails_no_read_of_the_fleet",
        ),
    ),
    Mutant(
        "init-19-names-no-strays",
        "ledger/_stores/migrations.py",
        "    if made_before and found < 19:\n",
        "    if False:\n",
        "init to schema 19 said nothing of registrations already outside their stream (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_init_to_schema_19_names_the_registrations_outside_their_profile_s_stream",
        ),
    ),
    Mutant(
        "stream-counts-of-strays",
        "ledger/feed.py",
        "        return {named[stream]: count for stream, count in counts.items() "
        "if stream in named}\n",
        "        return {named.get(stream, stream): count for stream, count in counts.items()}\n",
        "projections status counted a stray stream's events as a profile's (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_outside_its_profile_s_stream_fails_no_read_of_the_fleet",
        ),
    ),
    Mutant(
        "partial-rebuild-thrown-away",
        "custody/_reading.py",
        "                return PartlyRebuilt(done, each, error, todo[n + 1 :])\n",
        "                raise\n",
        "a rebuild failing on one read model said nothing of those it rebuilt (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_rebuild_of_every_read_model_that_fails_on_one_says_what_it_did",
        ),
    ),
    Mutant(
        "runner-deaf-between-batches",
        "projections/_runner.py",
        "    return len(found) < batch or (stop is not None and stop.is_set())\n",
        "    return len(found) < batch\n",
        "projections run ignored SIGTERM for minutes while writers kept its batches full (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_runner_told_to_stop_mid_catch_up_stops_between_two_batches",
        ),
    ),
    Mutant(
        "runner-outage-after-batch-fatal",
        "projections/_runner.py",
        "                    begun = progress.batches > 0 and not last\n",
        "                    begun = False\n",
        "a store outage in a long first catch-up ended projections run with exit 6 (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_runner_whose_sessions_end_mid_first_catch_up_catches_up_at_the_next_wake_up",
        ),
    ),
    Mutant(
        "rebuild-gap-silent",
        "projections/_runner.py",
        "    if position < head:  # as far as the live table had folded, short of events "
        "committed\n",
        "    if False:\n",
        "a rebuild held at an open append's gap said nothing of the events past it (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_rebuild_held_at_an_open_appends_gap_says_so",
        ),
    ),
    Mutant(
        "runner-startup-sigterm-ignored",
        "custody/_reading.py",
        "        if _TERMINATED:\n",
        "        if False:\n",
        "projections run SIGTERMed while it started was killed without a word (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_runner_stopped_by_sigterm_while_it_starts_up_exits_0",
        ),
    ),
    Mutant(
        "rebuild-sigterm-kills",
        "custody/_watch.py",
        "    previous = signal.signal(signal.SIGTERM, on_signal)\n",
        "    previous = signal.getsignal(signal.SIGTERM)\n",
        "a rebuild SIGTERMed left its copy behind without a word (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_rebuild_stopped_by_sigterm_drops_its_copy_and_says_so",
        ),
    ),
    Mutant(
        "empty-command-id-made-up",
        "custody/_commands.py",
        '    if value == "":\n',
        "    if False:\n",
        "--command-id '' was replaced by a random id, and a resend applied twice (rev37)",
        (
            "tests/e2e/test_cli_resent_answers.py::"
            "test_an_empty_command_id_is_bad_input_and_writes_nothing",
        ),
    ),
    Mutant(
        "resent-release-unmarked",
        "ledger/_handlers.py",
        "    return release_result(released.profile, resent=released.replayed)\n",
        "    return release_result(released.profile)\n",
        "a resent release said the profile is back in the pool while another held it (rev37)",
        (
            "tests/integration/test_command_ids.py::"
            "test_a_resent_release_says_its_answer_is_as_recorded_not_now",
        ),
    ),
    Mutant(
        "resent-release-result-plain",
        "ledger/_domain/results.py",
        "    answer = ResentReleaseResult if resent else ReleaseResult\n",
        "    answer = ReleaseResult\n",
        "a resent release's answer carried no resent mark (rev37)",
        (
            "tests/integration/test_command_ids.py::"
            "test_a_resent_release_says_its_answer_is_as_recorded_not_now",
        ),
    ),
    Mutant(
        "resent-release-says-is",
        "ledger/_domain/results.py",
        '    if resent:  # a worker\'s release too (rev37: "rr is back in the pool" of a leased '
        "profile)\n",
        "    if False:\n",
        "a resent release's line said where the profile is now, from what it was (rev37)",
        (
            "tests/integration/test_command_ids.py::"
            "test_a_resent_release_says_its_answer_is_as_recorded_not_now",
        ),
    ),
    Mutant(
        "service-resent-release-off-schema",
        "service/_app.py",
        "            return answered(within(await write(command, key), answer))\n",
        "            return answered(await write(command, key))\n",
        "a resent release's body over HTTP broke the published schema (rev37)",
        (
            "tests/integration/test_service.py::"
            "test_a_resent_release_says_its_answer_is_as_recorded",
        ),
    ),
    Mutant(
        "sweep-halts-on-a-refusal",
        "ledger/_handlers.py",
        "            if isinstance(answer, StoreUnavailable):\n",
        "            if isinstance(answer, StoreUnavailable | Forbidden):\n",
        "one profile the database refused stopped the sweep of the fleet (rev37)",
        ("tests/e2e/test_access_sweep_past_a_refused_profile.py",),
    ),
    Mutant(
        "sweep-batch-refused-whole",
        "ledger/_unit_of_work.py",
        "                if not refused.by_database:\n                    raise\n",
        "                raise\n",
        "a batch of the sweep refused for one profile settled none of the others (rev37)",
        ("tests/e2e/test_access_sweep_past_a_refused_profile.py",),
    ),
    Mutant(
        "whole-numbers-as-int-reads-them",
        "custody/_wiring.py",
        "    if not isinstance(value, str) or not _plainly(value):\n",
        "    if not isinstance(value, str):\n",
        "--token 1_0 was read as 10, and ' ٣ ' as 3 (rev37)",
        ("tests/e2e/test_cli_hostile.py::test_a_whole_number_is_ascii_digits_only",),
    ),
    Mutant(
        "db-any-profile-id",
        "ledger/_stores/access.py",
        "    IF json_typeof(state -> 'profile_id') <> 'string' "
        "OR named !~ '^{PROFILE_ID_PATTERN}$' THEN\n",
        "    IF false THEN\n",
        "an operator's login registered 'a b' in its own stream; status refused the fleet (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_an_operator_login_registers_a_profile_only_in_its_own_stream",
        ),
    ),
    Mutant(
        "db-envelope-time-loose",
        "ledger/_stores/access.py",
        "    IF dated IS NULL OR dated !~ '^{ev.TIME_FORM}$' THEN\n",
        "    IF dated IS NULL OR dated !~ "
        "'^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9:.]+Z$' THEN\n",
        "a login's event dated with nine digits of a second was taken (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_worker_login_appends_only_events_dated_by_the_server_s_clock",
        ),
    ),
    Mutant(
        "registrations-of-any-id",
        "ledger/_stores/store.py",
        "    if takes_profile_id(named):\n",
        "    if isinstance(named, str):\n",
        "a registration of 'a b' made status refuse the whole fleet as bad input (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_of_no_profile_id_custody_takes_fails_no_read_or_init",
        ),
    ),
    Mutant(
        "fold-any-profile-id",
        "ledger/feed.py",
        "        if not takes_profile_id(profile_id):\n            return False\n",
        "",
        "a registration of 'a b' was folded into a timeline row no profile has (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_of_no_profile_id_custody_takes_fails_no_read_or_init",
        ),
    ),
    Mutant(
        "verify-any-profile-id",
        "ledger/_audit/walk.py",
        "        if isinstance(named, str) and not takes_profile_id(named):\n",
        "        if False:\n",
        "verify said every chain holds beside a registration of 'a b' (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_of_no_profile_id_custody_takes_fails_no_read_or_init",
        ),
    ),
    Mutant(
        "verify-shortcut-any-profile-id",
        "ledger/_audit/walk.py",
        "    if not takes_profile_id(profile_id):\n        return None\n",
        "",
        "verify's shortcut passed a registration of 'a b' as intact (rev37)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_registration_of_no_profile_id_custody_takes_fails_no_read_or_init",
        ),
    ),
    Mutant(
        "rebuild-refused-login-as-partial",
        "custody/_reading.py",
        '                if not done or getattr(error, "by_database", False):\n',
        "                if not done:\n",
        "a role's login's rebuild no longer said it is the owner's command (rev37)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_the_owners_commands_under_a_roles_login_say_the_owner_runs_them",
        ),
    ),
    Mutant(
        "sweep-id-taken-last",
        "ledger/_handlers.py",
        "        _begun(uow, c, c.command_id)\n",
        "",
        "a heartbeat took a running sweep's id; a sweep cut short left its id free (rev37)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_heartbeat_under_a_running_sweep_s_id_is_refused_and_writes_nothing",
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_resend_of_a_sweep_cut_short_answers_every_lease_it_settled",
        ),
    ),
    Mutant(
        "sweep-id-taken-quietly",
        "ledger/_stores/sql.py",
        "            \"VALUES (?, '', 0, ?)\",\n",
        "            \"VALUES (?, '', 0, ?) ON CONFLICT (command_id) DO NOTHING\",\n",
        "a sweep whose id another command took swept all the same (rev37)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_whose_id_another_command_takes_before_it_does_writes_nothing",
        ),
    ),
    Mutant(
        "sweep-id-refusal-ignored",
        "ledger/_handlers.py",
        '    if not uow.repository.record_sweep(command_id, f"{c.fingerprint()}\\n{begun}"):\n',
        '    if not uow.repository.record_sweep(command_id, f"{c.fingerprint()}\\n{begun}") '
        "and False:\n",
        "a sweep went on past an id it could not take (rev37)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_whose_id_another_command_takes_before_it_does_writes_nothing",
        ),
    ),
    Mutant(
        "sweep-cut-short-only-answered",
        "ledger/_handlers.py",
        "        resumed = _cut_short(uow, c.command_id)\n",
        "        resumed = None\n",
        "a resent sweep cut short answered the few settled and left the rest overdue (rev37)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_resend_of_a_sweep_cut_short_answers_every_lease_it_settled",
        ),
    ),
    Mutant(
        "sweep-answer-unrecorded",
        "ledger/_handlers.py",
        "        uow.repository.record_sweep(_answered(c.command_id), recorded)\n",
        "",
        "a resent sweep lost the failures its first answer named (rev37)",
        (
            "tests/unit/test_service_layer.py::"
            "test_a_sweep_reports_a_failure_in_text_every_export_keeps_and_answers_it_again",
        ),
    ),
    Mutant(
        "sweep-endings-of-any-sweep",
        "ledger/_stores/store.py",
        "                    if event.envelope.command_id == sweep_id:\n",
        "                    if True:\n",
        "a resent sweep cut short listed leases a later sweep settled (rev37)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_resend_of_a_sweep_cut_short_answers_no_other_sweep_s_leases",
        ),
    ),
    Mutant(
        "whole-rebuild-interrupt-named-otherwise",
        "custody/_reading.py",
        '            self.code, said, self.error = INTERRUPTED, "interrupted", "Interrupted"\n',
        '            self.code, said = INTERRUPTED, "interrupted"\n',
        "an interrupted rebuild of every read model named its error KeyboardInterrupt (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_whole_rebuild_stopped_by_sigterm_after_one_read_model_says_interrupted",
        ),
    ),
    Mutant(
        "runner-beside-damage-deaf",
        "projections/_runner.py",
        "            _catch_up(ledger.feed, model, model.name, model.table.name, batch, stop, "
        "progress)\n",
        "            _catch_up(ledger.feed, model, model.name, model.table.name, batch, None, "
        "progress)\n",
        "projections run beside a damaged read model ignored SIGTERM for its backlog (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_runner_beside_a_damaged_read_model_stops_between_two_batches",
        ),
    ),
    Mutant(
        "runner-beside-damage-uncounted",
        "projections/_runner.py",
        "            _catch_up(ledger.feed, model, model.name, model.table.name, batch, stop, "
        "progress)\n",
        "            _catch_up(ledger.feed, model, model.name, model.table.name, batch, stop)\n",
        "a server restart beside a damaged read model ended projections run, exit 6 (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_runner_beside_a_damaged_read_model_whose_sessions_end_catches_up_again",
        ),
    ),
    Mutant(
        "single-round-folds-unsaid",
        "projections/_runner.py",
        "                    if not begun and progress.events:  "
        "# what it did is kept: said (rev37)\n",
        "                    if False:\n",
        "projections run --rounds 1 ended by an outage never said what it folded (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_single_round_whose_sessions_end_says_what_it_folded_before",
        ),
    ),
    Mutant(
        "rebuild-startup-sigterm-unheard",
        "custody/_reading.py",
        '    if ctx.invoked_subcommand in ("run", "rebuild"):\n',
        '    if ctx.invoked_subcommand == "run":\n',
        "projections rebuild SIGTERMed as it started died without a line (rev37)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_rebuild_stopped_by_sigterm_while_it_starts_up_says_interrupted",
        ),
    ),
    Mutant(
        "grant-sends-password",
        "ledger/_stores/access.py",
        'LOGIN PASSWORD %L", login, verifier)',
        'LOGIN PASSWORD %L", login, password)',
        "access grant sent the plain password, which the server's log kept (rev38)",
        ("tests/e2e/test_grant_password_kept_from_log.py",),
    ),
    Mutant(
        "url-nul",
        "ledger/_stores/settings.py",
        '            if "\\0" in value:\n',
        "            if False:\n",
        "a NUL in a PostgreSQL URL cut the value short and named another store (rev38)",
        ("tests/unit/test_store_urls.py::test_a_url_naming_no_store_is_invalid_input_naming_why",),
    ),
    Mutant(
        "host-labels",
        "ledger/_stores/settings.py",
        '        host.encode("idna")\n',
        "        pass\n",
        "a host with an empty or overlong label was an internal error (rev38)",
        ("tests/unit/test_store_urls.py::test_a_url_naming_no_store_is_invalid_input_naming_why",),
    ),
    Mutant(
        "sqlite-foreign-columns",
        "ledger/_stores/sql.py",
        "        if not _SQLITE_COLUMNS[table] <= columns:\n",
        "        if False:\n",
        "another application's empty stored_events was taken for an init cut short (rev38)",
        (
            "tests/integration/test_stores.py::"
            "test_another_applications_empty_table_of_the_librarys_name_is_refused_on_sqlite",
        ),
    ),
    Mutant(
        "pg-schema-columns",
        "ledger/_stores/sql.py",
        '    SCHEMA_TABLE: {"id", "version"},\n',
        "    SCHEMA_TABLE: set(),\n",
        "a foreign custody_schema on PostgreSQL failed init with 'no such column' (rev38)",
        (
            "tests/integration/test_stores.py::"
            "test_another_applications_schema_table_is_refused_on_postgresql",
        ),
    ),
    Mutant(
        "describe-unencoded",
        "ledger/_stores/settings.py",
        'return f"sqlite:///{_path_in_url(self.path)}"',
        'return f"sqlite:///{self.path}"',
        "init named a store by a URL that pasted back opened another file (rev38)",
        (
            "tests/unit/test_store_urls.py::"
            "test_a_sqlite_store_is_described_by_a_url_naming_the_same_file",
        ),
    ),
    Mutant(
        "service-trailing-slash-redirect",
        "service/_app.py",
        "        redirect_slashes=False,\n",
        "",
        "a trailing-slash path was a 307 to the Host header's origin, resent by curl -L (rev38)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_path_with_a_trailing_slash_is_404_never_a_redirect",
        ),
    ),
    Mutant(
        "service-openapi-unchecked",
        "service/_app.py",
        "        openapi_url=None,  # served below as a resource, under the API's rules"
        " for a request\n",
        "",
        "/openapi.json took any query and a GET body (rev38)",
        (
            "tests/integration/test_service_input.py::"
            "test_every_get_the_service_answers_refuses_a_query_or_a_body_it_does_not_read",
        ),
    ),
    Mutant(
        "console-store-down-json",
        "service/_console.py",
        "        except (LedgerError, Refused) as error:\n"
        "            # A role that may not review (403)",
        "        except Refused as error:\n            # A role that may not review (403)",
        "the console's token lookup with the store down answered JSON without its headers (rev38)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_store_out_of_reach_is_the_consoles_page_with_its_headers",
        ),
    ),
    Mutant(
        "console-503-no-retry-after",
        "service/_console.py",
        "        answer.headers.update(headers)\n",
        "",
        "the console's 503 page dropped Retry-After (rev38)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_store_out_of_reach_is_the_consoles_page_with_its_headers",
        ),
    ),
    Mutant(
        "console-form-field-twice",
        "service/_console.py",
        "        if len(values) > 1:\n",
        "        if False:\n",
        "a repeated review-form field was resolved to its first value (rev38)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_console_form_giving_a_field_twice_is_refused_writing_nothing",
        ),
    ),
    Mutant(
        "console-query-ignored",
        "service/_console.py",
        '                    _query_read_one_way(request.scope["query_string"], frozenset())\n',
        "",
        "a console page took any query parameter unread (rev38)",
        (
            "tests/integration/test_service_input.py::"
            "test_every_get_the_service_answers_refuses_a_query_or_a_body_it_does_not_read",
        ),
    ),
    Mutant(
        "console-get-body-ignored",
        "service/_console.py",
        "                    if not takes_body:\n",
        "                    if False:\n",
        "a console GET took a body unread (rev38)",
        (
            "tests/integration/test_service_input.py::"
            "test_every_get_the_service_answers_refuses_a_query_or_a_body_it_does_not_read",
        ),
    ),
    Mutant(
        "ts-dot-segment-sent",
        "clients/typescript/src/client.ts",
        "    if (DOT_SEGMENT.test(value)) {\n",
        "    if (false) {\n",
        "the TypeScript client sent a '.' id, which new URL() collapsed onto another resource",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_exits_as_the_command_line_when_nothing_is_leased",
        ),
    ),
    Mutant(
        "node-example-typeerror-exit-1",
        "clients/typescript/examples/worker.ts",
        "    if (lease === null && error instanceof TypeError) {\n",
        "    if (lease === null && error instanceof RangeError) {\n",
        "the example worker exited 1 for input the client refused before sending (rev38)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_exits_as_the_command_line_when_nothing_is_leased",
        ),
    ),
    Mutant(
        "verify-reads-a-text-state",
        "ledger/_stores/sql.py",
        "\"+ 2 * (typeof(topic) = 'blob') + 4 * (typeof(state) = 'text')\"",
        "\"+ 2 * (typeof(topic) = 'blob') + 0 * (typeof(state) = 'text')\"",
        "verify walked an SQLite event whose state is text as custody's own (rev38)",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "walk-names-cells-of-another-kind",
        "ledger/_audit/walk.py",
        "        if odd:\n            self._kinds(row, taken, odd)\n",
        "        if False:\n            self._kinds(row, taken, odd)\n",
        "the walk named no event whose cell is of another kind than custody stores (rev38)",
    ),
    Mutant(
        "feed-reads-the-stream-id-once",
        "ledger/feed.py",
        "self._event = decode(n.topic, n.state, self._stream(), n.version, shown=True)\n",
        "self._event = decode(n.topic, n.state, n.originator_id, n.version, shown=True)\n",
        "a blob stream id was an internal error of timeline and the read models (rev38)",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "feed-hands-a-text-state-on",
        "ledger/_stores/sql_views.py",
        "    return stored if isinstance(stored, str) else bytes(stored)",
        "    return bytes(stored)",
        "a text state was an internal error of timeline and the read models (rev38)",
        ("tests/integration/test_junk_cells.py",),
    ),
    Mutant(
        "verify-names-a-blob-snapshot-id",
        "ledger/audit.py",
        "    snapshot_problems += _mistyped_snapshots(state, mistyped)\n",
        "    snapshot_problems += []\n",
        "a snapshot whose stream id is a blob made verify loop for ever (rev38)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "digest-position-checked",
        "ledger/audit.py",
        "    elif size and (at := state.positions.get(size)) != recorded.tree.position:\n",
        "    elif False and (at := state.positions.get(size)) != recorded.tree.position:\n",
        "verify --digest passed a log renumbered since the digest (rev38)",
        ("tests/integration/test_tamper.py",),
    ),
    Mutant(
        "inspector-spelling-only",
        "workers/_inspector.py",
        "        return os.path.samefile(path, user_data_dir)\n",
        "        return False\n",
        "a browser on a symlink to the profile's directory was called a stale lock (rev38)",
        ("tests/e2e/test_inspector_chromium.py",),
    ),
    Mutant(
        "inspector-relative-unresolved",
        "workers/_inspector.py",
        "            value = os.path.join(proc.cwd, value)\n",
        "            pass\n",
        "a relative --user-data-dir was read against the inspector's cwd (rev38)",
        ("tests/unit/test_inspector_judgement.py",),
    ),
    Mutant(
        "release-after-stop-unbounded",
        "workers/_renewal.py",
        "            if signalled is not None and signalled.waited_enough():\n",
        "            if False:\n",
        "a stopped worker resent its release until the lease's deadline (rev38)",
        (
            "tests/integration/test_sdk_stops_beside_a_held_store.py::"
            "test_a_stopped_worker_leaves_its_lease_to_go_stale_within_seconds[sqlite-sync-15-143]",
        ),
    ),
    Mutant(
        "sigint-not-a-stop",
        "workers/aio/_leases.py",
        "        self._signalled.left_by(error)  # SIGINT stops the process as SIGTERM does\n",
        "",
        "Ctrl-C waited for the store until the lease's deadline (rev38)",
        ("tests/integration/test_sdk_stops_beside_a_held_store.py",),
    ),
    Mutant(
        "lost-lease-waits-for-its-watch",
        "workers/_held.py",
        "        if not self._guard.held() or self._signalled.stopped_at is not None:\n",
        "        if self._signalled.stopped_at is not None:\n",
        "a lost lease's block waited for a watch stuck in a store call (rev38)",
        ("tests/integration/test_sdk_stops_beside_a_held_store.py",),
    ),
    Mutant(
        "app-cancellation-is-a-stop",
        "workers/_termination.py",
        "            isinstance(error, asyncio.CancelledError) and _runner_interrupted()\n",
        "            isinstance(error, asyncio.CancelledError)\n",
        "an application's own cancellation gave its release up after 5 s, left live (rev38)",
        (
            "tests/integration/test_sdk_stops_beside_a_held_store.py::"
            "test_a_block_the_application_cancels_is_released_once_the_store_answers",
        ),
    ),
    Mutant(
        "asyncio-sigint-not-seen",
        "workers/_termination.py",
        "    return isinstance(count, int) and count > 0\n",
        "    return False\n",
        "Ctrl-C under asyncio.run waited for the store until the lease's deadline (rev38)",
        (
            "tests/integration/test_sdk_stops_beside_a_held_store.py::"
            "test_a_stopped_worker_leaves_its_lease_to_go_stale_within_seconds[sqlite-aio-2--2]",
        ),
    ),
    Mutant(
        "lost-release-answer-not-resent",
        "workers/_renewal.py",
        "                if answer_lost and not last_try:\n",
        "                if False:\n",
        "a stopped worker's release that committed, its answer lost, was said left live (rev38)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "lost-release-answer-forgotten",
        "workers/_renewal.py",
        "            answer_lost = answer_lost or down.lost\n",
        "            answer_lost = False\n",
        "a release whose answer was lost was given up past the stop wait (rev38)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "projections-sigterm-handler-left",
        "custody/_reading.py",
        "        ctx.call_on_close(lambda: signal.signal(signal.SIGTERM, previous))\n",
        "",
        "run and rebuild in a process that goes on left their early SIGTERM handler (rev38)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_run_and_rebuild_in_a_process_that_goes_on_put_sigterms_handler_back",
        ),
    ),
    Mutant(
        "pg-session-float-digits",
        "ledger/_stores/settings.py",
        ' -c extra_float_digits=3"',
        '"',
        "a server rounding floats made the leases read model's rows read back edited (rev39)",
        ("tests/integration/test_server_float_digits.py",),
    ),
    Mutant(
        "mismatch-drops-the-holder",
        "ledger/_domain/denials.py",
        "    denial = denial.model_copy(update=held)\n",
        "    pass\n",
        "a mismatch on a leased profile says wait for the holder but names none (rev39)",
        ("tests/unit/test_fencing_and_audit.py",),
    ),
    Mutant(
        "store-url-option-repeated",
        "ledger/_stores/settings.py",
        "    if repeated:\n",
        "    if False:\n",
        "a store URL giving an option twice is taken, its first value winning silently (rev39)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "lease-lost-ended-flag",
        "ledger/_domain/leasing.py",
        "            raise LeaseLost(lease_id, why, ended=ended is not None or "
        "self._issued(lease_id))\n",
        "            raise LeaseLost(lease_id, why)\n",
        "a heartbeat on a force-released or quarantined lease is not told the ledger ended it "
        "(rev39)",
    ),
    Mutant(
        "lease-lost-superseded-not-ended",
        "ledger/_domain/leasing.py",
        "ended=ended is not None or self._issued(lease_id))",
        "ended=ended is not None)",
        "a lease ended and since replaced by another is not said ended by the ledger (rev39)",
    ),
    Mutant(
        "stale-lost-not-ended",
        "ledger/_domain/leasing.py",
        'raise LeaseLost(lease_id, "the lease was marked stale", ended=True)',
        'raise LeaseLost(lease_id, "the lease was marked stale")',
        "a lease the sweep marked stale is not said ended by the ledger (rev39)",
    ),
    Mutant(
        "guard-refused-not-revoked",
        "workers/_guard.py",
        "        if lost.ended:\n            self.revoked(lost.why)\n",
        "        if False:\n            self.revoked(lost.why)\n",
        "a heartbeat that hears the ending first loses the lease without 'revoked: ' (rev39)",
    ),
    Mutant(
        "hub-lost-not-refused",
        "workers/_hub.py",
        '            self.guard.refused(answer)  # "revoked: ..." when the ledger ended the '
        "lease\n",
        "            self.guard.lose(answer.why)\n",
        "the renewal hub's heartbeat that hears a force-release first says no 'revoked: ' (rev39)",
    ),
    Mutant(
        "renew-lost-not-refused",
        "workers/_renewal.py",
        "        except LeaseLost as lost:\n            guard.refused(lost)\n"
        "            return False\n",
        "        except LeaseLost as lost:\n            guard.lose(lost.why)\n"
        "            return False\n",
        "a step that hears the ledger's ending first says no 'revoked: ' (rev39)",
    ),
    Mutant(
        "release-lost-not-refused",
        "workers/_renewal.py",
        "            guard.refused(lost)\n            raise guard.lost_error() from lost\n",
        "            guard.lose(lost.why)\n            raise guard.lost_error() from lost\n",
        "a release that hears the ledger's ending first says no 'revoked: ' (rev39)",
    ),
    Mutant(
        "renew-ended-answer-not-revoked",
        "workers/_renewal.py",
        "            guard.revoked(why)\n            return False\n",
        "            guard.lose(why)\n            return False\n",
        "a resent heartbeat answered with an ended lease says no 'revoked: ' (rev39)",
    ),
    Mutant(
        "hub-ended-answer-not-revoked",
        "workers/_hub.py",
        "            self.guard.revoked(why)\n            return False\n",
        "            self.guard.lose(why)\n            return False\n",
        "the hub's resent heartbeat answered with an ended lease says no 'revoked: ' (rev39)",
    ),
    Mutant(
        "watch-not-revoked",
        "workers/_revocation.py",
        '            watch.guard.revoked(check.why or "not live")\n',
        '            watch.guard.lose(check.why or "not live")\n',
        "the revocation watch loses the lease without 'revoked: '",
        (
            "tests/integration/test_worker_revoked.py::"
            "test_the_watch_that_meets_the_ending_first_says_revoked",
        ),
    ),
    Mutant(
        "deadline-said-revoked",
        "workers/_guard.py",
        "        if lost.ended:\n",
        "        if True:\n",
        "a deadline the ledger says passed reads as a revocation (rev39)",
        ("tests/integration/test_worker_revoked.py",),
    ),
    Mutant(
        "rebuild-read-only-refused",
        "ledger/feed.py",
        "        if not authority.roles:\n",
        "        if False:\n",
        "a rebuild on a SQLite store this user may only read is not refused (exit 6, not 7)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_rebuild_on_a_store_this_user_may_only_read_reports_then_is_refused",
        ),
    ),
    Mutant(
        "rebuild-reports-before-refusal",
        "custody/_profiles.py",
        "        return NotRepaired(found, refused)\n",
        "        raise\n",
        "custody rebuild refused on a read-only store reports none of the differences (rev39)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_rebuild_on_a_store_this_user_may_only_read_reports_then_is_refused",
        ),
    ),
    Mutant(
        "projections-rebuild-read-only",
        "projections/_runner.py",
        '    feed.refuse_read_only(f"the {model.name} read model")\n',
        "",
        "projections rebuild leases/timeline on a read-only store exits 6 (rev39)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_rebuild_on_a_store_this_user_may_only_read_reports_then_is_refused",
        ),
    ),
    Mutant(
        "release-answer-lease-cause",
        "ledger/_domain/results.py",
        "    cause, state, pid = lease.ending_cause, profile.state, profile.profile_id\n",
        "    cause, state, pid = (\n"
        "        profile.block.cause if profile.block else None,\n"
        "        profile.state,\n"
        "        profile.profile_id,\n"
        "    )\n",
        "a force-release after a mutating step answers the quarantine's cause (rev39)",
        ("tests/unit/test_endings.py",),
    ),
    Mutant(
        "release-answer-ending-word",
        "ledger/_domain/results.py",
        'ending_text(lease.ending, cause) if lease.ending in ENDED_UNKNOWN else f"({cause})"',
        'f"({cause})"',
        "a force-release's message drops the ending word 'forced' (rev39)",
        ("tests/unit/test_endings.py",),
    ),
    Mutant(
        "release-answer-worker-unchanged",
        "ledger/_domain/results.py",
        'ending_text(lease.ending, cause) if lease.ending in ENDED_UNKNOWN else f"({cause})"',
        "ending_text(lease.ending, cause)",
        "a worker's release message changes ('ended review (...)') (rev39)",
        ("tests/unit/test_endings.py",),
    ),
    Mutant(
        "release-answer-block-beside",
        "ledger/_domain/results.py",
        "        if blocked is not None and blocked != cause:\n",
        "        if False:\n",
        "the quarantine's own cause is no longer said beside the state (rev39)",
        ("tests/unit/test_endings.py",),
    ),
    Mutant(
        "demo-missing-directory",
        "custody/_demo_command.py",
        'refuse_no_directory("db", file_to_write(db, field="db", named="--db", instead=instead))',
        'file_to_write(db, field="db", named="--db", instead=instead)',
        "demo --db in a missing directory prints a line then exits 6 (rev39)",
        (
            "tests/e2e/test_cli_sqlite.py::"
            "test_demo_into_a_directory_that_is_not_there_is_bad_input_before_a_line",
        ),
    ),
    Mutant(
        "demo-removes-on-failure",
        "custody/_whole.py",
        "                    p.unlink()\n",
        "                    pass\n",
        "a demo cut short leaves its partial store, and the rerun says 'already exists' (rev39)",
        ("tests/e2e/test_cli_sqlite.py::test_a_demo_cut_short_leaves_no_half_of_its_store",),
    ),
    Mutant(
        "demo-fleet-removes-on-failure",
        "custody/_fleet/supervisor.py",
        "        with removed_if_failed(path), _work_directory() as workdir:\n",
        "        with _work_directory() as workdir:\n",
        "a fleet demo cut short leaves its partial store (rev39)",
        ("tests/e2e/test_cli_sqlite.py::test_a_demo_cut_short_leaves_no_half_of_its_store",),
    ),
    Mutant(
        "session-strings-not-conforming",
        "ledger/_stores/settings.py",
        '        " -c standard_conforming_strings=on"\n',
        "",
        "a database with standard_conforming_strings off refused every operator's register (rev39)",
        (
            "tests/e2e/test_database_settings.py::"
            "test_an_operator_registers_where_strings_are_not_standard_conforming",
        ),
    ),
    Mutant(
        "session-isolation-not-set",
        "ledger/_stores/settings.py",
        '        r" -c default_transaction_isolation=read\\ committed"\n',
        "",
        "a database defaulting to serializable failed concurrent commands (rev39)",
        (
            "tests/e2e/test_database_settings.py::"
            "test_concurrent_checkouts_where_transactions_default_to_serializable",
        ),
    ),
    Mutant(
        "session-client-messages-not-set",
        "ledger/_stores/settings.py",
        '        " -c client_min_messages=warning"\n',
        "",
        "a database sending its log printed the server's lines on a report's stderr (rev39)",
        (
            "tests/e2e/test_database_settings.py::"
            "test_a_report_prints_no_server_messages_where_the_database_sends_its_log",
        ),
    ),
    Mutant(
        "conflict-not-busy",
        "ledger/_stores/connections.py",
        "    conflicted = state in _CONFLICTED\n",
        "    conflicted = False\n",
        "a serialization failure or deadlock reads as the store unavailable, not busy (rev39)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "query-cancelled-by-code-unexplained",
        "ledger/_stores/connections.py",
        "    elif state == _QUERY_CANCELED:",
        "    elif False:",
        "a statement_timeout in another language loses its hint (rev39)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "table-name-in-ascii-quotes",
        "ledger/_stores/connections.py",
        "        return _names(said, _AVAILABILITY)\n",
        "        return f'\"{_AVAILABILITY}\"' in said\n",
        "a German server's dropped availability table reads as the store unavailable (rev39)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "names-any-substring",
        "ledger/_stores/connections.py",
        '    return re.search(rf"(?<![\\w$]){table}(?![\\w$])", said) is not None',
        "    return table in said",
        "a table whose name begins with custody_availability reads as it (rev39)",
        ("tests/unit/test_store_urls.py",),
    ),
    Mutant(
        "guard-trigger-enabled-origin-only",
        "ledger/_stores/migrations.py",
        '        f"{statement};\\nALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"\n',
        '        f"{statement};\\nALTER TABLE {table} ENABLE TRIGGER {name}"\n',
        "a worker login set to session_replication_role = replica forges a review (rev39)",
        (
            "tests/e2e/test_cli_access.py::"
            "test_a_worker_login_a_superuser_set_to_replica_is_refused_all_the_same",
        ),
    ),
    Mutant(
        "guard-ddl-not-always",
        "ledger/_stores/migrations.py",
        "        statements = [_always(statement) for statement in statements]\n",
        "        statements = list(statements)\n",
        "init leaves guard triggers ordinary: replica passes them over (rev39)",
        (
            "tests/integration/test_append_only.py::"
            "test_verify_names_a_guard_trigger_not_enabled_always_and_init_enables_it",
        ),
    ),
    Mutant(
        "demo-removes-on-closed-output",
        "custody/_whole.py",
        "    except BrokenPipeError:\n        raise\n",
        "",
        "demo | head -1 exits 0 and removes the store its first line named (rev39)",
        (
            "tests/e2e/test_demo_store.py::"
            "test_a_reader_that_leaves_early_leaves_the_store_it_was_told_of",
        ),
    ),
    Mutant(
        "demo-store-not-exclusive",
        "custody/_whole.py",
        "os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666",
        "os.O_WRONLY | os.O_CREAT, 0o666",
        "two demos on one --db: one removes the other's store; a link is played through (rev39)",
        (
            "tests/e2e/test_demo_store.py::test_two_demos_on_one_name_at_once_leave_the_winners_store",
            "tests/e2e/test_demo_store.py::test_a_symbolic_link_is_refused_as_there",
        ),
    ),
    Mutant(
        "demo-sigterm-kills",
        "custody/_demo_command.py",
        "    with terminate_as_interrupt():\n",
        "    if True:\n",
        "SIGTERM mid-demo leaves half a store, no line (rev39)",
        ("tests/e2e/test_demo_store.py::test_sigterm_mid_demo_removes_its_store_and_says_so",),
    ),
    Mutant(
        "unwritable-foreign-journals",
        "ledger/_stores/settings.py",
        "        if any(p.exists() and not os.access(p, os.W_OK) for p in beside):\n",
        "        if False:\n",
        "another user's -wal/-shm: rebuild and register exit 6, retried for ever (rev39)",
        ("tests/e2e/test_cli_read_only_store.py",),
    ),
    Mutant(
        "release-reraises-ledgers-own",
        "workers/_renewal.py",
        "            raise guard.lost_error() from lost\n",
        "            raise\n",
        "a release that hears the ending first raises the ledger's LeaseLost, no 'revoked: '"
        " (rev39)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "guard-lost-error-not-ended",
        "workers/_guard.py",
        "            return LeaseLost(self.lease_id, self._why, ended=self._ended)\n",
        "            return LeaseLost(self.lease_id, self._why)\n",
        "the LeaseLost a task gets after a revocation says 'revoked: ' with ended False (rev39)",
        ("tests/unit/test_worker_renewal.py", "tests/unit/test_renewal_hub.py"),
    ),
    Mutant(
        "guard-revoked-not-ended",
        "workers/_guard.py",
        '        self._lose(f"{REVOKED}{why}", ended=True)\n',
        '        self._lose(f"{REVOKED}{why}", ended=False)\n',
        "a revoked lease's guard does not remember the ledger ended it (rev39)",
        ("tests/unit/test_worker_renewal.py", "tests/unit/test_renewal_hub.py"),
    ),
    Mutant(
        "guard-later-ending-overwrites",
        "workers/_guard.py",
        "            if self.lost.is_set():\n                return\n            self._why = why\n",
        "            if self.lost.is_set():\n                self._ended = ended\n"
        "                return\n"
        "            self._why = why\n",
        "an ending heard after the worker's own loss makes its LeaseLost ended (rev39)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "guard-retired-not-refused",
        "workers/_guard.py",
        "        if left:  # asked before held(): past its deadline it would lose a released"
        " lease\n",
        "        if False:\n",
        "a step after the worker's release sends a heartbeat and reads as a revocation (rev39)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "guard-retired-asked-after-held",
        "workers/_guard.py",
        "        if left:  # asked before held(): past its deadline it would lose a released"
        " lease\n",
        "        if left and self.held():\n",
        "a step after the release, past the deadline, loses the lease as 'not renewed' (rev39)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "lease-lost-no-ended-default",
        "ledger/_domain/errors.py",
        "    ended: bool = False\n\n    def __init__(self, lease_id: str, why: str",
        "\n    def __init__(self, lease_id: str, why: str",
        "a LeaseLost pickled before .ended raises AttributeError on .ended (rev39)",
        ("tests/unit/test_fencing_and_audit.py",),
    ),
    Mutant(
        "settle-lost-not-ended",
        "workers/_evidence.py",
        "            raise guard.lost_error()\n",
        "            raise type(guard.lost_error())(lease.lease_id, guard.why)\n",
        "leaving a revoked lease's block raises LeaseLost with ended False (rev39)",
        ("tests/unit/test_worker_renewal.py",),
    ),
    Mutant(
        "aio-step-after-release-sends",
        "workers/aio/_leases.py",
        "        refusal = self._guard.refusal()\n        if refusal is None:\n"
        "            return\n",
        "        if self._guard.held():\n            return\n"
        "        refusal = self._guard.lost_error()\n",
        "an async step after the release is not refused by the worker (rev39)",
        ("tests/integration/test_worker_revoked.py",),
    ),
    Mutant(
        "sync-step-after-release-sends",
        "workers/_leases.py",
        "        refusal = self._guard.refusal()\n        if refusal is None:\n"
        "            return\n",
        "        if self._guard.held():\n            return\n"
        "        refusal = self._guard.lost_error()\n",
        "a sync step after the release is not refused by the worker (rev39)",
        ("tests/integration/test_worker_revoked.py",),
    ),
    Mutant(
        "fleet-workdir-kept",
        "custody/_fleet/supervisor.py",
        "        shutil.rmtree(workdir, ignore_errors=True)\n",
        "        pass\n",
        "a fleet demo cut short leaves its custody-fleet-* directory behind (rev39)",
        ("tests/e2e/test_demo_store.py::test_a_fleet_cut_short_leaves_no_work_directory",),
    ),
    Mutant(
        "visited-after-block",
        "workers/_held.py",
        "        self._refuse_after_block()\n        if not isinstance(url, str)",
        "        if not isinstance(url, str)",
        "visited() after the checkout block is accepted in silence (rev39)",
        (
            "tests/integration/test_worker_revoked.py::"
            "test_a_report_after_the_worker_released_the_lease_is_refused_as_a_step_is",
        ),
    ),
    Mutant(
        "expected-failure-after-block",
        "workers/_held.py",
        "        self._refuse_after_block()\n        reason = storable(reason)",
        "        reason = storable(reason)",
        "expected_failure() after the checkout block is accepted in silence (rev39)",
        (
            "tests/integration/test_worker_revoked.py::"
            "test_a_report_after_the_worker_released_the_lease_is_refused_as_a_step_is",
        ),
    ),
    Mutant(
        "read-only-names-journals",
        "ledger/_stores/sql.py",
        'READ_ONLY_HERE = "the file, its -wal or -shm, or its directory"\n',
        'READ_ONLY_HERE = "the file or its directory"\n',
        "a store read-only by another user's -wal/-shm is blamed on the file or directory (rev39)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_a_store_whose_wal_and_shm_are_another_users_is_refused_as_read_only",
        ),
    ),
    Mutant(
        "export-replaces-its-own-redirect",
        "custody/_whole.py",
        "    if found is not None and (stream := a_standard_stream(found)) is not None:\n"
        '        return f"{stream} ({TO_PRINT})"\n',
        "",
        "an export onto the file its own standard output is replaced it, and what >> kept was lost",
        (
            "tests/e2e/test_cli_export.py::"
            "test_a_file_written_that_is_the_commands_own_redirected_output_is_refused",
        ),
    ),
    Mutant(
        "write-replaces-its-own-redirect",
        "ledger/files.py",
        '        raise OSError(errno.EINVAL, f"{stream}, a redirect: name another file", '
        "str(path))\n",
        "        pass\n",
        "digest --out onto the file its own standard output is replaced it",
        (
            "tests/e2e/test_cli_export.py::"
            "test_a_file_written_that_is_the_commands_own_redirected_output_is_refused",
        ),
    ),
    Mutant(
        "own-stream-any-fd",
        "ledger/files.py",
        "        if (held.st_dev, held.st_ino) == (found.st_dev, found.st_ino):",
        "        if held.st_ino == found.st_ino and fd == 1:",
        "a file that is a command's standard error is replaced by an export written onto it",
        (
            "tests/e2e/test_cli_export.py::"
            "test_a_file_written_that_is_the_commands_own_redirected_output_is_refused",
        ),
    ),
    Mutant(
        "write-in-removed-directory",
        "custody/_whole.py",
        "    if not path.is_absolute():\n        try:\n            os.getcwd()\n",
        "    if False:\n        try:\n            os.getcwd()\n",
        "an export named relative to a removed directory is an internal error, not bad input",
        (
            "tests/e2e/test_cli_files_to_write.py::"
            "test_every_command_that_writes_a_file_in_a_removed_directory_says_so",
        ),
    ),
    Mutant(
        "restore-barred-at-open",
        "ledger/_stores/access.py",
        '    barred = f"store login {login} may record nothing here: {ASTRAY}" '
        'if row["astray"] else ""\n',
        '    barred = ""\n',
        "a restored store's guards naming another role let every command through (rev40)",
        (
            "tests/e2e/test_restored_store.py::"
            "test_a_store_restored_on_another_server_records_nothing_until_init",
            "tests/e2e/test_restored_store.py::"
            "test_a_store_restored_to_another_owner_records_nothing_until_init",
        ),
    ),
    Mutant(
        "restore-astray-compare",
        "ledger/_stores/access.py",
        '"AND substring(pg_get_triggerdef(t.oid) FROM ?)::oid <> g.relowner) AS astray "',
        '"AND substring(pg_get_triggerdef(t.oid) FROM ?)::oid = 0) AS astray "',
        "the guards' owner oid never compared with the table's owner (rev40)",
        (
            "tests/e2e/test_restored_store.py::"
            "test_a_store_restored_to_another_owner_records_nothing_until_init",
        ),
    ),
    Mutant(
        "restore-barred-require",
        "ledger/_unit_of_work.py",
        "        authority.refuse_if_barred()\n        check_acts(",
        "        check_acts(",
        "commands on a restored store meet the guards without the hint (rev40)",
        (
            "tests/e2e/test_restored_store.py::"
            "test_a_store_restored_to_another_owner_records_nothing_until_init",
        ),
    ),
    Mutant(
        "restore-barred-rebuild",
        "ledger/feed.py",
        "        authority.refuse_if_barred()\n        if not authority.roles:",
        "        if not authority.roles:",
        "a rebuild on a restored store is not refused (rev40)",
        (
            "tests/e2e/test_restored_store.py::"
            "test_a_store_restored_to_another_owner_records_nothing_until_init",
        ),
    ),
    Mutant(
        "verify-names-restore",
        "ledger/_stores/migrations.py",
        "                other = _other_owner(definition, statement) "
        'or f"{_OTHER}: {_REINSTALL}"\n',
        '                other = f"{_OTHER}: {_REINSTALL}"\n',
        "verify says 'an older custody's init, or an edit' for a restored store (rev40)",
        (
            "tests/e2e/test_restored_store.py::"
            "test_a_store_restored_to_another_owner_records_nothing_until_init",
        ),
    ),
    Mutant(
        "cli-option-name-as-value",
        "custody/_words.py",
        "        if _option_name(value) in known:\n",
        "        if False:\n",
        "release ... --reason --prompt-seen records the reason '--prompt-seen' and no prompt",
        ("tests/e2e/test_cli_arguments.py::test_an_option_s_name_is_never_taken_for_a_value",),
    ),
    Mutant(
        "cli-group-option-as-value",
        "custody/_words.py",
        "    known = _names(ctx) | options.keys()\n",
        "    known = set(options)\n",
        "release ... --reason --json records the reason '--json'",
        ("tests/e2e/test_cli_arguments.py::test_an_option_s_name_is_never_taken_for_a_value",),
    ),
    Mutant(
        "cli-option-twice",
        "custody/_words.py",
        "        if option in given and not option.multiple:\n",
        "        if False:\n",
        "status --state a --state b silently keeps b",
        ("tests/e2e/test_cli_arguments.py::test_an_option_given_twice_is_refused",),
    ),
    Mutant(
        "cli-multiple-option-twice",
        "custody/_words.py",
        "        if option in given and not option.multiple:\n",
        "        if option in given:\n",
        "access grant --role worker --role reviewer is refused",
        ("tests/e2e/test_cli_arguments.py::test_what_may_be_given_twice_is_taken",),
    ),
    Mutant(
        "seconds-plain",
        "custody/_wiring.py",
        "        if isinstance(value, str) and not _plainly(value, fraction=True):\n",
        "        if False:\n",
        "--interval 1_0 is 10 s, an Arabic-Indic digit a second (rev40)",
        ("tests/e2e/test_cli_arguments.py::test_seconds_are_ascii_digits_only[sqlite-1_0]",),
    ),
    Mutant(
        "group-missing-command",
        "custody/_wiring.py",
        '        kwargs.setdefault("no_args_is_help", False)\n',
        "",
        "custody projections alone prints its help squashed into one error line",
        ("tests/e2e/test_cli_arguments.py::test_a_group_without_its_command_says_so_in_one_line",),
    ),
    Mutant(
        "parser-refusal-help",
        "custody/_wiring.py",
        "            refused.ctx = ctx\n",
        "            pass\n",
        "checkout ... --ttl points at custody --help",
        (
            "tests/e2e/test_cli_arguments.py::"
            "test_a_refusal_of_click_s_parser_names_the_command_s_help",
        ),
    ),
    Mutant(
        "csv-stdout-locale",
        "custody/_output.py",
        "    put = out.write if for_a_terminal else utf8_writer(out)\n",
        "    put = out.write\n",
        "CSV on stdout goes through the locale's encoding: a dotless i and its escape print alike",
        ("tests/e2e/test_cli_locale.py::test_csv_and_json_on_stdout_are_exact_and_tables_line_up",),
    ),
    Mutant(
        "replay-json-raw",
        "custody/_output.py",
        "            out.write(json.dumps(self.replay.model_dump(mode="
        '"json"), indent=2) + "\\n")\n',
        '            out.write(self.replay.model_dump_json(indent=2) + "\\n")\n',
        "replay --json writes 'é' as '\\xe9' under LC_ALL=C: no JSON (rev40)",
        ("tests/e2e/test_cli_locale.py::test_csv_and_json_on_stdout_are_exact_and_tables_line_up",),
    ),
    Mutant(
        "fleet-json-raw",
        "custody/_fleet_output.py",
        '            out.write(json.dumps(self.fleet.model_dump(mode="json"), indent=2) + "\\n")\n',
        '            out.write(self.fleet.model_dump_json(indent=2) + "\\n")\n',
        "fleet --json is no JSON under LC_ALL=C (rev40)",
        ("tests/e2e/test_cli_locale.py::test_csv_and_json_on_stdout_are_exact_and_tables_line_up",),
    ),
    Mutant(
        "table-measured-before-escape",
        "custody/_tables.py",
        "    rows = _as_written(rows, out)\n",
        "    rows = rows\n",
        "a table's column holding an escaped character stands out of line (rev40)",
        ("tests/e2e/test_cli_locale.py::test_csv_and_json_on_stdout_are_exact_and_tables_line_up",),
    ),
    Mutant(
        "os-name-not-bytes",
        "ledger/_domain/model.py",
        '            return os.fsdecode(text.encode("utf-8", "surrogateescape"))\n',
        "            return text\n",
        "keygen kéy under LC_ALL=C is an internal error (rev40)",
        ("tests/e2e/test_cli_locale.py::test_keys_digests_demo_and_a_sqlite_store_named_in_utf8",),
    ),
    Mutant(
        "screenshot-recorded-as-bytes",
        "custody/_commands.py",
        "    where = typed(os.path.abspath(screenshot))\n",
        "    where = os.path.abspath(screenshot)\n",
        "a release records its screenshot as surrogates, refused as not UTF-8 (rev40)",
        ("tests/e2e/test_cli_locale.py::test_file_names_typed_in_utf8_reach_the_disk_as_typed",),
    ),
    Mutant(
        "sqlite-path-decoded",
        "ledger/_stores/settings.py",
        '                os_name(unquote(parts.path, errors="surrogateescape")[1:])\n',
        '                unquote(parts.path, errors="surrogateescape")[1:]\n',
        "--store sqlite:///störe.db under LC_ALL=C is an internal error (rev40)",
        ("tests/e2e/test_cli_locale.py::test_keys_digests_demo_and_a_sqlite_store_named_in_utf8",),
    ),
    Mutant(
        "screenshot-name-decoded",
        "custody/_commands.py",
        '    "--screenshot", type=FileName(), metavar="FILE",\n',
        '    "--screenshot", metavar="FILE",\n',
        "an existing --screenshot shöt.png is 'no file at' under LC_ALL=C (rev40)",
        ("tests/e2e/test_cli_locale.py::test_file_names_typed_in_utf8_reach_the_disk_as_typed",),
    ),
    Mutant(
        "digest-files-decoded",
        "custody/_audit_commands.py",
        "_file = FileName(click.Path(dir_okay=False, path_type=Path))\n",
        "_file = click.Path(dir_okay=False, path_type=Path)\n",
        "digest --key kéy under LC_ALL=C is an internal error (rev40)",
        ("tests/e2e/test_cli_locale.py::test_keys_digests_demo_and_a_sqlite_store_named_in_utf8",),
    ),
    Mutant(
        "describe-surrogates",
        "ledger/_stores/settings.py",
        '    text = path.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")\n',
        "    text = path\n",
        "a store named in UTF-8 under LC_ALL=C is described as %C3%B6, not ö (rev40)",
    ),
    Mutant(
        "own-stream-stdin-too",
        "ledger/files.py",
        '    for fd, stream in ((1, "output"), (2, "error")):',
        '    for fd, stream in ((1, "output"), (2, "error"), (0, "input")):',
        "a file a command reads as its standard input is refused as its output",
        (
            "tests/e2e/test_cli_export.py::"
            "test_a_file_written_that_is_the_commands_own_redirected_output_is_refused",
        ),
    ),
    Mutant(
        "restore-bigint-oid",
        "ledger/_stores/access.py",
        "([0-9]+)'?(?:::bigint)?\\)?::oid\"",
        "([0-9]+)'?\\)?::oid\"",
        "a guard naming an oid past 2^31 - 1 goes unread: a restore from such a server passes",
        (
            "tests/integration/test_restored_guards.py::"
            "test_a_guard_naming_another_oid_bars_the_store_whatever_its_form",
        ),
    ),
    Mutant(
        "restore-bigint-oid-e2e",
        "ledger/_stores/access.py",
        "([0-9]+)'?(?:::bigint)?\\)?::oid\"",
        "([0-9]+)'?\\)?::oid\"",
        "a store restored from a server whose oids are past 2^31 - 1 is not refused (rev40)",
        (
            "tests/e2e/test_restored_store.py::"
            "test_a_store_whose_owner_oid_is_past_two_to_the_31_is_refused_once_restored",
        ),
    ),
    Mutant(
        "restore-barred-cached",
        "ledger/_stores/sql.py",
        "        if fresh or self._authority is None or self._authority.barred:\n",
        "        if fresh or self._authority is None:\n",
        "a process opened on a restored store stays refused after the owner's init (rev40)",
        (
            "tests/integration/test_restored_guards.py::"
            "test_a_process_opened_on_a_barred_store_records_after_init",
        ),
    ),
    Mutant(
        "demo-fleet-store-surrogates",
        "custody/_fleet/supervisor.py",
        '    store = f"sqlite:///{quote(os.fsencode(path))}"\n',
        '    store = f"sqlite:///{path}"\n',
        "demo --workers on a file named past ASCII under LC_ALL=C is an internal error (rev40)",
        ("tests/e2e/test_cli_locale.py::test_keys_digests_demo_and_a_sqlite_store_named_in_utf8",),
    ),
    Mutant(
        "export-answer-os-form",
        "custody/_output.py",
        "    name = typed(str(path))\n",
        "    name = str(path)\n",
        "an export under LC_ALL=C answers its file's name as surrogates, not as typed (rev40)",
        ("tests/e2e/test_cli_locale.py::test_file_names_typed_in_utf8_reach_the_disk_as_typed",),
    ),
    Mutant(
        "digest-answer-os-form",
        "custody/_audit_commands.py",
        '        "digest": typed(str(out)),',
        '        "digest": str(out),',
        "digest --out under LC_ALL=C answers its file's name as surrogates (rev40)",
        ("tests/e2e/test_cli_locale.py::test_keys_digests_demo_and_a_sqlite_store_named_in_utf8",),
    ),
    Mutant(
        "command-refusal-checked",
        "ledger/_unit_of_work.py",
        "        if (refused := command.refusal()) is not None:",
        "        if (refused := None) is not None:",
        "a URL or proxy id carrying a password is stored (rev41 honesty review)",
        (
            "tests/integration/test_command_ids.py::"
            "test_a_command_applied_before_the_password_rule_is_answered_when_resent",
        ),
    ),
    Mutant(
        "sweep-id-fingerprint",
        "ledger/_handlers.py",
        "    if record.profile_id or fingerprint != c.fingerprint():",
        "    if record.profile_id:",
        "a sweep's command id reused for another sweep is answered, not refused (rev41)",
        (
            "tests/integration/test_sweep_command_ids.py::"
            "test_a_sweep_may_not_reuse_another_commands_id",
        ),
    ),
    Mutant(
        "safe-step-clears-mutation",
        "projections/_leases.py",
        '    elif heartbeat["safe"]:  # a safe step confirms the account, even after a mutation',
        "    elif False:  # a safe step confirms the account, even after a mutation",
        "a safe step no longer clears the leases read model's mutating step (rev41)",
        ("tests/integration/test_read_models.py::test_leases_say_how_each_lease_ended",),
    ),
    Mutant(
        "settings-proxies-unchecked",
        "workers/_settings.py",
        "        _check_proxies(self.proxies)\n",
        "",
        "a proxy URL string is accepted and fails every launch, its profile to review (rev41)",
        (
            "tests/unit/test_worker_settings.py::"
            "test_settings_every_launch_would_fail_on_are_refused_when_made",
        ),
    ),
    Mutant(
        "settings-launch-options-unchecked",
        "workers/_settings.py",
        "        _check_launch_options(self.launch_options)\n",
        "",
        "launch_options that are not Playwright's are accepted and fail every launch (rev41)",
        (
            "tests/unit/test_worker_settings.py::"
            "test_settings_every_launch_would_fail_on_are_refused_when_made",
        ),
    ),
    Mutant(
        "ttl-nan",
        "workers/_timing.py",
        "if not number or not ttl_seconds > 0 or ttl_seconds == math.inf:",
        "if ttl_seconds <= 0:",
        "a NaN TTL makes NaN timings (rev41)",
        (
            "tests/unit/test_worker_renewal.py::"
            "test_a_ttl_that_is_not_a_positive_number_is_the_documented_value_error",
        ),
    ),
    Mutant(
        "checkout-denial-ids-unchecked",
        "ledger/_application.py",
        "asked = CheckoutQuery(profile_id=profile_id, account_id=account_id, proxy_id=proxy_id)",
        "asked = CheckoutQuery.model_construct("
        "profile_id=profile_id, account_id=account_id, proxy_id=proxy_id)",
        "checkout_denial answers account_mismatch for an id a checkout refuses (rev41)",
        (
            "tests/integration/test_routing.py::"
            "test_an_id_a_checkout_refuses_is_refused_by_checkout_denial_alike",
        ),
    ),
    Mutant(
        "verify-digest-bytes",
        "ledger/audit.py",
        "    if given is None or isinstance(given, Digest):\n        return given\n",
        "    if True:\n        return given  # type: ignore[return-value]\n",
        "verify(against=bytes) raises AttributeError, not InvalidInput (rev41)",
        (
            "tests/integration/test_audit_api_arguments.py::"
            "test_verify_takes_a_digest_or_its_bytes_alike",
            "tests/integration/test_audit_api_arguments.py::"
            "test_verify_names_a_digest_argument_it_cannot_read",
        ),
    ),
    Mutant(
        "guard-renewal-after-loss-ignored",
        "workers/_guard.py",
        "            if self.lost.is_set():\n                return\n            self._renewed_at",
        "            if False:\n                return\n            self._renewed_at",
        "a heartbeat answered after the loss pushes out the watchdog's deadline (rev41)",
        (
            "tests/unit/test_worker_renewal.py::test_a_renewal_answered_after_the_loss_moves_nothing",
        ),
    ),
    Mutant(
        "browser-route-guard",
        "workers/_browser.py",
        "        if self._guard.held():\n            route.fallback()\n",
        "        if True:\n            route.fallback()\n",
        "a lost lease's browser still reaches the network until the watchdog kills it (rev41)",
        (
            "tests/e2e/test_worker_lost_lease_routes.py::"
            "test_a_request_after_the_loss_is_aborted_before_the_site",
        ),
    ),
    Mutant(
        "browser-websocket-route-guard",
        "workers/_browser.py",
        "        if not self._guard.held():\n            socket.close()\n            return\n",
        "        if False:\n            socket.close()\n            return\n",
        "a lost lease's browser still opens new WebSockets to the server (rev41)",
        (
            "tests/e2e/test_worker_lost_lease_routes.py::"
            "test_a_websocket_opened_after_the_loss_never_connects",
        ),
    ),
    Mutant(
        "browser-websocket-relay-guard",
        "workers/_browser.py",
        "            if self._guard.held():\n                server.send(message)\n",
        "            if True:\n                server.send(message)\n",
        "a message on an open WebSocket after the loss still reaches the server (rev41)",
        (
            "tests/e2e/test_worker_lost_lease_routes.py::"
            "test_a_message_on_an_open_websocket_after_the_loss_never_reaches_the_server",
        ),
    ),
    Mutant(
        "console-overdue-shown-leased",
        "service/_console_reads.py",
        '    return f"{state.value} (overdue)" if overdue else state.value\n',
        "    return state.value\n",
        "the console showed an overdue lease as plain 'leased' (rev41)",
        (
            "tests/integration/test_console_forms.py::"
            "test_an_overdue_lease_is_shown_as_the_command_line_shows_it",
        ),
    ),
    Mutant(
        "console-form-unknown-field-unread",
        "service/_console.py",
        "    if unknown:\n",
        "    if False:\n",
        "a console form's unknown field was left unread and the verdict recorded (rev41)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_console_form_holding_a_field_it_does_not_take_is_refused_naming_it",
        ),
    ),
    Mutant(
        "console-form-field-count-said-as-utf8",
        "service/_console.py",
        "    if count > FORM_MAX_FIELDS:\n",
        "    if False:\n",
        "a form of 21 fields was refused as no UTF-8 form (rev41)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_console_form_holding_a_field_it_does_not_take_is_refused_naming_it",
        ),
    ),
    Mutant(
        "console-refused-note-lost",
        "service/_console.py",
        '                    note=_Typed(form.get("note", "")),\n',
        '                    note=_Typed(""),\n',
        "a refused verdict's note came back empty (rev41)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_refused_verdict_is_drawn_again_with_the_note_and_decision_sent",
        ),
    ),
    Mutant(
        "console-stale-decision-kept",
        "service/_console.py",
        '            kept = replace(kept, decision="")\n',
        "            pass\n",
        "a verdict refused for a profile that moved on came back with its decision chosen (rev41)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_refused_verdict_is_drawn_again_with_the_note_and_decision_sent",
        ),
    ),
    Mutant(
        "console-kept-note-escaped",
        "service/_console.py",
        "    if isinstance(value, _Typed):\n        return value\n",
        "",
        "a refused note came back with its invisible characters escaped (rev41)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_refused_verdict_is_drawn_again_with_the_note_and_decision_sent",
        ),
    ),
    Mutant(
        "ts-timeout-bare",
        "clients/typescript/src/client.ts",
        "      if (timeout.aborted && lostToTimeout(error)) throw new ServiceTimedOut(",
        "      if (false) throw new ServiceTimedOut(",
        "the Node client's timeout named no request (rev41)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "ts-timeout-wraps-callers-abort",
        "clients/typescript/src/client.ts",
        "if (timeout.aborted && lostToTimeout(error))",
        "if (lostToTimeout(error))",
        "an abort of the caller's own signal was reported as the client's timeout (rev41)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "sweep-watch-never-reopens",
        "workers/_sweeper.py",
        "        said = ledger.reopen_if_replaced()\n",
        "        said = None\n",
        "a sweeper goes on with a SQLite file deleted or replaced under it (rev41)",
        (
            "tests/unit/test_sweeper_loop.py::"
            "test_watch_reports_each_pass_survives_an_outage_and_stops_when_told",
        ),
    ),
    Mutant(
        "replaced-file-never-seen",
        "ledger/_stores/recorders.py",
        "        return self.opened is not None and _identity(self.db_name) != self.opened\n",
        "        return False\n",
        "a SQLite file replaced under a process is never noticed (rev41)",
        (
            "tests/integration/test_store_restored_under_watchers.py::"
            "test_sweep_watch_sweeps_the_file_restored_under_it",
            "tests/integration/test_store_file_replaced.py::"
            "test_a_write_to_a_file_no_longer_at_the_store_s_path_is_refused",
        ),
    ),
    Mutant(
        "projector-never-reopens",
        "projections/_runner.py",
        "if (said_again := ledger.reopen_if_replaced()) is not None:",
        "if (said_again := None) is not None:",
        "projections run reads a deleted SQLite file for ever (rev41)",
        (
            "tests/integration/test_store_restored_under_watchers.py::"
            "test_projections_run_catches_up_on_a_store_made_again_at_its_path",
        ),
    ),
    Mutant(
        "service-readers-never-reopen",
        "service/_readers.py",
        "        elif (said := ledger.reopen_if_replaced()) is not None:\n",
        "        elif False:\n",
        "the service answers from a SQLite file replaced under it (rev41)",
        (
            "tests/integration/test_store_restored_under_watchers.py::"
            "test_serve_reads_and_writes_the_file_restored_under_it",
        ),
    ),
    Mutant(
        "service-token-cache-bounded",
        "service/_auth.py",
        "            if len(self._known) >= self._size:\n",
        "            if False:\n",
        "a flood of made-up tokens grows the token cache without end (rev41)",
        (
            "tests/integration/test_service_strangers.py::"
            "test_a_flood_of_made_up_tokens_keeps_the_token_cache_bounded_and_real_tokens_working",
        ),
    ),
    Mutant(
        "service-body-declared-too-large",
        "service/_bodies.py",
        "int(declared) > MAX_BODY_BYTES:",
        "int(declared) > MAX_BODY_BYTES * 100:",
        "a Content-Length past 1 MiB is not refused by itself: the service waits (rev41)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_body_declared_larger_than_any_command_takes_is_413_before_a_byte_is_sent",
        ),
    ),
    Mutant(
        "service-token-bearer-scheme",
        "service/_auth.py",
        '        if scheme.lower() != "bearer" or not token.strip():\n',
        "        if not token.strip():\n",
        "Tokens.caller takes a real token under any scheme (Basic TOKEN) (rev41)",
        (
            "tests/integration/test_service_strangers.py::"
            "test_tokens_take_a_real_token_under_the_bearer_scheme_only",
        ),
    ),
    Mutant(
        "pool-grows-while-filling",
        "ledger/_stores/postgres.py",
        "        if not coming[0] or len(pool._waiting) > coming[0]:\n            grow()\n",
        "        grow()\n",
        "a ledger's first lending grows its pool to 3 while its first 2 are made (rev41)",
        (
            "tests/integration/test_connections_per_process.py::"
            "test_a_ledger_holds_its_pool_of_two_once_used",
        ),
    ),
    Mutant(
        "watch-per-lease",
        "workers/_held.py",
        "RevocationWatch(config.revocations, guard)",
        "RevocationWatch(RevocationWatches(config.open_ledger), guard)",
        "each held lease gets a watch thread and a pool of connections of its own (rev41)",
        (
            "tests/integration/test_connections_per_process.py::"
            "test_one_thread_watches_every_lease_and_a_revocation_reaches_its_own",
        ),
    ),
    Mutant(
        "reopen-foreign-file-fatal",
        "ledger/_application.py",
        '                if not self._reopening or e.field != "store":\n',
        "                if True:\n",
        "a foreign file moved over a watched store ends the watcher for good (rev41)",
        (
            "tests/integration/test_store_restored_under_watchers.py::"
            "test_sweep_watch_waits_out_a_foreign_file_moved_over_its_store",
        ),
    ),
    Mutant(
        "snapshot-check-store-trouble",
        "ledger/_audit/snapshots.py",
        "                if isinstance(e, StoreUnavailable) and not _undecodable(e):\n"
        "                    raise  # the store, not the log: verify answers exit 6\n",
        "",
        "a PostgreSQL not answering mid-check is named as problems of the log, exit 5 (rev41)",
        (
            "tests/integration/test_verify_beside.py::"
            "test_a_postgresql_not_answering_while_snapshots_are_checked_is_its_trouble_not_the_log_s",
        ),
    ),
    Mutant(
        "snapshot-check-undecodable-named",
        "ledger/_audit/snapshots.py",
        "isinstance(e, StoreUnavailable) and not _undecodable(e)",
        "isinstance(e, StoreUnavailable)",
        "SQLite text that is not UTF-8 ends verify as unavailable, not named (rev41)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_cell_of_a_type_custody_never_stores_is_named_not_read_round[state-text]",
        ),
    ),
    Mutant(
        "seconds-out-of-range-as-typed",
        "custody/_wiring.py",
        "        except click.BadParameter:  # out of range, told as typed",
        "        except ZeroDivisionError:  # out of range, told as typed",
        "an interval out of range is refused quoting the float read, not the text typed (rev42)",
        ("tests/unit/test_seconds.py::test_a_number_out_of_range_is_quoted_as_typed",),
    ),
    Mutant(
        "cli-note-once-an-answer",
        "custody/cli.py",
        "        if line in said:\n            return\n",
        "",
        "who and why under a worker's login say the timeline's note twice (rev42)",
        (
            "tests/e2e/test_access_worker_cannot_rewrite_read_models.py::"
            "test_a_worker_login_is_told_once_an_answer_what_the_timeline_leaves_out",
        ),
    ),
    Mutant(
        "lease-status-overdue",
        "ledger/_domain/endings.py",
        "    if status == LeaseStatus.ACTIVE and past_deadline(deadline, now):\n",
        "    if False:\n",
        "an active lease past its deadline reads active (rev42)",
    ),
    Mutant(
        "lease-status-any",
        "ledger/_domain/endings.py",
        "    if status == LeaseStatus.ACTIVE and past_deadline(deadline, now):\n",
        "    if past_deadline(deadline, now):\n",
        "an ended or stale-marked lease past its deadline reads overdue (rev42)",
    ),
    Mutant(
        "usage-rows-judged",
        "projections/_usage_as_of.py",
        '    return [judged(validated_rows("leases", LeaseRow.model_validate, r), moment) '
        "for r in rows]\n",
        '    return [validated_rows("leases", LeaseRow.model_validate, r) for r in rows]\n',
        "usage's table reads an overdue lease as active (rev42)",
        (
            "tests/integration/test_usage_as_of.py::test_a_lease_past_its_deadline_reads_overdue_before_any_sweep",
        ),
    ),
    Mutant(
        "usage-frame-judged",
        "reports/_usage.py",
        "    return judged(frame, when).loc[:, list(COLUMNS)]\n",
        "    return frame.loc[:, list(COLUMNS)]\n",
        "usage --json/csv reads an overdue lease as active (rev42)",
        (
            "tests/integration/test_usage_as_of.py::test_a_lease_past_its_deadline_reads_overdue_before_any_sweep",
        ),
    ),
    Mutant(
        "ended-unknown-overdue",
        "reports/_usage.py",
        '    unknown = leases["ending"].isin(ENDED_UNKNOWN) | leases["status"].eq(OVERDUE)\n',
        '    unknown = leases["ending"].isin(ENDED_UNKNOWN)\n',
        "ended_unknown leaves out an overdue lease (rev42)",
        (
            "tests/integration/test_usage_as_of.py::test_a_lease_past_its_deadline_reads_overdue_before_any_sweep",
        ),
    ),
    Mutant(
        "sources-judged",
        "reports/_sources.py",
        "                leases=judged(_leases(snapshot, account), at),\n",
        "                leases=_leases(snapshot, account),\n",
        "the fleet reports read an overdue lease as live (rev42)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "health-overdue-unclean",
        "reports/_health.py",
        '    table["unclean"] = table[[*UNCLEAN, OVERDUE]].sum(axis=1)\n',
        '    table["unclean"] = table[list(UNCLEAN)].sum(axis=1)\n',
        "health counts an overdue lease as clean (rev42)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "health-overdue-live",
        "reports/_health.py",
        '    open_ = leases["status"].where(leases["status"].eq(OVERDUE), "live")\n',
        '    open_ = leases["status"].where(leases["status"].eq("never"), "live")\n',
        "health counts an overdue lease as live (rev42)",
        ("tests/integration/test_fleet_reports.py",),
    ),
    Mutant(
        "checklist-overdue-word",
        "reports/_checks.py",
        '    return OVERDUE if lease["status"] == OVERDUE else "live"\n',
        '    return "live"\n',
        "the checklist calls a silent overdue lease live (rev42)",
        (
            "tests/integration/test_fleet_reports.py::test_a_silent_lease_past_its_deadline_is_overdue_in_the_checklist_not_live",
        ),
    ),
    Mutant(
        "usage-table-status",
        "custody/_output.py",
        '    ("STATUS", "status"),  # overdue: past its deadline, not ended '
        "(rev42: read as live)\n",
        "",
        "usage's table shows no status (rev42)",
        ("tests/e2e/test_cli_reports.py",),
    ),
    Mutant(
        "ts-sigterm-pool-checkout-sent",
        "clients/typescript/src/worker.ts",
        "    if (!termination.enter(signalled)) return await termination.exiting();\n",
        "    termination.enter(signalled);\n",
        "a checkout begun after SIGTERM is sent, and the exit leaves its lease live (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_pools_checkout_after_sigterm_sends_nothing",
        ),
    ),
    Mutant(
        "ts-sigterm-once-listener-missed",
        "clients/typescript/src/termination.ts",
        'process.prependListener("SIGTERM", onSigterm)',
        'process.on("SIGTERM", onSigterm)',
        "an application's process.once SIGTERM listener is taken for none (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_an_applications_once_listener_decides",
        ),
    ),
    Mutant(
        "ts-sigterm-release-unbounded",
        "clients/typescript/src/worker.ts",
        "        if (this.signalled.waitedEnough()) {\n",
        "        if (false) {\n",
        "after SIGTERM the release waits out the lease's deadline in silence (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_service_that_does_not_answer_holds_the_stop_up_five_seconds",
        ),
    ),
    Mutant(
        "ts-sigterm-exit-before-warning",
        "clients/typescript/src/termination.ts",
        "  setImmediate(() => process.exit(143));\n",
        "  process.exit(143);\n",
        "the process exits before the warning of a lease left live is written (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_service_that_does_not_answer_holds_the_stop_up_five_seconds",
        ),
    ),
    Mutant(
        "ts-reason-of-throws",
        "clients/typescript/src/text.ts",
        "  const name = nameOf(error);\n  const said = messageOf(error);\n",
        "  const name = error.name;\n  const said = String(error.message);\n",
        "naming a task's unreadable error throws and the lease is not released (rev42)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "init-unversioned-recorded-first",
        "ledger/_stores/migrations.py",
        '            f"INSERT INTO {SCHEMA_TABLE} (id, version) VALUES (1, 1) '
        'ON CONFLICT (id) DO NOTHING"\n',
        '            "SELECT 1"\n',
        "an init of an unversioned store killed mid-migration leaves it never migrated (rev42)",
        (
            "tests/integration/test_chain_migration.py::"
            "test_a_store_from_before_custody_recorded_a_version_is_migrated_from_schema_1",
        ),
    ),
    Mutant(
        "ts-sigterm-inflight-release-kept",
        "clients/typescript/src/worker.ts",
        "this.result = await this.leases.client.release(this.leaseId, body, key, wait, abandoned);",
        "this.result = await this.leases.client.release(this.leaseId, body, key, wait);",
        "a release sent before SIGTERM keeps its 30 s timeout: the stop takes 33 s (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_release_under_way_at_sigterm_is_abandoned_five_seconds_after_it",
        ),
    ),
    Mutant(
        "ts-sigterm-checkout-unbounded",
        "clients/typescript/src/worker.ts",
        "        if (signalled.waitedEnough()) {\n          if (lost > 0 && !lastTry) continue;\n",
        "        if (signalled.waitedEnough() && false) {\n          if (lost > 0 && !lastTry) "
        "continue;\n",
        "a checkout under way at SIGTERM is resent until the grant's deadline, in silence (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_checkout_under_way_at_sigterm_has_the_same_bound",
        ),
    ),
    Mutant(
        "ts-sigterm-inflight-checkout-kept",
        "clients/typescript/src/worker.ts",
        "granted = await this.client.checkout("
        "profileId, body, key, wait, signalled.abandonedBy());",
        "granted = await this.client.checkout(profileId, body, key, wait);",
        "a checkout sent before SIGTERM waits its 30 s: the stop takes about 34 s (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_checkout_under_way_at_sigterm_has_the_same_bound",
        ),
    ),
    Mutant(
        "ts-sigterm-release-no-last-try",
        "clients/typescript/src/worker.ts",
        "          if (lost > 0 && !lastTry) {\n            lastTry = true;\n"
        "            continue;\n"
        "          }\n          throw leftLive(this.leaseId",
        "          throw leftLive(this.leaseId",
        "a release whose answer was lost at the bound is not tried once more (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_release_under_way_at_sigterm_is_abandoned_five_seconds_after_it",
        ),
    ),
    Mutant(
        "ts-terminated-check-throws",
        "clients/typescript/src/termination.ts",
        "  try {\n    return error instanceof Terminated;\n  } catch {\n    return false;\n  }\n",
        "  return error instanceof Terminated;\n",
        "a task's Proxy error whose getPrototypeOf throws leaves the lease live (rev42)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "ts-sigterm-give-back-unbounded",
        "clients/typescript/src/worker.ts",
        "        stopWait(signalled, undefined, this.client.timeoutSeconds),\n"
        "        signalled.abandonedBy(),\n",
        "",
        "a grant given back during a stop waits the client's 30 s: a 38 s stop (rev42)",
        (
            "tests/integration/test_node_worker_sigterm_stop.py::"
            "test_a_grant_given_back_during_a_stop_has_the_same_bound",
        ),
    ),
    Mutant(
        "timeline-pages-past-their-moment",
        "projections/_timeline.py",
        '        where.append("position <= ?")\n        picked.append(hi)\n',
        "        pass\n",
        "a timeline read in pages takes in events folded while its pages are read",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_read_in_pages_holds_the_events_of_its_first_page_s_moment",
        ),
    ),
    Mutant(
        "timeline-pages-last-from-the-start",
        "projections/_timeline.py",
        '    if lo is not None:\n        where.append("position >= ?")\n',
        '    if False:\n        where.append("position >= ?")\n',
        "a timeline's last events read in pages start at the first event",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_read_in_pages_is_the_timeline_read_whole",
        ),
    ),
    Mutant(
        "timeline-pages-empty-last-page",
        "projections/_timeline.py",
        "        if len(page) > 0 or first:\n",
        "        if True:\n",
        "a timeline read in pages ends with an empty page after a full one",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_read_in_pages_is_the_timeline_read_whole",
        ),
    ),
    Mutant(
        "timeline-pages-unknown-profile-empty",
        "projections/_timeline.py",
        "        if first and len(page) == 0:\n            _require_known(",
        "        if False:\n            _require_known(",
        "a timeline of an unknown profile read in pages is empty, not refused",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_read_in_pages_is_the_timeline_read_whole",
        ),
    ),
    Mutant(
        "timeline-export-whole",
        "projections/_timeline.py",
        "PAGE_ROWS = 5_000\n",
        "PAGE_ROWS = 1_000_000\n",
        "custody timeline reads and holds the whole timeline before writing it",
        ("tests/e2e/test_cli_export_pages.py",),
    ),
    Mutant(
        "json-pages-unindented",
        "custody/_output.py",
        '            put("  " + json.dumps(record, indent=2).replace("\\n", "\\n  "))\n',
        "            put(json.dumps(record, indent=2))\n",
        "a JSON export written in pages is laid out unlike the one-frame export it replaced",
    ),
    Mutant(
        "csv-pages-header-each",
        "custody/_output.py",
        "        if n == 0:\n            write([shown(defanged(str(c))) for c in frame.columns])\n",
        "        if n >= 0:\n            write([shown(defanged(str(c))) for c in frame.columns])\n",
        "a csv export written in pages repeats its header on every page",
    ),
    Mutant(
        "parquet-pages-first-only",
        "custody/_export.py",
        "            writer.write_table(table)\n",
        "            writer.write_table(table) if schema is None else None\n",
        "a parquet export of many pages holds only the first",
        (
            "tests/e2e/test_cli_export_pages.py::test_an_export_of_many_pages_is_the_whole_timeline_in_order",
        ),
    ),
    Mutant(
        "roles-given-back-refused",
        "ledger/_unit_of_work.py",
        "        if role not in authority.roles and not fresh:\n"
        "            authority = self.repository.authority(fresh=True)\n",
        "",
        "a running process refuses a role its login was given back, until restarted (rev43)",
        ("tests/e2e/test_access_roles_change_under_a_running_process.py",),
    ),
    Mutant(
        "roles-fresh-read-as-remembered",
        "ledger/_stores/sql.py",
        "        if fresh or self._authority is None or self._authority.barred:\n",
        "        if self._authority is None or self._authority.barred:\n",
        "a login's roles read again are the ones remembered (rev43)",
        ("tests/e2e/test_access_roles_change_under_a_running_process.py",),
    ),
    Mutant(
        "roles-taken-said-by-the-database",
        "ledger/_unit_of_work.py",
        "                if e.by_database:  # the login's roles, taken since they were read: "
        "said so\n"
        "                    self.require(acting.role, fresh=True)\n",
        "                pass\n",
        "a command of a role taken from a running process's login gets the database's text (rev43)",
        ("tests/e2e/test_access_roles_change_under_a_running_process.py",),
    ),
    Mutant(
        "sweep-role-taken-per-profile",
        "ledger/_handlers.py",
        "            if isinstance(answer, Forbidden) and not answer.by_database:\n",
        "            if False:\n",
        "a sweep by a login whose scheduler role was taken answers each profile failed (rev43)",
        ("tests/e2e/test_access_roles_change_under_a_running_process.py",),
    ),
    Mutant(
        "sweep-id-role-taken-trigger-text",
        "ledger/_handlers.py",
        "        if e.by_database:  # the scheduler role, taken since it was read: said so, once\n"
        "            uow.require(Role.SCHEDULER, fresh=True)\n",
        "        pass\n",
        "a sweep with an id by a login whose role was taken gets the trigger's text (rev43)",
        ("tests/e2e/test_access_roles_change_under_a_running_process.py",),
    ),
    Mutant(
        "notes-not-while-answering",
        "custody/cli.py",
        "    with _notes():\n        return _run(args)\n",
        "    return _run(args)\n",
        "a timeline's read-model-behind note comes out as a Python warning with its source (rev43)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_a_read_model_behind_the_log_on_read_only_media_says_what_its_answer_leaves_out",
        ),
    ),
    Mutant(
        "json-error-after-part-of-an-answer",
        "custody/cli.py",
        "        return _fail_unexpected(e, as_json and not _part_printed(result))\n",
        "        return _fail_unexpected(e, as_json)\n",
        "--json timeline failing in a later page writes an error object after its rows (rev43)",
        (
            "tests/e2e/test_cli_export_pages.py::"
            "test_a_failure_in_a_later_page_leaves_the_file_as_it_was",
        ),
    ),
    Mutant(
        "json-interrupt-after-part-of-an-answer",
        "custody/cli.py",
        "            return interrupted(as_json and not _part_printed(result))\n",
        "            return interrupted(as_json)\n",
        "--json timeline interrupted part way writes an error object after its rows (rev43)",
        (
            "tests/e2e/test_cli_export_pages.py::"
            "test_a_json_export_interrupted_part_way_ends_its_output_where_it_stopped",
        ),
    ),
    Mutant(
        "pages-never-begun",
        "custody/_printed.py",
        "            self.began = True\n",
        "            self.began = False\n",
        "an answer printed in part is taken for none, its error written after it (rev43)",
        (
            "tests/e2e/test_cli_export_pages.py::"
            "test_a_failure_in_a_later_page_leaves_the_file_as_it_was",
        ),
    ),
    Mutant(
        "door-takes-a-nested-password",
        "ledger/_domain/model.py",
        "    if _nests_a_password(read):\n        return True\n",
        "",
        "a page URL nesting http://bob:pw@intranet/ is written into the append-only log (rev43)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "recorded-url-keeps-nested-passwords",
        "workers/_guard.py",
        "    kept = without_nested_passwords(without_userinfo(storable(url)))\n",
        "    kept = without_userinfo(storable(url))\n",
        "the SDK records a page URL nesting a password (rev43)",
        ("tests/unit/test_commands.py::test_a_nested_url_s_userinfo_is_cut_as_a_reason_s_is",),
    ),
    Mutant(
        "nested-passwords-not-decoded",
        "ledger/_domain/model.py",
        "_DECODINGS = 3\n",
        "_DECODINGS = 0\n",
        "a percent-encoded nested password is recorded and taken by the door (rev43)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "nested-passwords-decoded-once",
        "ledger/_domain/model.py",
        "_DECODINGS = 3\n",
        "_DECODINGS = 1\n",
        "a redirect's redirect (%253A) keeps its password (rev43)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "nested-rule-cuts-the-own-scheme",
        "ledger/_domain/model.py",
        "found.start(1) < done or found.start() == own:",
        "found.start(1) < done:",
        "file:///notes:v2@home.html is refused and recorded as another file (rev43)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "door-nested-any-scheme",
        "ledger/_domain/model.py",
        "        if authority and not re.fullmatch(_AN_AUTHORITY, found[1]):\n",
        "        if False:\n",
        "the door refuses ?at=12h:30:00@utc as a nested password (rev43)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "decoded-cut-misplaced",
        "ledger/_domain/model.py",
        "        at += layer.removed[bisect.bisect_right(layer.past, at)]\n",
        "        at += layer.removed[bisect.bisect_left(layer.past, at)]\n",
        "an encoded nested user beginning with an escape leaves part of it behind (rev43)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "node-records-nested-passwords",
        "clients/typescript/src/guard.ts",
        "    const whole = withoutNestedPasswords(withoutUserinfo(storable(url)));\n",
        "    const whole = withoutUserinfo(storable(url));\n",
        "the Node SDK records a nested password and its heartbeats are refused (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "node-nested-not-decoded",
        "clients/typescript/src/text.ts",
        "const DECODINGS = 3;\n",
        "const DECODINGS = 0;\n",
        "the Node SDK records an encoded nested password (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "node-door-any-scheme",
        "clients/typescript/src/text.ts",
        '    if (authority && !AN_AUTHORITY.test(found[1] ?? "")) continue;\n',
        "",
        "the Node SDK drops URLs the ledger takes (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "node-decoded-cut-misplaced",
        "clients/typescript/src/text.ts",
        "    if ((escapes[middle] ?? 0) < at) low = middle + 1;\n",
        "    if ((escapes[middle] ?? 0) <= at) low = middle + 1;\n",
        "the Node SDK cuts an encoded nested user at the wrong place (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "shared-workers-left-on",
        "workers/_settings.py",
        '        arguments["args"] = [*arguments.get("args", ()), *GUARD_SWITCHES]\n',
        "        pass\n",
        "a page starts a shared worker, whose requests pass no route, and reaches the site after "
        "the lease is lost (rev43)",
        (
            "tests/e2e/test_worker_lost_lease_routes.py::"
            "test_a_page_has_no_shared_worker_to_reach_the_site_through_after_the_loss",
        ),
    ),
    Mutant(
        "shared-workers-switch-dropped",
        "workers/_settings.py",
        "        if arg in GUARD_SWITCHES:\n",
        "        if False:\n",
        "an ignore_default_args list drops the switch that keeps shared workers out (rev43)",
        (
            "tests/unit/test_worker_settings.py::"
            "test_every_launch_has_no_shared_workers_and_none_may_drop_that",
        ),
    ),
    Mutant(
        "answers-asks-the-page",
        "workers/_browser.py",
        "            self.context.cookies()\n",
        '            self.context.pages[-1].evaluate("1")\n',
        "the browser is asked through the final page: a crashed tab gets it killed (rev43)",
        (
            "tests/e2e/test_worker_evidence.py::"
            "test_a_crashed_last_tab_closes_the_browser_and_keeps_its_cookies",
        ),
    ),
    Mutant(
        "frozen-browser-answer-unbounded",
        "workers/_browser.py",
        "            kill_browser(self._user_data_dir, self._watchdog.browser)\n",
        "            pass\n",
        "a frozen browser asked for its cookies after a failed screenshot is waited for forever "
        "(rev43)",
        (
            "tests/e2e/test_worker_evidence.py::"
            "test_a_frozen_browser_is_recorded_killed_and_sent_to_review",
        ),
    ),
    Mutant(
        "revoke-orphans-unnamed",
        "ledger/access.py",
        "        if row.state is ProfileState.LEASED\n",
        "        if False\n",
        "a revocation leaves its worker's live leases held and says nothing of them (rev43)",
        (
            "tests/e2e/test_revoke_names_live_leases.py",
            "tests/integration/test_revocation_leases.py",
        ),
    ),
    Mutant(
        "revoke-rotation-orphans",
        "ledger/access.py",
        "    actors = taken - {t.actor for t in workers_live()}\n",
        "    actors = taken\n",
        "a token rotated (the new one issued first) is said to orphan its worker's leases (rev43)",
        (
            "tests/e2e/test_revoke_names_live_leases.py",
            "tests/integration/test_revocation_leases.py",
        ),
    ),
    Mutant(
        "node-shared-workers-left-on",
        "clients/typescript/src/worker.ts",
        "      args: [...(options.args ?? []), ...GUARD_SWITCHES, "
        "...(proxy === null ? [DIRECT_SWITCH] : [])],\n",
        "      args: [...(options.args ?? []), ...(proxy === null ? [DIRECT_SWITCH] : [])],\n",
        "the Node SDK's browser lets a page start a shared worker, which passes no route (rev43)",
        (
            "tests/integration/test_node_worker_shared_workers.py::"
            "test_a_page_has_no_shared_worker_and_no_option_gives_one_back",
        ),
    ),
    Mutant(
        "node-shared-workers-switch-dropped",
        "clients/typescript/src/worker.ts",
        "    if (GUARD_SWITCHES.includes(arg)) {\n",
        "    if (false) {\n",
        "an ignoreDefaultArgs list drops the Node SDK's switch keeping shared workers out (rev43)",
        (
            "tests/integration/test_node_worker_shared_workers.py::"
            "test_an_ignore_default_args_list_naming_the_switch_is_refused_before_launch",
        ),
    ),
    Mutant(
        "query-value-ends-ignored",
        "ledger/_domain/model.py",
        '_VALUE_ENDS = re.compile(r"[&;]")\n',
        '_VALUE_ENDS = re.compile(r"(?!)")\n',
        "an OAuth sign-in's redirect and login_hint read as a nested password: refused (rev43)",
        (
            "tests/unit/test_commands.py::"
            "test_a_sign_in_s_redirect_and_the_next_parameter_s_address_are_no_password",
        ),
    ),
    Mutant(
        "node-query-value-ends-ignored",
        "clients/typescript/src/text.ts",
        '    if ((text[end] !== "&" && text[end] !== ";") || !aSeparator(layers, end)) continue;\n',
        "    continue;\n",
        "the Node SDK records an OAuth sign-in as another URL (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "batch-refused-in-the-database-s-text",
        "ledger/_unit_of_work.py",
        "                if not refused.by_database:\n                    raise\n",
        "                raise\n",
        "a batch of heartbeats by a login whose role was taken is refused whole (rev43)",
        ("tests/e2e/test_access_roles_change_under_a_running_process.py",),
    ),
    Mutant(
        "revoke-any-token-orphans",
        "ledger/access.py",
        "        return [t for t in tokens_issued(ledger) if t.revoked_at is None and t.role is "
        "Role.WORKER]\n",
        "        return [t for t in tokens_issued(ledger)]\n",
        "an operator's token revoked, or one revoked before, is said to orphan leases (rev43)",
        (
            "tests/e2e/test_revoke_names_live_leases.py",
            "tests/integration/test_revocation_leases.py",
        ),
    ),
    Mutant(
        "host-then-separator-anywhere",
        "ledger/_domain/model.py",
        "        if _HOST_PORT.fullmatch(text, start, ends) is None:\n            return None\n",
        "",
        "a password holding a ';' or an '&' is kept in a reason and taken at the door (rev43)",
        (
            "tests/unit/test_commands.py::"
            "test_a_password_holding_a_query_s_separator_is_cut_from_a_reason",
            "tests/unit/test_commands.py::test_a_password_in_other_spellings_is_refused",
        ),
    ),
    Mutant(
        "node-host-then-separator-anywhere",
        "clients/typescript/src/text.ts",
        "    if (!HOST_PORT.test(text.slice(start, end))) return -1;\n",
        "",
        "the Node SDK keeps a password holding a ';' or an '&' (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "host-then-any-text",
        "ledger/_domain/model.py",
        "        return ends if _NEXT_PARAMETERS.fullmatch(text, ends, at) is not None else None\n",
        "        return ends\n",
        "a password of digits before a ';' (john.doe:2024;Summer@) is taken for a port (rev43)",
        ("tests/unit/test_commands.py::test_a_password_in_other_spellings_is_refused",),
    ),
    Mutant(
        "host-inner-scheme-read",
        "ledger/_domain/model.py",
        '            done = host  # nor in the host (an address\'s "fe80:" is no scheme)\n',
        "",
        "an address's 'fe80:' is read as a scheme and the next parameter's address cut (rev43)",
        (
            "tests/unit/test_commands.py::"
            "test_a_sign_in_s_redirect_and_the_next_parameter_s_address_are_no_password",
        ),
    ),
    Mutant(
        "separator-made-by-the-last-decoding",
        "ledger/_domain/model.py",
        "    return not (before < len(last) and last[before] == at)\n",
        "    return True\n",
        "an encoded nested password holding '%26' reads as a host and a parameter (rev43)",
        ("tests/unit/test_commands.py::test_a_password_in_other_spellings_is_refused",),
    ),
    Mutant(
        "host-port-empty",
        "ledger/_domain/model.py",
        '(?::[0-9]+)?"\n',
        '(?::[0-9]*)?"\n',
        "a password after an empty port ('bob:&a=1@') reads as a host and a parameter (rev43)",
        ("tests/unit/test_commands.py::test_a_password_in_other_spellings_is_refused",),
    ),
    Mutant(
        "node-separator-made-by-the-last-decoding",
        "clients/typescript/src/text.ts",
        "  return !(before < last.length && last[before] === at);\n",
        "  return true;\n",
        "the Node SDK reads an encoded nested password's '%26' as a separator (rev43)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "export-pages-connect-each",
        "reports/_timeline.py",
        "            read,\n            profile_id=profile,",
        "            source.feed.read_frame,\n            profile_id=profile,",
        "each page of a timeline export opens its own ADBC connection (100-130 ms; review 240)",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_s_pages_are_read_on_one_postgresql_connection",
        ),
    ),
    Mutant(
        "export-pages-hold-a-transaction",
        "ledger/_stores/sql_views.py",
        "adbc.connect(self._views._uri(), autocommit=True)",
        "adbc.connect(self._views._uri(), autocommit=False)",
        "an export's shared connection holds its read model's lock between pages: a rebuild waits",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_export_between_pages_holds_no_lock_a_rebuild_waits_for",
        ),
    ),
    Mutant(
        "digest-read-leniently",
        "ledger/_audit/digest.py",
        "        digest = Digest.model_validate_json(data, strict=True)\n",
        "        digest = Digest.model_validate_json(data)\n",
        'a signed digest whose values were retyped ("12", 12.0, true) passes its signature (rev44)',
        (
            "tests/integration/test_tamper.py::"
            "test_a_signed_digest_whose_values_were_retyped_is_not_the_one_signed",
        ),
    ),
    Mutant(
        "digest-field-may-be-missing",
        "ledger/_audit/digest.py",
        "    if missing:\n        raise InvalidInput(",
        "    if False:\n        raise InvalidInput(",
        "a signed digest with its format dropped passes its signature (rev44)",
        (
            "tests/integration/test_tamper.py::"
            "test_a_signed_digest_whose_values_were_retyped_is_not_the_one_signed",
        ),
    ),
    Mutant(
        "evidence-written-in-place",
        "workers/_evidence.py",
        "    with written_whole(path, durable=True) as file:\n        file.write(data)\n",
        "    path.write_bytes(data)\n",
        "a full evidence disk leaves a cut evidence.json or final.png (rev44)",
        (
            "tests/integration/test_evidence_written_whole.py",
            "tests/e2e/test_worker_evidence.py::"
            "test_a_screenshot_the_disk_cuts_short_leaves_no_file_and_is_said",
        ),
    ),
    Mutant(
        "evidence-part-left",
        "ledger/files.py",
        "        part.unlink(missing_ok=True)\n",
        "        pass\n",
        "a write the evidence disk refuses midway leaves its part beside the record (rev44)",
        ("tests/integration/test_evidence_written_whole.py",),
    ),
    Mutant(
        "hung-up-body-unforeseen",
        "service/_bodies.py",
        "            except ClientDisconnect:\n",
        "            except ImportError:\n",
        "a GET of /healthz declaring a body, cut off, was a 500 and a traceback, no token (rev44)",
        (
            "tests/integration/test_service_input.py::test_a_caller_hanging_up_mid_body_is_no_unforeseen_failure[sqlite]",
        ),
    ),
    Mutant(
        "hung-up-form-unforeseen",
        "service/_console.py",
        "    except ClientDisconnect:  # a 500",
        "    except ImportError:  # a 500",
        "a console form cut off by its caller was a 500 and a traceback in the log (rev44)",
        (
            "tests/integration/test_service_input.py::test_a_caller_hanging_up_mid_body_is_no_unforeseen_failure[sqlite]",
        ),
    ),
    Mutant(
        "body-any-json-type",
        "service/_bodies.py",
        "        if kind.strip().lower() == media and not any(\n",
        '        if kind.strip().lower().endswith(media.split("/")[1]) and not any(\n',
        "application/evil+json, application/json-patch+json were read as the command (rev44)",
        (
            "tests/integration/test_service_input.py::test_a_body_not_sent_as_json_is_refused_naming_the_content_type"
            "[sqlite-any-json-suffix]",
        ),
    ),
    Mutant(
        "body-json-any-parameter",
        "service/_bodies.py",
        '            param.strip() and param.partition("=")[0].strip().lower() != "charset"\n',
        "            False\n",
        "application/json;foo=bar was read as the command (rev44)",
        (
            "tests/integration/test_service_input.py::test_a_body_not_sent_as_json_is_refused_naming_the_content_type"
            "[sqlite-a-parameter-not-charset]",
        ),
    ),
    Mutant(
        "query-numbers-as-python-reads-them",
        "service/_bodies.py",
        "        if not plain_number(value, fraction=fraction, exponent=True):\n",
        "        if False:\n",
        "?last=1_0 answered 10 rows, ?last=3.0 three (rev44)",
        (
            "tests/integration/test_service_input.py::test_a_query_number_the_command_line_refuses_is_refused[sqlite-underscore]",
        ),
    ),
    Mutant(
        "ts-id-lone-surrogate-urierror",
        "clients/typescript/src/client.ts",
        "      return encodeURIComponent(value);\n    } catch (error) {\n",
        "      return encodeURIComponent(value);\n    } catch (error) {\n      throw error;\n",
        "why('a\\ud800b') threw a bare URIError: URI malformed, naming nothing (rev44)",
        (
            "tests/integration/test_node_worker.py::"
            "test_the_example_node_worker_clean_crashed_and_revoked",
        ),
    ),
    Mutant(
        "node-evidence-written-in-place",
        "clients/typescript/src/files.ts",
        '  const handle = await open(temporary, "wx", mode ?? 0o666);\n',
        '  await (await import("node:fs/promises")).writeFile(path, data);\n  return;\n'
        '  const handle = await open(temporary, "wx", mode ?? 0o666);\n',
        "the Node SDK's evidence is cut short by a full disk (rev44)",
        ("tests/integration/test_node_worker.py",),
    ),
    Mutant(
        "export-page-not-read-again",
        "ledger/_stores/sql_views.py",
        "        again = self._used\n",
        "        again = False\n",
        "an export whose shared connection drops between pages fails where it read on (review 251)",
        (
            "tests/integration/test_read_models.py::"
            "test_a_timeline_export_reads_on_when_its_connection_drops_between_pages",
        ),
    ),
    Mutant(
        "wait-exponent-refused",
        "service/_bodies.py",
        "        if not plain_number(value, fraction=fraction, exponent=True):\n",
        "        if not plain_number(value, fraction=fraction):\n",
        "the TypeScript client's watch(id, 1e-7) is refused, 422 (review 250)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_wait_written_as_programs_write_small_numbers_is_taken",
        ),
    ),
    Mutant(
        "digest-key-twice",
        "ledger/_audit/digest.py",
        "        given = json.loads(data, object_pairs_hook=_once)\n",
        "        given = json.loads(data)\n",
        "a digest giving a key twice (junk first, the signed value last) passes --public-key",
        (
            "tests/integration/test_tamper.py::"
            "test_a_signed_digest_whose_values_were_retyped_is_not_the_one_signed",
        ),
    ),
    Mutant(
        "ordinal-date-unnamed",
        "reports/_frames.py",
        "        if _ORDINAL.match(text):",
        "        if False:",
        "an ordinal date is refused as 'expected an ISO 8601 time', which it is (review 260)",
        ("tests/unit/test_time_words.py::test_a_time_python_would_read_otherwise_is_refused",),
    ),
    Mutant(
        "nanosecond-timestamp-taken",
        "reports/_frames.py",
        '    elif getattr(value, "nanosecond", 0):',
        "    elif False:",
        "a pandas Timestamp finer than a microsecond is taken where the CLI refuses one (rev 260)",
        (
            "tests/unit/test_time_words.py::"
            "test_a_time_finer_than_a_microsecond_is_refused_from_python_as_from_text",
        ),
    ),
    Mutant(
        "env-set-but-empty",
        "ledger/_domain/errors.py",
        "    if value is not None and not value.strip():\n",
        "    if False:\n",
        "a CUSTODY_* variable set but empty is read as unset, its default (review 45)",
        (
            "tests/unit/test_worker_settings.py::"
            "test_custody_evidence_dir_and_proxies_set_but_empty_are_refused_not_unset",
        ),
    ),
    Mutant(
        "store-env-empty-default",
        "ledger/_stores/settings.py",
        "            named = environment_setting(\n"
        '                STORE_ENV_VAR, os.environ.get(STORE_ENV_VAR), "./custody.db"\n'
        "            )\n",
        "            named = os.environ.get(STORE_ENV_VAR) or None\n",
        "CUSTODY_STORE= quietly means ./custody.db and makes it (review 45)",
        (
            "tests/e2e/test_cli_stores_refused.py::"
            "test_custody_store_set_but_empty_is_bad_input_naming_it_and_makes_no_file",
        ),
    ),
    Mutant(
        "evidence-env-empty-default",
        "workers/_settings.py",
        "environment_setting(EVIDENCE_ENV_VAR, os.environ.get(EVIDENCE_ENV_VAR), STATE_DIR)",
        "os.environ.get(EVIDENCE_ENV_VAR) or None",
        "CUSTODY_EVIDENCE_DIR= quietly means the user's state directory (review 45)",
        (
            "tests/unit/test_worker_settings.py::"
            "test_custody_evidence_dir_and_proxies_set_but_empty_are_refused_not_unset",
        ),
    ),
    Mutant(
        "proxies-env-empty-default",
        "workers/_settings.py",
        'environment_setting(PROXIES_ENV_VAR, os.environ.get(PROXIES_ENV_VAR), "no proxies")',
        "os.environ.get(PROXIES_ENV_VAR) or None",
        "CUSTODY_PROXIES= quietly means no proxies (review 45)",
        (
            "tests/unit/test_worker_settings.py::"
            "test_custody_evidence_dir_and_proxies_set_but_empty_are_refused_not_unset",
        ),
    ),
    Mutant(
        "region-whitespace",
        "ledger/_commands.py",
        "    region: Identity | None = None\n",
        "    region: Name | None = None\n",
        "register --region ' eu' is stored with its space; checkout_for(region='eu') finds none",
        (
            "tests/e2e/test_cli_hostile.py::"
            "test_a_region_or_task_with_whitespace_at_an_end_is_refused_as_the_ids_are",
        ),
    ),
    Mutant(
        "task-type-whitespace",
        "ledger/_commands.py",
        "    task_type: Identity\n",
        "    task_type: Name\n",
        "checkout --task ' t' is stored with its space, unlike every other id (review 45)",
        (
            "tests/e2e/test_cli_hostile.py::"
            "test_a_region_or_task_with_whitespace_at_an_end_is_refused_as_the_ids_are",
        ),
    ),
    Mutant(
        "review-version-ahead",
        "ledger/_domain/profile.py",
        "        if expected_version is not None and expected_version > self.version:\n",
        "        if False:\n",
        "a verdict naming a version the profile never reached says it changed since (review 45)",
        (
            "tests/unit/test_review_version.py::"
            "test_a_version_the_profile_never_reached_is_bad_input_and_writes_nothing",
        ),
    ),
    Mutant(
        "console-cookie-token",
        "service/_console.py",
        "            COOKIE, started.session, max_age=SESSION_SECONDS,",
        "            COOKIE, token, max_age=SESSION_SECONDS,",
        "the console's cookie holds the reviewer's token, sent to every port of the host (rev45)",
        (
            "tests/integration/test_console_sessions.py::test_the_cookie_carries_a_session_which_the_api_refuses",
        ),
    ),
    Mutant(
        "console-sign-out-kept",
        "service/_console.py",
        "            await service.readers.run(lambda ledger: end_session(ledger, session.secret))"
        "\n",
        "",
        "a signed-out session's cookie value, replayed, still acts as the reviewer (rev45)",
        ("tests/integration/test_console_sessions.py::test_a_signed_out_session_is_refused",),
    ),
    Mutant(
        "console-form-token-of-token",
        "service/_console.py",
        "        return Session(holder, secret, form_token(secret))\n",
        "        return Session(holder, secret, form_token(holder.token_id))\n",
        "the console's form token derives from the token, not the session",
        ("tests/integration/test_console_sessions.py::test_a_signed_out_session_is_refused",),
    ),
    Mutant(
        "session-outlives-token",
        "ledger/_stores/sessions.py",
        '"WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL "',
        '"WHERE s.session_hash = ? AND s.expires_at > ? "',
        "a console session goes on acting after its token is revoked",
        (
            "tests/integration/test_console_sessions.py::test_a_revoked_token_ends_its_session_at_once",
        ),
    ),
    Mutant(
        "session-past-its-end",
        "ledger/_stores/sessions.py",
        '"WHERE s.session_hash = ? AND s.expires_at > ? AND t.revoked_at IS NULL "',
        '"WHERE s.session_hash = ? AND ? IS NOT NULL AND t.revoked_at IS NULL "',
        "a console session acts past its end on the store's clock (rev45: the Max-Age was the "
        "browser's alone)",
        (
            "tests/integration/test_console_sessions.py::test_two_replicas_share_a_session_and_its_end",
        ),
    ),
    Mutant(
        "session-written-by-every-role",
        "ledger/_stores/access.py",
        "            return _SESSION if role is Role.REVIEWER else []\n",
        "            return _SESSION\n",
        "a worker's login may start a console session, acting as a reviewer",
        (
            "tests/integration/test_console_sessions.py::test_only_the_reviewers_role_writes_sessions",
        ),
    ),
    Mutant(
        "schema-20-sessions",
        "ledger/_stores/migrations.py",
        "SCHEMA_VERSION = 20\n",
        "SCHEMA_VERSION = 19\n",
        "a store of schema 19, without the console's sessions table, is opened without init",
        (
            "tests/integration/test_console_sessions.py::test_a_store_of_schema_19_is_refused_until_init_makes_the_sessions_table",
        ),
    ),
    Mutant(
        "console-form-any-type",
        "service/_console.py",
        '    declared(request.headers.get("content-type"), FORM_TYPE)  # before a byte is read\n',
        "",
        "a verdict sent as application/json or text/plain was read as a form and recorded (rev45)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_console_form_sent_as_another_type_is_refused_writing_nothing[sqlite]",
        ),
    ),
    Mutant(
        "console-http-errors-json",
        "service/_console.py",
        "    _answered_as_pages(app, console, router)\n",
        "",
        "/console/queue/, GET of a verdict's address: JSON without the console's CSP (rev45)",
        (
            "tests/integration/test_service_input.py::"
            "test_every_404_and_405_under_the_console_is_its_page_with_its_headers[sqlite]",
        ),
    ),
    Mutant(
        "console-405-allow-first-route",
        "service/_console.py",
        '            allow = ", ".join(sorted(methods))\n',
        "            pass\n",
        "PUT /console/sign-in answered Allow: GET, where the page also takes POST",
        (
            "tests/integration/test_service_input.py::"
            "test_every_404_and_405_under_the_console_is_its_page_with_its_headers[sqlite]",
        ),
    ),
    Mutant(
        "console-nothing-reads-as-none",
        "service/_console.py",
        "NOTHING = Markup('<em class=\"nothing\">none recorded</em>')\n",
        'NOTHING = Markup("none")\n',
        "a worker's mutating step named none read as a run that mutated nothing (rev45)",
        (
            "tests/integration/test_console_forms.py::test_a_workers_none_reads_apart_from_nothing_recorded[sqlite]",
        ),
    ),
    Mutant(
        "console-recorded-text-unquoted",
        "service/_console.py",
        "    return one_part(value) if value else NOTHING\n",
        "    return value if value else NOTHING\n",
        "a worker's final URL 'none recorded' read as no final URL (rev45)",
        (
            "tests/integration/test_console_forms.py::test_a_workers_none_reads_apart_from_nothing_recorded[sqlite]",
        ),
    ),
    Mutant(
        "console-run-id-unquoted",
        "service/templates/profile.html",
        "{{ lease.run_id | part }}",
        "{{ lease.run_id }}",
        "a run id 'worker_09 / run_7' read as a worker and a run on the page (rev45)",
        (
            "tests/integration/test_console_forms.py::test_a_workers_none_reads_apart_from_nothing_recorded[sqlite]",
        ),
    ),
    Mutant(
        "read-model-junk-frame-its-own-value",
        "reports/_frames.py",
        "    return values.iloc[refused - 1]\n",
        "    return values.iloc[0]\n",
        "--json reads name another row's value (the first) for a junk cell, as rows name the cell",
        (
            "tests/integration/test_read_model_damage.py::"
            "test_a_junk_cell_among_good_rows_is_named_by_its_own_value",
        ),
    ),
    Mutant(
        "read-model-junk-integer-before-cast",
        "reports/_frames.py",
        '    if values.dtype.kind == "f":\n        numbers = values.dropna()\n',
        "    if False:\n        numbers = values.dropna()\n",
        "a count of 1e30 prints pandas' RuntimeWarning above the one line; infinity is an"
        " internal error",
        ("tests/e2e/test_cli_read_models.py::test_a_junk_cell_is_named_alike_as_rows_and_as_json",),
    ),
    Mutant(
        "projections-run-rounds-ends-damaged",
        "projections/_runner.py",
        "    if left and not stop.is_set():",
        "    if False:",
        "projections run --rounds 1 that left a read model damaged exits 0, as one that caught up",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_single_round_that_leaves_a_read_model_damaged_exits_1",
        ),
    ),
    Mutant(
        "rebuild-held-busy",
        "projections/_runner.py",
        '        except NotAllowed:\n            msg = f"projections rebuild {name}',
        '        except ZeroDivisionError:\n            msg = f"projections rebuild {name}',
        "a second rebuild at once is refused exit 1 naming rebuild-timeline, not busy (6, retry)",
        (
            "tests/integration/test_read_model_upkeep_faults.py::"
            "test_a_rebuild_meeting_another_of_the_same_read_model_is_busy_exit_6",
        ),
    ),
    Mutant(
        "dash-part-unquoted",
        "ledger/_domain/model.py",
        "    if value == NOTHING or any(",
        "    if any(",
        "a step or URL '-' reads in why as nothing recorded (review 262)",
        (
            "tests/e2e/test_cli_texts.py::"
            "test_a_step_or_url_of_a_dash_reads_apart_from_none_in_why_and_timeline",
        ),
    ),
    Mutant(
        "dash-value-unquoted",
        "custody/_render.py",
        '    if value == "-" or any(c.isspace()',
        "    if any(c.isspace()",
        "a step or URL '-' reads in the timeline as it is, beside fields saying none (review 262)",
        (
            "tests/e2e/test_cli_texts.py::"
            "test_a_step_or_url_of_a_dash_reads_apart_from_none_in_why_and_timeline",
        ),
    ),
    Mutant(
        "sign-in-keeps-the-session-before",
        "service/_console.py",
        "            if earlier:  # signed in anew",
        "            if False:  # signed in anew",
        "a browser signing in again leaves its earlier session alive for 8 h (review 261)",
        (
            "tests/integration/test_console_sessions.py::"
            "test_signing_in_anew_ends_the_session_before[sqlite]",
        ),
    ),
    Mutant(
        "sessions-refusal-unnamed",
        "ledger/_stores/connections.py",
        "            elif _names(said, _SESSIONS):",
        "            elif False:",
        "a service's login without the reviewer role is told only the database's words (note 56)",
        (
            "tests/integration/test_console_sessions.py::"
            "test_only_the_reviewers_role_writes_sessions",
        ),
    ),
    Mutant(
        "console-timeline-actor-unquoted",
        "service/templates/profile.html",
        "<td>{{ row.actor_id | part }} ({{ row.actor_role }})</td>",
        "<td>{{ row.actor_id }} ({{ row.actor_role }})</td>",
        "a worker named 'w (reviewer)' reads in the timeline as a reviewer (note 56)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_worker_named_like_a_role_reads_as_one_name_in_the_timeline_and_queue[sqlite]",
        ),
    ),
    Mutant(
        "console-queue-worker-unquoted",
        "service/templates/queue.html",
        "<td>{{ (row.holder_worker or row.last_worker) | part }}</td>",
        '<td>{{ row.holder_worker or row.last_worker or "" }}</td>',
        "the queue's last worker cell shows a worker's id unquoted (note 56)",
        (
            "tests/integration/test_console_forms.py::"
            "test_a_worker_named_like_a_role_reads_as_one_name_in_the_timeline_and_queue[sqlite]",
        ),
    ),
    Mutant(
        "printed-digest-carried-out",
        "custody/_audit_commands.py",
        "    only_in_its_output: ClassVar[bool] = True",
        "    only_in_its_output: ClassVar[bool] = False",
        "digest > /dev/full exits 0 as carried out, the digest kept nowhere (review 266)",
        ("tests/e2e/test_cli_hostile.py::test_a_printed_digest_that_cannot_be_written_fails",),
    ),
    Mutant(
        "aio-evidence-on-the-loop",
        "workers/aio/_leases.py",
        "        self.evidence = await blocking(self._settle, error)",
        "        self.evidence = self._settle(error)",
        "the asyncio SDK writes and syncs evidence.json on the event loop (note 55)",
        (
            "tests/integration/test_worker_sdk.py::"
            "test_the_asyncio_flavour_writes_the_evidence_off_the_event_loop",
        ),
    ),
    Mutant(
        "aio-door-closed-under-a-release",
        "workers/aio/_leases.py",
        "            with self.held_through(), termination.handed_over(signalled, held):",
        "            with termination.handed_over(signalled, held):",
        "closing the asyncio ProfileLeases waits for no lease another task holds (85e43b2, 268)",
        (
            "tests/integration/test_sdk_sigterm.py::"
            "test_two_asyncio_leases_stopped_together_leave_nothing_behind",
        ),
    ),
    Mutant(
        "key-file-of-two-keys",
        "ledger/_audit/digest.py",
        "    if blocks > 1:",
        "    if False:",
        "a key file of two PEM keys is taken as its first (review 266)",
        ("tests/e2e/test_digest_unusable_keys.py::test_a_key_file_of_two_keys_is_bad_input",),
    ),
    Mutant(
        "public-key-file-of-two-keys",
        "ledger/_audit/digest.py",
        '    pem = _one_key(pem, "public_key")\n',
        "",
        "verify takes a public key file of two keys as its first, naming a forgery (review 266)",
        ("tests/e2e/test_digest_unusable_keys.py::test_a_key_file_of_two_keys_is_bad_input",),
    ),
    Mutant(
        "unparsed-request-plain-text",
        "custody/_serve.py",
        "        http=_protocol(),\n",
        "",
        "a request HTTP cannot parse gets uvicorn's plain text, not the JSON error (review 267)",
        (
            "tests/integration/test_service_input.py::"
            "test_a_request_http_cannot_parse_is_answered_with_the_services_error",
        ),
    ),
    Mutant(
        "clock-loose-sample-kept",
        "ledger/_stores/clock.py",
        "self._unkept = best[0] > MAX_UNCERTAINTY_S",
        "self._unkept = False",
        "a clock sample held 3 s on its way to PostgreSQL is kept as the offset for 30 s: a live "
        "lease swept 1.9 s early, events dated seconds in the store's future (rev46)",
        (
            "tests/unit/test_store_clock.py",
            "tests/integration/test_stores.py::"
            "test_a_clock_sample_held_on_its_way_to_postgres_is_not_kept",
        ),
    ),
    Mutant(
        "clock-unkept-time-not-the-servers-read",
        "ledger/_stores/clock.py",
        "                return self._give(self._read)\n",
        "                pass\n",
        "with no sample tight enough, the time given is the local clock and a stale offset, not "
        "the server's clock as read (rev46)",
        ("tests/unit/test_store_clock.py",),
    ),
    Mutant(
        "clock-unkept-samples-each-time",
        "ledger/_stores/clock.py",
        "for _ in range(1 if self._unkept else SAMPLES):",
        "for _ in range(SAMPLES):",
        "while the path to the server stays slow, every time given costs SAMPLES round trips, "
        "not one (rev46)",
        ("tests/unit/test_store_clock.py",),
    ),
    Mutant(
        "grant-takes-no-turns",
        "ledger/_stores/access.py",
        '    store.execute("SELECT pg_advisory_xact_lock(?)", (GRANT_LOCK,))\n',
        "",
        "two access grants of one login at once leave it both roles (rev46 review)",
        (
            "tests/e2e/test_access_grant_one_transaction.py::test_two_grants_at_once_leave_exactly_one_role",
        ),
    ),
    Mutant(
        "grant-not-one-transaction",
        "ledger/access.py",
        "        done = access.grant(one, store.tables,",
        "        done = access.grant(store, store.tables,",
        "access grant commits statement by statement: racing grants leave a login both roles "
        "(rev46 review)",
        (
            "tests/e2e/test_access_grant_one_transaction.py::test_two_grants_at_once_leave_exactly_one_role",
        ),
    ),
    Mutant(
        "grant-non-owner-writes-first",
        "ledger/access.py",
        "    access.refuse_not_owner(store, store.tables.events)\n",
        "",
        "a reviewer's login running access grant is refused only by the database, after "
        "writing (rev46 review)",
        (
            "tests/e2e/test_access_grant_one_transaction.py::test_refused_grant_of_a_non_owner_writes_nothing",
        ),
    ),
    Mutant(
        "grant-keeps-admin-option",
        "ledger/_stores/holdings.py",
        '        "WHERE m.member = r.oid AND m.admin_option AND g.rolname = ANY (?) ORDER BY',
        '        "WHERE m.member = r.oid AND false AND g.rolname = ANY (?) ORDER BY',
        "ADMIN OPTION on a custody group role is kept by grant and not listed (rev46 review)",
        (
            "tests/e2e/test_access_grant_one_transaction.py::test_admin_option_on_the_group_role_is_refused_and_listed",
        ),
    ),
    Mutant(
        "remedy-role-unquoted",
        "ledger/_stores/holdings.py",
        'Held(f"member of {named}", f"REVOKE {quoted(store, group)} FROM {who}")',
        'Held(f"member of {named}", f"REVOKE {group} FROM {who}")',
        "a refusal's remedy names a role that needs quoting unquoted (rev46 review)",
        ("tests/e2e/test_access_grant_one_transaction.py::test_the_remedy_named_quotes_the_role",),
    ),
    Mutant(
        "late-write-timed-from-its-begin-only",
        "ledger/_stores/store.py",
        "                    due=None if in_time is None else self.latest_by(in_time),\n",
        "                    due=None,\n",
        "a release held on its way to PostgreSQL past its lease's deadline is kept as clean: "
        "its in-time check counts from its transaction's BEGIN, which the delay put off too "
        "(rev46 review)",
        (
            "tests/integration/test_write_past_the_deadline.py::"
            "test_a_release_held_on_its_way_to_postgres_past_the_deadline_keeps_nothing",
        ),
    ),
    Mutant(
        "latest-without-the-time-left",
        "ledger/_stores/clock.py",
        "        return _bound(*self._ceiling, at)\n",
        "        return _bound(*self._ceiling, self._monotonic())\n",
        "a worker's write held on its way well within its deadline is refused as late, again "
        "and again, and answered 'busy'",
        (
            "tests/unit/test_store_clock.py",
            "tests/integration/test_write_past_the_deadline.py::"
            "test_a_heartbeat_held_on_its_way_to_postgres_within_its_deadline_is_kept_at_once",
        ),
    ),
    Mutant(
        "latest-trusts-a-doubted-sample",
        "ledger/_stores/clock.py",
        "        self._measured_at = None\n        self._ceiling = None\n",
        "        self._measured_at = None\n",
        "after a save refused as late, the server's clock set forward still bounds a save's "
        "check by the sample from before the step: every save refused as late for 30 s",
        ("tests/unit/test_store_clock.py",),
    ),
    Mutant(
        "long-login-not-named-as-long",
        "ledger/_stores/access.py",
        "    if len(login) > LOGIN_AT_MOST:",
        "    if False:",
        "a login name over 63 characters is told only to use lower-case letters, digits and _, "
        "which it does (rev46 review)",
        (
            "tests/e2e/test_grant_reserved_logins.py::"
            "test_a_login_name_over_63_characters_is_refused_naming_the_length",
        ),
    ),
    Mutant(
        "latest-from-the-first-sample",
        "ledger/_stores/clock.py",
        "            if ceiling is None or _bound(server, mono, mono) < _bound(*ceiling, mono):\n",
        "            if ceiling is None:\n",
        "a save's bound on the server's clock comes from the first sample of a measurement, "
        "one held on its way: a write that late by as much kept (review 273)",
        ("tests/unit/test_store_clock.py",),
    ),
    Mutant(
        "latest-loosened-by-a-congested-measurement",
        "ledger/_stores/clock.py",
        "        ceiling = self._ceiling\n        if ceiling is not None and self._monotonic()",
        "        ceiling = None\n        if ceiling is not None and self._monotonic()",
        "a measurement whose samples were all held on their way replaces the tight bound a "
        "sound one gave: a write held as long past its deadline kept",
        ("tests/unit/test_store_clock.py",),
    ),
    Mutant(
        "late-save-keeps-an-early-bound",
        "ledger/_stores/store.py",
        "            if e.by_the_store:\n                self.doubt_clock()\n",
        "            if e.by_the_store:\n                self.clock_doubted = True\n",
        "after the server's clock is set forward, every save near its deadline is refused by a "
        "bound from before, decided again until its lease is lost",
        (
            "tests/integration/test_write_past_the_deadline.py::"
            "test_a_save_refused_by_a_bound_from_before_the_server_s_clock_stepped_is_kept_next",
        ),
    ),
    Mutant(
        "serve-trusts-a-mistyped-proxy",
        "custody/_serve.py",
        "    _proxies(forwarded)\n",
        "",
        "custody serve --forwarded-allow-ips 300.1.1.1 starts, and the proxy's headers are "
        "silently not believed (rev47 review)",
        (
            "tests/e2e/test_cli_stores_refused.py::"
            "test_serve_trusting_a_proxy_no_address_can_be_is_bad_input",
        ),
    ),
    Mutant(
        "late-save-keeps-its-old-offset",
        "ledger/_stores/store.py",
        "            if e.by_the_store:\n                self.doubt_clock()\n",
        "            if e.by_the_store:\n                self.clock._ceiling = None\n",
        "a save refused as late by the server measures only its bound again: decided again on "
        "the offset of before a step of the server's clock, it passes the check by the whole "
        "step (review 280: a release kept 5 s past its deadline)",
        (
            "tests/integration/test_write_past_the_deadline.py::"
            "test_a_write_decided_on_an_offset_from_before_the_server_s_clock_stepped_is_refused",
        ),
    ),
    Mutant(
        "no-page-left-is-said",
        "workers/_browser.py",
        "            self._evidence.no_page_left()\n",
        "",
        "a task that closed its last page is released cleanly with no final screenshot and "
        "nothing said (rev47)",
        (
            "tests/e2e/test_worker_final_page.py::"
            "test_no_page_left_for_the_final_screenshot_is_said",
        ),
    ),
    Mutant(
        "nested-schemeless-password-refused",
        "ledger/_domain/model.py",
        '_AN_AUTHORITY = _USER_AFTER + "|" + _SCHEMELESS\n',
        "_AN_AUTHORITY = _USER_AFTER\n",
        "the ledger takes a URL nesting ?next=//bob:pw@intranet/, which a browser follows with "
        "the page's scheme, password and all, into the append-only log (rev47)",
    ),
    Mutant(
        "nested-schemeless-password-cut",
        "ledger/_domain/model.py",
        '_SCHEME_RELATIVE = r"(?<=[=&?#\\t\\n\\r])" + _SCHEMELESS\n',
        '_SCHEME_RELATIVE = r"(?!)"\n',
        "the SDKs record ?next=//bob:pw@intranet/ with its password, and a failure's reason "
        "keeps it (rev47)",
    ),
    Mutant(
        "final-url-frozen-at-capture",
        "workers/_browser.py",
        "main_frame=main_frame and not self._captured)",
        "main_frame=main_frame)",
        "a page moving while the browser closes moves the final URL past the screenshot (rev47)",
        ("tests/e2e/test_worker_final_page.py::test_the_final_url_is_the_page_s_at_the_capture",),
    ),
    Mutant(
        "node-no-page-left-unsaid",
        "clients/typescript/src/browser.ts",
        '      this.progress.problem("no page was left open for the final screenshot");\n',
        "",
        "a Node task that closed every page is released cleanly with no final screenshot and "
        "nothing said (rev47, the Python SDK's finding)",
        (
            "tests/integration/test_node_worker_final_page.py::"
            "test_a_task_that_closed_every_page_has_its_missing_screenshot_said",
        ),
    ),
    Mutant(
        "scheme-relative-in-a-path",
        "ledger/_domain/model.py",
        '_SCHEME_RELATIVE = r"(?<=[=&?#\\t\\n\\r])" + _SCHEMELESS\n',
        '_SCHEME_RELATIVE = r"(?<![A-Za-z0-9+.:/\\\\-])" + _SCHEMELESS\n',
        "two slashes in a path are read as a URL without its scheme: a map's coordinates "
        "(/@//48.85:2.35@15z) refused as a password (review 281)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "scheme-relative-tab-between-slashes",
        "ledger/_domain/model.py",
        '_SCHEMELESS = r"[\\\\/][\\t\\n\\r]*[\\\\/]+[\\t\\n\\r]*"\n',
        '_SCHEMELESS = r"[\\\\/]{2,}[\\t\\n\\r]*"\n',
        "a password after /%09/ (a tab a browser drops between the slashes) is recorded and "
        "taken (review 281)",
        ("tests/unit/test_commands.py",),
    ),
    Mutant(
        "node-browser-gone-said-as-pages-closed",
        "clients/typescript/src/browser.ts",
        "      if (this.closing === null) this.gone = true;\n",
        "",
        "a Node worker's browser killed during the task is said as the task's closing every "
        "page (review 281)",
        (
            "tests/integration/test_node_worker_final_page.py::"
            "test_a_browser_killed_during_the_task_is_said_as_gone_not_as_pages_closed",
        ),
    ),
    Mutant(
        "timeline-queries-an-id-of-bytes-not-utf8",
        "projections/_timeline.py",
        "    readable_profile(ledger, profile_id)\n    require_window(since, until)\n",
        "    require_window(since, until)\n",
        "timeline of a profile id given as bytes that are not UTF-8 fails the query's encoding: "
        "exit 1, 'could not write the output', nothing on stdout under --json (rev47)",
        (
            "tests/e2e/test_cli_texts.py::"
            "test_a_profile_id_of_bytes_not_utf8_is_bad_input_naming_it_in_every_read",
        ),
    ),
    Mutant(
        "token-issued-on-a-read-only-sqlite-store",
        "ledger/access.py",
        '    _refuse_read_only(store, "issuing a token")\n',
        "    pass\n",
        "access token on a SQLite file this user may only read exits 6, 'unavailable: attempt "
        "to write a readonly database', as if the store were down, not 7 (rev47)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_a_store_on_read_only_media_is_read_and_never_written",
        ),
    ),
    Mutant(
        "token-revoked-on-a-read-only-sqlite-store",
        "ledger/access.py",
        '    _refuse_read_only(ledger.store, "revoking a token")\n',
        "    pass\n",
        "access revoke on a SQLite file this user may only read exits 6, 'unavailable: attempt "
        "to write a readonly database', as if the store were down, not 7 (rev47)",
        (
            "tests/e2e/test_cli_read_only_store.py::"
            "test_a_store_on_read_only_media_is_read_and_never_written",
        ),
    ),
    Mutant(
        "time-offset-fraction-dropped",
        "reports/_frames.py",
        "    if _FRACTIONAL_OFFSET.search(text):",
        "    if False:",
        "a time whose UTC offset holds a fraction of a second (+00:00:00.5) is read with the "
        "fraction dropped: replay --at T+00:00:00.5 answers for T (rev47)",
        ("tests/unit/test_time_words.py",),
    ),
    Mutant(
        "node-final-url-moves-past-capture",
        "clients/typescript/src/browser.ts",
        "      if (frame.parentFrame() !== null || this.captured) return;\n",
        "      if (frame.parentFrame() !== null) return;\n",
        "a Node page moving while the browser closes moves the final URL past the screenshot "
        "(note 58, review 281's finding in the Python SDK)",
        (
            "tests/integration/test_node_worker_final_page.py::"
            "test_the_final_url_is_the_page_s_at_the_capture",
        ),
    ),
    Mutant(
        "cut-url-unmarked",
        "workers/_guard.py",
        "        kept = kept[: MAX_URL - 1] + CUT_MARK\n",
        "        kept = kept[:MAX_URL]\n",
        "a page URL longer than the ledger keeps is recorded cut with nothing to say so (review "
        "275)",
        ("tests/unit/test_worker_renewal.py::test_progress_follows_the_ledgers_rules_for_steps",),
    ),
    Mutant(
        "node-cut-url-unmarked",
        "clients/typescript/src/guard.ts",
        "cut(whole, MAX_URL - 1) + CUT_MARK : whole;",
        "cut(whole, MAX_URL) : whole;",
        "the Node SDK records a page URL longer than the ledger keeps cut, with nothing to say so "
        "(review 275)",
        (
            "tests/integration/test_node_worker_visited.py::"
            "test_a_page_url_nobody_could_store_is_escaped_not_refused",
        ),
    ),
    Mutant(
        "written-files-unnamed-when-output-fails",
        "custody/cli.py",
        "    if files:\n",
        "    if False:\n",
        "keygen and digest --out whose output line fails say 'run it again to see it', which is "
        "refused (a key never overwritten) or makes another digest (rev48)",
        (
            "tests/e2e/test_cli_sqlite.py::"
            "test_work_done_before_its_output_failed_exits_0_and_says_what_to_do",
        ),
    ),
    Mutant(
        "leases-ordered-by-id-as-text",
        "projections/_leases.py",
        'LEASE_ORDER = ("started_at", "profile_id", "fencing_token")\n',
        'LEASE_ORDER = ("started_at", "lease_id")\n',
        "a profile's leases taken at one instant are read lease-10, lease-11, lease-1: health's "
        "failing reads the wrong five and misses the profile (rev48)",
        (
            "tests/integration/test_fleet_reports.py::"
            "test_a_profile_s_leases_taken_at_one_instant_are_read_in_the_order_taken",
        ),
    ),
    Mutant(
        "failing-reads-leases-by-id",
        "reports/_health.py",
        '.sort_values(["profile_id", "fencing_token"])\n',
        '.sort_values(["started_at", "lease_id"])\n',
        "health's failing reads a profile's leases taken at one instant by id as text and "
        "misses a profile that keeps failing (rev48)",
        (
            "tests/integration/test_fleet_reports.py::"
            "test_a_profile_s_leases_taken_at_one_instant_are_read_in_the_order_taken",
        ),
    ),
    Mutant(
        "review-state-before-version",
        "ledger/_domain/profile.py",
        "        if expected_version is not None and expected_version != self.version:\n",
        "        if expected_version is not None and expected_version != self.version and "
        "self.state in (ProfileState.REVIEW_REQUIRED, ProfileState.QUARANTINED):\n",
        "a verdict overtaken by another reviewer's is told 'nothing to review', not that the "
        "profile changed since the version judged (rev48)",
        ("tests/unit/test_review_version.py",),
    ),
    Mutant(
        "review-refusal-without-a-way-on",
        "ledger/_domain/profile.py",
        "        denial = state_denial(self, ctx.now)\n",
        "        denial = None\n",
        "a review of a profile whose lease is past its deadline, or disabled from review, says "
        "'nothing to review' with no way on (rev48)",
        ("tests/unit/test_review_version.py",),
    ),
    Mutant(
        "audit-key-not-bytes-unnamed",
        "ledger/_audit/digest.py",
        "    if not isinstance(pem, bytes | bytearray | memoryview):  # what the library loads\n",
        "    if False:\n",
        "a key given to ledger.audit as its PEM text (a str) raises a raw TypeError, not "
        "InvalidInput naming the argument (rev48)",
        (
            "tests/integration/test_audit_api_arguments.py::"
            "test_a_key_that_is_not_pem_bytes_is_named",
        ),
    ),
    Mutant(
        "verify-public-key-without-digest-ignored",
        "ledger/audit.py",
        "        if against is None and since is None:\n",
        "        if False:\n",
        "ledger.audit.verify takes a public key with no digest to check it on and ignores it, "
        "as if a signature had been checked (rev48)",
        (
            "tests/integration/test_audit_api_arguments.py::"
            "test_verify_refuses_a_public_key_with_no_digest_to_check_it_on",
        ),
    ),
    Mutant(
        "verify-public-key-unread-without-digest",
        "ledger/audit.py",
        "        _public_hex(public_key)\n",
        "        pass\n",
        "ledger.audit.verify reads a public key only when a digest is given: one of another "
        "type is not named as such before the log is read (rev48)",
        (
            "tests/integration/test_audit_api_arguments.py::"
            "test_verify_refuses_a_public_key_with_no_digest_to_check_it_on",
        ),
    ),
    Mutant(
        "store-url-not-str-unnamed",
        "ledger/_stores/settings.py",
        "        if not isinstance(store_url, str):\n",
        "        if False:\n",
        "Ledger.open given a Path, bytes or a number raises AttributeError, not InvalidInput "
        "naming the store (rev48)",
        (
            "tests/unit/test_store_urls.py::"
            "test_a_store_url_that_is_no_url_text_is_refused_before_anything_is_made",
        ),
    ),
    Mutant(
        "store-url-lone-surrogate-taken",
        "ledger/_stores/settings.py",
        '            url.encode("utf-8", "surrogateescape")\n',
        '            url.encode("utf-8", "surrogatepass")\n',
        "a store URL holding a lone surrogate is taken, and the first command raises a raw "
        "UnicodeEncodeError (rev48)",
        (
            "tests/unit/test_store_urls.py::"
            "test_a_store_url_that_is_no_url_text_is_refused_before_anything_is_made",
        ),
    ),
    Mutant(
        "handle-takes-a-non-command",
        "ledger/_application.py",
        "        if not isinstance(command, Command):  # one check",
        "        if False:  # one check",
        "Ledger.handle given what is not a command (None, a name) raises AttributeError from "
        "inside the door, not InvalidInput naming the command (rev48)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_what_is_not_a_command_is_refused_naming_the_command_writing_nothing",
        ),
    ),
    Mutant(
        "handle-together-takes-a-non-command",
        "ledger/_application.py",
        "            if not isinstance(command, Command):\n",
        "            if False:\n",
        "Ledger.handle_together given an item that is not a command raises AttributeError, "
        "not answering it with InvalidInput naming the command (rev48)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_what_is_not_a_command_is_refused_naming_the_command_writing_nothing",
        ),
    ),
    Mutant(
        "handle-together-takes-a-text",
        "ledger/_application.py",
        "isinstance(commands, str | bytes | bytearray) or ",
        "",
        "Ledger.handle_together given a text takes it as commands one character each, not "
        "InvalidInput naming the commands (rev48)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_handle_together_refuses_what_is_not_commands_naming_them",
        ),
    ),
    Mutant(
        "handle-together-takes-one-command",
        "ledger/_application.py",
        "    if isinstance(commands, Command):\n",
        "    if False:\n",
        "Ledger.handle_together given one command takes its fields as commands, not "
        "InvalidInput naming the commands (rev48)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_handle_together_refuses_what_is_not_commands_naming_them",
        ),
    ),
    Mutant(
        "handle-together-generator-not-taken-whole",
        "ledger/_application.py",
        "        given = commands if isinstance(commands, list | tuple) else ",
        "        given = commands if True else ",
        "Ledger.handle_together given a generator raises TypeError (len), not handling its "
        "commands (rev48)",
        (
            "tests/integration/test_commands_built_unchecked.py::"
            "test_handle_together_takes_a_generator_whole",
        ),
    ),
    Mutant(
        "bench-plain-row-built-in-loop",
        "bench/raw.py",
        "        self.conn.execute(self._plain, (stream.hex, version, *row))\n",
        "        self.conn.execute(self._plain, (stream.hex, version, *event(row[0])))\n",
        "the plain INSERT floor counted building its row as the INSERT's CPU and calls (rev48)",
        ("tests/integration/test_bench_raw.py::test_the_plain_insert_floor_is_the_insert_alone",),
    ),
    Mutant(
        "bench-raw-rows-unpadded",
        "bench/raw.py",
        '    state["pad"] = _pad(topic)\n',
        '    state["pad"] = _pad(topic)[:300]\n',
        "raw rows smaller than custody's events: the raw baseline did less I/O (rev48)",
        ("tests/integration/test_bench_raw.py::test_raw_rows_are_the_size_of_custodys_events",),
    ),
    Mutant(
        "read-account-no-text",
        "projections/_timeline.py",
        'storable(checked_text("account", account_id)) != account_id:\n',
        "storable(account_id) != account_id:\n",
        "an account given to status, usage or a report as a number or bytes is a raw "
        "AttributeError or TypeError (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_a_read_names_an_argument_that_is_no_text",
        ),
    ),
    Mutant(
        "read-profile-no-text",
        "projections/_timeline.py",
        "        not isinstance(profile_id, str) or storable(profile_id) != profile_id\n",
        "        storable(profile_id) != profile_id\n",
        "a timeline of profile 5 is a raw AttributeError (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_a_read_names_an_argument_that_is_no_text",
        ),
    ),
    Mutant(
        "access-secret-no-text",
        "ledger/access.py",
        "    text: str = checked(field, str, given, secret=True)\n",
        "    text: str = given  # type: ignore[assignment]\n",
        "a token or session given as a number is a raw AttributeError (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_an_access_function_names_a_wrong_argument",
        ),
    ),
    Mutant(
        "session-seconds-unchecked",
        "ledger/access.py",
        '    span: int = checked("seconds", SessionSeconds, seconds)\n',
        "    span: int = seconds\n",
        "start_session takes NaN (a raw ValueError), 0, 60.0 or 10**12 seconds (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_an_access_function_names_a_wrong_argument",
        ),
    ),
    Mutant(
        "grant-login-no-text",
        "ledger/access.py",
        '    login = checked("login", str, login)\n',
        "",
        "grant(ledger, 5, 'worker') is a raw TypeError on PostgreSQL (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_an_access_function_names_a_wrong_argument",
        ),
    ),
    Mutant(
        "revoke-token-id-no-text",
        "ledger/access.py",
        "storable(checked(field, str, token_id)) != token_id",
        "storable(token_id) != token_id",
        "revoke(token_id=5) is a raw AttributeError (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_an_access_function_names_a_wrong_argument",
        ),
    ),
    Mutant(
        "wrong-type-secret-quoted",
        "ledger/_door.py",
        "quote=not secret",
        "quote=True",
        "a token, session or store URL given as bytes is quoted in the refusal, its secret with it",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_a_secret_of_the_wrong_type_is_not_quoted",
        ),
    ),
    Mutant(
        "worker-id-unchecked-at-open",
        "workers/_held.py",
        '        self.worker_id = checked_identity("worker_id", worker_id)\n',
        "        self.worker_id = worker_id\n",
        "ProfileLeases.open (sync and asyncio) takes a worker id of 5, holding NUL, empty or "
        "500 characters long, refused only at each checkout (rev48)",
        ("tests/unit/test_worker_open.py",),
    ),
    Mutant(
        "routing-ids-unchecked",
        "workers/_routing.py",
        "            checked_identity(name, given)\n",
        "            pass\n",
        "checkout_for with a region of 5 or holding NUL, or an account no checkout takes, is "
        "NoProfileAvailable (a denial, exit 3) for bad input (rev48)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_routing_refuses_an_id_as_the_ledger_does",
        ),
    ),
    Mutant(
        "scheme-tab-between-slashes",
        "ledger/_domain/model.py",
        '_SLASHES = r"[\\\\/\\t\\n\\r]*"\n',
        '_SLASHES = r"[\\\\/]*"\n',
        "a nested URL with a tab a browser drops between its scheme's slashes "
        "(?next=http:%2F%09%2Fbob%3Apw@intranet/) keeps its password past the door and both "
        "SDKs (rev48)",
    ),
    Mutant(
        "scheme-tab-between-two-slashes",
        "ledger/_domain/model.py",
        '_TWO_SLASHES = r"[\\t\\n\\r]*[\\\\/][\\t\\n\\r]*[\\\\/]" + _SLASHES\n',
        '_TWO_SLASHES = r"[\\\\/]{2,}"\n',
        "a token after foo:/\\t/ (a scheme that is not special, a tab a browser drops between "
        "its slashes) stays in a failure's reason (rev48)",
    ),
    Mutant(
        "scheme-relative-tab-after-slashes",
        "ledger/_domain/model.py",
        '_SCHEMELESS = r"[\\\\/][\\t\\n\\r]*[\\\\/]+[\\t\\n\\r]*"\n',
        '_SCHEMELESS = r"[\\\\/][\\t\\n\\r]*[\\\\/]+"\n',
        "?next=//%0Dbob%3Apw%40intranet (a line break a browser drops after the slashes) keeps "
        "its password past the door (rev48)",
    ),
    Mutant(
        "node-scheme-tab-between-slashes",
        "clients/typescript/src/text.ts",
        'const SLASHES = "[\\\\\\\\/\\\\t\\\\n\\\\r]*";\n',
        'const SLASHES = "[\\\\\\\\/]*";\n',
        "the Node SDK records a nested password after a tab between its scheme's slashes, "
        "which the ledger refuses (rev48)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
    Mutant(
        "region-checked-as-an-id",
        "workers/_routing.py",
        "            checked_text(name, given)\n",
        "            checked_identity(name, given)\n",
        "a region stored before the ids' rule can no longer be routed by its exact text "
        "(fixrev 292)",
        (
            "tests/integration/test_api_argument_types.py::"
            "test_a_region_no_row_holds_is_a_denial_shown_escaped",
        ),
    ),
    Mutant(
        "usage-in-the-database-collation",
        "projections/_leases.py",
        "    found = in_lease_order(read(*select_usage(account_id, since, until)))\n",
        "    found = read(*select_usage(account_id, since, until))\n",
        "usage lists leases started at one instant in the database's collation: an ICU "
        "PostgreSQL orders them otherwise than SQLite (fixrev 294)",
        (
            "tests/integration/test_fleet_reports.py::"
            "test_leases_started_at_one_instant_read_in_one_order_whatever_the_collation",
        ),
    ),
    Mutant(
        "failing-reads-leases-by-start",
        "reports/_health.py",
        '.sort_values(["profile_id", "fencing_token"])\n',
        '.sort_values(["started_at", "fencing_token"])\n',
        "health's failing reads a profile's leases by their times: five unclean ones stamped "
        "before five clean ones are missed (fixrev 294)",
        (
            "tests/unit/test_fleet_folds.py::"
            "test_failing_reads_a_profile_s_leases_in_the_order_taken_whatever_their_times",
        ),
    ),
    Mutant(
        "review-yet-with-no-review-to-come",
        "ledger/_domain/profile.py",
        "        if denial is None or not (overdue or (self.state is ProfileState.DISABLED and "
        "from_review)):\n",
        "        if denial is None:\n",
        "a review of a live lease or of a profile disabled from the pool says 'nothing to review "
        "yet', promising a review that never comes (fixrev 294)",
        ("tests/unit/test_review_version.py",),
    ),
    Mutant(
        "audit-key-memoryview-refused",
        "ledger/_audit/digest.py",
        "bytes | bytearray | memoryview):",
        "bytes | bytearray):",
        "a key given as a memoryview, which the library loads, is refused (fixrev 292)",
        (
            "tests/integration/test_audit_api_arguments.py::"
            "test_verify_takes_a_digest_or_its_bytes_alike",
        ),
    ),
    Mutant(
        "escaped-tab-kept",
        "ledger/_domain/model.py",
        '_DROPPED = frozenset("\\t\\n\\r")\n',
        "_DROPPED = frozenset[str]()\n",
        "a nested URL with an escaped tab between a scheme and its colon, or in its password,"
        " which a browser drops and follows with the password, is taken (rev48's review)",
        ("tests/unit/test_commands.py::test_a_password_in_other_spellings_is_refused",),
    ),
    Mutant(
        "escaped-tab-dropped-maps-back-as-kept",
        "ledger/_domain/model.py",
        "                layer.removed.append(layer.removed[-1] + 3)\n",
        "                layer.removed.append(layer.removed[-1] + 2)\n",
        "a cut past an escaped tab begins a character early: the recorded URL keeps part of the"
        " password (rev48's review)",
        ("tests/unit/test_commands.py::test_a_nested_url_s_userinfo_is_cut_as_a_reason_s_is",),
    ),
    Mutant(
        "node-escaped-tab-kept",
        "clients/typescript/src/text.ts",
        'const DROPPED = new Set(["\\t", "\\n", "\\r"]);\n',
        "const DROPPED = new Set<string>();\n",
        "the Node SDK records a nested URL whose password a browser reads past an escaped tab"
        " (rev48's review)",
        (
            "tests/integration/test_node_worker_settles.py::"
            "test_both_sdks_cut_a_url_s_password_as_the_ledger_reads_it_and_a_browser_would",
        ),
    ),
)
REQUIRED = ("fencing-token", "deadline", "account-proxy")


class MutationNotApplied(Exception):
    """A mutant's text is not in its file exactly once: the code moved, update the mutant."""


@dataclass(frozen=True)
class Trial:
    """How the tests went on one copy: passed, failed (naming the failed tests) or broken."""

    name: str
    tests: str  # passed, failed or broken
    seconds: float
    failed: tuple[str, ...] = ()
    detail: str = ""

    @property
    def verdict(self) -> str:
        """What the run says about a mutant: failing tests kill it."""
        return {"failed": "KILLED", "passed": "SURVIVED"}.get(self.tests, "BROKEN")


def copy_tree(dest: Path) -> Path:
    """A copy of the repository's sources and tests, without the venv, git or caches."""
    tree = dest / "repo"
    shutil.copytree(ROOT, tree, ignore=IGNORED, symlinks=True)  # node_modules/.bin links
    return tree


def mutated(mutant: Mutant, tree: Path) -> str:
    """The text of the mutant's file in ``tree`` with the substitution made; reads only."""
    text = (tree / mutant.path).read_text()
    found = text.count(mutant.find)
    if found != 1:
        msg = (
            f"{mutant.name}: the guard's text occurs {found} times in {mutant.path} "
            f"(expected once); update the mutant to the code:\n{mutant.find}"
        )
        raise MutationNotApplied(msg)
    return text.replace(mutant.find, mutant.replace)


def run_pytest(tree: Path, tests: Sequence[str]) -> subprocess.CompletedProcess[str]:
    """Run pytest in the copy, importing the copy's ``ledger``, never the repository's.

    The venv's editable install points at the real repository; PYTHONPATH puts the copy first,
    and a probe checks that it did before any test runs."""
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1", NESTED: "1"}
    probe = "import ledger._domain.profile as m; print(m.__file__)"
    where = subprocess.run(
        [sys.executable, "-c", probe], cwd=tree, env=env, capture_output=True, text=True
    )
    imported = Path(where.stdout.strip())
    if where.returncode != 0 or not imported.is_relative_to(tree):
        msg = f"the run would import ledger from {imported or where.stderr}, not from {tree}"
        raise RuntimeError(msg)
    command = [sys.executable, "-m", "pytest", *tests, "-q", "-rf", "-p", "no:cacheprovider"]
    return subprocess.run(
        command, cwd=tree, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECONDS
    )


def killers(output: str) -> tuple[str, ...]:
    """The failed tests named in pytest's short summary (``-rf``), without parameters."""
    names = re.findall(r"^FAILED (\S+?)(?:\[.*?\])?(?: - .*)?$", output, re.MULTILINE)
    return tuple(dict.fromkeys(name.removeprefix("tests/unit/") for name in names))


def judge(mutant: Mutant | None, tests: Sequence[str]) -> Trial:
    """Run the tests on a fresh copy, mutated unless ``mutant`` is None (the baseline)."""
    name = mutant.name if mutant else "baseline"
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"custody-mutant-{name}-") as scratch:
        tree = copy_tree(Path(scratch))
        if mutant is not None:
            (tree / mutant.path).write_text(mutated(mutant, tree))
        try:
            run = run_pytest(tree, tests)
        except subprocess.TimeoutExpired:
            took = time.monotonic() - started
            return Trial(name, "broken", took, detail=f"timed out after {TIMEOUT_SECONDS} s")
    took = time.monotonic() - started
    output = run.stdout + run.stderr
    failed = killers(output)
    if run.returncode == 0:
        return Trial(name, "passed", took)
    if run.returncode == 1 and failed:
        return Trial(name, "failed", took, failed)
    # Exit 2-5 (interrupted, internal error, usage, no tests) shows a broken run, not a kill.
    return Trial(name, "broken", took, failed, output[-2000:])


def report(run: Trial, mutant: Mutant) -> None:
    print(f"{run.verdict:<9} {run.name:<34} {run.seconds:5.1f} s  {mutant.breaks}")
    for test in run.failed:
        print(f"{'':<10}killed by {test}")
    if run.detail:
        print(run.detail)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("guards", nargs="*", help="mutant names (default: all; see --list)")
    parser.add_argument(
        "--tests",
        action="append",
        metavar="PATH",
        help="a test path to run in each copy, relative to the repository; repeatable "
        "(default: tests/unit)",
    )
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    args.explicit = bool(args.tests)
    args.tests = args.tests or list(DEFAULT_TESTS)
    return args


def main(argv: Sequence[str]) -> int:
    args = parse(argv)
    if os.environ.get(NESTED):
        print("refusing to run inside a mutant's test run", file=sys.stderr)
        return 2
    by_name = {m.name: m for m in MUTANTS}
    if args.list:
        for m in MUTANTS:
            print(f"{m.name:<34} {m.path:<26} {m.breaks}")
        return 0
    here = Path(__file__).resolve().parent
    nesting = [t for t in args.tests if here.is_relative_to((ROOT / t).resolve())]
    if nesting:
        print(f"the tests to run must not include {here}: {nesting}", file=sys.stderr)
        return 2
    unknown = [g for g in args.guards if g not in by_name]
    if unknown:
        print(f"unknown guards: {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    chosen = [by_name[g] for g in args.guards] or list(MUTANTS)
    for mutant in chosen:  # fail fast, before any test runs, when a guard's code moved
        try:
            mutated(mutant, ROOT)
        except MutationNotApplied as moved:
            print(f"NOT APPLIED {moved}", file=sys.stderr)
            return 2

    def tests_of(mutant: Mutant) -> list[str]:
        return list(mutant.tests) if mutant.tests and not args.explicit else args.tests

    every = list(dict.fromkeys(t for m in chosen for t in tests_of(m)))
    started = time.monotonic()
    baseline = judge(None, every)
    if baseline.tests != "passed":
        print(f"the unmutated tests do not pass ({baseline.tests}); nothing is proven")
        print(baseline.detail or "\n".join(baseline.failed))
        return 1
    print(f"baseline  {' '.join(every)} pass unmutated in {baseline.seconds:.1f} s")
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        runs = list(pool.map(lambda m: judge(m, tests_of(m)), chosen))
    for run, mutant in zip(runs, chosen, strict=True):
        report(run, mutant)
    living = [r.name for r in runs if r.verdict != "KILLED"]
    took = time.monotonic() - started
    print(f"{len(runs) - len(living)} of {len(runs)} mutants killed in {took:.0f} s")
    if living:
        print(f"not killed: {', '.join(living)}")
    return 1 if living else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
