"""custody's read side: availability, explanations, and the read models fed from the event log
(leases, timeline) with exactly-once catch-up and rebuild."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.rules import (
        EXPLAINABLE_ENDINGS as EXPLAINABLE_ENDINGS,
        UNCLEAN_ENDINGS as UNCLEAN_ENDINGS,
    )
    from projections._availability import (
        StatusRow as StatusRow,
        availability_status as availability_status,
        status as status,
        status_at as status_at,
    )
    from projections._base import (
        Bound as Bound,
        ReadModel as ReadModel,
        ReadResult as ReadResult,
    )
    from projections._explain import (
        Explanation as Explanation,
        Usage as Usage,
        explain as explain,
        explain_view as explain_view,
        who as who,
    )
    from projections._leases import (
        LEASES_READ_MODEL as LEASES_READ_MODEL,
        LeaseRow as LeaseRow,
        LeasesReadModel as LeasesReadModel,
        read_usage as read_usage,
    )
    from projections._read_models import READ_MODELS as READ_MODELS
    from projections._runner import (
        ReadModelStatus as ReadModelStatus,
        Rebuilt as Rebuilt,
        catch_up as catch_up,
        catch_up_all as catch_up_all,
        hearing_notes as hearing_notes,
        install as install,
        notes_once as notes_once,
        rebuild as rebuild,
        run as run,
        status as read_model_status,
        upgrade as upgrade,
    )
    from projections._timeline import (
        EVENTS_AROUND as EVENTS_AROUND,
        LAST_EVENTS as LAST_EVENTS,
        PAGE_ROWS as PAGE_ROWS,
        TIMELINE_READ_MODEL as TIMELINE_READ_MODEL,
        TimelineReadModel as TimelineReadModel,
        TimelineRow as TimelineRow,
        read_timeline as read_timeline,
        timeline as timeline,
        timeline_pages as timeline_pages,
        timeline_pages_read as timeline_pages_read,
    )
    from projections._usage_as_of import usage as usage

# Where each public name lives (``module:name`` where it is known there by another name). A name
# is imported when first asked for, so ``custody status`` builds neither the timeline's nor the
# leases' read model, and ``who`` no status rows.
_HOMES = {
    **dict.fromkeys(("EXPLAINABLE_ENDINGS", "UNCLEAN_ENDINGS"), "ledger.rules"),
    **dict.fromkeys(
        ("StatusRow", "availability_status", "status", "status_at"), "projections._availability"
    ),
    **dict.fromkeys(("Bound", "ReadModel", "ReadResult"), "projections._base"),
    **dict.fromkeys(
        ("Explanation", "Usage", "explain", "explain_view", "who"), "projections._explain"
    ),
    **dict.fromkeys(
        ("LEASES_READ_MODEL", "LeaseRow", "LeasesReadModel", "read_usage"),
        "projections._leases",
    ),
    "usage": "projections._usage_as_of",
    "READ_MODELS": "projections._read_models",
    "read_model_status": "projections._runner:status",
    **dict.fromkeys(
        (
            "ReadModelStatus",
            "Rebuilt",
            "catch_up",
            "catch_up_all",
            "hearing_notes",
            "install",
            "notes_once",
            "rebuild",
            "run",
            "upgrade",
        ),
        "projections._runner",
    ),
    **dict.fromkeys(
        (
            "EVENTS_AROUND",
            "LAST_EVENTS",
            "PAGE_ROWS",
            "TIMELINE_READ_MODEL",
            "TimelineReadModel",
            "TimelineRow",
            "read_timeline",
            "timeline",
            "timeline_pages",
            "timeline_pages_read",
        ),
        "projections._timeline",
    ),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'projections' has no attribute {name!r}")
    module, _, there = home.partition(":")
    value = getattr(importlib.import_module(module), there or name)
    globals()[name] = value
    return value


__all__ = [
    "EVENTS_AROUND",
    "EXPLAINABLE_ENDINGS",
    "LAST_EVENTS",
    "LEASES_READ_MODEL",
    "PAGE_ROWS",
    "READ_MODELS",
    "TIMELINE_READ_MODEL",
    "UNCLEAN_ENDINGS",
    "Bound",
    "Explanation",
    "LeaseRow",
    "LeasesReadModel",
    "ReadModel",
    "ReadModelStatus",
    "ReadResult",
    "Rebuilt",
    "StatusRow",
    "TimelineReadModel",
    "TimelineRow",
    "Usage",
    "availability_status",
    "catch_up",
    "catch_up_all",
    "explain",
    "explain_view",
    "hearing_notes",
    "install",
    "notes_once",
    "read_model_status",
    "read_timeline",
    "read_usage",
    "rebuild",
    "run",
    "status",
    "status_at",
    "timeline",
    "timeline_pages",
    "timeline_pages_read",
    "upgrade",
    "usage",
    "who",
]
