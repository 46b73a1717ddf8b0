"""``custody access revoke`` of an actor (or token id) that was never issued a token says
"revoked: 0" and exits 0.

Guarantee (quality bar: bad input -- an unknown profile, a malformed id -- gets one clear line
naming what is wrong and a distinct exit code; docs/reference/cli.md applies the same rule to
names that match nothing: "An account named by ``--account`` [...] under which no profile was
ever registered is bad input (exit 2), never an empty, clean answer").

Observed: an operator revoking a compromised worker's tokens with a typo
(``custody access revoke worker-07`` for ``worker-7``), or a token id copied wrong, is told
"revoked: 0", exit 0 -- the clean answer of a revocation that happened to find nothing live --
while the worker's token keeps working. (``ledger.access.revoke_tokens`` counts live rows and
never asks whether the actor or id was ever issued one.)
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import custody, ok


@pytest.fixture
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", url, "init", cwd=tmp_path))
    ok(custody("--store", url, "access", "token", "worker-7", "--role", "worker", cwd=tmp_path))
    return url


@pytest.mark.parametrize(
    "args", [["worker-07"], ["--token-id", "ffffffffffff"]], ids=["actor", "token-id"]
)
def test_revoking_what_was_never_issued_is_bad_input(
    store: str, tmp_path: Path, args: list[str]
) -> None:
    run = custody("--store", store, "access", "revoke", *args, cwd=tmp_path)
    assert run.code == 2, (run.code, run.out, run.err)
    assert ("worker-07" in run.err) or ("ffffffffffff" in run.err), run.err


@pytest.mark.parametrize(
    ("args", "said"),
    [([], "none was given"), (["worker-7", "--token-id", "ffffffffffff"], "not both")],
    ids=["neither", "both"],
)
def test_revoke_names_what_is_missing_or_too_much(
    store: str, tmp_path: Path, args: list[str], said: str
) -> None:
    """With neither an actor nor a token id the line said "not both"."""
    run = custody("--store", store, "access", "revoke", *args, cwd=tmp_path)
    assert run.code == 2, (run.code, run.out, run.err)
    assert run.err.strip().endswith(f"name an actor or a token id (--token-id), {said}"), run.err
