"""One process of a resend race: at each item's instant, send its command (the same id and
arguments as every other process), then print a JSON list of the answers, one per item:
``["ok", answer]`` or ``[error class, message]``.

Run as a separate process by test_concurrent_resends.py; items are JSON objects with ``kind``
(checkout, release, force_release), ``profile_id``, ``command_id`` and, for a release,
``lease_id``. The process has not loaded the profiles: each copy looks its id up, loads and
decides, the window in which another copy's write lands.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from ledger import Checkout, ForceRelease, Ledger, LedgerError, Release


def _send(ledger: Ledger, item: dict[str, str]) -> Any:
    kind, profile_id, command_id = item["kind"], item["profile_id"], item["command_id"]
    if kind == "checkout":
        lease = ledger.handle(
            Checkout(
                profile_id=profile_id,
                worker_id="w",
                run_id="r",
                task_type="t",
                command_id=command_id,
            )
        )
        return [lease.lease_id, lease.fencing_token]
    if kind == "release":
        released = Release(
            lease_id=item["lease_id"],
            fencing_token=1,
            outcome="failure",
            reason="boom",
            command_id=command_id,
        )
        return str(ledger.handle(released).profile_state)
    forced = ForceRelease(profile_id=profile_id, actor="op", reason="stuck", command_id=command_id)
    return str(ledger.handle(forced).profile_state)


def main(store_url: str, start_at: float, interval: float, items: list[dict[str, str]]) -> None:
    answers = []
    with Ledger.open(store_url) as ledger:
        ledger.now()  # connected before the first instant
        for n, item in enumerate(items):
            time.sleep(max(0.0, start_at + n * interval - time.time()))
            try:
                answers.append(["ok", _send(ledger, item)])
            except LedgerError as e:
                answers.append([type(e).__name__, str(e)])
    print(json.dumps(answers))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), json.loads(sys.argv[4]))
