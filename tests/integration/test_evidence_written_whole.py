"""``evidence.json`` is written whole or not at all (``workers._evidence.write_whole``): a full
evidence disk left a 0-byte ``evidence.json`` beside a release that said it could not be kept
(rev44), and a record rewritten after a release the ledger took in part was truncated before
the new one failed to fit. A child process whose writes past a size are refused (EFBIG, as a
full disk's ENOSPC) writes a record that does not fit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

CHILD = textwrap.dedent(
    """
    import resource, signal, sys
    from dataclasses import replace
    from pathlib import Path
    from workers._evidence import Evidence, rewrite

    directory = Path(sys.argv[1])
    fields = dict.fromkeys(Evidence.__dataclass_fields__)
    first = Evidence(**{**fields, "lease_id": "lease-1@p1", "outcome": "success"}).kept(directory)
    assert first.evidence_problem is None
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    size = (directory / "evidence.json").stat().st_size + 100
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
    rewrite(replace(first, reason="x" * 2000), directory)  # logged: it does not fit
    print(Evidence(**{**fields, "reason": "y" * 2000}).kept(directory / "b").evidence_problem)
    """
)


def test_a_record_the_disk_cuts_short_leaves_the_one_before_and_no_part(tmp_path: Path) -> None:
    said = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path)], capture_output=True, text=True, check=False
    )
    assert said.returncode == 0, said.stderr
    assert said.stdout.startswith("evidence.json could not be written: OSError"), said.stdout
    assert "evidence.json could not be rewritten" in said.stderr
    kept = (tmp_path / "evidence.json").read_text()
    assert '"lease_id": "lease-1@p1"' in kept  # the first record, whole
    assert '"reason": null' in kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b", "evidence.json"]
    assert list((tmp_path / "b").iterdir()) == []
