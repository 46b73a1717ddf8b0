"""custody's read side: availability, explanations, and the read models fed from the event log
(leases, timeline) with exactly-once catch-up and rebuild."""

from ledger.rules import EXPLAINABLE_ENDINGS, UNCLEAN_ENDINGS
from projections.availability import StatusRow, status
from projections.base import Projection, ReadModel
from projections.explain import Explanation, Usage, explain, user, who
from projections.leases import LEASES_PROJECTION, LeasesProjection
from projections.runner import (
    ProjectionStatus,
    Rebuilt,
    catch_up,
    install,
    rebuild,
    run,
    upgrade,
)
from projections.runner import status as projection_status
from projections.timeline import TIMELINE_PROJECTION, TimelineProjection, TimelineRow, timeline

# The read models fed from the notification log, by the name the command line uses.
PROJECTIONS: dict[str, Projection] = {
    LEASES_PROJECTION.name: LEASES_PROJECTION,
    TIMELINE_PROJECTION.name: TIMELINE_PROJECTION,
}

__all__ = [
    "EXPLAINABLE_ENDINGS",
    "LEASES_PROJECTION",
    "PROJECTIONS",
    "TIMELINE_PROJECTION",
    "UNCLEAN_ENDINGS",
    "Explanation",
    "LeasesProjection",
    "Projection",
    "ProjectionStatus",
    "ReadModel",
    "Rebuilt",
    "StatusRow",
    "TimelineProjection",
    "TimelineRow",
    "Usage",
    "catch_up",
    "explain",
    "install",
    "projection_status",
    "rebuild",
    "run",
    "status",
    "timeline",
    "upgrade",
    "user",
    "who",
]
