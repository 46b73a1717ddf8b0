"""What the database itself enforces: events are appended and read, never rewritten, and on
PostgreSQL a login records only what its custody role may.

- **Append-only.** Triggers refuse every UPDATE and DELETE of a stored event (SQLite and
  PostgreSQL) and every TRUNCATE (PostgreSQL), whoever asks: the owner and a superuser too.
  Someone who can drop a trigger can still rewrite history; ``custody verify`` then names what
  changed (``ledger._audit``).
- **Roles.** ``custody access grant LOGIN --role ROLE`` (``grant``) makes LOGIN a member of
  one group role (``custody_worker``, ``custody_scheduler``, ``custody_reviewer``,
  ``custody_operator``), and of nothing more: an existing login loses what was granted to it
  directly on custody's objects, and one that holds more (an attribute, another role) is
  refused (``ledger._stores.holdings``). The group roles may read every custody table and
  insert events, never update, delete or truncate them; snapshots only the scheduler and the
  operator write (a snapshot is a load's starting state, and a worker must not be able to
  forge one); the read models and their checkpoints only the roles that keep them current
  (``READ_MODEL_WRITERS``: a worker reads them). The availability row and the command ids
  every role writes, but only beside its events: the events' insert trigger notes each event's
  profile, version and command id for its transaction, and a row trigger
  (``beside_events_ddl``) refuses a row that names none of them, so an edit without an event
  (a lease's deadline moved out of the sweep's sight, a sweep's command id claimed in advance)
  is refused. An insert trigger refuses an event whose recorded role is not one of the
  session's, or whose type that role may not record (``ledger._domain.authority``): a worker's
  login cannot record a review. The owner of the events table (the login ``custody init`` runs
  as) acts in every role.
- **No turns.** Appends take no store-wide lock (neither the library's ``LOCK TABLE ... IN
  EXCLUSIVE MODE``, which needs UPDATE on the table, nor an advisory lock) and may commit out
  of the order of their positions. A statement trigger gives every insert a transaction id
  before it draws a position, which is what lets a reader following the log tell a gap that
  may yet be filled (``ledger._stores.settled``).

Group roles belong to the PostgreSQL cluster, not to one database: a cluster serving two
custody stores gives a login of one the same role in the other if that store granted it too.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple, Protocol

from ledger._domain.acting import ALL_ROLES, Forbidden
from ledger._domain.errors import InvalidInput
from ledger._domain.model import PROFILE_ID_PATTERN, Role, storable
from ledger._stores import holdings
from ledger.ports import Authority

GROUP_ROLES = {role: f"custody_{role.value}" for role in Role}
_REFUSAL = "custody events are append-only"
LOGIN_AT_MOST = 63  # NAMEDATALEN - 1: longer names are cut, with a notice only
_LOGIN = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# Role names PostgreSQL refuses to create (besides every name starting with pg_).
_RESERVED_LOGINS = frozenset({"public", "none", "current_user", "session_user", "current_role"})
# The roles that write snapshots (see the module's doc).
_SNAPSHOT_WRITERS = frozenset({Role.SCHEDULER, Role.OPERATOR})
# The roles that keep the read models (timeline, leases, their checkpoints) current: the
# scheduler's ``projections run``, and the reviewer's and operator's reads, which catch up first.
# A worker reads them as they stand and never writes them (``ledger.feed.Feed.maintains``).
READ_MODEL_WRITERS = frozenset({Role.SCHEDULER, Role.REVIEWER, Role.OPERATOR})
# What the events' insert trigger records of each event a non-owner session appends, for the
# rows written beside them (``custody_check_beside``): the setting's name.
_APPENDED = "custody.appended"
# How far from the server's clock an event a login appends may be dated: custody's times are
# within about a second of it (``ledger._stores.clock``: a held time, a raised one); this
# leaves room for a server whose clock steps back (a failover) until the clocks are measured
# again, and a process that stalls between deciding and writing.
CLOCK_SLACK_SECONDS = 60
# The SQLSTATE of that refusal (custody's own class): a writer's decision made before a stall
# (a paused VM, a stopped process) is dated far behind the server's clock by the time it
# arrives, and is decided again at a fresh time (``ledger._stores.postgres``), not refused
# (rev34 review: an honest heartbeat after a 65 s stall failed as a login's privilege).
MISDATED = "CU001"
# How far a lease's deadline may lie on the wrong side of the server's clock when a login's
# lease event arrives (``_check_append_ddl``): a worker's event after the lease's deadline
# past it, a scheduler's stale mark before it. Deadlines are judged on the store's clock; an
# honest writer's is within 40 ms of it (``ledger._stores.clock.MAX_ERROR_S``), and its own write
# is refused once past the deadline (``ledger._unit_of_work.COMMIT_GRACE_S``), so a second
# is never met by one (rev35 review: a worker's login with its clock 10 s behind released a
# lease 5 s past its deadline, clean, and the profile was leased again).
DEADLINE_GRACE_SECONDS = 1
# The SQLSTATE of that refusal: the command decides again at a fresh time, and one refused so
# twice in a row is refused as its lease then stands on the store's clock
# (``ledger._stores.postgres``, ``ledger._unit_of_work``): a worker's lease lost.
DEADLINE_REFUSED = "CU002"


# Immutable records are NamedTuples, cheap to define at start-up (``ledger._unit_of_work``).
class Tables(NamedTuple):
    """The store's tables whose privileges are not a cache's."""

    events: str
    snapshots: str
    directories: str
    read_only: frozenset[str]  # the schema's own records: the schema version, chain origins
    availability: str
    commands: str
    sessions: str = ""  # the review console's (``ledger._stores.sessions``)

    def privileges(self, table: str, role: Role) -> list[str]:
        if table == self.events:
            # Not the position: a login choosing an event's notification id could take the
            # log's next positions (every append then fails) or put its event past the read
            # models' checkpoints (never folded) and the tree's order (``verify`` fails).
            return ["SELECT", f"INSERT ({', '.join(EVENT_COLUMNS)})"]
        if table == self.snapshots:
            return ["SELECT", "INSERT"] if role in _SNAPSHOT_WRITERS else ["SELECT"]
        if table in self.read_only:
            return ["SELECT"]
        if table == self.directories:  # registrations lock it (which takes UPDATE) in turn
            return ["SELECT", "INSERT", "UPDATE"] if role is Role.OPERATOR else ["SELECT"]
        # Written beside the events, in their statement: a trigger lets a row through only
        # beside its profile's event (``beside_events_ddl``). Deleted only by the owner.
        if table == self.availability:
            return ["SELECT", "INSERT", "UPDATE"]
        if table == self.commands:
            return ["SELECT", "INSERT"]
        # A session acts as a reviewer's token: only the reviewer's role (a service's login
        # serving the console) starts, reads and ends them; a worker's login may not even
        # read which tokens hold one.
        if table == self.sessions:
            return _SESSION if role is Role.REVIEWER else []
        # A read model or its checkpoints: kept by the roles that maintain them.
        return _READ_MODEL if role in READ_MODEL_WRITERS else ["SELECT"]


_READ_MODEL = ["SELECT", "INSERT", "UPDATE", "DELETE"]
_SESSION = ["SELECT", "INSERT", "DELETE"]
# The columns of an event a login other than the owner writes: the server draws its position.
EVENT_COLUMNS = ("originator_id", "originator_version", "topic", "state")


class Executing(Protocol):
    _pg: bool

    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...
    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> None: ...


class Granting(Executing, Protocol):
    def password_verifier(self, login: str, password: str) -> str: ...


def append_only_ddl(events: str, availability: str, *, owner: int | None) -> list[str]:
    """The triggers that refuse rewriting ``events`` (idempotent; run by every init); on
    PostgreSQL (``owner``, the oid of the events table's owner, given) also those that give
    an insert its transaction id first and check a login's events against its role.

    Neither insert trigger runs a function for the owner's appends, every command's when the
    store is opened as the login ``custody init`` ran as: a PL/pgSQL call for each statement
    and each row was about 80 µs of the server's time for a heartbeat's append, more than its
    insert took (``EXPLAIN ANALYZE``). The transaction id is asked for in the statement
    trigger's ``WHEN``, which PostgreSQL evaluates where it would call the function, before any
    row is made; ``pg_current_xact_id()`` is never NULL, so the function is never called. The
    role check is passed over for a member of ``owner`` (the function checks the table's
    owner again, as it is then); every init reinstalls the triggers, so run it after a change
    of owner or a restore, as for ``beside_events_ddl``: until then the store records nothing
    (``authority_of``)."""
    if owner is None:
        return [
            *(
                f"CREATE TRIGGER IF NOT EXISTS custody_events_no_{op.lower()} BEFORE {op} "
                f"ON {events} BEGIN SELECT RAISE(ABORT, '{_REFUSAL}: {op} refused'); END"
                for op in ("UPDATE", "DELETE")
            ),
            # INSERT OR REPLACE deletes the row in its way without a DELETE trigger (SQLite's
            # recursive_triggers is off): an insert over a stored event's stream and version,
            # or its position (given: an auto one reads as -1 here), is refused before it.
            # An append that lost its version to another writer is refused here too, as
            # the key refused it: the ledger decides it again (``StreamConflict``).
            f"CREATE TRIGGER IF NOT EXISTS custody_events_no_replace BEFORE INSERT ON {events} "
            f"WHEN EXISTS (SELECT 1 FROM {events} WHERE originator_id = NEW.originator_id "
            "AND originator_version = NEW.originator_version) "
            f"OR (NEW.rowid > 0 AND EXISTS (SELECT 1 FROM {events} WHERE rowid = NEW.rowid)) "
            f"BEGIN SELECT RAISE(ABORT, '{_REFUSAL}: INSERT over a stored event refused'); END",
        ]
    refuse = f"""
CREATE OR REPLACE FUNCTION custody_refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION '{_REFUSAL}: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END $f$"""
    # Before any row of an insert draws its notification id, its transaction has an id of its
    # own: what lets a reader tell a gap that may yet be filled (``ledger._stores.settled``).
    xid_first = """
CREATE OR REPLACE FUNCTION custody_append_xid_first() RETURNS trigger LANGUAGE plpgsql AS $f$
BEGIN
    PERFORM pg_current_xact_id();
    RETURN NULL;
END $f$"""
    return [
        refuse,
        xid_first,
        profile_stream_ddl(),
        _pinned(_check_append_ddl(events, availability), "custody_check_append"),
        f"CREATE OR REPLACE TRIGGER custody_events_no_rewrite BEFORE UPDATE OR DELETE "
        f"ON {events} FOR EACH ROW EXECUTE FUNCTION custody_refuse_rewrite()",
        f"CREATE OR REPLACE TRIGGER custody_events_no_truncate BEFORE TRUNCATE "
        f"ON {events} FOR EACH STATEMENT EXECUTE FUNCTION custody_refuse_rewrite()",
        f"CREATE OR REPLACE TRIGGER custody_events_xid_first BEFORE INSERT "
        f"ON {events} FOR EACH STATEMENT WHEN (pg_current_xact_id() IS NULL) "
        "EXECUTE FUNCTION custody_append_xid_first()",
        # Schema 7 made appends take turns on an advisory lock; none is taken from schema 8.
        # Dropped once its successor is in place: no append goes without either.
        f"DROP TRIGGER IF EXISTS custody_events_in_turn ON {events}",
        "DROP FUNCTION IF EXISTS custody_append_in_turn()",
        f"CREATE OR REPLACE TRIGGER custody_events_by_role BEFORE INSERT "
        f"ON {events} FOR EACH ROW "
        f"WHEN (pg_has_role(current_user, {int(owner)}::oid, 'MEMBER') IS NOT TRUE) "
        "EXECUTE FUNCTION custody_check_append()",
    ]


# The checks run as the session that writes, on the search path it chose, where a temporary
# table comes first (a ``custody_events`` or ``pg_class`` any login may make): each looks only
# in the catalog, then the store's schema (where it was installed), then the temporary one.
_PINNED = (
    "DO $$ BEGIN EXECUTE format('ALTER FUNCTION {function}() "
    "SET search_path = pg_catalog, %I, pg_temp', current_schema()); END $$"
)


def _pinned(create: str, function: str) -> str:
    """``create`` (a check function's ``CREATE OR REPLACE``, which resets its settings) and
    the pin of its search path, sent as one statement: one transaction, so that no append
    meets the function unpinned between the two."""
    return f"{create};\n{_PINNED.format(function=function)}"


# The function that gives a profile's stream id in the database, as ``model.stream_id`` does.
PROFILE_STREAM = "custody_profile_stream"


def profile_stream_ddl() -> str:
    """The function ``custody_profile_stream(text)``: a profile's stream id, the UUID version 5
    of its id in ``PROFILE_NAMESPACE`` (``ledger._domain.model.stream_id``), which the insert
    check holds a login's registration to. PostgreSQL's core has no SHA-1 (pgcrypto has, an
    extension a store need not have): this is SHA-1 (RFC 3174) in PL/pgSQL, on 32-bit words
    kept in bigints. A registration alone runs it (a profile id is at most 128 bytes: three
    blocks); other events never do. No table is read, so its search path is the catalog's."""
    from ledger._domain.model import PROFILE_NAMESPACE  # the namespace: for the DDL only

    return f"""
CREATE OR REPLACE FUNCTION {PROFILE_STREAM}(text) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE STRICT SET search_path = pg_catalog AS $f$
DECLARE
    msg bytea := '\\x{PROFILE_NAMESPACE.bytes.hex()}'::bytea || convert_to($1, 'UTF8');
    m constant bigint := 4294967295;
    h bigint[] := ARRAY[1732584193, 4023233417, 2562383102, 271733878, 3285377520];
    w bigint[];
    a bigint; b bigint; c bigint; d bigint; e bigint; f bigint; k bigint; t bigint;
    bits bigint;
BEGIN
    bits := octet_length(msg)::bigint * 8;
    msg := msg || '\\x80'::bytea;
    WHILE octet_length(msg) % 64 <> 56 LOOP
        msg := msg || '\\x00'::bytea;
    END LOOP;
    msg := msg || int8send(bits);
    FOR block IN 0 .. octet_length(msg) / 64 - 1 LOOP
        w := ARRAY[]::bigint[];
        FOR i IN 0 .. 15 LOOP
            w[i + 1] := (get_byte(msg, block * 64 + i * 4)::bigint << 24)
                | (get_byte(msg, block * 64 + i * 4 + 1)::bigint << 16)
                | (get_byte(msg, block * 64 + i * 4 + 2)::bigint << 8)
                | get_byte(msg, block * 64 + i * 4 + 3)::bigint;
        END LOOP;
        FOR i IN 17 .. 80 LOOP
            t := w[i - 3] # w[i - 8] # w[i - 14] # w[i - 16];
            w[i] := ((t << 1) | (t >> 31)) & m;
        END LOOP;
        a := h[1]; b := h[2]; c := h[3]; d := h[4]; e := h[5];
        FOR i IN 0 .. 79 LOOP
            IF i < 20 THEN
                f := (b & c) | ((b # m) & d); k := 1518500249;
            ELSIF i < 40 THEN
                f := b # c # d; k := 1859775393;
            ELSIF i < 60 THEN
                f := (b & c) | (b & d) | (c & d); k := 2400959708;
            ELSE
                f := b # c # d; k := 3395469782;
            END IF;
            t := ((((a << 5) | (a >> 27)) & m) + f + e + k + w[i + 1]) & m;
            e := d; d := c; c := ((b << 30) | (b >> 2)) & m; b := a; a := t;
        END LOOP;
        h[1] := (h[1] + a) & m; h[2] := (h[2] + b) & m; h[3] := (h[3] + c) & m;
        h[4] := (h[4] + d) & m; h[5] := (h[5] + e) & m;
    END LOOP;
    -- The first 16 bytes, with the version (5) and the variant (RFC 4122) set.
    RETURN (lpad(to_hex(h[1]), 8, '0')
        || lpad(to_hex((h[2] & 4294905855) | 20480), 8, '0')
        || lpad(to_hex((h[3] & 1073741823) | 2147483648), 8, '0')
        || lpad(to_hex(h[4]), 8, '0'))::uuid;
END $f$"""


def _check_append_ddl(events: str, availability: str) -> str:
    """The insert trigger's function: the owner (and a superuser) pass; anyone else must hold
    the group role the event's envelope names, that role may record the event's type, and the
    event must be the next of its profile's own stream: the one after the stream's head, in
    the stream its profile's registration (an operator's, at version 1) began. A worker's login
    put an event past a head (a gap no load or read model folds past: the profile and every
    repair of the store failed for good), and events in a stream of its own, naming a
    registered profile (every timeline unreadable) or one not yet registered (its id taken for
    good). A registration is taken only at version 1 of a profile that has no availability row
    (none registered it): an operator's login registered a profile again, past its head (a
    quarantined profile moved to another account) or in a stream of its own (every timeline
    unreadable). It is taken only in its profile's own stream (``profile_stream_ddl``), so the
    events' key refuses a second registration whatever the login's snapshot saw (rev37: a new
    profile registered in a stream of its own, twice in one transaction, or again from a
    REPEATABLE READ snapshot older than the first, failed every timeline and ``status``).
    A row trigger's query sees the rows its statement inserted before (a
    release's two events in one insert). And the event's time must lie within
    ``CLOCK_SLACK_SECONDS`` of the server's clock, as every time custody gives an event does
    (``ledger._stores.clock``): a worker's login appended heartbeats dated ahead, each renewing
    the lease from its own forged time, and held a profile out of the sweep's sight for as
    long as it liked (rev34); dated behind, it could renew a lease past its deadline.

    And the lease's deadline is judged on the server's clock (``DEADLINE_GRACE_SECONDS``):
    a worker's event on its lease (every one but the acquisition) is refused once the deadline
    the lease had before it is past, a scheduler's stale mark while that deadline is ahead.
    The ledger judges a deadline on the time the writer put into the event, and that is the
    writer's: a worker's login with its clock 10 s behind released a lease 5 s past its
    deadline, clean, back to the pool; a scheduler's 50 s ahead swept a lease live for 30 s
    more (rev35). The deadline is the ``expires_at`` of the stream's latest lease event before
    this one (an acquisition's lease, a heartbeat's, an extension's, written capped at the
    hard limit), found walking the stream's key back from the event's version, one version at
    a time (a release's ending, in the same insert, is judged on the lease's deadline too, not
    on its release).

    An acquisition's lease must be the one custody's checkout writes at the event's time:
    started and renewed then, due within its TTL of it and by its hard limit (rev37: a worker's
    login acquired a lease dated now that started in 2099, due an hour after its start)."""
    from ledger._domain import events as ev  # the types: for the DDL only
    from ledger._domain.authority import ROLE_EVENTS  # the events: for the DDL only

    registered = ev.ProfileRegistered.event_type
    acquired = ev.LeaseAcquired.event_type
    renewals = (ev.LeaseHeartbeat.event_type, ev.LeaseExtended.event_type)
    stale = ev.LeaseMarkedStale.event_type
    worker, scheduler = Role.WORKER.value, Role.SCHEDULER.value

    cases = "\n".join(
        f"        WHEN '{role.value}' THEN ARRAY[{', '.join(repr(t) for t in sorted(types))}]"
        for role, types in ROLE_EVENTS.items()
    )
    time_cases = "\n".join(
        f"        WHEN '{topic}' THEN ARRAY["
        + ", ".join("state #>> '{" + ",".join(path) + "}'" for path in paths)
        + "]"
        for topic, paths in ev.times_held().items()
    )
    return f"""
CREATE OR REPLACE FUNCTION custody_check_append() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    acting text;
    state json;
    dated text;  -- the event's time, as its envelope holds it
    named text;  -- the profile the event names
    due text;  -- the deadline of the lease the event acts on, as its last lease event holds it
    lease_topic text;  -- that event's type
    lease_state bytea;  -- and its body
    times text[];  -- the times the event's body holds, as it holds them
    given text;
BEGIN
    IF pg_has_role(current_user, (SELECT relowner FROM pg_class WHERE oid = TG_RELID),
                   'MEMBER') THEN
        RETURN NEW;
    END IF;
    state := convert_from(NEW.state, 'UTF8')::json;
    acting := state #>> '{{envelope,actor_role}}';
    IF acting IS NULL OR NOT EXISTS (
        SELECT 1 FROM pg_roles r WHERE r.rolname = 'custody_' || acting
        AND pg_has_role(current_user, r.oid, 'MEMBER')
    ) THEN
        RAISE EXCEPTION 'login % may not record events as %', current_user,
            coalesce(acting, 'no role') USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NOT (NEW.topic = ANY (CASE acting
{cases}
        ELSE ARRAY[]::text[] END)) THEN
        RAISE EXCEPTION 'the % role may not record %', acting, NEW.topic
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    dated := state #>> '{{envelope,at}}';
    -- In the one form custody writes a time (rev37's review: "...40.5Z" and nine digits of a
    -- second were taken, where the lease's own times are held to that form).
    IF dated IS NULL OR dated !~ '^{ev.TIME_FORM}$' THEN
        RAISE EXCEPTION 'login % may not record an event without custody''s time (%)',
            current_user, coalesce(dated, 'none') USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF dated::timestamptz > clock_timestamp() + interval '{CLOCK_SLACK_SECONDS} seconds'
        -- the server's clock now, not its transaction's start (rev37: a login that held a
        -- transaction open 75 s appended an event dated at its start, before the one it
        -- followed)
        OR dated::timestamptz < clock_timestamp() - interval '{CLOCK_SLACK_SECONDS} seconds' THEN
        RAISE EXCEPTION 'login % may not record an event dated %: more than % s from the '
            'server''s clock (%), where custody dates every event (check both clocks)',
            current_user, dated, {CLOCK_SLACK_SECONDS}, clock_timestamp()
            USING ERRCODE = '{MISDATED}';
    END IF;
    -- Every time the body holds, in the one form custody writes: the deadline read below
    -- takes no other (rev37: a worker's login wrote a deadline "+00:00", which the fold took,
    -- and every stale mark of that lease was refused). Its own fields: no query.
    times := CASE NEW.topic
{time_cases}
        ELSE ARRAY[]::text[] END;
    FOREACH given IN ARRAY times LOOP
        IF given IS NOT NULL AND (given !~ '^{ev.TIME_FORM}$' OR given::timestamptz IS NULL) THEN
            RAISE EXCEPTION 'login % may not record % with a time not custody''s (%)',
                current_user, NEW.topic, given USING ERRCODE = 'insufficient_privilege';
        END IF;
    END LOOP;
    named := state ->> 'profile_id';
    IF named IS NULL THEN
        RAISE EXCEPTION 'login % may not record an event that names no profile', current_user
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- A profile id as register takes it, a text (rev37's review: an operator's login
    -- registered "a b", and the number 5, each in its own stream; status refused the fleet).
    IF json_typeof(state -> 'profile_id') <> 'string' OR named !~ '^{PROFILE_ID_PATTERN}$' THEN
        RAISE EXCEPTION 'login % may not record an event of profile %: not an id custody takes',
            current_user, left(named, 200) USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.originator_version = 1 THEN
        IF NEW.topic <> '{registered}' THEN
            RAISE EXCEPTION 'login % may not begin a stream with %: only a registration does',
                current_user, NEW.topic
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF EXISTS (SELECT 1 FROM {availability} a WHERE a.profile_id = named) THEN
            RAISE EXCEPTION 'login % may not register profile % again: it is registered',
                current_user, named
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        -- Only in the profile's own stream (the id every read derives from its id): a second
        -- registration then meets the first on the events' key, whatever this transaction's
        -- snapshot saw (rev37: one in a stream of its own broke every timeline and status).
        IF NEW.originator_id IS DISTINCT FROM custody_profile_stream(named) THEN
            RAISE EXCEPTION 'login % may not register profile % in stream %: its stream is %',
                current_user, named, NEW.originator_id, custody_profile_stream(named)
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF NEW.topic = '{registered}' THEN
        RAISE EXCEPTION 'login % may not register profile % again: a registration begins its '
            'stream', current_user, named
            USING ERRCODE = 'insufficient_privilege';
    ELSIF NOT EXISTS (
        SELECT 1 FROM {events} h WHERE h.originator_id = NEW.originator_id
        AND h.originator_version = NEW.originator_version - 1
    ) THEN
        RAISE EXCEPTION 'login % may not append version % of a stream: it follows no version %',
            current_user, NEW.originator_version, NEW.originator_version - 1
            USING ERRCODE = 'insufficient_privilege';
    ELSIF NOT EXISTS (
        SELECT 1 FROM {events} r WHERE r.originator_id = NEW.originator_id
        AND r.originator_version = 1 AND r.topic = '{registered}'
        AND convert_from(r.state, 'UTF8')::json ->> 'profile_id' = named
    ) THEN
        RAISE EXCEPTION 'login % may not append to a stream profile % was not registered in',
            current_user, named
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- An acquisition's lease as custody's checkout writes it: started and renewed at the
    -- event's own time, due within its TTL of it and by its hard limit (rev37: a worker's
    -- login acquired a lease dated now that started in 2099, due an hour after its start;
    -- the sweep never reached it). Its own fields: no query.
    IF NEW.topic = '{acquired}' AND (
        state #>> '{{lease,lease_started_at}}' IS DISTINCT FROM dated
        OR state #>> '{{lease,heartbeat_at}}' IS DISTINCT FROM dated
        OR (state #>> '{{lease,expires_at}}')::timestamptz > dated::timestamptz
            + make_interval(secs => (state #>> '{{lease,ttl_seconds}}')::double precision)
        OR (state #>> '{{lease,expires_at}}')::timestamptz
            > (state #>> '{{lease,hard_limit_at}}')::timestamptz
    ) THEN
        RAISE EXCEPTION 'login % may not record a lease started at %, renewed at %, due % '
            '(TTL % s, hard limit %): custody''s checkout starts it at its event''s time (%), '
            'due within its TTL and hard limit', current_user,
            state #>> '{{lease,lease_started_at}}', state #>> '{{lease,heartbeat_at}}',
            state #>> '{{lease,expires_at}}', state #>> '{{lease,ttl_seconds}}',
            coalesce(state #>> '{{lease,hard_limit_at}}', 'none'), dated
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- The lease's deadline, on the server's clock: the latest lease event before this one,
    -- walking the stream back one version at a time on its key. Not one query ordered by
    -- version with a LIMIT: the planner read every event of the stream for it (a bitmap
    -- scan, then a sort), 2 ms a heartbeat on a lease of 2,000.
    IF (acting = '{worker}' AND NEW.topic <> '{acquired}')
       OR (acting = '{scheduler}' AND NEW.topic = '{stale}') THEN
        FOR back IN 1 .. NEW.originator_version - 1 LOOP
            SELECT e.topic, e.state INTO lease_topic, lease_state FROM {events} e
            WHERE e.originator_id = NEW.originator_id
            AND e.originator_version = NEW.originator_version - back;
            EXIT WHEN lease_topic IN ('{acquired}', '{renewals[0]}', '{renewals[1]}');
            lease_topic := NULL;
        END LOOP;
        IF lease_topic = '{acquired}' THEN
            due := convert_from(lease_state, 'UTF8')::json #>> '{{lease,expires_at}}';
        ELSIF lease_topic IS NOT NULL THEN
            due := convert_from(lease_state, 'UTF8')::json ->> 'expires_at';
        END IF;
        IF due IS NOT NULL AND due !~ '^{ev.TIME_FORM}$' THEN
            RAISE EXCEPTION 'login % may not record % on a lease whose deadline is not '
                'custody''s time (%)', current_user, NEW.topic, due
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        IF acting = '{worker}'
           AND due::timestamptz < clock_timestamp() - interval '{DEADLINE_GRACE_SECONDS} seconds'
        THEN
            RAISE EXCEPTION 'login % may not record % on a lease past its deadline (%) on the '
                'server''s clock (%), where deadlines are judged (check this host''s clock)',
                current_user, NEW.topic, due, clock_timestamp()
                USING ERRCODE = '{DEADLINE_REFUSED}';
        END IF;
        IF acting = '{scheduler}'
           AND due::timestamptz > clock_timestamp() + interval '{DEADLINE_GRACE_SECONDS} seconds'
        THEN
            RAISE EXCEPTION 'login % may not mark stale a lease before its deadline (%) on the '
                'server''s clock (%), where deadlines are judged (check this host''s clock)',
                current_user, due, clock_timestamp()
                USING ERRCODE = '{DEADLINE_REFUSED}';
        END IF;
    END IF;
    -- The streams this transaction appended to, for the rows written beside its events
    -- (custody_check_beside, which looks each event up: a session may set this too).
    PERFORM set_config('{_APPENDED}', coalesce(current_setting('{_APPENDED}', true), '')
        || NEW.originator_id::text || ' ', true);
    RETURN NEW;
END $f$"""


def beside_events_ddl(events: str, availability: str, commands: str, owner: int) -> list[str]:
    """The triggers that let a session other than the owner's write an availability row or a
    command id only beside an event of that profile, at that version (and, for a command id,
    naming it), appended by the same transaction: a login cannot move a row (a lease's
    deadline, a profile's state) or claim a command id without an event in the log saying so.
    A sweep's command id (no profile) is the scheduler's alone; a DELETE, or a row moved to
    another profile, the owner's alone. PostgreSQL only (idempotent).

    The events' insert trigger notes the streams a transaction appended to in a setting; any
    session can set it too, so it only says where to look: the event itself must be there,
    inserted by this transaction (its ``xmin``), in the stream the profile's registration began
    (a stream the login made up would let its event name any profile). The owner (``owner``,
    the tables' owner's oid when ``custody init`` ran; every init reinstalls the triggers, so
    run it after a change of owner) is passed over in the triggers' ``WHEN``, so its appends
    queue nothing."""
    from ledger._domain.events import ProfileRegistered  # its type: for the DDL only

    registered = ProfileRegistered.event_type
    xid = "pg_current_xact_id()::text::bigint % 4294967296"
    check = f"""
CREATE OR REPLACE FUNCTION custody_check_beside() RETURNS trigger LANGUAGE plpgsql AS $f$
DECLARE
    streams uuid[];
    beside boolean;
    command text;  -- a command id's, which its event names (an availability row: none)
BEGIN
    -- The owner never gets here (the triggers' WHEN).
    IF TG_OP = 'DELETE' OR (TG_OP = 'UPDATE' AND OLD.profile_id IS DISTINCT FROM NEW.profile_id)
    THEN
        RAISE EXCEPTION 'login % may not % rows of %', current_user, TG_OP, TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_TABLE_NAME = '{commands}' AND NEW.profile_id = '' AND NEW.version = 0
       AND pg_has_role(current_user, 'custody_scheduler', 'MEMBER') THEN
        RETURN NULL;  -- a sweep's command id: its answer, once its events are appended
    END IF;
    IF TG_TABLE_NAME = '{commands}' THEN
        command := NEW.command_id;
    END IF;
    -- Only what reads as a stream id (a session may have set anything), with no EXCEPTION
    -- block: that would start a subtransaction for every row.
    streams := ARRAY(
        SELECT t::uuid FROM unnest(string_to_array(current_setting('{_APPENDED}', true), ' ')) t
        WHERE t ~ '^[0-9a-f]{{8}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{4}}-[0-9a-f]{{12}}$'
    );
    SELECT EXISTS (
        SELECT 1 FROM (
            SELECT e.originator_id, convert_from(e.state, 'UTF8')::json AS state FROM {events} e
            WHERE e.originator_id = ANY (streams) AND e.originator_version = NEW.version
            AND e.xmin::text::bigint = {xid}
        ) found
        WHERE found.state ->> 'profile_id' = NEW.profile_id
        AND (command IS NULL OR found.state #>> '{{envelope,command_id}}' = command)
        -- In the profile's own stream, the one its registration (an operator's) began: an
        -- event in a stream this login made up may name any profile, or none.
        AND EXISTS (
            SELECT 1 FROM {events} r WHERE r.originator_id = found.originator_id
            AND r.originator_version = 1 AND r.topic = '{registered}'
            AND convert_from(r.state, 'UTF8')::json ->> 'profile_id' = NEW.profile_id
        )
    ) INTO beside;
    IF NOT beside THEN
        RAISE EXCEPTION 'login % may not write % for profile % at version % without its event',
            current_user, TG_TABLE_NAME, NEW.profile_id, NEW.version
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NULL;
END $f$"""
    return [
        _pinned(check, "custody_check_beside"),
        *(
            f"CREATE OR REPLACE TRIGGER {table}_beside AFTER INSERT OR UPDATE OR DELETE "
            f"ON {table} FOR EACH ROW "
            f"WHEN (pg_has_role(current_user, {int(owner)}::oid, 'MEMBER') IS NOT TRUE) "
            "EXECUTE FUNCTION custody_check_beside()"
            for table in (availability, commands)
        ),
    ]


def directories_ddl(directories: str, owner: int) -> list[str]:
    """The trigger that refuses a login other than the owner's any UPDATE or DELETE of the
    recorded directories (PostgreSQL, idempotent). A registration only inserts its profile's
    row (and locks the table, which takes UPDATE): an operator's login that moved a row aside
    let a second profile register the same directory, then put the row back, and both were
    leased on it at once."""
    refuse = """
CREATE OR REPLACE FUNCTION custody_refuse_directory_change() RETURNS trigger
LANGUAGE plpgsql AS $f$
BEGIN
    RAISE EXCEPTION 'login % may not % rows of %: a directory is its registration''s for good',
        current_user, TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END $f$"""
    return [
        _pinned(refuse, "custody_refuse_directory_change"),
        f"CREATE OR REPLACE TRIGGER {directories}_kept BEFORE UPDATE OR DELETE "
        f"ON {directories} FOR EACH ROW "
        f"WHEN (pg_has_role(current_user, {int(owner)}::oid, 'MEMBER') IS NOT TRUE) "
        "EXECUTE FUNCTION custody_refuse_directory_change()",
    ]


# The role a guard trigger's WHEN passes over (its table's owner when init ran), as
# ``pg_get_triggerdef`` writes it: ``pg_has_role(CURRENT_USER, (16385)::oid, 'MEMBER'::text)``,
# and an oid past 2^31 - 1 (a long-lived server's, or one whose counter was reset) as the
# bigint it was read as, ``('3000000000'::bigint)::oid`` (rev40 review: that form went unread,
# and a restore from such a server passed for the original); as custody writes it, ``16385::oid``.
GUARD_OWNER = r"pg_has_role\([^,()]+, \(?'?([0-9]+)'?(?:::bigint)?\)?::oid"
# Why nothing is recorded on a store whose guards pass over a role that is not its owner.
ASTRAY = (
    "the store's guards name a role that is not its owner (restored on another server, or "
    "its owner changed?): run custody init as the owner"
)


def authority_of(store: Executing, events: str, snapshots: str) -> tuple[Authority, bool]:
    """Whom a PostgreSQL store is opened as, and whether it may write snapshots.

    Barred (``Authority.barred``) where a guard trigger passes over another role than its
    table's owner: the triggers name the owner by its oid, which a restore on another server
    (``pg_dump``, then ``pg_restore``), a restore to another owner, or a change of owner
    leaves naming another role or none. Whoever then holds that oid would pass the guards,
    and the owner would meet them as a login: no command is recorded until ``custody init``
    installs them again. Looked at in the query that opens the store, once a process while
    the store is not barred; at each command while it is (``SqlStore.authority``)."""
    rows = store.query(
        "SELECT current_user AS login, "
        "pg_has_role(current_user, c.relowner, 'MEMBER') AS owner, "
        "has_table_privilege(?, 'INSERT') AS snapshots, "
        "ARRAY(SELECT r.rolname FROM pg_roles r WHERE starts_with(r.rolname, 'custody_') "
        "AND pg_has_role(current_user, r.oid, 'MEMBER')) AS roles, "
        "EXISTS (SELECT 1 FROM pg_trigger t JOIN pg_class g ON g.oid = t.tgrelid "
        "WHERE g.relnamespace = c.relnamespace AND starts_with(t.tgname, 'custody_') "
        "AND t.tgqual IS NOT NULL "
        "AND substring(pg_get_triggerdef(t.oid) FROM ?)::oid <> g.relowner) AS astray "
        "FROM pg_class c WHERE c.oid = to_regclass(?)",
        (snapshots, GUARD_OWNER, events),
    )
    row = rows[0]
    login = str(row["login"])
    barred = f"store login {login} may record nothing here: {ASTRAY}" if row["astray"] else ""
    if row["owner"]:
        return Authority(login, ALL_ROLES, barred), bool(row["snapshots"])
    names = {name: role for role, name in GROUP_ROLES.items()}
    held = frozenset(names[n] for n in row["roles"] if n in names)
    return Authority(login, held, barred), bool(row["snapshots"])


# The advisory lock every ``grant`` takes first, in its transaction: grants on one database
# take turns (rev46: two at once, of one login as a worker and as a reviewer, each revoked the
# other's role before either granted its own, and the login held both; two creating a login
# or a group role collided on the catalog and were reported as the store unavailable).
GRANT_LOCK = 0x637573746F6479  # "custody"


def refuse_not_owner(store: Executing, events: str) -> None:
    """``Forbidden`` (as the database's refusal) unless the session's login owns ``events``
    (or is a member of its owner): ``grant`` is the owner's, and is refused before it writes."""
    rows = store.query(
        "SELECT current_user AS login, pg_has_role(current_user, c.relowner, 'USAGE') AS owns "
        "FROM pg_class c WHERE c.oid = to_regclass(?)",
        (events,),
    )
    if rows and not rows[0]["owns"]:
        raise Forbidden(f"login {rows[0]['login']} does not own {events}", by_database=True)


def grant(
    store: Granting, tables: Tables, login: str, roles: frozenset[Role], password: str | None
) -> dict[str, Any]:
    """Make ``login`` (created if missing) a member of exactly ``roles``' group roles, after
    (re)applying the group roles' privileges on this store's tables; an existing login loses
    its direct privileges on custody's objects. ``InvalidInput``, before anything changes,
    when the login or one of the group roles holds more (``holdings.refuse_more``).

    ``store`` runs every statement in one transaction (``SqlStore.one_transaction``), and the
    grant takes ``GRANT_LOCK`` first: grants take turns, each sees the one before it
    committed, and the login ends holding exactly the roles of the last."""
    if len(login) > LOGIN_AT_MOST:  # PostgreSQL would cut it there, and grant another name
        msg = f"is {len(login)} characters long: a PostgreSQL role name holds {LOGIN_AT_MOST}"
        raise InvalidInput("login", msg)
    if not _LOGIN.fullmatch(login):
        msg = f"{login!r}: give a PostgreSQL role name of lower-case letters, digits and _"
        raise InvalidInput("login", msg)
    if login.startswith("pg_") or login in _RESERVED_LOGINS:
        msg = f"{login!r} is a name PostgreSQL reserves (pg_*, public, none, ...): choose another"
        raise InvalidInput("login", msg)
    if password is not None and storable(password) != password:
        msg = "holds a NUL or bytes that are not UTF-8, which PostgreSQL cannot keep"
        raise InvalidInput("password", msg)
    store.execute("SELECT pg_advisory_xact_lock(?)", (GRANT_LOCK,))
    me = str(store.query("SELECT current_user AS u")[0]["u"])
    if login == me or login in GROUP_ROLES.values():
        msg = f"{login} is the store's owner or a custody group role: grant to another login"
        raise InvalidInput("login", msg)
    exists = store.query("SELECT 1 AS x FROM pg_roles WHERE rolname = ?", (login,))
    groups = [GROUP_ROLES[role] for role in sorted(roles)]
    holdings.refuse_more(
        store, tables.events, login if exists else None, groups, GROUP_ROLES.values()
    )
    apply_privileges(store, tables)
    verb = "ALTER" if exists else "CREATE"
    if password is None:
        _run_formatted(store, f"{verb} ROLE %I LOGIN", login)
    else:  # in the same statement: a login is never made without the password asked for
        # Its SCRAM-SHA-256 verifier, made here: the statement is what the server logs (every
        # one that fails, by default; every grant under log_statement = 'ddl'), and the
        # password itself must never be in it (rev38 review).
        verifier = store.password_verifier(login, password)
        _run_formatted(store, f"{verb} ROLE %I LOGIN PASSWORD %L", login, verifier)
    if exists:  # what the owner granted it directly on custody's tables, custody takes back
        store.execute("; ".join(holdings.revocations(store, login)))
    for other, group in GROUP_ROLES.items():
        if other not in roles:
            _run_formatted(store, "REVOKE %I FROM %I", group, login)
    for role in sorted(roles):
        _run_formatted(store, "GRANT %I TO %I", GROUP_ROLES[role], login)
    return {"login": login, "created": not exists}


def logins(store: Executing, events: str) -> list[dict[str, Any]]:
    """Every login holding a custody group role, with the role and what it holds beyond its
    custody roles, through its groups too (``also``: empty when nothing)."""
    rows = store.query(
        "SELECT m.rolname AS login, g.rolname AS grp FROM pg_auth_members a "
        "JOIN pg_roles g ON g.oid = a.roleid JOIN pg_roles m ON m.oid = a.member "
        "WHERE starts_with(g.rolname, 'custody_') ORDER BY m.rolname, g.rolname"
    )
    names = {name: role for role, name in GROUP_ROLES.items()}
    found = [(str(r["login"]), str(r["grp"])) for r in rows if str(r["grp"]) in names]
    also = holdings.listed(store, events, found, list(names))
    return [
        {"login": login, "role": names[group].value, "also": also[login, group]}
        for login, group in found
    ]


def apply_privileges(store: Executing, tables: Tables) -> None:
    """Create the group roles if missing and give them exactly their privileges on every
    custody table of the store's schema (idempotent; ``custody init`` reapplies them when the
    group roles exist, so tables a migration adds are covered)."""
    for group in GROUP_ROLES.values():
        _create_group(store, group)
    # A rebuild's table in the making (``projections._runner.SHADOW``) is left to the default
    # privileges below: another init's rebuild may rename it into place, or drop it, between
    # this look and its grant (rev32: three inits at once on a schema-4 store, one failed
    # with 'relation "custody_timeline__next" does not exist').
    names = [
        str(r["t"])
        for r in store.query(
            "SELECT tablename AS t FROM pg_tables WHERE schemaname = current_schema() "
            "AND starts_with(tablename, 'custody_') AND right(tablename, 6) <> '__next'"
        )
    ]
    sequences = [
        str(r["s"])
        for r in store.query(
            "SELECT sequencename AS s FROM pg_sequences WHERE schemaname = current_schema() "
            "AND starts_with(sequencename, 'custody_')"
        )
    ]
    every = ", ".join(GROUP_ROLES.values())
    store.execute(f"GRANT USAGE ON SCHEMA {_schema(store)} TO {every}")
    for table in names:
        # One transaction (statements sent together): between a REVOKE committed alone and its
        # GRANTs every login of the groups was refused, a live worker's heartbeat included.
        # PUBLIC too: what it holds, every login holds, a worker's included.
        statements = [f"REVOKE ALL ON {table} FROM PUBLIC, {every}"]
        for role, group in GROUP_ROLES.items():
            kinds = tables.privileges(table, role)
            if kinds:
                statements.append(f"GRANT {', '.join(kinds)} ON {table} TO {group}")
        # A table gone since the look above (a rebuild beside this one swapped it) has
        # nothing left to grant: passed over, not a failed init.
        store.execute(f"DO $$ BEGIN {'; '.join(statements)}; {_SKIP_GONE} END $$")
    for sequence in sequences:
        store.execute(f"GRANT USAGE, SELECT ON SEQUENCE {sequence} TO {every}")
    # Tables made later by this owner (a read model's rebuild) are read models: read by all,
    # kept up by the roles that maintain them (a store of schema 8 granted them to all).
    maintainers = ", ".join(GROUP_ROLES[r] for r in sorted(READ_MODEL_WRITERS))
    store.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema(store)} "
        f"REVOKE INSERT, UPDATE, DELETE ON TABLES FROM {every}"
    )
    store.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema(store)} GRANT SELECT ON TABLES TO {every}"
    )
    store.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema(store)} "
        f"GRANT INSERT, UPDATE, DELETE ON TABLES TO {maintainers}"
    )
    store.execute(
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {_schema(store)} "
        f"GRANT USAGE, SELECT ON SEQUENCES TO {every}"
    )


_SKIP_GONE = "EXCEPTION WHEN undefined_table THEN NULL;"


def groups_exist(store: Executing) -> bool:
    rows = store.query(
        "SELECT count(*) AS n FROM pg_roles WHERE rolname = ANY(?)", (list(GROUP_ROLES.values()),)
    )
    return int(rows[0]["n"]) == len(GROUP_ROLES)


def _create_group(store: Executing, group: str) -> None:
    # Two grants at once may both find the role missing: the second's CREATE then fails
    # (duplicate_object, or unique_violation on the catalog), which means it exists.
    store.execute(
        "DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{group}') THEN "
        f"CREATE ROLE {group} NOLOGIN; END IF; "
        "EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $$"
    )


def _schema(store: Executing) -> str:
    return str(store.query("SELECT quote_ident(current_schema()) AS s")[0]["s"])


def _run_formatted(store: Executing, template: str, *args: str) -> None:
    """Run a statement whose identifiers and literals the server quotes (``format``)."""
    marks = ", ".join("?::text" for _ in args)
    rows = store.query(f"SELECT format(?::text, {marks}) AS s", (template, *args))
    store.execute(str(rows[0]["s"]))
