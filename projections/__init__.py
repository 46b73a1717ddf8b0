"""custody's read side: availability, explanations and timelines rebuilt from the events."""

from projections.availability import StatusRow, status
from projections.explain import Explanation, Usage, explain, who
from projections.timeline import TimelineRow, timeline

__all__ = [
    "Explanation",
    "StatusRow",
    "TimelineRow",
    "Usage",
    "explain",
    "status",
    "timeline",
    "who",
]
