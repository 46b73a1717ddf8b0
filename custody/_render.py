"""Rendering results for a person (text) or a program (``--json``)."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from pydantic import BaseModel

from custody._printed import Printed
from custody._text import MAX_HINT, instant, moment, one_line, printable
from ledger import (
    Availability,
    CheckoutDenied,
    Holder,
    InvalidInput,
    Lease,
    LeaseLost,
    LedgerError,
    ProfileRecord,
    RebuildReport,
)
from ledger.rules import ending_text

if TYPE_CHECKING:
    from ledger import RowDifference, SweepFailure, SweepReport, SweepResult
    from projections import Explanation, ReadModelStatus, Rebuilt, TimelineRow, Usage
    from reports import Replay
    from workers import Inspection


def _is(value: object, package: str, name: str) -> bool:
    """``isinstance(value, package.name)`` for a public class of the read side, the workers or
    the answers of the ledger's commands, without importing the module that defines it: a
    value can be an instance of a class only once that module was imported, so a command
    imports (and defines) no answer's class but its own."""
    if package not in sys.modules:
        return False
    return any(
        c.__name__ == name and c.__module__.partition(".")[0] == package
        for c in type(value).__mro__
    )


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def emit(command: str, result: Any, *, as_json: bool, out: TextIO) -> None:
    """Write a command's result: JSON, a table (status) or lines of text. Free text (a URL, a
    reason) is kept in the ledger as given and printed safely: JSON escapes it, text shows a
    control character or a terminal escape sequence as its escape (``\\x1b``). A command that
    wrote its own output (``sweep --watch``) returns None: nothing more is written."""
    if result is None:
        return
    if isinstance(result, Printed):
        result.write(out, as_json=as_json)
        return
    if as_json:
        out.write(json.dumps(_plain(result), indent=2, sort_keys=False) + "\n")
        return
    if result and isinstance(result, list) and _is(result[0], "projections", "StatusRow"):
        from custody._tables import write_status  # rich is imported only to draw a table

        write_status(result, out=out)
        return
    for line in text(command, result):
        out.write(printable(line) + "\n")


def unfinished(result: Any) -> str | None:
    """What a command that ran could not finish, or found wrong (exit 1), or None."""
    if _is(result, "ledger", "SweepReport") and result.failed:
        failed = "; ".join(f"{f.profile_id} ({f.error})" for f in result.failed)
        return f"the sweep could not settle {len(result.failed)} profile(s): {failed}"
    reports = result if isinstance(result, list) else [result]
    unrepaired = [
        d for r in reports if _is(r, "ledger", "RebuildReport") for d in r.unrepaired
    ]  # ``custody rebuild``'s report, or ``projections rebuild``'s list holding one
    if unrepaired:
        left = ", ".join(d.profile_id for d in unrepaired)
        return (
            f"{len(unrepaired)} profile(s) left as they are, their events cannot be "
            f"folded: {left}; custody verify names the events"
        )
    if isinstance(result, list) and result and _is(result[0], "projections", "ReadModelStatus"):
        damaged = [s for s in result if s.problems]
        if damaged:
            count = sum(len(s.problems) for s in damaged)
            repairs = "; ".join(
                f"custody projections rebuild {s.name}"
                for s in damaged
                if any(f"custody projections rebuild {s.name}" in p for p in s.problems)
            )
            said = f"{count} problem(s) found: the read models are damaged"
            if any(" ahead of the " in p for s in damaged for p in s.problems):
                # What a read model knows beyond the log may be all that is left of events
                # deleted from it (rev29: the hint's rebuild erased the last trace).
                said += (
                    "; one is ahead of the log, as if events were deleted: run custody verify "
                    "(with your last digest) before a rebuild forgets what it knew"
                )
            if repairs:
                said += f"; repair: {repairs}"
            if any("no rebuild repairs" in p for s in damaged for p in s.problems):
                said += "; an event no load can fold is left as it is: custody verify names it"
            return said
    return None


def error_line(error: LedgerError) -> str:
    """The one line a refused command prints (``one_line``); a denial's hint is cut apart
    from the denial, so that a long quoted reason never cuts the steps that unblock."""
    if isinstance(error, CheckoutDenied):
        return f"{one_line(str(error))} -- to unblock: {one_line(error.remediation, MAX_HINT)}"
    if isinstance(error, LeaseLost):
        return one_line(f"{error} -- stop work on this profile")
    return one_line(str(error))


def emit_error(error: LedgerError, *, out: TextIO) -> None:
    body: dict[str, Any] = {
        "error": type(error).__name__,
        "exit_code": error.exit_code,
        "message": str(error),
    }
    if isinstance(error, CheckoutDenied):
        body["denial"] = _plain(error.denial)
    if _is(error, "workers", "NoProfileAvailable"):  # each profile's own denial, beside the counts
        from workers import NoProfileAvailable  # imported already: the error is one

        assert isinstance(error, NoProfileAvailable)
        body["counts"] = error.counts
        body["standing"] = _plain(error.standing)
    if isinstance(error, InvalidInput):
        body["field"] = error.field
    out.write(json.dumps(body, indent=2) + "\n")


def text(command: str, result: Any) -> list[str]:
    """Human-readable lines for a command's result."""
    if isinstance(result, Lease):
        return [lease_line(result)]
    if _is(result, "ledger", "ReleaseResult"):
        return [result.message]
    if isinstance(result, ProfileRecord):
        # Ids as every other line quotes them (rev34: an account "acme, proxy evil, policy
        # strict_evidence" read as the account acme behind proxy evil).
        return [
            f"registered {result.profile_id}: account {_said(result.account_id)}, proxy "
            f"{_said(result.proxy_id)}, policy {result.release_policy}"
        ]
    if isinstance(result, Availability):
        if getattr(result, "resent", False):  # as recorded then: the profile may have moved on
            return [
                f"{result.profile_id} was {result.state.value} after this command (resent: its "
                f"answer as recorded, not the profile now; custody why {result.profile_id} says "
                "where it stands)"
            ]
        return [f"{result.profile_id} is now {result.state.value}"]
    if _is(result, "projections", "Explanation"):
        return explanation_lines(result)
    if _is(result, "projections", "Usage"):
        return [usage_line(result), *because_lines(result.because)]
    if _is(result, "ledger", "SweepReport"):
        return sweep_lines(result)
    if isinstance(result, RebuildReport):
        return rebuild_lines(result)
    if _is(result, "workers", "Inspection"):
        return inspection_lines(result)
    if isinstance(result, list):
        return list_lines(command, result)
    if isinstance(result, dict):
        return [line for k, v in result.items() for line in _entry_lines(k, v)]
    return [] if result is None else [str(result)]


def _entry_lines(key: str, value: Any) -> list[str]:
    """``key: value`` (``-`` for none), or a list's items indented below its key."""
    if isinstance(value, list):
        return [f"{key}:", *(f"  {item}" for item in value)]
    return [f"{key}: {'-' if value is None else value}"]


def lease_line(lease: Lease) -> str:
    step = f", last step {_said(lease.last_step)}" if lease.last_step else ""
    return (
        f"{lease.lease_id} token {lease.fencing_token}: worker {_said(lease.worker_id)}, run "
        f"{_said(lease.run_id)} ({_said(lease.task_type)}), {lease.lease_status.value} until "
        f"{moment(lease.expires_at)}{step}"
    )


def sweep_lines(report: SweepReport) -> list[str]:
    lines = [settled_line(r) for r in report.settled]
    lines += [failed_line(f) for f in report.failed]
    return lines or ["no lease is past its deadline"]


def settled_line(r: SweepResult) -> str:
    return f"{r.lease_id}: marked stale; {r.profile_id} is {r.profile_state.value} ({r.cause})"


def failed_line(f: SweepFailure) -> str:
    return f"{f.profile_id}: could not be settled: {f.error}"


def inspection_lines(i: Inspection) -> list[str]:
    held = (
        f", held by worker {_said(i.holder.worker_id)} under {i.holder.lease_id}"
        if i.holder
        else ""
    )
    if i.holder and i.overdue_since:
        held += f"; its deadline {moment(i.overdue_since)} passed: stale"
    lines = [f"{i.profile_id}: {i.state.value}{held}", f"  directory: {i.user_data_dir or '-'}"]
    status = f"{i.browser.status.value}: " if i.browser else ""
    lines.append(f"  browser: {status}{i.note}")
    if i.shared is not None:
        lines.append(f"  shared: {i.shared}")
    if i.stopped is not None:
        lines.append(
            f"  stopped with {i.stopped.value}; recorded as browser_stopped (#{i.version})"
        )
    elif i.orphan:
        lines.append(f"  to stop it: custody inspect {i.profile_id} --stop-orphan --actor NAME")
    return lines


def rebuild_lines(report: RebuildReport) -> list[str]:
    if not report.differences:
        return ["availability agrees with the events: nothing to repair"]
    lines = difference_lines(report.differences)
    lines.append(
        f"repaired: {report.rows_written} row(s) rewritten from the events, "
        f"{report.rows_deleted} row(s) of unregistered profiles deleted"
        + (f", {len(report.unrepaired)} left as they are" if report.unrepaired else "")
    )
    return lines


def difference_lines(differences: list[RowDifference]) -> list[str]:
    return [f"{d.profile_id}: {d.problem}" for d in differences]


def list_lines(command: str, rows: list[Any]) -> list[str]:
    if not rows:
        return ["(none)"]
    first = rows[0]
    if _is(first, "projections", "TimelineRow"):
        return [timeline_line(r) for r in rows]
    if _is(first, "projections", "ReadModelStatus"):
        return [line for r in rows for line in (read_model_line(r), *problem_lines(r))]
    if _is(first, "projections", "Rebuilt") or isinstance(first, RebuildReport):
        return [
            line
            for r in rows
            for line in (rebuilt_lines(r) if _is(r, "projections", "Rebuilt") else rebuild_lines(r))
        ]
    if isinstance(first, dict):  # records (access list, access tokens): one line each
        return ["  ".join("-" if v is None else str(v) for v in r.values()) for r in rows]
    return [str(r) for r in rows]


def read_model_line(s: ReadModelStatus) -> str:
    if s.name == "availability":  # written with the events: no checkpoint, never behind
        return f"{s.name}: written with the events, {s.rows} rows"
    if s.position is None and s.problems:  # its table is there, its checkpoint lost
        return f"{s.name}: no position, {s.head} events in the log"
    if s.position is None:
        return f"{s.name}: not installed yet (its first read installs it); {s.lag} events to apply"
    rebuilding = "; a rebuild is under way" if s.rebuilding else ""
    return (
        f"{s.name}: position {s.position} of {s.head}, lag {s.lag} events, "
        f"{s.rows} rows{rebuilding}"
    )


def problem_lines(s: ReadModelStatus) -> list[str]:
    """What is wrong with a read model, one line each (it names the repair), indented."""
    return [f"  {problem}" for problem in s.problems]


def rebuilt_lines(r: Rebuilt) -> list[str]:
    return [f"{r.name}: rebuilt to position {r.position}, {r.rows} rows, in {r.seconds} s"]


def replay_lines(r: Replay) -> list[str]:
    """A replay for a person, every time to the microsecond: two moments a microsecond
    apart may answer differently, so they must not read alike."""
    reason = f" ({r.reason.value})" if r.reason and r.reason.value != r.state.value else ""
    lines = [
        f"{r.profile_id} at {instant(r.at)}: {r.state.value}{reason}, since {instant(r.since)} "
        f"(stream version {r.version})",
        f"  {r.message}",
    ]
    if r.holder is not None:
        deadline = f"; deadline {instant(r.deadline)}" if r.deadline else ""
        lines.append(f"  holder: {user_text(r.holder)}{deadline}")
    if r.last_user is not None:
        lines.append(f"  last user: {user_text(r.last_user)}")
    if r.block is not None:
        b = r.block
        by = _said(b.actor_id)
        lines.append(f"  cause: {b.cause.value}, decided by {by} ({b.actor_role.value})")
    lease = r.lease or r.last_lease
    if lease is not None:
        how = ending_text(lease.ending, lease.ending_cause)
        then = "then current" if r.lease else f"last, ended {how} at {instant(lease.ended_at)}"
        lines.append(
            f"  lease {lease.lease_id} ({then}): last step {_said(lease.last_step)}, last safe "
            f"step {_said(lease.last_safe_step)}, unconfirmed mutation {_said(lease.mutating_step)}"
        )
    lines.append("  events up to then:")
    lines += [f"    {timeline_line(e, exact=True)}" for e in r.before] or ["    (none)"]
    lines.append("  events after:")
    lines += [f"    {timeline_line(e, exact=True)}" for e in r.after] or ["    (none)"]
    return lines


def user_text(h: Holder) -> str:
    """Who took a lease: ``worker w2, run r7 (task), lease-3@p``."""
    return (
        f"worker {_said(h.worker_id)}, run {_said(h.run_id)} ({_said(h.task_type)}), {h.lease_id}"
    )


def timeline_line(r: TimelineRow, *, profile: bool = False, exact: bool = False) -> str:
    who = f"{r.profile_id}  " if profile else ""
    at = instant(r.at) if exact else moment(r.at)
    actor = _said(r.actor_id)  # rev33: one holding a space, ";" or "," read as more fields
    bits = [f"{at}  {who}#{r.version:<3} {r.event_type:24} {actor} ({r.actor_role})"]
    for label, value in (
        ("lease", r.lease_id),
        ("step", r.step),
        ("url", r.url),
        ("cause", r.cause),
        ("outcome", r.outcome),
    ):
        if value:
            bits.append(f"{label}={_one_value(value)}")
    if r.detail:
        bits.append(r.detail)
    if r.reason:
        bits.append(json.dumps(r.reason, ensure_ascii=False))
    return "  ".join(bits)


def _one_value(value: str) -> str:
    """A field's text as one value of a line whose fields are ``label=value`` apart by spaces:
    one holding a space or a quote is its JSON string (a step ``pay  url=https://bank/x`` read
    as a step ``pay`` and that URL: rev25), any other as it is."""
    if value == "-" or any(c.isspace() or c == '"' for c in value):  # "-" is none: review 262
        return json.dumps(value, ensure_ascii=False)
    return value


def _said(value: str | None) -> str:
    """A recorded text inside a line of ``label: value; label: value`` (or ``, ``) parts: one
    holding a space, a quote, a semicolon or a comma is its JSON string, so that no value
    reads as more parts (a step ``open_cart; last URL: https://shop/cart`` read as that URL
    before the real one: rev26); ``-`` for none."""
    if not value:
        return "-"
    from ledger.rules import one_part

    return one_part(value)


def explanation_lines(e: Explanation) -> list[str]:
    reason = f" ({e.reason.value})" if e.reason and e.reason.value != e.state.value else ""
    if e.state.value == "leased" and reason == " (stale)":
        # Named as status names it (``leased (overdue)``, reason ``stale``): "leased (stale)"
        # read as a second name for the state the sweep has not marked yet (rev28).
        reason = " (overdue; reason stale)"
    lines = [f"{e.profile_id}: {e.state.value}{reason}", f"  {e.message}"]
    lines.append(f"  since {moment(e.since)}" + (f", until {moment(e.until)}" if e.until else ""))
    if e.cause:
        after = f" (the last one: {e.trigger})" if e.trigger else ""
        lines.append(f"  cause: {e.cause}{after}, decided by {e.blocked_by}")
    if e.holder is not None:
        lines.append(f"  holder: {user_text(e.holder)}")
    if e.last_user is not None:
        lines.append(f"  last user: {user_text(e.last_user)}")
    if e.lease is not None:
        lease = e.lease
        lines += [
            f"  lease {lease.lease_id}, fencing token {lease.fencing_token}",
            f"  last safe step: {_said(lease.last_safe_step)}; step that mutated the account: "
            f"{_said(lease.mutating_step)}",
            f"  last step: {_said(lease.last_step)}; last URL: {_said(lease.last_url)}; "
            f"last heartbeat: {moment(lease.heartbeat_at)}",
        ]
        if lease.ending:
            how = ending_text(lease.ending, lease.ending_cause)
            lines.append(f"  lease ended: {how} at {moment(lease.ended_at)}")
    if e.browser is not None:
        lines.append(f"  browser: {e.browser.status.value}: {e.browser.detail}")
    if e.browser_note:
        lines.append(f"  {e.browser_note}")
    if e.unclean_leases:
        lines.append(f"  unclean endings: {', '.join(e.unclean_leases)}")
    if e.last_review:
        lines.append(f"  last review: {e.last_review}")
    if e.remediation:
        lines.append(f"  to unblock: {e.remediation}")
    if e.row_problem:  # what status and fleet read is not what the events say
        lines.append(
            f"  its stored availability row is wrong ({e.row_problem}): custody status reads "
            "that row; this answer is the events'; repair: custody rebuild"
        )
    return lines + because_lines(e.because)


def because_lines(rows: list[TimelineRow]) -> list[str]:
    """The events behind an answer, one timeline line each."""
    return ["  because:", *(f"    {timeline_line(r)}" for r in rows)] if rows else []


def usage_line(u: Usage) -> str:
    if u.lease is None:
        return f"{u.profile_id}: never leased"
    lease = u.lease
    who = (
        f"worker {_said(lease.worker_id)}, run {_said(lease.run_id)} ({_said(lease.task_type)}), "
        f"{lease.lease_id}"
    )
    if u.current and u.overdue:
        deadline = moment(lease.expires_at)
        return f"{u.profile_id}: held by {who}; its deadline {deadline} passed: stale"
    if u.current:
        return f"{u.profile_id}: held by {who} until {moment(lease.expires_at)}"
    how = ending_text(u.ending, u.cause)
    return f"{u.profile_id}: last used by {who}; ended {how} at {moment(u.ended_at)}"
