"""The audit commands: a signing key, a digest of the whole log, and its verification.

A digest is meant to live outside the database (a file, an object store, a ticket): ``digest
--out FILE`` replaces FILE whole, naming the digest it replaces as its previous one. ``verify``
exits 0 only when every chain holds (and the log holds what the digests given record), 5
otherwise, printing one line per problem with its profile and version.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TextIO

import click

from custody._commands import cli
from custody._printed import Printed
from custody._text import typed
from custody._whole import file_to_write, refuse_no_directory, refuse_read_only, refused_as
from custody._wiring import FileName, Group, on_ledger, owners_only

if TYPE_CHECKING:
    from ledger import Ledger
    from ledger.audit import Verification

# What verify exits with when anything does not hold (as checklist --strict does).
NOT_VERIFIED = 5

_file = FileName(click.Path(dir_okay=False, path_type=Path))
# A file a command writes: its name as given, checked by ``file_to_write`` (as a ``Path`` an
# empty name was already ".").
_new_file = FileName(click.Path(dir_okay=False))


@cli.command()
@click.argument("key_name", metavar="FILE", type=_new_file)
def keygen(key_name: str) -> dict[str, str]:
    """make an Ed25519 key for signing digests: FILE (private, mode 0600) and FILE.pub"""
    from ledger import InvalidInput
    from ledger.audit import generate_key

    instead = "name the private key's file"
    key_file = file_to_write(key_name, field="key_file", named="FILE", instead=instead)
    public_file = file_to_write(f"{key_file}.pub", field="key_file", named="FILE", instead=instead)
    for path in (key_file, public_file):
        if path.exists():
            raise InvalidInput("key_file", f"{path} exists: a key is never overwritten")
    private, public = generate_key()
    _write(key_file, private, mode=0o600, field="key_file")
    try:
        _write(public_file, public, mode=0o644, field="key_file")
    except BaseException:
        # Both or neither: a private key left without its public half (a full disk) made
        # every retry refused, "exists: a key is never overwritten" (rev29). Nothing signed
        # with it yet, so it is not a key anyone keeps.
        key_file.unlink(missing_ok=True)
        raise
    return {"key": typed(str(key_file)), "public_key": typed(str(public_file))}


@cli.command()
@click.option(
    "--out", "out_name", type=_new_file, metavar="FILE", help="write the digest to FILE (whole)"
)
@click.option(
    "--previous", type=_file, metavar="FILE",
    help="the digest this one follows (default: what --out holds now)",
)  # fmt: skip
@click.option("--key", type=_file, metavar="FILE", help="sign with this Ed25519 key (keygen)")
@on_ledger
def digest(
    ledger: Ledger, out_name: str | None, previous: Path | None, key: Path | None
) -> dict[str, object] | DigestAnswer:
    """a digest of the whole log: its tree's size and root, every profile's head, signed"""
    from ledger.audit import digest as make

    replaced = None
    out = None
    if out_name is not None:
        to_print = "to print the digest, leave --out out"
        out = file_to_write(out_name, field="out", named="--out", instead=to_print)
        refuse_no_directory("out", out)
    if out is not None and out.exists():  # a digest --out replaces: nothing else is replaced
        refuse_read_only("out", out)
        replaced = _read(out, "out")
        _refuse_unless_digest(replaced, out)
    # The digest this one follows: --previous, else the one it replaces.
    before = _read(previous, "previous") if previous is not None else replaced
    secret = _read(key, "key") if key is not None else None
    with _progress(sys.stderr) as progress:
        made = make(ledger, previous=before, key=secret, progress=progress)
    if out is None:
        return DigestAnswer(made.to_bytes().decode())
    _write(out, made.to_bytes(), mode=0o644)
    return {
        "digest": typed(str(out)),
        "events": made.tree.size,
        "profiles": len(made.heads),
        "root": made.tree.root,
        "signed_by": made.key,
        "previous": made.previous,
    }


@cli.command()
@click.option("--digest", "digest_file", type=_file, metavar="FILE", help="check against it")
@click.option(
    "--since-digest", "since_file", type=_file, metavar="FILE",
    help="with --digest: prove the log --digest records extends this earlier one's",
)  # fmt: skip
@click.option(
    "--public-key", type=_file, metavar="FILE",
    help="the digests must be signed with this key (keygen's FILE.pub)",
)  # fmt: skip
@on_ledger
def verify(
    ledger: Ledger, digest_file: Path | None, since_file: Path | None, public_key: Path | None
) -> VerifyAnswer:
    """recompute every profile's hash chain and the log's tree; exit 5 if anything is wrong"""
    from ledger import InvalidInput
    from ledger.audit import load, verify as check

    if since_file is not None and digest_file is None:
        raise InvalidInput("since_digest", "needs --digest: the later digest to compare with")
    if public_key is not None and digest_file is None:
        raise InvalidInput("public_key", "needs --digest: the digest whose signature it checks")
    against = load(_read(digest_file, "digest"), "digest") if digest_file else None
    since = load(_read(since_file, "since_digest"), "since_digest") if since_file else None
    key = _read(public_key, "public_key") if public_key is not None else None
    with _progress(sys.stderr) as progress:
        found = check(ledger, against=against, since=since, public_key=key, progress=progress)
    digests = [d for d in (against, since) if d is not None]
    if digests and key is None and found.holds:  # what it holds without: said
        signed = all(d.signature is not None for d in digests)
        note = (
            "each digest's signature was checked against the key it names, which proves it "
            "unaltered, not who signed it: give --public-key to check that"
            if signed
            else "a digest is not signed: anyone who can write the log could have made it "
            "(sign them: custody keygen, then digest --key)"
        )
        sys.stderr.write(f"custody: note: {note}\n")
    return VerifyAnswer(found)


@dataclass(frozen=True)
class DigestAnswer(Printed):
    """A digest printed, not written to a file (no ``--out``): kept nowhere else (review
    266: ``digest > /dev/full`` exited 0, a nightly job's digest lost unsaid)."""

    text: str
    only_in_its_output: ClassVar[bool] = True

    def write(self, out: TextIO, *, as_json: bool) -> None:
        out.write(self.text)


@dataclass(frozen=True)
class VerifyAnswer(Printed):
    found: Verification

    def write(self, out: TextIO, *, as_json: bool) -> None:
        from custody._text import printable

        f = self.found
        if as_json:
            out.write(json.dumps(f.model_dump(mode="json"), indent=2) + "\n")
            return
        checked = f"checked {f.events} events of {f.profiles} profiles"
        if f.snapshots:
            checked += f" and {f.snapshots} snapshot{'s' if f.snapshots > 1 else ''}"
        if f.holds:
            proved = "; the later digest's log extends the earlier's" if f.proof is not None else ""
            out.write(f"{checked}: every chain holds, the tree's root is {f.root}{proved}\n")
            return
        out.write(f"{checked}: {len(f.problems)} problem(s)\n")
        for problem in f.problems:
            out.write(printable(f"  {problem}") + "\n")

    def failed(self) -> tuple[int, str] | None:
        if self.found.holds:
            return None
        return NOT_VERIFIED, f"verify: {len(self.found.problems)} problem(s) in the log"


def _refuse_unless_digest(data: bytes, out: Path) -> None:
    """``digest --out`` replaces only a digest: anything else there (a signing key, notes)
    is someone's, and stays."""
    from ledger import InvalidInput
    from ledger.audit import load

    try:
        load(data, "out")
    except InvalidInput as e:
        msg = f"{str(out)[:200]!r} holds no digest to replace, and is kept ({e.problem})"
        raise InvalidInput("out", msg) from None


# The most a digest, key or public key file may hold: a digest names every profile's head
# (about 130 bytes each), so this is room for a few million profiles.
MAX_FILE_BYTES = 1 << 30


def _read(path: Path, field: str) -> bytes:
    """A regular file's bytes; a device, a FIFO or a larger file is refused before it is read
    (``/dev/zero`` never ends; a FIFO waits for a writer)."""
    from ledger import InvalidInput

    shown = repr(str(path)[:200])
    try:
        with open(path, "rb", opener=_nonblocking) as file:
            found = os.fstat(file.fileno())
            if not stat.S_ISREG(found.st_mode):
                raise InvalidInput(field, f"{shown} is not a regular file")
            if found.st_size > MAX_FILE_BYTES:
                raise InvalidInput(field, f"{shown} holds over {MAX_FILE_BYTES:,} bytes")
            return file.read()
    except OSError as e:
        raise InvalidInput(field, f"cannot read {shown}: {e.strerror}") from None


def _nonblocking(path: str, flags: int) -> int:
    # Opening a FIFO for reading waits for a writer; without blocking it opens at once, and
    # is then refused as not a regular file.
    return os.open(path, flags | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))


def _write(path: Path, data: bytes, *, mode: int, field: str = "out") -> None:
    """Write ``data`` to ``path`` whole or not at all; a failure is bad input naming it as
    ``field`` (the option or argument it came from: rev33, keygen's FILE was named "out")."""
    with refused_as(field, path, mode=mode) as file:
        file.write(data)


@contextmanager
def _progress(err: TextIO) -> Iterator[Callable[[int], None] | None]:
    """A progress line on a terminal (events walked so far, after each batch), ended when the
    walk is over, done or failed, if it was shown, so that the answer or the error after it
    starts a line of its own (rev31: digest never ended it, verify not when it failed);
    nothing (None) in a pipe."""
    if not (hasattr(err, "isatty") and err.isatty()):
        yield None
        return
    shown = False

    def said(events: int) -> None:
        nonlocal shown
        # No escape sequence (a dumb terminal showed it): the count only grows, so each line
        # covers the one before it.
        err.write(f"\rcustody: {events} events walked")
        err.flush()
        shown = True

    try:
        yield said
    finally:
        if shown:
            err.write("\n")
            err.flush()


@cli.group(cls=Group)
def access() -> None:
    """logins and their custody roles (PostgreSQL), and the lease service's bearer tokens
    (run with the store owner's URL)"""


@access.command("grant")
@click.argument("login", metavar="LOGIN")
@click.option(
    "--role", "roles", required=True, multiple=True,
    type=click.Choice(["worker", "scheduler", "reviewer", "operator"]),
    help="the role LOGIN acts in (repeat it for a login that acts in several: a lease "
    "service's, whose callers act in theirs)",
)  # fmt: skip
@click.option(
    "--password-stdin", is_flag=True,
    help="set LOGIN's password to the first line read from standard input",
)  # fmt: skip
@owners_only("access grant")
@on_ledger
def access_grant(
    ledger: Ledger, login: str, roles: tuple[str, ...], password_stdin: bool
) -> dict[str, object]:
    """create or update LOGIN with exactly the privileges of its --role (or roles)"""
    from ledger import InvalidInput
    from ledger.access import grant, with_logins

    with_logins(ledger)  # on SQLite, said before a password is asked for and read
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise InvalidInput("password", "standard input gave an empty line")
    done = grant(ledger, login, roles, password)
    given = ", ".join(r.value for r in done.roles)
    return {"login": done.login, "role": given, "created": done.created}


@access.command("list")
@on_ledger
def access_list(ledger: Ledger) -> list[dict[str, str | None]]:
    """every login holding a custody role, and what it holds beyond it (- for nothing)"""
    from ledger.access import logins

    return [
        {"login": f.login, "role": f.role.value, "also": "; ".join(f.also) or None}
        for f in logins(ledger)
    ]


_ROLES = click.Choice(["worker", "scheduler", "reviewer", "operator"])


@access.command("token")
@click.argument("actor", metavar="ACTOR")
@click.option("--role", required=True, type=_ROLES, help="the one role ACTOR acts in")
@owners_only("access token")
@on_ledger
def access_token(ledger: Ledger, actor: str, role: str) -> dict[str, str]:
    """print a new bearer token for the lease service (custody serve): ACTOR acting as ROLE
    (shown once; the store keeps its hash)"""
    from ledger.access import issue_token

    made = issue_token(ledger, actor, role)
    return {"token": made.token, "token_id": made.token_id, "actor": made.actor, "role": role}


@access.command("revoke")
@click.argument("actor", metavar="[ACTOR]", required=False)
@click.option("--token-id", metavar="ID", help="revoke this one token (custody access tokens)")
@owners_only("access revoke")
@on_ledger
def access_revoke(ledger: Ledger, actor: str | None, token_id: str | None) -> dict[str, object]:
    """revoke every token of ACTOR, or the token --token-id names (within 5 s on every
    replica of the service)"""
    from ledger.access import revoke

    # A worker's live leases stay held: its next heartbeat is refused, and it may release none
    # of them. Named, with what an operator does about them (``ledger.access.revoke``).
    done = revoke(ledger, actor=actor, token_id=token_id)
    revoked = done.revoked
    held = [f"{lease.profile_id} ({lease.lease_id})" for lease in done.leases_held]
    answer: dict[str, object] = {"revoked": revoked, "of": actor if actor is not None else token_id}
    if held:
        answer["leases_held"] = held
        answer["note"] = (
            "their worker can no longer renew or release them through the service: once it has "
            "stopped, custody force-release PROFILE ends each now (to review); else each goes "
            "stale at its deadline, and to review at the next sweep"
        )
    return answer


@access.command("tokens")
@on_ledger
def access_tokens(ledger: Ledger) -> list[dict[str, object]]:
    """every token issued: its id, actor, role, when issued and revoked (never the token)"""
    from ledger.access import tokens_issued

    return [row.model_dump(mode="json") for row in tokens_issued(ledger)]
