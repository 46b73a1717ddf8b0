"""The evidence a lease ends with: what the release reports, and the files kept beside it.

Each lease gets a directory ``<evidence_dir>/<profile_id>/lease-<token>-<started>/`` holding the
screenshot (``final.png``) and ``evidence.json`` (this record). The release event carries the
screenshot's path and the sha256 of its bytes, so the file can later be checked against it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict, dataclass, replace
from datetime import UTC
from pathlib import Path
from typing import Any

from ledger import Lease, Outcome
from ledger.files import written_whole
from ledger.rules import MAX_NAME
from workers._guard import LeaseGuard, Report
from workers._reasons import capped, reason_of, storable

log = logging.getLogger("custody.workers")
MAX_RECORDED_PATH = MAX_NAME  # what the ledger accepts for a screenshot's path
MAX_REASON = 2000  # what the ledger accepts for a reason
# What a release can do without when the ledger refuses it (a digest needs its screenshot).
_DROPPABLE = {
    "final_url": ("final_url",),
    "screenshot": ("screenshot", "screenshot_sha256"),
    "screenshot_sha256": ("screenshot", "screenshot_sha256"),
    "observed_proxy": ("observed_proxy",),
}


def lease_directory(evidence_dir: Path, lease: Lease) -> Path:
    """``<evidence_dir>/<profile>/lease-<token>-<started>/``: the lease's start on the store's
    clock (UTC, to the microsecond) beside its token, so that no lease's evidence is written
    over another's. Two stores on one host (staging and production, or a store made again)
    each lease a profile first with token 1: store B's run replaced store A's screenshot,
    which A's release names with its digest (rev26)."""
    started = lease.lease_started_at.astimezone(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return evidence_dir / lease.profile_id / f"lease-{lease.fencing_token}-{started}"


def sha256_of(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def recorded_path(path: Path, evidence_dir: Path) -> str:
    """The path the ledger records (escaped: ``workers._reasons.storable``): absolute when it
    fits the ledger's limit, else relative to the worker's evidence directory."""
    shown = storable(str(path))
    return (
        shown if len(shown) <= MAX_RECORDED_PATH else storable(str(path.relative_to(evidence_dir)))
    )


def ending(
    error: BaseException | None, expected_failure: str | None, failure: str | None = None
) -> tuple[Outcome, str | None]:
    """How a run ended: an exception is a failure (``failure`` if given, else named by its
    type and first line: ``workers._reasons.reason_of``), else an expected failure the task
    declared, else success."""
    if error is not None:
        return Outcome.FAILURE, failure or reason_of(error)
    if expected_failure is not None:
        return Outcome.EXPECTED_FAILURE, expected_failure
    return Outcome.SUCCESS, None


@dataclass(frozen=True)
class Evidence:
    """What a lease's release reported, and what the worker knew when it ended."""

    lease_id: str
    profile_id: str
    run_id: str
    outcome: Outcome
    reason: str | None
    final_url: str | None
    screenshot: str | None
    screenshot_sha256: str | None
    prompt_seen: bool
    prompt_url: str | None
    observed_proxy: str | None
    last_step: str | None
    last_safe_step: str | None
    mutating_step: str | None
    evidence_problem: str | None = None

    @classmethod
    def of(cls, lease: Lease, report: Report, outcome: Outcome, reason: str | None) -> Evidence:
        return cls(
            lease_id=lease.lease_id,
            profile_id=lease.profile_id,
            run_id=lease.run_id,
            outcome=outcome,
            reason=reason,
            final_url=report.url,
            screenshot=report.screenshot,
            screenshot_sha256=report.screenshot_sha256,
            prompt_seen=report.prompt_url is not None,
            prompt_url=report.prompt_url,
            observed_proxy=report.observed_proxy,
            last_step=report.step,
            last_safe_step=report.last_safe_step,
            mutating_step=report.mutating_step,
            evidence_problem=capped(report.evidence_problem, MAX_REASON)
            if report.evidence_problem
            else None,
        )

    def release_arguments(self) -> dict[str, Any]:
        """Keyword arguments for ``Ledger.release`` (all but the lease and its token)."""
        return {
            "outcome": self.outcome,
            "reason": self.reason,
            "final_url": self.final_url,
            "screenshot": self.screenshot,
            "screenshot_sha256": self.screenshot_sha256,
            "prompt_seen": self.prompt_seen,
            "observed_proxy": self.observed_proxy,
            "evidence_problem": self.evidence_problem,
        }

    def refused(self, field: str, problem: str) -> Evidence:
        """This record without what the ledger refused as bad input (``field``: dropped, or
        for the reason replaced), saying so as its evidence problem. The outcome stays: the
        rules judge such an ending unproven, never clean."""
        said = capped(storable(f"the ledger refused the release's {field}: {problem}"))
        earlier = self.evidence_problem if field != "evidence_problem" else None
        changes: dict[str, Any] = {"evidence_problem": also(earlier, said)}
        if field in _DROPPABLE:
            changes.update(dict.fromkeys(_DROPPABLE[field]))
        elif field == "reason":
            changes["reason"] = said
        return replace(self, **changes)

    def write(self, directory: Path) -> Path:
        """Keep this record as ``evidence.json`` in ``directory`` (made if missing); ``OSError``
        when it cannot be (``kept`` says so instead)."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "evidence.json"
        write_whole(path, (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode())
        return path

    def kept(self, directory: Path) -> Evidence:
        """This record written to ``directory`` (``write``), or, when it cannot be (a directory
        under /proc, a file in the way, a full disk), this record saying so as its evidence
        problem: the lease is released all the same, the missing record said, not skipped."""
        try:
            self.write(directory)
        except OSError as failed:
            said = f"evidence.json could not be written: {reason_of(failed)}"
            return replace(self, evidence_problem=also(self.evidence_problem, said))
        return self


def write_whole(path: Path, data: bytes) -> None:
    """``data`` as the file at ``path``, whole and on the disk or not at all
    (``ledger.files.written_whole``): a full or failing disk leaves neither an empty or cut
    file nor a half-overwritten one (rev44: a full disk left a 0-byte ``evidence.json`` and
    ``final.png`` beside a release that said neither was kept); ``OSError`` as the write's."""
    with written_whole(path, durable=True) as file:
        file.write(data)


def rewrite(record: Evidence, directory: Path) -> None:
    """Keep ``record``, what the ledger took of a release it refused in part, over the one
    written before it was sent. The release is made, so a record that cannot be written now
    can only be logged."""
    try:
        record.write(directory)
    except OSError as failed:
        log.warning("%s: evidence.json could not be rewritten: %s", record.lease_id, failed)


def also(earlier: str | None, said: str) -> str:
    """An evidence problem ``said`` after any ``earlier`` one, within what the ledger keeps."""
    return capped(f"{earlier}; {said}" if earlier else said, MAX_REASON)


def settle(
    lease: Lease,
    guard: LeaseGuard,
    report: Report,
    error: BaseException | None,
    expected_failure: str | None,
    evidence_dir: Path,
    failure: str | None = None,
) -> Evidence | None:
    """The evidence a lease ending now releases with, kept in its evidence directory (or saying
    it could not be: ``Evidence.kept``); an error's reason is ``failure`` if given. A lost
    lease releases nothing: None when an error is already on its way, else ``LeaseLost``."""
    if not guard.held():
        if error is None:
            raise guard.lost_error()
        return None
    outcome, reason = ending(error, expected_failure, failure)
    return Evidence.of(lease, report, outcome, reason).kept(lease_directory(evidence_dir, lease))
