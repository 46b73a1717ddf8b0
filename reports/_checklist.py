"""The article's closing checklist, answered for the fleet from its events.

"Designing Browser Profile Leases for Multi-Worker Automation" (web4browser, DEV Community)
ends with eleven questions a system should answer before running many workers against
persistent browser profiles. ``checklist()`` answers each for this fleet: a verdict (``ok`` or
``attention``), one line, the evidence (ids), and, where the events cannot say, what is
missing (``complete`` is then False: the verdict covers only what the events show).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Literal

from ledger import Ledger
from ledger.feed import ReadModelBehind
from projections import Explanation, ReadResult, explain, hearing_notes, notes_once
from reports import _checks as checks
from reports._checks import Answer
from reports._frames import Source, opened
from reports._sources import Sources, read_sources

Verdict = Literal["ok", "attention"]

# The article's questions, word for word, in its order.
QUESTIONS: tuple[tuple[str, Callable[[Sources, list[Explanation]], Answer]], ...] = (
    ("Does every profile have an account owner?", checks.account_owner),
    ("Does every checkout create a lease record?", checks.lease_records),
    ("Does every lease include worker ID and run ID?", checks.worker_and_run),
    ("Does the worker send heartbeat updates?", checks.heartbeats),
    ("Is TTL treated as a renewal deadline, not a cleanup command?", checks.ttl_is_a_deadline),
    ("Can the system distinguish stale from cleanly released?", checks.stale_or_clean),
    ("Can the system quarantine profiles after unknown failures?", checks.quarantine),
    ("Are proxy and account context checked before launch?", checks.context),
    ("Are lease transitions logged?", checks.transitions_logged),
    ("Can a human reviewer return a profile to the pool?", checks.reviewer_returns),
    ("Can the scheduler explain why a profile is unavailable?", checks.explained),
)
# Unavailable profiles explained in full (each explanation replays the profile's stream).
EXPLAINED = 20


class Check(ReadResult):
    """One question answered: ``answer`` is one line, ``evidence`` the ids behind it (at most
    ``checks.EVIDENCE`` lines, the last saying how many more), ``missing`` what the events
    cannot tell (None when they tell everything asked)."""

    number: int
    question: str
    verdict: Verdict
    answer: str
    evidence: list[str]
    complete: bool
    missing: str | None


class Checklist(ReadResult):
    """The eleven answers, judged at ``at`` (the store's clock)."""

    at: datetime
    account: str | None
    checks: list[Check]
    # What the read models had still to fold, which this login may not (each note's line):
    # the answers leave those events out, whatever their verdicts say.
    behind: list[str] = []

    @property
    def attention(self) -> list[Check]:
        return [c for c in self.checks if c.verdict == "attention"]


def checklist(*, account: str | None = None, ledger: Source = None) -> Checklist:
    """Answer the article's eleven questions for the fleet (``account``'s profiles only, when
    given), after bringing the read models up to date."""
    with opened(ledger) as source, notes_once(), hearing_notes() as behind:
        sources = read_sources(source, account=account)  # a lag note once, not per profile
        answered = answer(sources, explanations(source, sources), account=account)
    return answered.model_copy(update={"behind": may_not_fold(behind)})


def may_not_fold(notes: list[ReadModelBehind]) -> list[str]:
    """The notes of read models this login may not fold, one per read model (its first), by
    name; not those held back by a transaction still open, which a read a moment later folds
    (rev32 reread: the owner's checklist --strict said its login 'may not fold' them)."""
    cannot = {note.name: str(note) for note in reversed(notes) if note.held_at is None}
    return [cannot[name] for name in sorted(cannot)]


def explanations(ledger: Ledger, sources: Sources) -> list[Explanation]:
    """Why each unavailable profile is so, for the first ``EXPLAINED`` of them."""
    blocked = [r.profile_id for r in sources.profiles if r.state.value != "available"]
    return [explain(ledger, pid) for pid in blocked[:EXPLAINED]]


def answer(
    sources: Sources, explained: list[Explanation], *, account: str | None = None
) -> Checklist:
    """The checklist of an already-read ``Sources``."""
    answered = []
    for number, (question, check) in enumerate(QUESTIONS, start=1):
        found = check(sources, explained)
        answered.append(
            Check(
                number=number,
                question=question,
                verdict="attention" if found.attention else "ok",
                answer=found.line,
                evidence=checks.capped(found.evidence),
                complete=found.missing is None,
                missing=found.missing,
            )
        )
    return Checklist(at=sources.at, account=account, checks=answered)
