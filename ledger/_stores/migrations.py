"""The store's own tables, and the migrations ``custody init`` runs from a store's recorded
schema version to this one's. Each step is idempotent, and concurrent inits take turns (the
schema lock, ``ledger._stores.sql``)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Protocol

from ledger._domain.errors import UnreadableEvent
from ledger._domain.model import MAX_DIRECTORY_BYTES
from ledger._domain.row import Availability
from ledger._stores.access import (
    GUARD_OWNER,
    PROFILE_STREAM,
    Tables,
    append_only_ddl,
    apply_privileges,
    beside_events_ddl,
    directories_ddl,
    groups_exist,
)
from ledger._stores.directories import legacy_directories
from ledger._stores.holdings import refuse_squatted
from ledger._stores.mapper import command_of, decode_data
from ledger._stores.recorders import (
    AVAILABILITY_TABLE,
    COMMANDS_DDL,
    COMMANDS_TABLE,
    DIRECTORIES_DDL,
    DIRECTORIES_TABLE,
    availability_ddl,
    availability_params,
    insert_command_sql,
    insert_directory_sql,
    upsert_availability_sql,
)
from ledger._stores.sessions import sessions_ddl
from ledger._stores.tokens import TOKENS_DDL

if TYPE_CHECKING:
    from ledger._domain.profile import Profile


class Migrating(Protocol):
    """What a migration asks of the store it migrates."""

    app: Any
    notes: list[str]
    _pg: bool

    @property
    def tables(self) -> Tables: ...

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None: ...
    def executemany(self, statement: str, rows: list[tuple[Any, ...]]) -> None: ...
    def load(self, profile_id: str, version: int | None = None) -> Profile | None: ...
    def replace_availability(self, row: Availability) -> bool: ...
    def schema_version(self) -> int | None: ...
    def profile_ids(self) -> list[str]: ...
    def registrations(self) -> tuple[list[str], list[tuple[str, int]]]: ...


# The version of our own tables (custody_availability, custody_schema). Raise it with a
# migration whenever their DDL changes; stores older than this are refused until
# `custody init` migrates them.
# 2: custody_commands (a caller's command id is unique across the store).
# 3: the snapshots table (made by the library's recorder at init; snapshots are a cache, so the
#    migration writes none: they appear as streams grow).
# 4: custody_commands keeps each id's version and fingerprint (a resent command is answered
#    from it; the profile no longer remembers ids): backfilled from the events.
# 5: custody_directories (one directory, one profile): backfilled from the registrations,
#    overlaps reported, never refused (``ledger._stores.directories``).
# 6: a lease's ending is one word (clean ... revoked) where older versions wrote
#    ``review_requested:lease_expired``: rows and snapshots holding the old words are redone.
# 7: hash chains (``ledger._domain.chain``): each profile's head as its events left it before
#    events carried links is recorded in custody_chain_origins; snapshots (without a head) go.
#    Triggers refuse any UPDATE or DELETE (and TRUNCATE) of events (``ledger._stores.access``).
# 8: appends take no store-wide lock and may commit out of the order of their positions; an
#    insert trigger gives each a transaction id before it draws one (``ledger._stores.settled``
#    is how readers keep up). Refused by an older custody, whose readers would miss events.
# 9: on PostgreSQL a login other than the owner writes an availability row or a command id only
#    beside its profile's event appended in the same transaction (``custody_check_beside``),
#    and only the roles that maintain the read models write them (``ledger._stores.access``).
#    Refused by an older custody, whose repairs and reads would be refused by the database.
# 10: the row trigger takes an event only in the stream its profile's registration began, and
#    both check functions run on a pinned search path (a login's temporary table stood in for
#    the events or the catalog): no table changes, but a store is refused until ``init`` has
#    installed them, so that no PostgreSQL store keeps the guards a worker's login got past.
# 11: on PostgreSQL the group roles insert an event's columns but not its position
#    (``notification_id``, which the server draws): a worker's login could take the log's next
#    positions or put its event past the read models' checkpoints. No table changes; a store
#    is refused until ``init`` has granted anew, so that no login keeps the table-wide INSERT.
# 12: on PostgreSQL the events' insert trigger takes a login's event only as the next version
#    of the stream its profile's registration began (version 1: a registration): a worker's
#    login appended past a head (the profile unreadable for good) or into a stream of its own
#    (every timeline unreadable; an id not yet registered taken). No table changes; a store is
#    refused until ``init`` has installed the check.
# 13: on PostgreSQL that trigger takes a registration only at version 1 of a profile nobody
#    registered: an operator's login registered a profile again, past its head (a quarantined
#    profile moved to another account) or in a stream of its own (every timeline unreadable).
#    No table changes; a store is refused until ``init`` has installed the check.
# 14: guards a login got past (rev27): on SQLite a trigger refuses an INSERT over a stored event
#    (``INSERT OR REPLACE`` rewrote one in place, firing no DELETE trigger); on PostgreSQL only
#    the owner updates or deletes a recorded directory, and ``custody_tokens`` is made by init
#    as the owner (a login that made it first minted tokens of any role), init refusing a
#    custody table another login owns. No table changes; a store is refused until ``init`` has
#    installed them.
# 15: snapshots carry the time of a profile's last event (``last_at``: a command never acts
#    earlier than it, rev28) and who ran its unclean leases (``unclean_runs``: none of them
#    reviews the quarantine listing their runs), which the snapshots an older custody wrote
#    lack: a cache, so they are deleted (verify named each one's missing time as a mismatch,
#    and a load from one forgot it). And the operator's role no longer records a stale mark
#    (the sweep is the scheduler's): on PostgreSQL init reinstalls the insert check.
# 16: a lease swept at its hard limit ends with the cause ``hard_limit_reached``, which a custody
#    of schema 15 cannot read (its why failed, its verify called the event unreadable): the
#    schema refuses it. The snapshots are deleted again: a custody of schema 15 from before
#    ``unclean_runs`` and ``last_at`` were carried, or one left running across an init, wrote
#    some without them (loads pass over such a snapshot, and verify names it).
# 17: on PostgreSQL the events' insert trigger takes a login's event only when it is dated
#    within a minute of the server's clock (``access.CLOCK_SLACK_SECONDS``), as custody dates
#    every event: a worker's login appended heartbeats dated ahead, each renewing its lease
#    from its own forged time, and held a profile out of the sweep's sight (rev34). No table
#    changes; a store is refused until ``init`` has installed the check.
# 18: on PostgreSQL the events' insert trigger judges a login's lease event by the lease's
#    deadline on the server's clock (``access.DEADLINE_GRACE_SECONDS``): a worker's event past
#    it is refused, and a scheduler's stale mark before it, since the ledger judged the
#    deadline on the time the writer put into the event (rev35: a worker's login with its
#    clock 10 s behind released a lease 5 s past its deadline, clean, back to the pool). No
#    table changes; a store is refused until ``init`` has installed the check.
# 19 (rev37, lease times): on PostgreSQL the events' insert trigger takes a login's acquisition
#    only with its lease started and renewed at the event's own time, due within its TTL of it
#    and by its hard limit, as custody's checkout writes it (a worker's login acquired a lease
#    dated now that started in 2099, and the sweep never reached it). No table changes; a store
#    is refused until ``init`` has installed the check. And it takes a login's event only with
#    every time its body holds in the one form custody writes (``events.TIME_FORM``), the only
#    one its reading of a deadline takes (a worker's login wrote a deadline "+00:00", and every
#    sweep's stale mark of that lease was refused). And it judges an event's time within a
#    minute of the server's clock when it arrives, not of its transaction's start (a login that
#    held a transaction open 75 s dated an event before the one it followed). And it takes a
#    login's registration only in the profile's own stream (``access.profile_stream_ddl``: its
#    id's UUID 5, as every read derives it), so that a second registration meets the first on
#    the events' key whatever the login's snapshot saw: an operator's login registered a
#    profile in a stream of its own (or twice, or again from a snapshot older than the first),
#    and every timeline, ``status`` and the timeline's rebuild failed (rev37). No table
#    changes; registrations already in a stream not their own are named in the notes (reads
#    leave them out), never refused.
# 20: the review console's sessions (``ledger._stores.sessions``), made by init as the owner:
#    the console's cookie held the reviewer's bearer token, which a browser sends to every
#    port of the host (rev45). On PostgreSQL only the reviewer's role reads or writes them. No
#    other table changes; a store is refused until ``init`` has made the table.
SCHEMA_VERSION = 20
SCHEMA_TABLE = "custody_schema"
RECORDED_VERSION = f"SELECT version FROM {SCHEMA_TABLE} WHERE id = 1"
_SCHEMA_DDL = (
    f"CREATE TABLE IF NOT EXISTS {SCHEMA_TABLE} "
    "(id INTEGER PRIMARY KEY CHECK (id = 1), version BIGINT NOT NULL)",
)
# Where each profile's hash chain begins when its first events were stored without links: the
# head its events up to ``version`` hash to (computed once, from their stored bytes, by the
# schema 7 migration) and the log's head position then. A store made at schema 7 has none.
ORIGINS_TABLE = "custody_chain_origins"
_ORIGINS_DDL = (
    f"CREATE TABLE IF NOT EXISTS {ORIGINS_TABLE} (profile_id TEXT PRIMARY KEY, "
    "version BIGINT NOT NULL, head TEXT NOT NULL, position BIGINT NOT NULL)",
)


def create_schema(self: Migrating) -> None:
    """Our tables, then the migrations from the recorded version, then the new version."""
    # The tokens' table too, as the owner: made lazily by the first token, a login that could
    # CREATE in the schema made it first and wrote tokens of any role (``_stores.tokens``);
    # and the console's sessions, which act as a reviewer's token does.
    tables = (
        *availability_ddl(), COMMANDS_DDL, *DIRECTORIES_DDL, *_SCHEMA_DDL, *_ORIGINS_DDL,
        TOKENS_DDL, sessions_ddl(self._pg),
    )  # fmt: skip
    # A store whose availability table is gone (dropped by hand): its rows come back from the
    # events below, not as an empty table (rev32: status '(none)', fleet '0 profiles', exit 0).
    made_before = self.schema_version() is not None
    # A store custody made before it recorded a version (schema 1 began recording it) has its
    # events and availability table, no version and no command ids' table (schema 2's): it is
    # migrated from schema 1. Taken for a new store (rev42), it got no migration: no chain
    # origins (verify named every event as forged), no command ids (a retry applied twice), no
    # directories (one given to two profiles), and the version recorded as current for good.
    unversioned = (
        not made_before
        and table_exists(self, AVAILABILITY_TABLE)
        and not table_exists(self, COMMANDS_TABLE)
        and table_exists(self, self.tables.events)
        and bool(self.query(f"SELECT 1 AS t FROM {self.tables.events} LIMIT 1"))
    )  # (an init cut short, with no event, is made whole as a new store)
    if unversioned:  # recorded before the tables below: an init cut short after them finds
        # schema 1 again, not a store it made (rev42: taken for current, never migrated)
        for statement in _SCHEMA_DDL:
            self.execute(statement)
        self.execute(
            f"INSERT INTO {SCHEMA_TABLE} (id, version) VALUES (1, 1) ON CONFLICT (id) DO NOTHING"
        )
        made_before = True
    for statement in tables:
        self.execute(statement)
    # Rows lost: the table dropped (made again just now, empty), or rows deleted, or a restore
    # cut short before it committed (rev32: 88 of 1,500 rows left for good; a live writer's
    # first row then hid an empty table from a check for one).
    lost = _rows_missing(self) if made_before else []
    if self._pg:  # before a grant on it fails, or the version says the store is whole
        refuse_squatted(self, self.tables.events, "custody init stops here")
    _drop_older_availability_index(self)
    found = self.schema_version() or SCHEMA_VERSION
    if found < 4:
        _add_command_columns(self)
        _backfill_commands(self)
    if found < 5:
        _backfill_directories(self)
    elif made_before:
        _mend_directories(self)
    if found < 6:
        _rewrite_endings(self)
    if found < 7:
        _begin_chains(self)
    elif found < 16:
        _delete_snapshots(self)
    if made_before and found < 19:
        _name_stray_registrations(self)
    if found < SCHEMA_VERSION:  # rev30: a migration was told as a no-op init is
        deleted = (
            ": the snapshots, a cache, were deleted (loads fold the events until new ones are "
            "taken)"
            if found < 16
            else ""
        )
        self.notes.append(
            f"migrated from schema {found} to {SCHEMA_VERSION}{deleted}; docs/operations/"
            "upgrades.md says what each schema changed"
        )
    if not self._pg:  # IF NOT EXISTS keeps a trigger of that name whatever it does
        for name in differing_sqlite_triggers(self):
            self.execute(f"DROP TRIGGER {name}")
    for statement in guard_ddl(self):
        self.execute(statement)
    if lost:  # after the guards: a login writes a row only beside its event meanwhile
        unreadable = _restore_availability(self, lost)
        note = (
            f"the availability table {AVAILABILITY_TABLE} missed the rows of {len(lost)} "
            "registered profile(s): written again from the events"
        )
        if unreadable:
            shown = ", ".join(unreadable[:5]) + (", ..." if len(unreadable) > 5 else "")
            note += f", but for {len(unreadable)} whose events cannot be read ({shown})"
        self.notes.append(note)
    if self._pg and groups_exist(self):  # tables a migration added get their privileges
        apply_privileges(self, self.tables)
    self.execute(
        f"INSERT INTO {SCHEMA_TABLE} (id, version) VALUES (1, ?) ON CONFLICT (id) "
        f"DO UPDATE SET version = excluded.version WHERE {SCHEMA_TABLE}.version < ?",
        (SCHEMA_VERSION, SCHEMA_VERSION),
    )


def table_exists(self: Migrating, table: str) -> bool:
    """Whether ``table`` is in the store (on PostgreSQL, where the login's search path finds it)."""
    if self._pg:
        found = self.query("SELECT to_regclass(?) IS NOT NULL AS t", (table,))
        return bool(found[0]["t"])
    found = self.query(
        "SELECT 1 AS t FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    )
    return bool(found)


def guard_ddl(self: Migrating) -> list[str]:
    """Every statement that installs the store's guards in the database (its triggers and
    their functions), as ``init`` runs them."""
    events_owner = _owner(self, self.tables.events) if self._pg else None
    statements = append_only_ddl(self.tables.events, AVAILABILITY_TABLE, owner=events_owner)
    if self._pg:
        owner = _owner(self, AVAILABILITY_TABLE)
        statements += beside_events_ddl(
            self.tables.events, AVAILABILITY_TABLE, COMMANDS_TABLE, owner
        )
        statements += directories_ddl(DIRECTORIES_TABLE, _owner(self, DIRECTORIES_TABLE))
        statements = [_always(statement) for statement in statements]
    return statements


def _always(statement: str) -> str:
    """A PostgreSQL guard trigger's DDL and, in the same statement (one transaction), its
    ``ENABLE ALWAYS``: an ordinary trigger (``tgenabled`` 'O') is passed over by a session whose
    ``session_replication_role`` is ``replica``, which a superuser may set for a login or a
    database (``ALTER ROLE ... SET``); with it a worker's login appended a reviewer's verdict
    by raw SQL and edited the availability row, and verify passed (rev39). Every init runs it,
    so an older store's triggers are made ALWAYS by the next init."""
    return (
        "".join(
            f"{statement};\nALTER TABLE {table} ENABLE ALWAYS TRIGGER {name}"
            for name, table in _GUARD_TRIGGER.findall(statement)
        )
        or statement
    )


# A check function (no arguments), or the stream's function of a profile id (``text``).
_GUARD_FUNCTION = re.compile(
    r"CREATE OR REPLACE FUNCTION (\w+)\((?:text)?\).*?AS \$f\$(.*?)\$f\$", re.S
)
_GUARD_PINNED = re.compile(r"ALTER FUNCTION (\w+)\(\) SET search_path")
_GUARD_TRIGGER = re.compile(
    r"CREATE (?:OR REPLACE )?TRIGGER (?:IF NOT EXISTS )?(\w+) .*?\bON (\w+)", re.S
)
# A PostgreSQL trigger's definition, as its DDL has it and as pg_get_triggerdef writes it.
_TRIGGER_PARTS = re.compile(
    r"CREATE (?:OR REPLACE )?TRIGGER (\w+) (BEFORE|AFTER|INSTEAD OF) (.+?) ON (?:\w+\.)?(\w+) "
    r"FOR EACH (ROW|STATEMENT)(?: WHEN (.+?))? EXECUTE (?:FUNCTION|PROCEDURE) (?:\w+\.)?(\w+)\(",
    re.S,
)
_REINSTALL = "custody init installs it again"
# A trigger's pg_trigger.tgenabled but ALWAYS ('A'), the only one every session fires.
_ENABLED = {
    "D": "disabled",
    "O": "passed over where session_replication_role is replica",
    "R": "fired only where session_replication_role is replica",
}
_DEFINER = "SECURITY DEFINER"
_OTHER = "is not the one this custody installs (an older custody's init, or an edit)"


def _trigger_shape(definition: str) -> tuple[object, ...] | None:
    """What a trigger does, in a form that reads the same from its DDL and from
    ``pg_get_triggerdef``: its timing, its events as a set, its table, row or statement, its
    WHEN without the quotes, casts, brackets and spaces the server adds, and its function."""
    found = _TRIGGER_PARTS.search(" ".join(definition.split()))
    if found is None:
        return None
    name, timing, events, table, each, when, function = found.groups()
    condition = re.sub(r"::\w+|[\s'()]", "", (when or "").lower())
    return name, timing, frozenset(events.split(" OR ")), table, each, condition, function


def _other_owner(definition: str, statement: str) -> str:
    """How a trigger that differs from its DDL only in the role its WHEN passes over (a
    table's owner, by its oid when init ran) differs, or empty: the store restored on another
    server, whose roles have other oids, or its tables given to another owner since."""
    kept, meant = re.search(GUARD_OWNER, definition), re.search(GUARD_OWNER, statement)
    if kept is None or meant is None or kept[1] == meant[1]:
        return ""
    start, end = kept.span(1)
    if _trigger_shape(definition[:start] + meant[1] + definition[end:]) != _trigger_shape(
        statement
    ):
        return ""
    return (
        f"names the role of oid {kept[1]}, not its table's owner ({meant[1]}): restored on "
        "another server, or its owner changed since init ran? custody init, as the owner, "
        "installs it again"
    )


def _sqlite_trigger_text(statement: str) -> str:
    """A trigger's DDL as SQLite keeps it in ``sqlite_master``: without IF NOT EXISTS."""
    return " ".join(statement.replace(" IF NOT EXISTS", "", 1).split())


def differing_sqlite_triggers(self: Migrating) -> list[str]:
    """The guard triggers of an SQLite store whose text is not what ``guard_ddl`` installs
    (an edit, or an older custody's): ``init`` drops them, then makes them again."""
    kept = {
        str(r["name"]): " ".join(str(r["sql"]).split())
        for r in self.query("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    }
    return [
        name
        for statement in guard_ddl(self)
        for name, _ in _GUARD_TRIGGER.findall(statement)
        if name in kept and kept[name] != _sqlite_trigger_text(statement)
    ]


def guard_problems(self: Migrating) -> list[str]:
    """Where the store's guards differ from those this custody installs (``guard_ddl``): a
    trigger missing, disabled, or doing something else (other events, another WHEN, another
    function; on SQLite another text), or on PostgreSQL a trigger's function missing, of
    another body, or no longer on its pinned search path. Rewrites of events, and a login's
    events out of its role, may then no longer be refused by the database (rev32: an older
    custody's init put back its own, older check function on an upgraded store, and nothing but
    a damaged read model was named). One line each."""
    statements = guard_ddl(self)
    if not self._pg:
        return _sqlite_guard_problems(self, statements)
    # Where the events table is, by the login's search path: the guards are beside it (a
    # login whose own schema comes first finds custody's tables in public all the same).
    schema = (
        "(SELECT relnamespace FROM pg_class WHERE oid = to_regclass(?))",
        self.tables.events,
    )
    problems = []
    functions = {n: body for s in statements for n, body in _GUARD_FUNCTION.findall(s)}
    pinned = {n for s in statements for n in _GUARD_PINNED.findall(s)}
    definer = {n for s in statements for n, _ in _GUARD_FUNCTION.findall(s) if _DEFINER in s}
    found = {
        str(r["name"]): (
            str(r["body"]),
            [str(c) for c in r["config"] or []],
            str(r["nsp"]),
            bool(r["definer"]),
        )
        for r in self.query(
            "SELECT proname AS name, prosrc AS body, proconfig AS config, prosecdef AS definer, "
            "(SELECT nspname FROM pg_namespace WHERE oid = pronamespace) AS nsp "
            f"FROM pg_proc WHERE pronamespace = {schema[0]} AND proname = ANY(?) "
            "AND pronargs = CASE proname WHEN ? THEN 1 ELSE 0 END",
            (schema[1], list(functions), PROFILE_STREAM),
        )
    }
    for name, body in sorted(functions.items()):
        if name not in found:
            problems.append(f"the store's guard function {name}() is missing: {_REINSTALL}")
            continue
        kept, config, nsp, runs_as_owner = found[name]
        path = f"search_path=pg_catalog, {nsp}, pg_temp"
        other_body = kept != body
        unpinned = name in pinned and path not in config
        unpinned |= name == PROFILE_STREAM and "search_path=pg_catalog" not in config
        # SECURITY DEFINER made current_user the owner inside it: every login passed as one.
        other_user = runs_as_owner != (name in definer)
        if other_body or unpinned or other_user:
            problems.append(f"the store's guard function {name}() {_OTHER}: {_REINSTALL}")
    # A trigger's function beside the table, or it is another's of the same name.
    there = {
        (str(r["name"]), str(r["tbl"])): (
            str(r["enabled"]),
            str(r["def"]) if r["beside"] else "a function elsewhere",
        )
        for r in self.query(
            "SELECT t.tgname AS name, c.relname AS tbl, t.tgenabled AS enabled, "
            "pg_get_triggerdef(t.oid) AS def, (SELECT p.pronamespace FROM pg_proc p "
            "WHERE p.oid = t.tgfoid) = c.relnamespace AS beside FROM pg_trigger t JOIN pg_class c "
            f"ON c.oid = t.tgrelid WHERE NOT t.tgisinternal AND c.relnamespace = {schema[0]}",
            (schema[1],),
        )
    }
    for statement in statements:
        for name, table in _GUARD_TRIGGER.findall(statement):
            enabled, definition = there.get((name, table), ("", ""))
            if not enabled:
                problems.append(
                    f"the store's guard trigger {name} on {table} is missing: {_REINSTALL}"
                )
            elif _trigger_shape(definition) != _trigger_shape(statement):
                other = _other_owner(definition, statement) or f"{_OTHER}: {_REINSTALL}"
                problems.append(f"the store's guard trigger {name} on {table} {other}")
            elif enabled != "A":  # disabled, or passed over by a replica's or an origin's
                state = _ENABLED.get(enabled, f"enabled {enabled!r}")
                problems.append(
                    f"the store's guard trigger {name} on {table} is {state}, not ALWAYS: "
                    f"custody init, as the owner, enables it ALWAYS"
                )
    return problems


def _sqlite_guard_problems(self: Migrating, statements: list[str]) -> list[str]:
    kept = {
        (str(r["name"]), str(r["tbl"])): " ".join(str(r["sql"]).split())
        for r in self.query(
            "SELECT name, tbl_name AS tbl, sql FROM sqlite_master WHERE type = 'trigger'"
        )
    }
    problems = []
    for statement in statements:
        for name, table in _GUARD_TRIGGER.findall(statement):
            text = kept.get((name, table))
            if text is None:
                problems.append(
                    f"the store's guard trigger {name} on {table} is missing: {_REINSTALL}"
                )
            elif text != _sqlite_trigger_text(statement):
                problems.append(
                    f"the store's guard trigger {name} on {table} {_OTHER}: {_REINSTALL}"
                )
    return problems


# The availability table's index before 2026-12-05, on (state, until): a heartbeat moved its
# key (``ledger._stores.recorders.availability_ddl`` says why it is on the state alone now).
OLDER_AVAILABILITY_INDEX = f"{AVAILABILITY_TABLE}_state"


def _drop_older_availability_index(self: Migrating) -> None:
    """Drop the older index on (state, until) where this store's availability table has it:
    only that table's (an index of that name elsewhere on the search path is another's). On
    PostgreSQL concurrently, on an autocommit connection of the pool, so that no read or
    heartbeat waits behind it; where a transaction holds the table past the store's lock
    timeout (a long report), the index is left to the next init, and the notes say so."""
    if not self._pg:
        if self.query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ? AND name = ?",
            (AVAILABILITY_TABLE, OLDER_AVAILABILITY_INDEX),
        ):
            self.execute(f"DROP INDEX {OLDER_AVAILABILITY_INDEX}")
        return
    found = self.query(
        "SELECT n.nspname AS schema FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE i.indrelid = to_regclass(?) AND c.relname = ?",
        (AVAILABILITY_TABLE, OLDER_AVAILABILITY_INDEX),
    )
    if not found:
        return
    import psycopg
    from psycopg.sql import SQL, Identifier

    drop = SQL("DROP INDEX CONCURRENTLY IF EXISTS {}.{}").format(
        Identifier(found[0]["schema"]), Identifier(OLDER_AVAILABILITY_INDEX)
    )
    try:
        with self.app.recorder.datastore.pool.connection() as conn:  # in autocommit
            conn.execute(drop)
    except (psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled):
        # Past the lock timeout, or a statement timeout the login has that is shorter.
        self.notes.append(
            f"the older index {OLDER_AVAILABILITY_INDEX} (state, until) is kept for now: a "
            "transaction held the availability table past the store's timeout; the next "
            "custody init drops it (heartbeats cost a little more until then)"
        )


def _owner(self: Migrating, table: str) -> int:
    """The oid of ``table``'s owner (PostgreSQL)."""
    found = self.query("SELECT relowner::bigint AS o FROM pg_class WHERE oid = to_regclass(?)",
                       (table,))  # fmt: skip
    return int(found[0]["o"])


def _add_command_columns(self: Migrating) -> None:
    """Schema 4: a command row also keeps its version and fingerprint (SQLite has no
    ``ADD COLUMN IF NOT EXISTS``: its columns are read first)."""
    added = (("version", "BIGINT"), ("command", "TEXT"))
    if self._pg:
        for column, kind in added:
            self.execute(f"ALTER TABLE {COMMANDS_TABLE} ADD COLUMN IF NOT EXISTS {column} {kind}")
        return
    have = {r["name"] for r in self.query(f"PRAGMA table_info({COMMANDS_TABLE})")}
    for column, kind in added:
        if column not in have:
            self.execute(f"ALTER TABLE {COMMANDS_TABLE} ADD COLUMN {column} {kind}")


def _backfill_commands(self: Migrating) -> None:
    """Record the command id of every stored event, with the version its last event
    reached and its fingerprint (the first profile to use an id keeps it): ids used
    before schema 2 stay bound to their profile, and before schema 4 (when the profile
    itself remembered them) stay answerable."""
    start = 1
    while batch := self.app.recorder.select_notifications(start, 1000):
        rows = []
        for n in batch:
            command_id, profile_id, command = command_of(n.state)
            rows.append((command_id, profile_id, n.originator_version, command))
        self.executemany(insert_command_sql("?", backfill=True), rows)
        start = batch[-1].id + 1


def _name_stray_registrations(self: Migrating) -> None:
    """Schema 19: the registrations appended before the database refused them in a stream
    not their profile's own (``Store.registrations``), named in the notes: no read takes them
    for a registration, and the log is append-only, so nothing is rewritten or refused."""
    stray = self.registrations()[1]
    if not stray:
        return
    shown = ", ".join(f"{pid} at position {at}" for pid, at in stray[:5])
    more = ", ..." if len(stray) > 5 else ""
    self.notes.append(
        f"{len(stray)} registration(s) in a stream not their profile's own, or of no profile "
        f"id custody takes, were appended before the database refused them ({shown}{more}): "
        "they register nothing and reads leave them out; custody verify names them; to use "
        "such a profile, register it once custody projections rebuild availability has "
        "dropped any row written beside them"
    )


def _rows_missing(self: Migrating) -> list[str]:
    """The registered profiles without an availability row (each registration writes its
    row, in its transaction): none on a whole store. The log's registrations are read only
    where there are fewer rows than streams (a count the database makes from its index: a
    review measured the read of every registration at 90 ms an init at 200,000 events)."""
    (rows,) = self.query(f"SELECT count(*) AS n FROM {AVAILABILITY_TABLE}")
    (streams,) = self.query(
        f"SELECT count(*) AS n FROM {self.tables.events} WHERE originator_version = 1"
    )
    if int(rows["n"]) >= int(streams["n"]):
        return []
    kept = {str(r["p"]) for r in self.query(f"SELECT profile_id AS p FROM {AVAILABILITY_TABLE}")}
    return [profile_id for profile_id in self.profile_ids() if profile_id not in kept]


def _restore_availability(self: Migrating, profile_ids: list[str]) -> list[str]:
    """The availability rows of ``profile_ids``, from their events, in one transaction (a
    restore cut short leaves them missing, and the next init restores them); a row a writer
    wrote meanwhile stays. The profiles whose events cannot be folded are passed over and
    returned (``custody rebuild`` names them), so that one damaged profile fails no init."""
    from ledger._domain.view import availability_of  # the state machine: for a repair only

    rows, unreadable = [], []
    for profile_id in profile_ids:
        try:
            profile = _load(self, profile_id)
        except UnreadableEvent:
            unreadable.append(profile_id)
            continue
        if profile is not None:
            rows.append(availability_params(availability_of(profile)))
    if rows:
        self.executemany(upsert_availability_sql("?", overwrite=False), rows)
    return unreadable


def _rewrite_endings(self: Migrating) -> None:
    """Schema 6: the words of a lease's ending (``ledger._domain.endings``). Snapshots
    carried the old words: they are a cache, so they are deleted (the events rebuild them
    as streams grow); every availability row that names a last ending is rewritten from
    its profile's events."""
    from ledger._domain.view import availability_of  # the state machine: for a migration only

    _delete_snapshots(self)
    named = f"SELECT profile_id FROM {AVAILABILITY_TABLE} WHERE last_ending IS NOT NULL"
    for row in self.query(named):
        profile = _load(self, str(row["profile_id"]))
        if profile is not None:
            self.replace_availability(availability_of(profile))


def _registrations(self: Migrating) -> list[tuple[str, str | None]]:
    """Every registration's (profile id, user_data_dir as given), in log order."""
    registrations = []
    start = 1
    while batch := self.app.recorder.select_notifications(
        start, 1000, topics=["profile_registered"]
    ):
        for n in batch:
            data = decode_data(n.topic, n.state)
            registrations.append((str(data["profile_id"]), data.get("user_data_dir")))
        start = batch[-1].id + 1
    return registrations


def _mend_directories(self: Migrating) -> None:
    """Write the table of directories again from the registrations where it disagrees with
    them: a row missing (deleted by hand: a registration over its directory was let through),
    of a profile no registration gives it, or of another directory, each as ``verify`` names
    it (rev36). One read of the registrations and one of the table; nothing written on a
    whole store. The table is read before the registrations: a registration committed
    between the two reads (its row and its event in one transaction) is then a row found
    missing, which the insert finds there and keeps, not a row of no registration, deleted
    (rev36 review: an init beside live registrations deleted rows they had just written, and
    a second profile was then registered on one of their directories)."""
    rows = self.query(f"SELECT profile_id, user_data_dir FROM {DIRECTORIES_TABLE}")
    found = {str(r["profile_id"]): str(r["user_data_dir"]) for r in rows}
    wanted = dict(legacy_directories(_registrations(self))[0])
    missing = [(p, d) for p, d in wanted.items() if p not in found]
    if missing:  # those registered between the reads have their rows: not missing after all
        rows = self.query(f"SELECT profile_id FROM {DIRECTORIES_TABLE}")
        there = {str(r["profile_id"]) for r in rows}
        missing = [(p, d) for p, d in missing if p not in there]
    other = [(d, p) for p, d in wanted.items() if p in found and found[p] != d]
    extra = [(p,) for p in found if p not in wanted]
    if not (missing or other or extra):
        return
    for statement, params in (
        (insert_directory_sql("?"), missing),
        (f"UPDATE {DIRECTORIES_TABLE} SET user_data_dir = ? WHERE profile_id = ?", other),
        (f"DELETE FROM {DIRECTORIES_TABLE} WHERE profile_id = ?", extra),
    ):
        if params:
            self.executemany(statement, params)
    self.notes.append(
        f"the table of directories {DIRECTORIES_TABLE} disagreed with the registrations "
        f"({len(missing)} row(s) missing, {len(other)} of another directory, {len(extra)} of "
        "no registration): written again from them; custody verify names any profile "
        "registered on another's directory meanwhile"
    )


def _backfill_directories(self: Migrating) -> None:
    """Record every registration's directory; the overlaps found become the store's
    notes (``legacy_directories``)."""
    rows, self.notes = legacy_directories(_registrations(self))
    if self._pg and any(len(d.encode()) > MAX_DIRECTORY_BYTES for _, d in rows):
        # Before schema 5 a directory could take 4,096 characters, past what an entry of a
        # btree index holds (about 2,700 bytes, compressed): init failed on such a store for
        # good. The index leaves those out; the overlap checks, which read the table, still
        # compare them (by a scan where the index cannot answer).
        index = f"{DIRECTORIES_TABLE}_dir"
        self.execute(f"DROP INDEX IF EXISTS {index}")
        self.execute(
            f"CREATE INDEX {index} ON {DIRECTORIES_TABLE} (user_data_dir) "
            f"WHERE octet_length(user_data_dir) <= {MAX_DIRECTORY_BYTES}"
        )
    for at in range(0, len(rows), 1000):
        self.executemany(insert_directory_sql("?"), rows[at : at + 1000])


def _load(self: Migrating, profile_id: str) -> Profile | None:
    """``self.load`` for a migration: an event no read can decode stops it, named, and the
    owner is not sent to ``custody verify``, which refuses a store ``init`` has not migrated."""
    try:
        return self.load(profile_id)
    except UnreadableEvent as e:
        then = "so custody init cannot migrate the store, which folds every profile's events"
        raise UnreadableEvent(e.event, e.problem, then=then) from e


def _delete_snapshots(self: Migrating) -> None:
    """Snapshots are a cache of a fold: a migration that changes what they hold drops them
    (loads fold the events instead; new ones appear as streams grow)."""
    snapshots = self.app.snapshots
    if snapshots is not None:
        self.execute(f"DELETE FROM {snapshots.recorder.events_table_name}")


def _begin_chains(self: Migrating) -> None:
    """Schema 7: events stored from now on carry their hash-chain links. Every profile's head
    as its events stand now (each event hashed from its stored bytes) is recorded where its
    chain begins, so that ``custody verify`` can tell an event edited later from one stored
    before links; snapshots, which lack a head, are dropped first."""
    _delete_snapshots(self)
    position = int(self.app.recorder.max_notification_id() or 0)
    rows = []
    for profile_id in self.profile_ids():
        profile = _load(self, profile_id)
        if profile is not None:
            rows.append((profile_id, profile.version, profile.head, position))
    for at in range(0, len(rows), 1000):
        self.executemany(
            f"INSERT INTO {ORIGINS_TABLE} (profile_id, version, head, position) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (profile_id) DO NOTHING",
            rows[at : at + 1000],
        )
    if rows:
        events = sum(version for _, version, _, _ in rows)
        self.notes.append(
            f"hash chains begin here: {events} event(s) of {len(rows)} profile(s) stored "
            "before them are chained from their stored bytes, and each profile's head is "
            "recorded (custody verify checks them against it)"
        )
