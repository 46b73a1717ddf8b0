"""pandas answers from the read models: timelines, compliance usage and the runs that ended
unknown, review waits, incident replay, the fleet summary, its health, the article's
checklist, and the HTML report. Each question has one definition, used by the command line,
the HTML report and the compliance notebook alike.

Each report is a function returning a DataFrame (or a model for a single answer). It reads an
open ``Ledger``, a store URL, or by default ``$CUSTODY_STORE`` (else ``./custody.db``), and
brings the read model it reads up to date first.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ledger.rules import ENDED_UNKNOWN, OVERDUE

if TYPE_CHECKING:
    from reports._checklist import Check as Check, Checklist as Checklist, checklist as checklist
    from reports._fleet import (
        Fleet as Fleet,
        ReviewTimes as ReviewTimes,
        Stuck as Stuck,
        fleet as fleet,
    )
    from reports._frames import moment as moment, spoken as spoken
    from reports._health import (
        FAILING_AT as FAILING_AT,
        LEASES_JUDGED as LEASES_JUDGED,
        Health as Health,
        health as health,
        reachable as reachable,
    )
    from reports._page import Page as Page, report_html as report_html
    from reports._replay import Replay as Replay, replay as replay
    from reports._reviews import ReviewWait as ReviewWait, review_waits as review_waits
    from reports._timeline import timeline as timeline, timeline_pages as timeline_pages
    from reports._usage import ended_unknown as ended_unknown, usage as usage

# Where each public name lives. A name is imported when first asked for, so a command that
# prints a timeline or a table of leases does not pay for matplotlib (the HTML report's chart),
# and one that only parses a time does not pay for pandas.
_HOMES = {
    **dict.fromkeys(("Check", "Checklist", "checklist"), "reports._checklist"),
    **dict.fromkeys(("Fleet", "ReviewTimes", "Stuck", "fleet"), "reports._fleet"),
    **dict.fromkeys(("moment", "spoken"), "reports._frames"),
    **dict.fromkeys(
        ("FAILING_AT", "LEASES_JUDGED", "Health", "health", "reachable"), "reports._health"
    ),
    **dict.fromkeys(("Page", "report_html"), "reports._page"),
    **dict.fromkeys(("Replay", "replay"), "reports._replay"),
    **dict.fromkeys(("ReviewWait", "review_waits"), "reports._reviews"),
    **dict.fromkeys(("timeline", "timeline_pages"), "reports._timeline"),
    **dict.fromkeys(("ended_unknown", "usage"), "reports._usage"),
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'reports' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


__all__ = [
    "ENDED_UNKNOWN",
    "FAILING_AT",
    "LEASES_JUDGED",
    "OVERDUE",
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
    "reachable",
    "replay",
    "report_html",
    "review_waits",
    "spoken",
    "timeline",
    "timeline_pages",
    "usage",
]
