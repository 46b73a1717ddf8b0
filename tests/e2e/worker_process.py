"""A worker process for the crash and zombie tests, on the sync or the asyncio SDK.

    python worker_process.py STORE PROFILE RUN FLAVOUR SCENARIO SITE_URL TTL EVIDENCE_DIR

crash:  log in (a cookie with an expiry), a safe step, then a mutating step; print
        {"event": "mutating"} and wait to be killed.
zombie: open /poll (it fetches /tick every 100 ms), a safe step; print {"event": "ready"}, then
        step every 300 ms.
busy:   open /poll, a safe step; print {"event": "ready"}, then block in one page call (two
        minutes) without calling the SDK.
busy_mutating: the same, with a mutating step after the safe one.
redirects: open /form, a safe step, submit the form (a POST whose 303 starts a redirect chain
        of 20 hops, 0.5 s each) and print {"event": "submitted"}; then wait on the page,
        stepping no more (only the heartbeat thread writes).
Every renewal prints {"event": "deadline", "at": ...}: the lease's local deadline as wall
time. On losing the lease print {"event": "lost", "why": ..., "at": ...} and exit 4.
Each line on stdout is one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

from playwright.async_api import async_playwright
from playwright.sync_api import sync_playwright

from workers import DIRECT, BrowserSettings, LeaseLost, ProfileLeases, aio
from workers._held import HeldLease

LEASE_LOST_EXIT = 4


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def announce_deadlines(lease: HeldLease) -> None:
    """Print each renewal's local deadline (the watchdog's), as wall time, when it moves."""

    def moved(until: float) -> None:
        say(event="deadline", at=time.time() + until - time.monotonic())

    lease._guard.watch(moved, lambda why: None)


SUBMIT = "document.getElementById('f').submit()"


def run_sync(
    store: str,
    profile: str,
    run: str,
    scenario: str,
    site: str,
    ttl: int,
    settings: BrowserSettings,
) -> None:
    leases = ProfileLeases.open(store, worker_id=f"worker_{run}", settings=settings)
    with (
        sync_playwright() as pw,
        leases.checkout(profile, run_id=run, task_type=scenario, ttl_seconds=ttl) as lease,
        lease.browser(pw) as context,
    ):
        announce_deadlines(lease)
        page = context.new_page()
        if scenario.startswith("busy"):
            page.goto(f"{site}/poll")
            lease.step("polling", safe=True)
            if scenario == "busy_mutating":
                lease.step("submit_order", mutating=True)
            say(event="ready", lease_id=lease.lease_id)
            page.wait_for_timeout(120_000)
        if scenario == "redirects":
            page.goto(f"{site}/form")
            lease.step("form_loaded", safe=True)
            page.evaluate(SUBMIT)
            say(event="submitted", lease_id=lease.lease_id)
            while True:
                page.wait_for_timeout(300)
        if scenario == "crash":
            page.goto(f"{site}/login")
            lease.step("logged_in", safe=True)
            lease.step("submit_order", mutating=True)
            say(event="mutating", lease_id=lease.lease_id)
            while True:
                page.wait_for_timeout(200)
        page.goto(f"{site}/poll")
        lease.step("polling", safe=True)
        say(event="ready", lease_id=lease.lease_id)
        while True:
            page.wait_for_timeout(300)
            lease.step("polling")


async def run_async(
    store: str,
    profile: str,
    run: str,
    scenario: str,
    site: str,
    ttl: int,
    settings: BrowserSettings,
) -> None:
    leases = aio.ProfileLeases.open(store, worker_id=f"worker_{run}", settings=settings)
    async with (
        async_playwright() as pw,
        leases.checkout(profile, run_id=run, task_type=scenario, ttl_seconds=ttl) as lease,
        lease.browser(pw) as context,
    ):
        announce_deadlines(lease)
        page = await context.new_page()
        if scenario.startswith("busy"):
            await page.goto(f"{site}/poll")
            await lease.step("polling", safe=True)
            if scenario == "busy_mutating":
                await lease.step("submit_order", mutating=True)
            say(event="ready", lease_id=lease.lease_id)
            await page.wait_for_timeout(120_000)
        if scenario == "redirects":
            await page.goto(f"{site}/form")
            await lease.step("form_loaded", safe=True)
            await page.evaluate(SUBMIT)
            say(event="submitted", lease_id=lease.lease_id)
            while True:
                await page.wait_for_timeout(300)
        if scenario == "crash":
            await page.goto(f"{site}/login")
            await lease.step("logged_in", safe=True)
            await lease.step("submit_order", mutating=True)
            say(event="mutating", lease_id=lease.lease_id)
            while True:
                await page.wait_for_timeout(200)
        await page.goto(f"{site}/poll")
        await lease.step("polling", safe=True)
        say(event="ready", lease_id=lease.lease_id)
        while True:
            await page.wait_for_timeout(300)
            await lease.step("polling")


def main() -> int:
    store, profile, run, flavour, scenario, site, ttl, evidence_dir = sys.argv[1:]
    settings = BrowserSettings(proxies={"px": DIRECT}, evidence_dir=evidence_dir)
    args = (store, profile, run, scenario, site, int(ttl), settings)
    try:
        if flavour == "sync":
            run_sync(*args)
        else:
            asyncio.run(run_async(*args))
    except LeaseLost as lost:
        say(event="lost", why=str(lost), at=time.time())
        return LEASE_LOST_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
