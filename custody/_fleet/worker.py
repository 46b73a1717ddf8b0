"""One worker process of the fleet demo: runs its tasks through the worker SDK and says what
happens, one JSON object a line on stdout.

    python -m custody.fleet.worker SPEC_JSON

Without a site the worker drives no browser: it reports the pages it would visit
(``lease.visited``); with one, it launches the leased profile in Chromium and visits the
site's pages. A ``crash`` task kills its own process with SIGKILL after the mutating step.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext
from typing import Any

from pydantic import BaseModel, ConfigDict

from custody._fleet.plan import FOREIGN_PROXY, Task, WorkerPlan
from workers import (
    DIRECT,
    BrowserSettings,
    LeaseLost,
    NoProfileAvailable,
    ProfileLeases,
    WorkerLease,
)

SIMULATED_SITE = "https://shop.example"  # never fetched: a worker without a browser only says it
WAIT_FOR_PROFILE = 20.0  # how long a task waits while every fitting profile is leased


class WorkerSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    store: str
    plan: WorkerPlan
    ttl_seconds: int
    proxies: list[str]
    evidence_dir: str
    site: str | None = None  # a local site: drive Chromium against it
    executable_path: str = "/usr/bin/chromium"
    pause: float = 0.2  # seconds between a task's steps


def say(**fields: Any) -> None:
    print(json.dumps({"at": time.time(), **fields}), flush=True)


Go = Callable[[str], None]


def run_task(lease: WorkerLease, task: Task, go: Go) -> None:
    """The shop task: log in, load the dashboard, submit an order, confirm it; with the fault
    the plan gave it."""
    for path, step in (("/login", "logged_in"), ("/dashboard", "dashboard_loaded")):
        go(path)
        lease.step(step, safe=True)
        say(event="step", run=task.run_id, step=step)
    if task.fault == "prompt":
        go("/verify/challenge")
        lease.step("verification_prompt")
        say(event="step", run=task.run_id, step="verification_prompt")
        return
    if task.fault == "expected_failure":
        lease.expected_failure("out of stock")
        return
    go("/order")
    lease.step("submit_order", mutating=True)
    say(event="step", run=task.run_id, step="submit_order", mutating=True)
    if task.fault == "crash":
        say(event="crashing", run=task.run_id, profile=lease.lease.profile_id)
        os.kill(os.getpid(), signal.SIGKILL)
    if task.fault == "error":
        raise RuntimeError("the confirmation page never loaded")
    go("/order/done")
    lease.step("order_confirmed", safe=True)
    say(event="step", run=task.run_id, step="order_confirmed")


class Worker:
    def __init__(self, spec: WorkerSpec, pw: Any = None) -> None:
        self.spec = spec
        self.pw = pw
        settings = BrowserSettings(
            executable_path=spec.executable_path,
            proxies=dict.fromkeys(spec.proxies, DIRECT),  # the demo's site is on 127.0.0.1
            evidence_dir=spec.evidence_dir,
        )
        self.leases = ProfileLeases.open(
            spec.store, worker_id=spec.plan.worker_id, settings=settings
        )

    def run(self) -> None:
        for task in self.spec.plan.tasks:
            try:
                self.one(task)
            except NoProfileAvailable as denied:
                say(event="denied", run=task.run_id, reason=denied.denial.message)
            except LeaseLost as lost:
                say(event="lost", run=task.run_id, why=str(lost))
            except Exception as error:  # reported; the worker goes on with its next task
                say(event="failed", run=task.run_id, error=f"{type(error).__name__}: {error}")
        say(event="done")

    def one(self, task: Task) -> None:
        """Lease a profile of the task's account (waiting while every fitting one is leased),
        run the task, and say how the release went."""
        failure = None
        try:
            with ExitStack() as stack:
                lease = self._lease(stack, task)
                self._drive(lease, task)
        except RuntimeError as error:  # the SDK released the lease as a failure naming it
            failure = f"{type(error).__name__}: {error}"
        result = lease.result
        say(
            event="released",
            run=task.run_id,
            profile=lease.lease.profile_id,
            outcome=lease.evidence.outcome if lease.evidence else None,
            state=result.profile_state.value if result else None,
            cause=result.cause.value if result and result.cause else None,
            error=failure,
        )

    def _lease(self, stack: ExitStack, task: Task) -> WorkerLease:
        started = time.monotonic()
        while True:
            try:
                return stack.enter_context(self._checkout(task))
            except NoProfileAvailable as denied:
                busy = "leased" in denied.counts
                if not busy or time.monotonic() - started > WAIT_FOR_PROFILE:
                    raise
                time.sleep(0.25)  # every fitting profile is in use: wait for one

    def _checkout(self, task: Task) -> AbstractContextManager[WorkerLease]:
        return self.leases.checkout_for(
            account_id=task.account_id,
            run_id=task.run_id,
            task_type=task.task_type,
            ttl_seconds=self.spec.ttl_seconds,
            proxy_id=FOREIGN_PROXY if task.fault == "proxy_mismatch" else None,
        )

    def _drive(self, lease: WorkerLease, task: Task) -> None:
        say(
            event="granted",
            run=task.run_id,
            profile=lease.lease.profile_id,
            token=lease.fencing_token,
        )
        with self._pages(lease) as go:
            run_task(lease, task, go)

    @contextmanager
    def _pages(self, lease: WorkerLease) -> Iterator[Go]:
        pause = self.spec.pause
        if self.spec.site is None:

            def visit(path: str) -> None:
                lease.visited(SIMULATED_SITE + path)
                time.sleep(pause)

            yield visit
            return
        with lease.browser(self.pw) as context:
            page = context.new_page()

            def goto(path: str) -> None:
                page.goto(f"{self.spec.site}{path}")
                page.wait_for_timeout(pause * 1000)

            yield goto


def main(argv: list[str]) -> int:
    spec = WorkerSpec.model_validate_json(argv[1])
    if spec.site is None:
        browsers: AbstractContextManager[Any] = nullcontext()
    else:
        from playwright.sync_api import sync_playwright

        browsers = sync_playwright()
    with browsers as pw:
        Worker(spec, pw).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
