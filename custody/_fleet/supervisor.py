"""Running the fleet: a fresh SQLite ledger with the plan's pool, one process per worker, a
sweeper thread beside them, and at the end the fleet's status with an explanation of every
blocked profile."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any, TextIO
from urllib.parse import quote

from custody import _render as render
from custody._fleet.display import Display, Progress
from custody._fleet.plan import FleetPlan
from custody._fleet.site import Shop
from custody._fleet.worker import WorkerSpec
from custody._whole import removed_if_failed
from ledger import Ledger, ProfileState, RegisterProfile, SweepReport
from projections import Explanation, StatusRow, explain, status
from workers import inspect_here, watch

SWEEP_INTERVAL = 0.5
Message = tuple[str, str, dict[str, Any]]  # (source, worker or "sweeper", what it said)


@dataclass(frozen=True)
class FleetResult:
    store: str
    workdir: Path
    status: list[StatusRow]
    blocked: list[Explanation]
    tally: dict[str, int]
    exits: dict[str, int]


def run_fleet(
    plan: FleetPlan, *, db: str | None, browser: bool, out: TextIO, executable: str
) -> FleetResult:
    """Run ``plan`` on a new SQLite file (``db``, else one in a new temporary directory) and
    narrate it to ``out``. ``InvalidInput`` if ``db`` exists (a symbolic link too) or cannot
    be made: the demo never writes into someone's ledger (``removed_if_failed``). The work
    directory (the workers' stderr, evidence, profiles) is made once the store is, and goes
    with it when the fleet is cut short (``_work_directory``)."""
    if db:
        path = Path(db).absolute()
        with removed_if_failed(path), _work_directory() as workdir:
            return _run(plan, path, workdir, browser, out, executable)
    with _work_directory() as workdir:
        path = workdir / "custody.db"
        with removed_if_failed(path):  # a fleet cut short leaves no half of a store (rev39)
            return _run(plan, path, workdir, browser, out, executable)


@contextmanager
def _work_directory() -> Iterator[Path]:
    """A new temporary directory for the block, removed whole if the block fails (an error,
    Ctrl-C, SIGTERM), as ``removed_if_failed`` removes the store; kept when the reader of the
    output is gone, as the store is (rev39: a refused ``--db`` left an empty one each time, an
    interrupted fleet one with the stderr and evidence of a store no longer there)."""
    workdir = Path(tempfile.mkdtemp(prefix="custody-fleet-"))
    try:
        yield workdir
    except BrokenPipeError:
        raise
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _run(
    plan: FleetPlan, path: Path, workdir: Path, browser: bool, out: TextIO, executable: str
) -> FleetResult:
    # The file's bytes, percent-encoded: a name past ASCII under LC_ALL=C (or not UTF-8) holds
    # surrogates, which the workers' JSON spec could not carry (rev40: an internal error).
    store = f"sqlite:///{quote(os.fsencode(path))}"
    _register(store, plan, workdir)
    progress = Progress()
    messages: queue.Queue[Message] = queue.Queue()
    with ExitStack() as stack:
        shop = stack.enter_context(Shop() if browser else nullcontext())
        display = stack.enter_context(Display(out, progress))
        display.log(f"{len(plan.workers)} workers on {len(plan.profiles)} profiles in {path}")
        display.log(f"faults planned: {_faults(plan)}; lease TTL {plan.ttl_seconds} s")
        stack.enter_context(_sweeper(store, messages))
        specs = [
            WorkerSpec(
                store=store,
                plan=worker,
                ttl_seconds=plan.ttl_seconds,
                proxies=[p.proxy_id for p in plan.profiles],
                evidence_dir=str(workdir / "evidence"),
                site=shop.url if shop else None,
                executable_path=executable,
            )
            for worker in plan.workers
        ]
        exits = _run_workers(specs, workdir, messages, display)
        _until_settled(store, plan.ttl_seconds, messages, display)
        tally = dict(progress.tally)
    rows, blocked = _final(store)
    return FleetResult(store, workdir, rows, blocked, tally, exits)


def _register(store: str, plan: FleetPlan, workdir: Path) -> None:
    with Ledger.init(store) as ledger:
        for p in plan.profiles:
            ledger.handle(
                RegisterProfile(
                    profile_id=p.profile_id,
                    account_id=p.account_id,
                    proxy_id=p.proxy_id,
                    region="us-east",
                    user_data_dir=str(workdir / "profiles" / p.profile_id),
                )
            )


def _faults(plan: FleetPlan) -> str:
    found = plan.faults()
    return ", ".join(f"{n} {f.replace('_', ' ')}" for f, n in sorted(found.items()) if f != "none")


@contextmanager
def _sweeper(store: str, messages: queue.Queue[Message]) -> Iterator[None]:
    """``custody sweep --watch`` on a thread of its own, with a ledger of its own."""
    stop = threading.Event()

    def report(at: datetime, result: SweepReport) -> None:
        for settled in result.settled:
            messages.put(("sweeper", "sweeper", {"line": render.settled_line(settled)}))

    def trouble(at: datetime, error: Exception) -> None:
        messages.put(("sweeper", "sweeper", {"line": f"store unavailable: {error}"}))

    def sweep() -> None:
        with Ledger.open(store, create=False) as ledger:
            watch(
                ledger, interval=SWEEP_INTERVAL, stop=stop, report=report, trouble=trouble,
                reopened=lambda line: messages.put(("sweeper", "sweeper", {"line": line})),
            )  # fmt: skip

    thread = threading.Thread(target=sweep, name="sweeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=30)


def _run_workers(
    specs: list[WorkerSpec], workdir: Path, messages: queue.Queue[Message], display: Display
) -> dict[str, int]:
    """Start one process per worker, show what they say until every one has exited; return
    each worker's exit code (-9: killed, as a crash task does to itself)."""
    procs: dict[str, subprocess.Popen[str]] = {}
    readers = []
    for spec in specs:
        worker_id = spec.plan.worker_id
        errors = (workdir / f"{worker_id}.stderr").open("w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "custody._fleet.worker", spec.model_dump_json()],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        procs[worker_id] = proc
        assert proc.stdout is not None
        reader = threading.Thread(target=_read, args=(worker_id, proc.stdout, messages))
        reader.start()
        readers.append(reader)
    try:
        while any(r.is_alive() for r in readers) or not messages.empty():
            _show(messages, display, timeout=0.1)
    except BaseException:
        # Cut short (Ctrl-C, SIGTERM, the reader of the display gone): no worker writes on,
        # into a store removed under it or kept as the demo left it.
        for proc in procs.values():
            proc.kill()
        for proc in procs.values():
            proc.wait()
        raise
    return {worker_id: proc.wait() for worker_id, proc in procs.items()}


def _read(worker_id: str, stdout: IO[str], messages: queue.Queue[Message]) -> None:
    for line in stdout:
        try:
            messages.put(("worker", worker_id, json.loads(line)))
        except json.JSONDecodeError:
            messages.put(("worker", worker_id, {"event": "failed", "error": line.strip()}))


def _show(messages: queue.Queue[Message], display: Display, *, timeout: float) -> None:
    try:
        source, who, said = messages.get(timeout=timeout)
    except queue.Empty:
        return
    if source == "sweeper":
        display.log(display.progress.swept(said["line"]))
    else:
        display.log(display.progress.worker(who, said))


def _until_settled(store: str, ttl: int, messages: queue.Queue[Message], display: Display) -> None:
    """Wait (up to a few TTLs) until no profile is leased: the crashed workers' leases pass
    their deadline and the sweeper settles them."""
    deadline = time.monotonic() + 3 * ttl + 5
    with Ledger.open(store, create=False) as ledger:
        while time.monotonic() < deadline:
            held = [r for r in ledger.availability() if r.state is ProfileState.LEASED]
            if not held:
                break
            _show(messages, display, timeout=SWEEP_INTERVAL)
    while not messages.empty():
        _show(messages, display, timeout=0)


def _final(store: str) -> tuple[list[StatusRow], list[Explanation]]:
    with Ledger.open(store, create=False) as ledger:
        rows = status(ledger)
        blocked = [
            explain(ledger, r.profile_id, browser=inspect_here(_directory(ledger, r.profile_id)))
            for r in rows
            if r.state is not ProfileState.AVAILABLE
        ]
    return rows, blocked


def _directory(ledger: Ledger, profile_id: str) -> str | None:
    return ledger.view(profile_id).record.user_data_dir
