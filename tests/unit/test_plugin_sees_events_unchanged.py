"""A pydantic plugin installed beside custody is handed every event a command makes, when it
is made, and may keep it: the event it holds must stay as it was handed, though a command's
event is otherwise linked in place (``ProfileEvent.link_after``; found by a review of it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

PLUGIN = """
KEPT = []  # what each validation handed over, with its link then

class _Handler:
    def on_success(self, result):
        KEPT.append((result, getattr(result, "chain", None)))

class _Plugin:
    def new_schema_validator(self, schema, schema_type, path, kind, config, settings):
        return _Handler(), None, None

plugin = _Plugin()
"""

RUN = """
import sys, tempfile
import keeper
from ledger import Checkout, Heartbeat, Ledger, RegisterProfile
from ledger._domain.events import ProfileEvent
with Ledger.open(f"sqlite:///{tempfile.mkdtemp()}/s.db") as ledger:
    ledger.handle(RegisterProfile(profile_id="p1", account_id="a", proxy_id="x"))
    lease = ledger.handle(
        Checkout(profile_id="p1", worker_id="w1", run_id="r1", task_type="t", ttl_seconds=600)
    )
    ledger.handle(Heartbeat(lease_id=lease.lease_id, fencing_token=1, step="s1"))
    saved = ledger.history("p1")
handed = [(e, chain) for e, chain in keeper.KEPT if isinstance(e, ProfileEvent)]
print(len(handed), sum(e.chain is not chain for e, chain in handed), len(saved))
assert all(e.chain is not None for e in saved)
"""


def test_an_event_a_plugin_was_handed_keeps_the_link_it_had(tmp_path: Path) -> None:
    dist = tmp_path / "keeper-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: keeper\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[pydantic]\nkeeper = keeper:plugin\n")
    (tmp_path / "keeper.py").write_text(PLUGIN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    env.pop("PYDANTIC_DISABLE_PLUGINS", None)
    done = subprocess.run(
        [sys.executable, "-c", RUN], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    handed, changed, saved = map(int, done.stdout.split())
    assert saved == 3  # registered, acquired, a heartbeat
    assert handed >= saved
    assert changed == 0
