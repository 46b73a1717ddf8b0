"""``ProfileLeases.open`` of both worker SDKs checks its worker id as every checkout would,
when the door is opened (rev48: a worker id of 5, holding NUL, empty or 500 characters long
was taken, and ``InvalidInput`` came only at each checkout). Nothing is opened: no store."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import InvalidInput
from workers import ProfileLeases, aio


@pytest.mark.parametrize("flavour", [ProfileLeases, aio.ProfileLeases], ids=["sync", "aio"])
@pytest.mark.parametrize(
    ("worker_id", "said"),
    [
        (5, "Input should be a valid string"),
        ("w\x00", "must not contain control characters"),
        ("", "must not be empty"),
        (" w", "must not start or end with whitespace"),
        ("w" * 500, "String should have at most 200 characters"),
    ],
    ids=["number", "NUL", "empty", "space", "long"],
)
def test_open_refuses_a_worker_id_no_checkout_takes(
    flavour: type[ProfileLeases], worker_id: object, said: str, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    with pytest.raises(InvalidInput, match=f"^invalid worker_id: {said}"):
        flavour.open(url, worker_id=worker_id)  # type: ignore[arg-type]
    leases = flavour.open(url, worker_id="worker_03")  # the same, well given: opens nothing
    assert leases.worker_id == "worker_03"
    assert not (tmp_path / "never.db").exists()
