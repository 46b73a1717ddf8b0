"""The compliance notebook runs, in a kernel of this venv, and gives the answers a known
history calls for, and on a store written by concurrent worker processes the same answers
as the report functions and the events themselves, so it cannot rot or drift
(reports/notebooks/compliance.ipynb)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import nbformat
import pytest
from audit_answers import Window, from_events, from_reports
from audit_process import write_concurrently
from compliance_story import AS_OF, EXPECTED, SHOP, write_story
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode

from ledger import Ledger

NOTEBOOK = Path(__file__).resolve().parents[2] / "reports" / "notebooks" / "compliance.ipynb"
CHARTS = ("image/png", "image/svg+xml")


@pytest.fixture(scope="session")
def kernels() -> KernelSpecManager:
    """Kernel specs from this venv only, with ``python3`` there (ipykernel's wheel ships it;
    installed with ``--sys-prefix`` if missing), so a python3 kernel a user installed for
    another Python can never be the one that runs the notebook."""
    where = Path(sys.prefix) / "share" / "jupyter" / "kernels"
    if not (where / "python3" / "kernel.json").exists():
        install = [
            sys.executable,
            "-m",
            "ipykernel",
            "install",
            "--sys-prefix",
            "--name",
            "python3",
        ]
        subprocess.run(install, check=True, capture_output=True)
    return KernelSpecManager(kernel_dirs=[str(where)])


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite ledger holding the compliance story (read only by the tests)."""
    store = f"sqlite:///{tmp_path_factory.mktemp('story') / 'custody.db'}"
    write_story(store)
    return store


def execute(nb: NotebookNode, kernels: KernelSpecManager, cwd: Path, **env: str) -> NotebookNode:
    """Run every cell in a fresh kernel started in ``cwd`` with only the ``CUSTODY_*``
    variables given; ``CellExecutionError`` when a cell raises."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CUSTODY_")} | env
    km = KernelManager(kernel_name="python3", kernel_spec_manager=kernels)
    client = NotebookClient(nb, km=km, timeout=120, resources={"metadata": {"path": str(cwd)}})
    # The client does not own a manager it was given: cleanup_kc makes it stop the kernel and
    # close its channels all the same, whether a cell raised or not.
    client.execute(env=environ, cleanup_kc=True)
    return nb


def on_story(nb: NotebookNode, kernels: KernelSpecManager, story: str, cwd: Path) -> NotebookNode:
    return execute(nb, kernels, cwd, CUSTODY_STORE=story, CUSTODY_ACCOUNT=SHOP, CUSTODY_AS_OF=AS_OF)


def outputs(nb: NotebookNode) -> list[Any]:
    return [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]


def answers(nb: NotebookNode) -> dict[str, Any]:
    """The JSON the notebook's last cell prints."""
    (last,) = nb.cells[-1].outputs
    assert last.output_type == "stream"
    return dict(json.loads(last.text))


def edited(old: str, new: str) -> NotebookNode:
    """The committed notebook with ``old`` replaced by ``new`` in the one cell holding it."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    (cell,) = [c for c in nb.cells if old in c.source]
    cell.source = cell.source.replace(old, new)
    return nb


def test_committed_notebook_is_valid_and_has_no_outputs() -> None:
    """The committed notebook validates and carries no outputs or execution counts, so its
    diffs show only what someone changed."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code
    assert all(c.outputs == [] and c.execution_count is None for c in code)


def test_notebook_answers_the_compliance_questions(
    kernels: KernelSpecManager, story: str, tmp_path: Path
) -> None:
    """On the story: who used acct_shop in October (w_4's lease across the month's end
    included, September's and November's not), the stale, forced and revoked runs of every
    account, each wait open in October for a reviewer, in review or in quarantine (an open one
    counted up to AS_OF); and a chart."""
    nb = on_story(nbformat.read(NOTEBOOK, as_version=4), kernels, story, tmp_path)
    assert answers(nb) == EXPECTED
    assert not [o for o in outputs(nb) if o.output_type == "error"]
    charts = [
        o for o in outputs(nb) if o.output_type == "display_data" and set(CHARTS) & set(o.data)
    ]
    assert len(charts) == 1


def test_a_notebook_defining_its_own_answer_is_refused(
    kernels: KernelSpecManager, story: str, tmp_path: Path
) -> None:
    """A notebook that filters the report's answer by a rule of its own (leaving revoked
    runs out of those that ended unknown, as it once did) still runs, and its answers differ
    from the story's exactly there: the comparison above would fail."""
    own_rule = 'unknown = unknown[unknown["ending"] != "revoked"]\nunknown['
    nb = on_story(edited("\nunknown[", f"\n{own_rule}"), kernels, story, tmp_path)
    got = answers(nb)
    assert got != EXPECTED
    assert got["unknown_endings"] == EXPECTED["unknown_endings"][:2]


def test_a_cell_that_raises_fails_the_run(
    kernels: KernelSpecManager, story: str, tmp_path: Path
) -> None:
    """A cell that raises stops the run with CellExecutionError naming the error, so a broken
    notebook cannot pass."""
    nb = edited("waits = ", "raise RuntimeError('review waits broke')\nwaits = ")
    with pytest.raises(CellExecutionError, match="review waits broke"):
        on_story(nb, kernels, story, tmp_path)


@pytest.mark.parametrize("name", ["CUSTODY_STORE", "CUSTODY_SINCE"])
def test_a_setting_set_but_empty_is_refused_naming_it(
    kernels: KernelSpecManager, story: str, tmp_path: Path, name: str
) -> None:
    """rev45: set but empty, ``$CUSTODY_STORE`` meant ./custody.db and ``$CUSTODY_SINCE``
    last month, as though unset: the notebook stops at its first cell naming the variable, and
    makes no store."""
    env = {"CUSTODY_STORE": story, "CUSTODY_ACCOUNT": SHOP, "CUSTODY_AS_OF": AS_OF, name: ""}
    with pytest.raises(CellExecutionError, match=f"invalid {name}: is set but empty"):
        execute(nbformat.read(NOTEBOOK, as_version=4), kernels, tmp_path, **env)
    assert not (tmp_path / "custody.db").exists()


def test_a_since_alone_runs_to_as_of(
    kernels: KernelSpecManager, story: str, tmp_path: Path
) -> None:
    """CUSTODY_SINCE alone, as docs/how-to/compliance-exports.md runs the notebook: the window
    runs to AS_OF (it ended at the end of last month, each end defaulting on its own: this
    month's leases were left out, and a since in this month was refused as a window holding no
    time). November on the story: w_4's lease across the month's end and w_5's."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    env = {"CUSTODY_STORE": story, "CUSTODY_ACCOUNT": SHOP, "CUSTODY_AS_OF": AS_OF}
    got = answers(execute(nb, kernels, tmp_path, **env, CUSTODY_SINCE="2026-11-01"))
    assert got["window"] == ["2026-11-01T00:00:00+00:00", AS_OF]
    assert got["workers"] == {"w_4": 1, "w_5": 1}


def test_every_answer_is_as_the_events_stood_at_as_of(
    kernels: KernelSpecManager, story: str, tmp_path: Path
) -> None:
    """rev30: AS_OF bounded the waits only, so a run live at AS_OF was listed as "ended
    stale" by the sweep that settled it later. As of 10:07 on 4 October, w_2's lease (past
    its 10:05 deadline, settled at 10:10) was used and not ended, no wait yet; and overdue,
    so its run's ending was unknown already, with no ending yet (rev42: it read as live,
    and no run had ended unknown)."""
    nb = nbformat.read(NOTEBOOK, as_version=4)
    as_of = "2026-10-04T10:07:00+00:00"
    env = {"CUSTODY_STORE": story, "CUSTODY_ACCOUNT": SHOP, "CUSTODY_AS_OF": as_of}
    got = answers(execute(nb, kernels, tmp_path, **env, CUSTODY_SINCE="2026-10-04"))
    assert got["window"] == ["2026-10-04T00:00:00+00:00", as_of]
    assert (got["workers"], got["profiles"]) == ({"w_2": 1}, ["shop_2"])
    assert got["unknown_endings"] == [
        {"run_id": "r_2", "worker_id": "w_2", "profile_id": "shop_2", "ending": None,
         "cause": None}
    ]  # fmt: skip
    assert got["review_waits"] == []


def test_notebook_runs_with_its_defaults_on_the_demo_ledger(
    kernels: KernelSpecManager, tmp_path: Path
) -> None:
    """With no CUSTODY_* variables it reads ./custody.db for the demo's account, judging last
    month as of now: the demo happened this month, so every answer is empty, and still drawn."""
    demo = [sys.executable, "-m", "custody", "demo", "--db", str(tmp_path / "custody.db")]
    subprocess.run(demo, check=True, capture_output=True, cwd=tmp_path)
    nb = execute(nbformat.read(NOTEBOOK, as_version=4), kernels, tmp_path)
    got = answers(nb)
    assert (got["account"], got["workers"], got["unknown_endings"]) == ("account_shop_17", {}, [])
    assert got["review_waits"] == []
    assert "in ./custody.db, last month" in nb.cells[1].outputs[0].text
    assert any(set(CHARTS) & set(o.get("data", {})) for o in outputs(nb))


@pytest.mark.slow
def test_on_a_store_written_by_concurrent_workers_the_answers_agree(
    kernels: KernelSpecManager, tmp_path: Path
) -> None:
    """Six workers, two operators and a sweeper write one SQLite store at once, so the log's
    order is not the order of the events' times across profiles (which made the notebook's
    merge_asof fail with "right keys must be sorted"). The notebook runs, and its answers
    are exactly the report functions' and those worked out from each profile's own events;
    they include every way a run ends unknown and both kinds of wait, open and finished."""
    store = f"sqlite:///{tmp_path / 'custody.db'}"
    # 12 s, not 8: the fresh-clone CI at e6cf8c0, under load, had no lease left to go stale
    # in the window on acct_shop, and the set of unknown endings below missed "stale".
    summaries = write_concurrently(store, seconds=12.0)
    assert [s["unexpected"] for s in summaries] == [[]] * len(summaries)
    log = _whole_log(store)
    times = [e.envelope.at for e in log]
    assert any(later < earlier for earlier, later in itertools.pairwise(times))
    start, end = min(times), max(times)
    since, until = start + (end - start) / 8, end - (end - start) / 8
    # Judged as the events stood when a profile had just been blocked: a wait is open then.
    blocked = [e.envelope.at for e in log if e.event_type in ("review_requested",
                                                              "profile_quarantined")]  # fmt: skip
    window = Window(since, until, as_of=max(t for t in blocked if t <= until))
    nb = execute(
        nbformat.read(NOTEBOOK, as_version=4),
        kernels,
        tmp_path,
        CUSTODY_STORE=store,
        CUSTODY_ACCOUNT="acct_shop",
        CUSTODY_SINCE=window.since.isoformat(),
        CUSTODY_UNTIL=window.until.isoformat(),
        CUSTODY_AS_OF=window.as_of.isoformat(),
    )
    got = answers(nb)
    assert got == from_reports(store, "acct_shop", window)
    assert got == from_events(store, "acct_shop", window)
    # Leases overdue then, not swept yet, are among them too, with no ending (rev42).
    endings = {u["ending"] for u in got["unknown_endings"]}
    assert endings - {None} == {"stale", "forced", "revoked"}
    waits = got["review_waits"]
    assert {w["state"] for w in waits} == {"review_required", "quarantined"}
    assert any(w["ended_at"] is None for w in waits)
    assert any(w["ended_at"] is not None for w in waits)
    assert len(got["workers"]) > 1


def _whole_log(store: str) -> list[Any]:
    """Every event of the store in log order (the notification log's)."""
    found: list[Any] = []
    with Ledger.open(store, create=False) as ledger:
        while batch := ledger.feed.read(found[-1].position if found else 0, 1000):
            found += batch
    return [n.event for n in found]
