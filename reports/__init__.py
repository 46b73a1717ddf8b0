"""pandas answers from the read models: timelines, compliance usage and the runs that ended
unknown, review waits, incident replay, the fleet summary, its health, the article's
checklist, and the HTML report. Each question has one definition, used by the command line,
the HTML report and the compliance notebook alike.

Each report is a function returning a DataFrame (or a model for a single answer). It reads an
open ``Ledger``, a store URL, or by default ``$CUSTODY_STORE`` (else ``./custody.db``), and
brings the read model it reads up to date first.
"""

from ledger.rules import ENDED_UNKNOWN
from reports._checklist import Check, Checklist, checklist
from reports._fleet import Fleet, ReviewTimes, Stuck, fleet
from reports._frames import moment, spoken
from reports._health import Health, health
from reports._page import Page, report_html
from reports._replay import Replay, replay
from reports._reviews import ReviewWait, review_waits
from reports._timeline import timeline
from reports._usage import ended_unknown, usage

__all__ = [
    "ENDED_UNKNOWN",
    "Check",
    "Checklist",
    "Fleet",
    "Health",
    "Page",
    "Replay",
    "ReviewTimes",
    "ReviewWait",
    "Stuck",
    "checklist",
    "ended_unknown",
    "fleet",
    "health",
    "moment",
    "replay",
    "report_html",
    "review_waits",
    "spoken",
    "timeline",
    "usage",
]
