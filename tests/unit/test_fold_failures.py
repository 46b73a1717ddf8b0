"""How a read model's fold failure is told: an event no read can decode is named in one line
(``UnreadableEvent``); any other failure is raised as it was, even beside such an event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from ledger import StoreUnavailable, UnreadableEvent
from ledger._domain.model import stream_id
from ledger._stores.views import StoredNotification
from ledger.feed import LoggedEvent
from projections._base import ReadModel
from projections._runner import _fold

STREAM = stream_id("p1").hex  # its profile's own stream: the folds pass over any other
UNREADABLE = LoggedEvent(
    StoredNotification(7, STREAM, 3, "lease_heartbeat", b'{"profile_id":"p1","envelope":{}}')
)


class Failing(ReadModel):
    name = "failing"

    def __init__(self, error: Exception) -> None:
        self.error = error

    def fold(self, tx: Any, table: str, batch: Sequence[LoggedEvent]) -> None:
        raise self.error


def test_a_fold_failing_on_an_unreadable_event_names_it() -> None:
    with pytest.raises(UnreadableEvent) as caught:
        _fold(Failing(KeyError("at")), None, "t", [UNREADABLE])  # type: ignore[arg-type]
    assert "the event at position 7 ('lease_heartbeat')" in str(caught.value)
    assert "custody verify names it" in str(caught.value)


@pytest.mark.parametrize("error", [StoreUnavailable("store x unavailable"), OSError("gone")])
def test_a_store_failure_beside_an_unreadable_event_is_itself(error: Exception) -> None:
    with pytest.raises(type(error)) as caught:
        _fold(Failing(error), None, "t", [UNREADABLE])  # type: ignore[arg-type]
    assert caught.value is error
