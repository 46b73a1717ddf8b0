"""One directory, one profile: a registration whose ``user_data_dir`` is, contains or lies
inside another profile's is refused, on every store, also when processes race; and a store
from before the rule (schema 4) is migrated by recording its directories, overlaps and all."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from conftest import event_count, register
from racing import run_all

import ledger._stores.store as store_module
from ledger import InvalidInput, Ledger, NotAllowed, StoreUnavailable
from ledger._domain import model
from ledger._domain.model import MAX_DIRECTORY_BYTES

RACER = str(Path(__file__).with_name("directory_racer.py"))


# The longest directory the door takes, in UTF-8 bytes; one of ASCII and one of 2-byte letters.
LONGEST = ["/" + "d" * 2047, "/" + "d" + "é" * 1023]


@pytest.mark.parametrize("directory", LONGEST, ids=["ascii", "two-byte"])
def test_the_longest_directory_the_door_takes_is_kept_on_every_store(
    ledger: Ledger, directory: str
) -> None:
    """A directory of 2,048 UTF-8 bytes is registered and read back on both stores, and one
    byte more is refused at the door naming user_data_dir, writing nothing: PostgreSQL's index
    of directories takes at most 2,704 bytes an entry, and a 4,000-character directory, which
    the door took, failed there as "store unavailable" where SQLite kept it."""
    assert len(directory.encode()) == MAX_DIRECTORY_BYTES
    register(ledger, "p1", user_data_dir=directory)
    assert ledger.view("p1").record.user_data_dir == directory
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match="at most 2048") as refused:
        register(ledger, "p2", account_id="other", user_data_dir=directory + "x")
    assert refused.value.field == "user_data_dir"
    assert event_count(ledger) == before


def test_a_directory_as_long_as_a_linux_path_is_refused_at_the_door(ledger: Ledger) -> None:
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match="user_data_dir"):
        register(ledger, "p1", user_data_dir="/" + "d" * 4000)
    assert event_count(ledger) == before


@pytest.mark.parametrize(
    "theirs",
    [
        "/srv/profiles/a",  # the same directory
        "/srv/profiles/a/",  # spelled with a trailing slash
        "/srv/profiles/./b/../a",  # spelled the long way
        "/srv/profiles/a/cache",  # inside it
        "/srv/profiles",  # containing it
        "/",  # containing everything
    ],
)
def test_an_overlapping_directory_is_refused_naming_its_profile(
    ledger: Ledger, theirs: str
) -> None:
    """A second profile on the same directory, one inside it or one containing it is bad
    input naming user_data_dir and the profile that has it; nothing is written."""
    register(ledger, "profile_a", user_data_dir="/srv/profiles/a")
    before = event_count(ledger)
    with pytest.raises(InvalidInput, match="profile_a") as refused:
        register(ledger, "profile_b", account_id="other", user_data_dir=theirs)
    assert refused.value.field == "user_data_dir"
    assert "/srv/profiles/a" in str(refused.value)
    assert event_count(ledger) == before
    assert ledger.profile_ids() == ["profile_a"]
    assert [r.profile_id for r in ledger.availability()] == ["profile_a"]


@pytest.mark.parametrize("theirs", ["/srv/profiles/ab", "/srv/profile", "/srv/profiles/b/a"])
def test_a_sibling_sharing_a_prefix_is_not_an_overlap(ledger: Ledger, theirs: str) -> None:
    """Directories are compared by whole components: /srv/profiles/ab is not inside
    /srv/profiles/a, nor is /srv/profile a parent of it."""
    register(ledger, "profile_a", user_data_dir="/srv/profiles/a")
    register(ledger, "profile_b", user_data_dir=theirs)
    assert ledger.profile_ids() == ["profile_a", "profile_b"]


def test_registering_the_same_profile_again_stays_a_no_op(ledger: Ledger) -> None:
    """The profile's own directory does not overlap itself: the same record again appends
    nothing and is not refused; a refused registration leaves the directory free."""
    register(ledger, "profile_a", user_data_dir="/srv/profiles/a")
    before = event_count(ledger)
    register(ledger, "profile_a", user_data_dir="/srv/profiles/a")
    # Spelled as a provisioning script may spell it: the same directory, the same record.
    register(ledger, "profile_a", user_data_dir="/srv/profiles/a/")
    assert event_count(ledger) == before
    with pytest.raises(NotAllowed) as refused:  # another record names what differs
        register(ledger, "profile_a", account_id="other", user_data_dir="/srv/profiles/a")
    assert "account_id 'account_shop_17', not 'other'" in str(refused.value)
    assert "user_data_dir" not in str(refused.value)
    with pytest.raises(InvalidInput):
        register(ledger, "profile_b", user_data_dir="/srv/profiles/a/b")
    register(ledger, "profile_c", user_data_dir="/srv/profiles/c")  # c was never taken


@pytest.mark.parametrize("inside", ["", "/Default"], ids=["same", "inside"])
def test_a_directory_another_profile_has_through_a_symbolic_link_is_refused(
    ledger: Ledger, tmp_path: Path, inside: str
) -> None:
    """On the registering host, /link/a where /link is /prof is /prof/a: two profiles would
    launch Chromium on one directory (its cookies, its account). Refused, also for a directory
    inside it, naming the profile that has it; nothing written. The text alone (every host)
    did not tell."""
    (tmp_path / "prof" / "a").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "prof", target_is_directory=True)
    first, second = str(tmp_path / "prof" / "a") + inside, str(tmp_path / "link" / "a")
    register(ledger, "profile_a", user_data_dir=first)
    before = event_count(ledger)
    for theirs in (second, second + "/Default"):
        with pytest.raises(InvalidInput, match="profile_a") as refused:
            register(ledger, "profile_b", account_id="other", user_data_dir=theirs)
        assert refused.value.field == "user_data_dir"
        assert "symbolic link" in str(refused.value)
    assert event_count(ledger) == before
    register(ledger, "profile_a", user_data_dir=first)  # its own record again: a no-op
    register(ledger, "profile_c", user_data_dir=str(tmp_path / "link" / "c"))
    assert ledger.profile_ids() == ["profile_a", "profile_c"]
    assert event_count(ledger) == before + 1


def test_a_profile_without_a_directory_takes_none(ledger: Ledger) -> None:
    """Profiles registered without a user_data_dir never conflict with each other."""
    register(ledger, "profile_a")
    register(ledger, "profile_b")
    register(ledger, "profile_c", user_data_dir="/srv/profiles/c")
    assert ledger.profile_ids() == ["profile_a", "profile_b", "profile_c"]


@pytest.mark.slow
def test_processes_racing_for_overlapping_directories_leave_one_winner(
    sql_store_url: str,
) -> None:
    """Four processes register four profiles at the same instant on one directory, a
    directory inside it, one containing it and the same one spelled otherwise, round after
    round: each round exactly one registration wins, the others are refused as bad input,
    and the store holds the winners alone."""
    rounds, racers = 6, 4
    start_at = time.time() + 3.0
    summaries = run_all(
        RACER,
        [[sql_store_url, str(i), str(rounds), str(start_at), "0.6"] for i in range(racers)],
    )
    for summary in summaries:
        assert summary["unexpected"] == [], summary
    for r in range(rounds):
        winners = [s["racer"] for s in summaries if r in s["won"]]
        refused = [s["racer"] for s in summaries if r in s["refused"]]
        assert len(winners) == 1, f"round {r}: winners {winners}"
        assert len(refused) == racers - 1, f"round {r}: refused {refused}"
    with Ledger.open(sql_store_url) as ledger:
        won = sorted(f"r{r}_{s['racer']}" for s in summaries for r in s["won"])
        assert ledger.profile_ids() == won
        assert len(ledger.store.directories()) == rounds


def _legacy_store(url: str, monkeypatch: pytest.MonkeyPatch, **dirs: str) -> None:
    """A store as custody wrote it before schema 5: profiles registered on the given
    directories with nothing checked, no directory table, schema 4."""
    with monkeypatch.context() as before_the_rule:
        before_the_rule.setattr(store_module, "claimed_directories", lambda profile: [])
        with Ledger.open(url) as ledger:
            for profile_id, directory in dirs.items():
                register(ledger, profile_id, user_data_dir=directory)
            ledger.store.execute("DROP TABLE custody_directories")  # type: ignore[attr-defined]
            ledger.store.execute("UPDATE custody_schema SET version = 4")  # type: ignore[attr-defined]


def test_init_records_a_legacy_stores_directories_and_says_what_overlaps(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema 4 store with two profiles on one directory and one inside another is
    refused until init; init does not fail on them: it records every directory and says
    which overlap which (the first registered named as keeping it). Afterwards a new
    registration overlapping any of them is refused."""
    _legacy_store(
        sql_store_url,
        monkeypatch,
        p_first="/srv/shared",
        p_second="/srv/shared/",
        p_inner="/srv/shared/inner",
        p_alone="/srv/alone",
    )
    with Ledger.open(sql_store_url) as ledger, pytest.raises(StoreUnavailable, match="migrate"):
        ledger.view("p_first")
    with Ledger.init(sql_store_url) as ledger:
        notes = [n for n in ledger.store.notes if "user_data_dir" in n]  # the directories'
        assert len(notes) == 2, ledger.store.notes
        assert notes[0].startswith("profile p_second's user_data_dir '/srv/shared' is")
        assert "of profile p_first, registered first" in notes[0]
        assert notes[1].startswith("profile p_inner's user_data_dir '/srv/shared/inner' over")
        assert "of profile p_first, registered first" in notes[1]
        assert "p_alone" not in " ".join(notes)
        assert {d.profile_id for d in ledger.store.directories()} == {
            "p_first",
            "p_second",
            "p_inner",
            "p_alone",
        }
    with Ledger.init(sql_store_url) as ledger:  # migrated once: nothing more to say
        assert ledger.store.notes == []
    with Ledger.open(sql_store_url) as ledger:
        with pytest.raises(InvalidInput, match="of profile p_first"):
            register(ledger, "p_new", user_data_dir="/srv/shared/inner/deeper")
        register(ledger, "p_new", user_data_dir="/srv/elsewhere")
        assert ledger.overlapping_profiles(ledger.view("p_second")) == ["p_first", "p_inner"]
        assert ledger.overlapping_profiles(ledger.view("p_alone")) == []


def test_init_migrates_a_legacy_directory_too_long_for_an_index_entry(
    sql_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rev22: before schema 5 a directory could take 4,096 characters; one of about 3,000
    bytes that do not compress is past what a PostgreSQL btree entry holds (2,704), and init
    failed on it for good ('index row size ... exceeds', exit 6), so the store could never be
    upgraded. The migration finishes, and the directory is still compared with later ones."""
    rng = random.Random(7)
    long = "/srv/profiles/" + "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(1000))
    monkeypatch.setattr(model, "MAX_DIRECTORY_BYTES", 8192)  # the old door's
    _legacy_store(sql_store_url, monkeypatch, p_long=long, p_other="/srv/other")
    with Ledger.init(sql_store_url) as ledger:
        assert {d.profile_id for d in ledger.store.directories()} == {"p_long", "p_other"}
    with Ledger.open(sql_store_url) as ledger:
        with pytest.raises(InvalidInput, match="of profile p_long"):
            register(ledger, "p_inside", user_data_dir=f"{long}/inner")
        with pytest.raises(InvalidInput, match="of profile p_other"):
            register(ledger, "p_same", user_data_dir="/srv/other")
        register(ledger, "p_new", user_data_dir="/srv/elsewhere")


def test_a_table_of_directories_unlike_the_registrations_is_named_by_verify_and_mended_by_init(
    sql_store_url: str,
) -> None:
    """rev36: p2's row of custody_directories deleted by hand (the owner's login may, on
    PostgreSQL too) went unnoticed: verify held, init said nothing, and a profile registered
    on p2's directory was accepted (two profiles on one). verify now names a row missing, one
    of no registration and one of another directory (exit 5), from two reads of the table;
    init writes the table again from the registrations and says so, after which verify holds
    and the registration over p2's directory is refused. Guard: ``audit._directory_rows``,
    ``migrations._mend_directories``."""
    from ledger.audit import verify

    with Ledger.open(sql_store_url) as ledger:
        register(ledger, "p1", user_data_dir="/srv/p1")
        register(ledger, "p2", user_data_dir="/srv/p2")
        register(ledger, "p3")  # no directory: no row
        assert verify(ledger).problems == []
        for statement in (
            "DELETE FROM custody_directories WHERE profile_id = 'p2'",
            "INSERT INTO custody_directories VALUES ('ghost', '/srv/ghost')",
            "UPDATE custody_directories SET user_data_dir = '/srv/moved' WHERE profile_id = 'p1'",
        ):
            ledger.store.execute(statement)  # type: ignore[attr-defined]
        mend = "custody init writes the table again from the registrations"
        assert verify(ledger).problems == [
            "p2 v1: registers the directory /srv/p2, but custody_directories has no row of it "
            f"(deleted by hand?): another profile may be registered on it; {mend}",
            "ghost: has a row /srv/ghost in custody_directories, but no registration of it "
            f"gives that directory (written by hand?); {mend}",
            "p1: registers the directory /srv/p1, but its row in custody_directories says "
            f"/srv/moved (written by hand?); {mend}",
        ]
    with Ledger.init(sql_store_url) as ledger:
        assert ledger.store.notes == [
            "the table of directories custody_directories disagreed with the registrations (1 "
            "row(s) missing, 1 of another directory, 1 of no registration): written again "
            "from them; custody verify names any profile registered on another's directory "
            "meanwhile"
        ]
    with Ledger.init(sql_store_url) as ledger:  # mended once: nothing more to say
        assert ledger.store.notes == []
    with Ledger.open(sql_store_url) as ledger:
        assert verify(ledger).problems == []
        assert [tuple(d) for d in ledger.store.directories()] == [
            ("p1", "/srv/p1"),
            ("p2", "/srv/p2"),
        ]
        with pytest.raises(InvalidInput, match="of profile p2"):
            register(ledger, "p9", user_data_dir="/srv/p2")
