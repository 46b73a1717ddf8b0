"""The read models fed from the notification log, by the name the command line uses."""

from __future__ import annotations

from projections._base import ReadModel
from projections._leases import LEASES_READ_MODEL
from projections._timeline import TIMELINE_READ_MODEL

READ_MODELS: dict[str, ReadModel] = {
    LEASES_READ_MODEL.name: LEASES_READ_MODEL,
    TIMELINE_READ_MODEL.name: TIMELINE_READ_MODEL,
}
