"""How the command line reads its words: an option's value, a repeated option, a group without
its command. Each refusal is bad input (exit 2), one line naming the option and the help to
read, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_process import custody, custody_all, error_line, ok

LEASE = ["lease-1@p", "--token", "1"]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store (SQLite, then PostgreSQL) where profile p is leased: lease-1@p, token 1."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'custody.db'}"
    else:
        url = request.getfixturevalue("pg_url")
    ok(custody("--store", url, "init", cwd=tmp_path))
    ok(custody("register", "p", "--account", "a", "--proxy", "x", cwd=tmp_path, store=url))
    ok(custody("checkout", "p", "--worker", "w", "--run", "r", "--task", "t",
               cwd=tmp_path, store=url))  # fmt: skip
    return url


def _log(tmp_path: Path, store: str) -> str:
    return ok(custody("--json", "timeline", "p", cwd=tmp_path, store=store)).out


# What each command line refused, the option left without its value, and the option taken
# for it; the help the line points at.
_SWALLOWED = {
    "release": (
        ["release", *LEASE, "--outcome", "success", "--final-url", "https://shop.example/done",
         "--reason", "--prompt-seen"],
        "--reason", "--prompt-seen", "custody release",
    ),
    "heartbeat": (["heartbeat", *LEASE, "--step", "--mutating"], "--step", "--mutating",
                  "custody heartbeat"),
    "sweep": (["sweep", "--command-id", "--watch"], "--command-id", "--watch", "custody sweep"),
    "inspect": (["inspect", "p", "--actor", "--stop-orphan"], "--actor", "--stop-orphan",
                "custody inspect"),
    "global": (["--store", "--json", "status"], "--store", "--json", "custody"),
    "group's option": (["release", *LEASE, "--outcome", "failure", "--reason", "--json"],
                       "--reason", "--json", "custody release"),
    "help": (["heartbeat", *LEASE, "--url", "-h"], "--url", "-h", "custody heartbeat"),
    "with =": (["heartbeat", *LEASE, "--step", "--url=https://x"], "--step", "--url=https://x",
               "custody heartbeat"),
    "projections run": (["projections", "run", "--interval", "--rounds", "1"], "--interval",
                        "--rounds", "custody projections run"),
    "access grant": (["access", "grant", "l", "--role", "--password-stdin"], "--role",
                     "--password-stdin", "custody access grant"),
}  # fmt: skip


def test_an_option_s_name_is_never_taken_for_a_value(tmp_path: Path, store: str) -> None:
    """rev40: an option that needs a value took the next word even when it was an option's
    name: ``release ... --reason --prompt-seen`` exited 0, recording the reason
    "--prompt-seen" and no prompt (the profile back to the pool, not to review), ``heartbeat
    --step --mutating`` a step "--mutating" and no mutating step. Each such line, of a command,
    a subcommand or the custody group, is bad input (exit 2) naming both, and writes nothing."""
    before = _log(tmp_path, store)
    runs = custody_all([argv for argv, *_ in _SWALLOWED.values()], cwd=tmp_path, store=store)
    for (name, (_, option, value, where)), run in zip(_SWALLOWED.items(), runs, strict=True):
        assert run.code == 2, (name, run.err)
        assert error_line(run) == (
            f"custody: invalid arguments: {option} needs a value (got the option {value}) "
            f"(see {where} --help)"
        ), name
    assert _log(tmp_path, store) == before


def test_a_value_given_with_equals_is_the_text_typed(tmp_path: Path, store: str) -> None:
    """``--reason=--prompt-seen`` says the value is that text: it is recorded as typed."""
    release = ["release", *LEASE, "--outcome", "failure", "--reason=--prompt-seen"]
    ok(custody(*release, cwd=tmp_path, store=store))
    ended = [e for e in ok(custody("--json", "timeline", "p", cwd=tmp_path, store=store)).json()
             if e["event_type"] == "lease_release_requested"]  # fmt: skip
    assert [e["reason"] for e in ended] == ["--prompt-seen"]


# Each option in seconds, typed before its value.
_SECONDS = {
    "projections run --interval": ["projections", "run", "--rounds", "1", "--interval"],
    "sweep --interval": ["sweep", "--watch", "--interval"],
    "inspect --grace": ["inspect", "p", "--stop-orphan", "--actor", "ops", "--grace"],
}


@pytest.mark.parametrize("typed", ["\u0661", " 2", "+1", "1_0", "1e1", "inf", "nan", "2\n"])
def test_seconds_are_ascii_digits_only(tmp_path: Path, store: str, typed: str) -> None:
    """rev40: options in seconds took what Python's ``float()`` takes, where whole numbers
    refuse it (rev37): an Arabic-Indic one, ``' 2'``, ``'+1'``, ``'1_0'`` (read as 10), an
    exponent, ``inf``. Each is bad input: exit 2, one line quoting it, nothing written."""
    before = _log(tmp_path, store)
    runs = custody_all([[*argv, typed] for argv in _SECONDS.values()], cwd=tmp_path, store=store)
    for name, run in zip(_SECONDS, runs, strict=True):
        assert run.code == 2, (name, run.err)
        option = name.rpartition(" ")[2]
        assert f"invalid value for '{option}': {typed!r} is not a valid number of seconds" in (
            error_line(run)
        ), name
    assert _log(tmp_path, store) == before


def test_seconds_may_have_a_fraction(tmp_path: Path, store: str) -> None:
    """A fraction after a point is a number of seconds, with or without digits on one side."""
    runs = custody_all(
        [["projections", "run", "--rounds", "1", "--interval", typed] for typed in (".5", "2.")]
        + [["inspect", "p", "--grace", "0.5"]],
        cwd=tmp_path, store=store,
    )  # fmt: skip
    for run in runs:
        ok(run)


# A single-valued option given twice, and its name as the line gives it.
_REPEATED = {
    "status --state": (["status", "--state", "review_required", "--state", "quarantined"],
                       "--state", "custody status"),
    "release --outcome": (["release", *LEASE, "--outcome", "failure", "--outcome", "success"],
                          "--outcome", "custody release"),
    "with =": (["release", *LEASE, "--outcome=failure", "--reason", "r", "--outcome=success"],
               "--outcome", "custody release"),
    "same value": (["heartbeat", *LEASE, "--step", "s", "--step", "s"], "--step",
                   "custody heartbeat"),
    "global --store": (["--store", "sqlite:///other.db", "--store", "sqlite:///other.db",
                        "status"], "--store", "custody"),
    "projections run": (["projections", "run", "--rounds", "1", "--rounds", "2"], "--rounds",
                        "custody projections run"),
}  # fmt: skip


def test_an_option_given_twice_is_refused(tmp_path: Path, store: str) -> None:
    """rev40: of an option that takes one value given twice, the last was taken silently:
    ``status --state review_required --state quarantined`` listed the quarantined alone,
    ``release ... --outcome failure --outcome success`` released cleanly. It is bad input
    (exit 2) naming the option, whatever the values, and nothing is written."""
    before = _log(tmp_path, store)
    runs = custody_all([argv for argv, *_ in _REPEATED.values()], cwd=tmp_path, store=store)
    for (name, (_, option, where)), run in zip(_REPEATED.items(), runs, strict=True):
        assert run.code == 2, (name, run.err)
        assert error_line(run) == (
            f"custody: invalid arguments: {option} is given more than once: give it once "
            f"(see {where} --help)"
        ), name
    assert _log(tmp_path, store) == before
    assert not (tmp_path / "other.db").exists()


def test_what_may_be_given_twice_is_taken(tmp_path: Path) -> None:
    """A flag given twice says the same twice, and is taken once; an option that takes
    several values (``access grant --role``) is given once for each."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    ok(custody("--store", store, "init", cwd=tmp_path))
    assert ok(custody("--json", "--json", "status", cwd=tmp_path, store=store)).json() == []
    grant = ["access", "grant", "l", "--role", "worker", "--role", "reviewer"]
    # Read past the parsing: SQLite has no logins, which is the line's only complaint.
    assert "logins and roles are PostgreSQL's" in error_line(
        custody(*grant, cwd=tmp_path, store=store)
    )


def test_a_group_without_its_command_says_so_in_one_line(tmp_path: Path) -> None:
    """rev40: ``custody projections`` and ``custody access`` printed their help squashed into
    one error line ("invalid arguments: usage: ... (41 characters left out)"), where
    ``custody`` alone says ``missing command``: each says so, naming its own help."""
    runs = custody_all([[], ["projections"], ["access"]], cwd=tmp_path)
    for where, run in zip(["custody", "custody projections", "custody access"], runs, strict=True):
        assert run.code == 2, run.err
        line = error_line(run)
        assert line == f"custody: invalid arguments: missing command (see {where} --help)"
        assert run.out == ""


# What click's parser refuses on its own, and the help the line must name.
_PARSER_REFUSALS = {
    "checkout --ttl": (["checkout", "p", "--worker", "w", "--run", "r", "--task", "t", "--ttl"],
                       "option '--ttl' requires an argument", "custody checkout"),
    "flag with a value": (["release", *LEASE, "--outcome", "success", "--prompt-seen=x"],
                          "option '--prompt-seen' does not take a value", "custody release"),
    "projections run --rounds": (["projections", "run", "--rounds"],
                                 "option '--rounds' requires an argument",
                                 "custody projections run"),
    "access grant --role": (["access", "grant", "l", "--role"],
                            "option '--role' requires an argument", "custody access grant"),
    "global --store": (["--store"], "option '--store' requires an argument", "custody"),
}  # fmt: skip


def test_a_refusal_of_click_s_parser_names_the_command_s_help(tmp_path: Path) -> None:
    """rev40: ``checkout ... --ttl`` with no value said ``(see custody --help)``, whose page
    lists commands, not checkout's options: the line names the help of the command refused."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    runs = custody_all([argv for argv, *_ in _PARSER_REFUSALS.values()], cwd=tmp_path,
                       store=store)  # fmt: skip
    for (name, (_, said, where)), run in zip(_PARSER_REFUSALS.items(), runs, strict=True):
        assert run.code == 2, (name, run.err)
        assert error_line(run) == f"custody: invalid arguments: {said} (see {where} --help)", name
    assert not any(tmp_path.iterdir())
