"""Whether a row of ``custody_chain_origins`` is one custody wrote: the schema 7 migration
(``custody init`` on an older store) records, once, each profile's version and head as its
events stood before they carried links, and the log's last position then. Every event at or
before that position was stored without a link, every event after it with one; the head is
checked where the walk reaches that version (``Walk._unlinked``).

A row decides what verify checks: an event stored without a link at or below its version is
believed, and registrations at or before its position may share a directory (custody did not
compare them then). So a row that does not match the log is named, and not trusted.
"""

from __future__ import annotations

# The first event in log order stored with a link: its position, profile and version.
Linked = tuple[int, str, int]


def mismatch(
    origin: tuple[int, str, int], linked_from: int | None, first_linked: Linked | None, end: int
) -> str | None:
    """What the log contradicts in ``origin`` (version, head, position as stored; None:
    nothing): ``linked_from``, the first version of its profile stored with a link (None: none,
    or no events); ``first_linked``, the log's first event stored with one; ``end``, the log's
    last position. The head is not looked at here (``Walk._unlinked`` compares it)."""
    version, _, position = origin
    if version < 1:
        found = f"v{version}, but custody records an origin only for a profile with events"
    elif position > end:
        found = f"the log ending at position {position}, past its end ({end})"
    elif first_linked is not None and position >= first_linked[0]:
        at, profile_id, linked = first_linked
        found = (
            f"the log ending at position {position}, but {profile_id} v{linked} at position "
            f"{at} was stored with a link, which only events after that position carry"
        )
    elif linked_from is not None and linked_from <= version:
        found = f"v{version}, but its v{linked_from} was stored with a link"
    else:
        return None
    return (
        f"its chain's origin row records {found}: the row was written or edited outside "
        "custody, and verify does not trust it"
    )
