"""pandas answers from the read models: timelines, compliance usage, incident replay.

Each report is a function returning a DataFrame (or a model for a single answer). It reads an
open ``Ledger``, a store URL, or by default ``$CUSTODY_STORE`` (else ``./custody.db``), and
brings the read model it reads up to date first.
"""

from reports.replay import Replay, replay
from reports.timeline import timeline
from reports.usage import usage

__all__ = ["Replay", "replay", "timeline", "usage"]
