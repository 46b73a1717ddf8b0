"""The mutation script's own checks: its mutants fit the code, and the state machine alone
kills the three guards issue 5 found it blind to (fencing token, deadline, account/proxy)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from run import MUTANTS, REQUIRED, ROOT, MutationNotApplied, mutated

SCRIPT = Path(__file__).with_name("run.py")


def test_every_mutant_finds_its_guard_exactly_once() -> None:
    """A refactor that moves a guard fails here at once, naming the mutant to update."""
    for mutant in MUTANTS:
        assert mutated(mutant, ROOT) != (ROOT / mutant.path).read_text(), mutant.name


def test_a_mutant_whose_text_is_gone_is_not_applied(tmp_path: Path) -> None:
    """The script stops on a guard it cannot find instead of reporting a mutant that never ran."""
    mutant = MUTANTS[0]
    (tmp_path / mutant.path).parent.mkdir(parents=True)
    (tmp_path / mutant.path).write_text("def live_lease(): ...\n")
    with pytest.raises(MutationNotApplied, match=mutant.name):
        mutated(mutant, tmp_path)


@pytest.mark.slow
def test_state_machine_alone_kills_the_required_mutants() -> None:
    """With the fencing-token check, the deadline check or the account/proxy check deleted (in
    a copy), the state machine fails; the unmutated copy passes it first."""
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--tests", "tests/unit/test_state_machine.py", *REQUIRED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"^baseline .* pass unmutated", run.stdout, re.MULTILINE), run.stdout
    for guard in REQUIRED:
        assert re.search(rf"^KILLED +{guard} ", run.stdout, re.MULTILINE), run.stdout
