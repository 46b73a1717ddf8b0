"""A SQLite store this process may only read: a copy on read-only media, what an auditor gets.

Found by a review (review14): in a directory the process may not write, no command ran, not
even ``verify``, which writes nothing ("store ... unavailable: attempt to write a readonly
database", exit 6): the store was opened to be written, in WAL mode, which makes files beside
it. A read-only file in a writable directory was read, but left a read-only ``-wal`` and
``-shm`` behind.

Guarantee: reads run (verify, status, why, who, timeline), a command that would write is
refused at the door in one line (exit 7, naming the read-only store), a read model never
installed there is named in one line, and neither the file nor its directory changes.

As root the permission bits bind nobody, so the commands run without the capabilities that
override them (``setpriv``, util-linux), as any other user would.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cli_process import MODULE, custody, error_line, ok

FORBIDDEN = 7
_UNPRIVILEGED = (
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search,-fowner",
    "--inh-caps=-dac_override,-dac_read_search,-fowner",
)


def test_a_store_on_read_only_media_is_read_and_never_written(tmp_path: Path) -> None:
    made = tmp_path / "made"
    made.mkdir()
    store = f"sqlite:///{made / 'custody.db'}"
    ok(custody("register", "p1", "--account", "a1", "--proxy", "x1", cwd=made, store=store))
    args = ["checkout", "p1", "--worker", "w1", "--run", "r1", "--task", "t"]
    ok(custody(*args, cwd=made, store=store))
    ok(custody("timeline", "p1", cwd=made, store=store))  # installs the timeline read model
    media = tmp_path / "media"
    media.mkdir()
    copy = media / "evidence.db"
    copy.write_bytes((made / "custody.db").read_bytes())
    copy.chmod(0o444)
    media.chmod(0o555)
    program = (*_UNPRIVILEGED, *MODULE) if os.geteuid() == 0 else MODULE
    digest = hashlib.sha256(copy.read_bytes()).hexdigest()
    ro = f"sqlite:///{copy}"
    try:
        verified = ok(custody("verify", cwd=tmp_path, store=ro, program=program))
        assert "every chain holds" in verified.out
        assert "w1" in ok(custody("status", cwd=tmp_path, store=ro, program=program)).out
        assert "w1" in ok(custody("who", "p1", cwd=tmp_path, store=ro, program=program)).out
        ok(custody("why", "p1", cwd=tmp_path, store=ro, program=program))
        shown = ok(custody("timeline", "p1", cwd=tmp_path, store=ro, program=program)).out
        assert "lease_acquired" in shown
        for refused in (
            ["register", "p2", "--account", "a1", "--proxy", "x1"],
            ["heartbeat", "lease-1@p1", "--token", "1", "--step", "s"],
        ):
            run = custody(*refused, cwd=tmp_path, store=ro, program=program)
            assert run.code == FORBIDDEN, run.err
            assert "read-only here" in error_line(run)
        never = custody("usage", "--account", "a1", cwd=tmp_path, store=ro, program=program)
        assert never.code == FORBIDDEN, never.err
        assert "leases read model was never installed" in error_line(never)
        assert sorted(p.name for p in media.iterdir()) == ["evidence.db"]
        assert hashlib.sha256(copy.read_bytes()).hexdigest() == digest
    finally:
        media.chmod(0o755)
