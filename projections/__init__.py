"""custody's read side: availability, explanations, and the read models fed from the event log
(leases, timeline) with exactly-once catch-up and rebuild."""

from ledger.rules import EXPLAINABLE_ENDINGS, UNCLEAN_ENDINGS
from projections._availability import StatusRow, status
from projections._base import ReadModel, ReadResult
from projections._explain import Explanation, Usage, explain, explain_view, who
from projections._leases import LEASES_READ_MODEL, LeasesReadModel
from projections._runner import (
    ReadModelStatus,
    Rebuilt,
    catch_up,
    install,
    rebuild,
    run,
    status as read_model_status,
    upgrade,
)
from projections._timeline import (
    TIMELINE_READ_MODEL,
    TimelineReadModel,
    TimelineRow,
    read_timeline,
    timeline,
)

# The read models fed from the notification log, by the name the command line uses.
READ_MODELS: dict[str, ReadModel] = {
    LEASES_READ_MODEL.name: LEASES_READ_MODEL,
    TIMELINE_READ_MODEL.name: TIMELINE_READ_MODEL,
}

__all__ = [
    "EXPLAINABLE_ENDINGS",
    "LEASES_READ_MODEL",
    "READ_MODELS",
    "TIMELINE_READ_MODEL",
    "UNCLEAN_ENDINGS",
    "Explanation",
    "LeasesReadModel",
    "ReadModel",
    "ReadModelStatus",
    "ReadResult",
    "Rebuilt",
    "StatusRow",
    "TimelineReadModel",
    "TimelineRow",
    "Usage",
    "catch_up",
    "explain",
    "explain_view",
    "install",
    "read_model_status",
    "read_timeline",
    "rebuild",
    "run",
    "status",
    "timeline",
    "upgrade",
    "who",
]
