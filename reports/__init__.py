"""pandas answers from the read models: timelines, compliance usage, incident replay, the
fleet summary, its health, the article's checklist, and the HTML report.

Each report is a function returning a DataFrame (or a model for a single answer). It reads an
open ``Ledger``, a store URL, or by default ``$CUSTODY_STORE`` (else ``./custody.db``), and
brings the read model it reads up to date first.
"""

from reports.checklist import Check, Checklist, checklist
from reports.fleet import Fleet, ReviewTimes, Stuck, fleet
from reports.health import Health, health
from reports.replay import Replay, replay
from reports.reviews import ReviewWait
from reports.timeline import timeline
from reports.usage import usage

__all__ = [
    "Check",
    "Checklist",
    "Fleet",
    "Health",
    "Replay",
    "ReviewTimes",
    "ReviewWait",
    "Stuck",
    "checklist",
    "fleet",
    "health",
    "replay",
    "timeline",
    "usage",
]
