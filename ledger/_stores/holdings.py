"""What a PostgreSQL role holds beyond the privileges of its custody group roles: what
``custody access grant`` refuses to leave in place, and what ``custody access list`` shows.

A login granted a custody role must hold exactly that role's privileges: nothing the custody
group roles do not give it may reach the store's tables. What else could:

- **attributes**: SUPERUSER, CREATEROLE (on PostgreSQL 15, ``GRANT owner TO itself``), CREATEDB,
  REPLICATION, BYPASSRLS;
- **memberships** in any role but custody's group roles: the store's owner (whose members the
  insert trigger passes over), a deploy role, ``pg_write_all_data``. Any role may carry
  privileges, so custody does not guess which are harmless; and ADMIN OPTION on a custody
  group role, with which a login makes any other login a member of it;
- the **schema**: owning it (or the database, whose owner owns ``public`` on PostgreSQL 15) lets
  a login drop or rename custody's tables; CREATE lets it put objects beside them, and an
  object it **owns** there (a table, view, sequence or function made while it could) is its to
  write whatever its role: ``custody_tokens`` made before the owner's, tokens of any role;
- **privileges granted to it directly** on custody's tables (columns too), sequences and
  functions, and the owner's default privileges for tables made later (a rebuild's).

``grant`` refuses a login holding any of the first three, naming each and what removes it:
those are an administrator's choices about an account custody did not make, and may serve
other databases of the cluster. Direct privileges on custody's own objects the owner
granted, ``grant`` revokes (``revocations``): custody's tables are custody's to give out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from ledger._domain.errors import InvalidInput

_ATTRIBUTES = ("superuser", "createrole", "createdb", "replication", "bypassrls")


class Querying(Protocol):
    def query(self, statement: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]: ...


class Held(NamedTuple):
    """One thing a role holds beyond its custody roles, and the statement that removes it."""

    what: str
    remedy: str


def refuse_more(
    store: Querying, events: str, login: str | None, groups: list[str], managed: Iterable[str]
) -> None:
    """``InvalidInput`` naming what the existing ``login`` (None: a new one) or one of the
    ``groups`` it is to be given holds beyond the ``managed`` group roles, and the statements
    that remove it; nothing is changed. Refused rather than stripped: an administrator gave
    it, to an account custody did not make, and it may serve other databases of the cluster
    (and only a superuser may take away REPLICATION or BYPASSRLS)."""
    if login is not None:
        held = beyond_role(store, login, events, list(managed))
        if held:
            raise InvalidInput("login", _holds_more(login, held))
    for group in groups:
        held = beyond_role(store, group, events, [])
        if held:
            raise InvalidInput("role", _holds_more(f"the group role {group}", held))


def _holds_more(who: str, held: list[Held]) -> str:
    what = "; ".join(h.what for h in held)
    remedies = "; ".join(h.remedy for h in held)
    return (
        f"{who} holds more than a custody role gives ({what}); custody leaves it as it is: "
        f"remove it ({remedies}) and grant again"
    )


def listed(
    store: Querying, events: str, found: list[tuple[str, str]], managed: list[str]
) -> dict[tuple[str, str], list[str]]:
    """For each (login, group role) ``access list`` shows, what the login holds beyond the
    ``managed`` group roles, its direct privileges on custody's objects included, and what
    the group role holds (named as the group's)."""
    by_group = {
        group: [f"{group}: {h.what}" for h in beyond_role(store, group, events, [])]
        for group in {g for _, g in found}
    }
    by_login: dict[str, list[str]] = {}
    for login in {name for name, _ in found}:
        held = [h.what for h in beyond_role(store, login, events, managed)]
        direct = direct_privileges(store, login, events)
        by_login[login] = held + [p.what for p in direct if p.by_owner]
    return {(login, group): by_login[login] + by_group[group] for login, group in found}


def beyond_role(store: Querying, role: str, events: str, managed: list[str]) -> list[Held]:
    """What ``role`` holds that ``grant`` will not remove: attributes, memberships in roles
    other than ``managed`` (custody's group roles, for a login), the schema of ``events``,
    and privileges on custody's objects granted by another role than their owner."""
    rows = store.query(
        "SELECT r.rolsuper AS superuser, r.rolcreaterole AS createrole, "
        "r.rolcreatedb AS createdb, r.rolreplication AS replication, "
        "r.rolbypassrls AS bypassrls, o.rolname AS owner, n.nspname AS schema, "
        # Not again for the owner's members (named as such), nor for a superuser.
        "(NOT pg_has_role(r.oid, c.relowner, 'MEMBER') "
        "AND pg_has_role(r.oid, n.nspowner, 'MEMBER')) AS owns_schema, "
        "EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = r.oid "
        "AND a.privilege_type = 'CREATE') AS creates, "
        "ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE m.member = r.oid AND NOT (g.rolname = ANY (?)) ORDER BY g.rolname) AS member_of, "
        # ADMIN OPTION on a custody group role: the login could make any other login a member.
        "ARRAY(SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
        "WHERE m.member = r.oid AND m.admin_option AND g.rolname = ANY (?) ORDER BY g.rolname) "
        "AS admin_of "
        "FROM pg_roles r, pg_class c JOIN pg_roles o ON o.oid = c.relowner "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE r.rolname = ? AND c.oid = to_regclass(?)",
        (managed, managed, role, events),
    )
    if not rows:
        return []
    row = rows[0]
    who, owner, schema = quoted(store, role), str(row["owner"]), str(row["schema"])
    attributes = [name.upper() for name in _ATTRIBUTES if row[name]]
    held = []
    if attributes:
        remedy = f"ALTER ROLE {who} {' '.join('NO' + a for a in attributes)}"
        held.append(Held(" ".join(attributes), remedy))
    for group in row["member_of"]:
        named = f"{group} (the store's owner)" if group == owner else str(group)
        held.append(Held(f"member of {named}", f"REVOKE {quoted(store, group)} FROM {who}"))
    for group in row["admin_of"]:
        remedy = f"REVOKE ADMIN OPTION FOR {quoted(store, group)} FROM {who}"
        held.append(Held(f"ADMIN OPTION on {group}", remedy))
    if row["owns_schema"]:
        remedy = f"give schema {schema} (or its database) another owner"
        held.append(Held(f"owner of schema {schema} (or of its database)", remedy))
    if row["creates"]:
        remedy = f"REVOKE CREATE ON SCHEMA {quoted(store, schema)} FROM {who}"
        held.append(Held(f"CREATE on schema {schema}", remedy))
    held += [
        Held(f"{p.what} granted by {p.grantor}", f"as {p.grantor}: REVOKE {p.what} FROM {who}")
        for p in direct_privileges(store, role, events)
        if not p.by_owner
    ]
    return held + owned_objects(store, role, events)


def owned_objects(store: Querying, role: str, events: str) -> list[Held]:
    """Each table, view, sequence and function in the schema of ``events`` that ``role``
    owns (not for the store's owner or its members), and what takes it away."""
    rows = store.query(
        "WITH e AS (SELECT c.relnamespace AS ns, c.relowner AS owner FROM pg_class c "
        "WHERE c.oid = to_regclass(?)), r AS (SELECT oid FROM pg_roles WHERE rolname = ? "
        "AND NOT pg_has_role(oid, (SELECT owner FROM e), 'MEMBER')) "
        "SELECT CASE c.relkind WHEN 'S' THEN 'SEQUENCE' WHEN 'v' THEN 'VIEW' "
        "WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END "
        "AS kind, c.oid::regclass::text AS name FROM pg_class c "
        "WHERE c.relnamespace = (SELECT ns FROM e) AND c.relowner = (SELECT oid FROM r) "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
        "UNION ALL SELECT 'FUNCTION', p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = (SELECT ns FROM e) AND p.proowner = (SELECT oid FROM r) "
        "ORDER BY 2",
        (events, role),
    )
    return [
        Held(
            f"owner of {str(r['kind']).lower()} {r['name']}",
            f"DROP {r['kind']} {r['name']} (or give it to the store's owner once its rows "
            "are checked)",
        )
        for r in rows
    ]


class Privilege(NamedTuple):
    what: str  # "INSERT ON custody_snapshots"
    grantor: str
    by_owner: bool


def direct_privileges(store: Querying, role: str, events: str) -> list[Privilege]:
    """The privileges granted to ``role`` itself (not through a group, not to PUBLIC) on the
    custody tables, columns, sequences and functions of the current schema, and in the
    default privileges of the owner of ``events`` (what a rebuild's new tables get)."""
    rows = store.query(
        "WITH s AS (SELECT oid FROM pg_namespace WHERE nspname = current_schema()), "
        "me AS (SELECT oid FROM pg_roles WHERE rolname = ?), found AS ("
        "SELECT a.privilege_type AS kind, 'ON ' || c.oid::regclass::text AS object, "
        "a.grantor, c.relowner AS owner FROM pg_class c, aclexplode(c.relacl) a "
        "WHERE c.relnamespace = (SELECT oid FROM s) AND starts_with(c.relname, 'custody_') "
        "AND a.grantee = (SELECT oid FROM me) "
        "UNION ALL SELECT a.privilege_type || ' (' || quote_ident(t.attname) || ')', "
        "'ON ' || c.oid::regclass::text, a.grantor, c.relowner "
        "FROM pg_attribute t JOIN pg_class c ON c.oid = t.attrelid, aclexplode(t.attacl) a "
        "WHERE c.relnamespace = (SELECT oid FROM s) AND starts_with(c.relname, 'custody_') "
        "AND a.grantee = (SELECT oid FROM me) "
        "UNION ALL SELECT a.privilege_type, 'ON FUNCTION ' || p.oid::regprocedure::text, "
        "a.grantor, p.proowner FROM pg_proc p, aclexplode(p.proacl) a "
        "WHERE p.pronamespace = (SELECT oid FROM s) AND starts_with(p.proname, 'custody_') "
        "AND a.grantee = (SELECT oid FROM me) "
        "UNION ALL SELECT a.privilege_type, 'in the default privileges of ' "
        "|| d.defaclrole::regrole::text, a.grantor, d.defaclrole "
        "FROM pg_default_acl d, aclexplode(d.defaclacl) a "
        "WHERE (d.defaclnamespace = 0 OR d.defaclnamespace = (SELECT oid FROM s)) "
        "AND d.defaclrole = (SELECT relowner FROM pg_class WHERE oid = to_regclass(?)) "
        "AND a.grantee = (SELECT oid FROM me)) "
        "SELECT f.kind, f.object, g.rolname AS grantor, f.grantor = f.owner AS by_owner "
        "FROM found f JOIN pg_roles g ON g.oid = f.grantor ORDER BY f.object, f.kind",
        (role, events),
    )
    return [
        Privilege(f"{r['kind']} {r['object']}", str(r["grantor"]), bool(r["by_owner"]))
        for r in rows
    ]


def revocations(store: Querying, role: str) -> list[str]:
    """The statements (the owner's) that take from ``role`` every privilege granted to it
    directly on custody's objects in the current schema, and every default privilege the
    owner's future tables and sequences there would give it."""
    rows = store.query(
        "SELECT CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END "
        "|| c.oid::regclass::text AS object FROM pg_class c "
        "WHERE c.relnamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
        "AND starts_with(c.relname, 'custody_') AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') "
        "UNION ALL SELECT 'FUNCTION ' || p.oid::regprocedure::text FROM pg_proc p "
        "WHERE p.pronamespace = (SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
        "AND starts_with(p.proname, 'custody_') ORDER BY 1",
        (),
    )
    who = quoted(store, role)
    schema = str(store.query("SELECT quote_ident(current_schema()) AS s")[0]["s"])
    statements = [f"REVOKE ALL ON {r['object']} FROM {who}" for r in rows]
    for kind in ("TABLES", "SEQUENCES", "FUNCTIONS"):
        statements.append(f"ALTER DEFAULT PRIVILEGES REVOKE ALL ON {kind} FROM {who}")
        statements.append(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON {kind} FROM {who}"
        )
    return statements


def quoted(store: Querying, name: str) -> str:
    """``name`` as an identifier in a statement (a login may be called ``user``)."""
    return str(store.query("SELECT quote_ident(?::text) AS q", (name,))[0]["q"])


def refuse_squatted(store: Querying, events: str, then: str) -> None:
    """``InvalidInput`` naming each custody table or sequence in the schema of ``events``
    that another login than the owner of ``events`` (the store's owner) owns, and its owner:
    made there while that login could CREATE, it is that login's to write whatever its role
    (``custody_tokens``: tokens of any role), and the owner may not even grant on it."""
    rows = store.query(
        "SELECT c.oid::regclass::text AS name, pg_get_userbyid(c.relowner) AS owner, "
        "pg_get_userbyid(e.relowner) AS store_owner, "
        "CASE c.relkind WHEN 'S' THEN 'SEQUENCE' ELSE 'TABLE' END AS kind "
        "FROM pg_class c, pg_class e WHERE e.oid = to_regclass(?) "
        "AND c.relnamespace = e.relnamespace AND starts_with(c.relname, 'custody_') "
        "AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S') AND c.relowner <> e.relowner "
        "ORDER BY 1",
        (events,),
    )
    if not rows:
        return
    owner = rows[0]["store_owner"]
    named = ", ".join(f"the {str(r['kind']).lower()} {r['name']} is owned by {r['owner']}"
                      for r in rows)  # fmt: skip
    drops = "; ".join(f"DROP {r['kind']} {r['name']}" for r in rows)
    msg = (
        f"{named}, not by the store's owner {owner}: that login writes it whatever its role, "
        f"so {then}; drop it ({drops}, as its owner or a superuser), then run custody init as "
        f"{owner}"
    )
    raise InvalidInput("store", msg)
