"""Release policies and the rules that judge how a lease ended. Pure functions, no I/O.

An ending is *clean* (the profile returns to the pool), *review* (a person must look) or
*quarantine* (the profile is unsafe until cleared). Only a clean ending is explainable on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator

from ledger._domain.model import Cause, Lease, Outcome, says_something


class Ending(StrEnum):
    CLEAN = "clean"
    REVIEW = "review"
    QUARANTINE = "quarantine"


@dataclass(frozen=True)
class ReleasePolicy:
    """What a release must prove, and where an unproven ending sends the profile."""

    name: str
    requires_screenshot: bool
    on_unknown: Ending
    description: str


RELEASE_POLICIES: dict[str, ReleasePolicy] = {
    p.name: p
    for p in (
        ReleasePolicy(
            "manual_review_on_unknown_state",
            requires_screenshot=False,
            on_unknown=Ending.REVIEW,
            description="an unknown final URL sends the profile to review",
        ),
        ReleasePolicy(
            "quarantine_on_unknown_state",
            requires_screenshot=False,
            on_unknown=Ending.QUARANTINE,
            description="an unknown final URL quarantines the profile",
        ),
        ReleasePolicy(
            "evidence_required",
            requires_screenshot=True,
            on_unknown=Ending.REVIEW,
            description="a release needs a final URL and screenshot, else review",
        ),
        ReleasePolicy(
            "strict_evidence",
            requires_screenshot=True,
            on_unknown=Ending.QUARANTINE,
            description="a release needs a final URL and screenshot, else quarantine",
        ),
    )
}
DEFAULT_RELEASE_POLICY = "manual_review_on_unknown_state"
DEFAULT_UNCLEAN_LIMIT = 3
DEFAULT_UNCLEAN_WINDOW_SECONDS = 24 * 3600


def _check_policy(name: str) -> str:
    if name not in RELEASE_POLICIES:
        raise ValueError(f"expected one of {', '.join(RELEASE_POLICIES)}")
    return name


PolicyName = Annotated[str, AfterValidator(_check_policy)]


@dataclass(frozen=True)
class ReleaseReport:
    """What the worker says about the end of its run."""

    outcome: Outcome
    final_url: str | None = None
    screenshot: str | None = None
    screenshot_sha256: str | None = None
    prompt_seen: bool = False
    observed_proxy: str | None = None
    observed_account: str | None = None
    evidence_problem: str | None = None  # why the evidence could not be collected


@dataclass(frozen=True)
class Verdict:
    ending: Ending
    cause: Cause | None


def judge_release(lease: Lease, report: ReleaseReport, policy: ReleasePolicy) -> Verdict:
    """Decide how a release ends: every finding counts and the most severe one wins
    (quarantine over review); among equals, the first listed below. An expected failure is
    explained by its reason: it needs no final URL and no screenshot. Evidence that could
    not be collected (whatever the outcome) proves nothing: the ending is unproven."""
    proves = report.outcome is not Outcome.EXPECTED_FAILURE  # what evidence must show
    findings = [
        (
            report.observed_proxy not in (None, lease.proxy_id),
            Ending.QUARANTINE,
            Cause.PROXY_MISMATCH,
        ),
        (
            report.observed_account not in (None, lease.account_id),
            Ending.QUARANTINE,
            Cause.ACCOUNT_MISMATCH,
        ),
        (
            # Any failure, expected or not: a reason explains why the run failed, not what
            # the change it made to the account came to (the sweep and a force-release
            # quarantine the same way).
            report.outcome is not Outcome.SUCCESS and lease.mutating_step is not None,
            Ending.QUARANTINE,
            Cause.MUTATION_UNCONFIRMED,
        ),
        (report.prompt_seen, Ending.REVIEW, Cause.VERIFICATION_PROMPT),
        (report.outcome is Outcome.FAILURE, Ending.REVIEW, Cause.UNEXPECTED_FAILURE),
        (report.evidence_problem is not None, policy.on_unknown, Cause.EVIDENCE_FAILED),
        (proves and not shown(report.final_url), policy.on_unknown, Cause.UNKNOWN_FINAL_URL),
        (
            proves and policy.requires_screenshot and not pictured(report),
            policy.on_unknown,
            Cause.MISSING_SCREENSHOT,
        ),
    ]
    for severity in (Ending.QUARANTINE, Ending.REVIEW):
        for found, ending, cause in findings:
            if found and ending is severity:
                return Verdict(ending, cause)
    return Verdict(Ending.CLEAN, None)


# The sha256 of no bytes at all: a screenshot file that came out empty.
EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


def shown(url: str | None) -> bool:
    """Whether a final URL names a page: one of spaces or invisible characters alone (" ",
    a zero-width space, a no-break space) names none."""
    return url is not None and says_something(url)


def pictured(report: ReleaseReport) -> bool:
    """Whether the release brings a screenshot that holds anything: an empty file shows
    nothing, and a path without the digest of its bytes vouches for nothing (rev28: a release
    naming a file that did not exist, without a digest, ended clean under strict_evidence)."""
    return report.screenshot is not None and report.screenshot_sha256 not in (None, EMPTY_SHA256)


def judge_stale(lease: Lease) -> Verdict:
    """A lease that missed its deadline: quarantine if the account may be half-mutated; a
    deadline that was the lease's hard limit says so (its worker may have renewed to the
    end)."""
    if lease.mutating_step is not None:
        return Verdict(Ending.QUARANTINE, Cause.MUTATION_UNCONFIRMED)
    if lease.ended_by_hard_limit():
        return Verdict(Ending.REVIEW, Cause.HARD_LIMIT_REACHED)
    return Verdict(Ending.REVIEW, Cause.LEASE_EXPIRED)


def repeated_unclean(
    earlier: tuple[tuple[str, datetime], ...],
    lease_id: str,
    now: datetime,
    limit: int,
    window_seconds: int,
) -> list[str] | None:
    """The leases to list when this unclean ending is the ``limit``-th within the window."""
    since = now - timedelta(seconds=window_seconds)
    recent = [lid for lid, at in earlier if at >= since and lid != lease_id]
    if len(recent) + 1 >= limit:
        return [*recent, lease_id]
    return None
