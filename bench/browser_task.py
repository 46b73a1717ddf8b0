"""custody's cost per browser task, beside the same task run with a bare persistent context.

One task: launch Chromium on a persistent profile directory, open a page served on 127.0.0.1,
take a screenshot, close. The bare baseline does exactly that with Playwright alone; the custody
run does it through the worker SDK (checkout, launch guard and marker file, a safe step, release
with the final URL and the screenshot's sha256). Both take the screenshot, so the difference is
custody's own cost. Rounds alternate between the two so that load affects both alike.

    .venv/bin/python bench/browser_task.py [--rounds N]        # SQLite store, Debian's Chromium
"""

from __future__ import annotations

import argparse
import http.server
import statistics
import sys
import tempfile
import threading
from pathlib import Path
from time import perf_counter

from playwright.sync_api import Playwright, sync_playwright

from ledger import Ledger, RegisterProfile
from workers import BrowserSettings, ProfileLeases

CHROMIUM = "/usr/bin/chromium"
PAGE = b"<!doctype html><title>shop</title><h1>dashboard</h1>"


class _Page(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: object) -> None:
        pass


def bare_task(pw: Playwright, profile_dir: Path, url: str, shot: Path) -> None:
    context = pw.chromium.launch_persistent_context(
        str(profile_dir), executable_path=CHROMIUM, headless=True
    )
    page = context.new_page()
    page.goto(url)
    page.screenshot(path=str(shot))
    context.close()


def custody_task(pw: Playwright, leases: ProfileLeases, url: str, n: int) -> None:
    with (
        leases.checkout("bench_profile", run_id=f"run-{n}", task_type="bench") as lease,
        lease.browser(pw) as context,
    ):
        page = context.new_page()
        page.goto(url)
        lease.step("dashboard_loaded", safe=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/dashboard"
    with tempfile.TemporaryDirectory(prefix="custody-bench-") as tmp:
        root = Path(tmp)
        store = f"sqlite:///{root / 'custody.db'}"
        with Ledger.open(store) as ledger:
            ledger.handle(
                RegisterProfile(
                    profile_id="bench_profile",
                    account_id="bench",
                    proxy_id="direct",
                    user_data_dir=str(root / "custody-profile"),
                )
            )
        settings = BrowserSettings(proxies={"direct": None}, evidence_dir=root / "evidence")
        leases = ProfileLeases.open(store, worker_id="bench_worker", settings=settings)
        bare, held = [], []
        with sync_playwright() as pw:
            bare_task(pw, root / "bare-profile", url, root / "warm.png")  # warm both paths
            custody_task(pw, leases, url, 0)
            for n in range(1, args.rounds + 1):
                started = perf_counter()
                bare_task(pw, root / "bare-profile", url, root / f"bare-{n}.png")
                bare.append(perf_counter() - started)
                started = perf_counter()
                custody_task(pw, leases, url, n)
                held.append(perf_counter() - started)
        leases.ledger.close()
    server.shutdown()
    b, c = statistics.median(bare) * 1e3, statistics.median(held) * 1e3
    print("| figure | median ms |")
    print("|---|---:|")
    print(f"| bare launch_persistent_context task | {b:.0f} |")
    print(f"| the same task through custody's SDK | {c:.0f} |")
    print(f"| custody's cost per task | {c - b:.0f} ({(c - b) / b:.1%} of the bare task) |")
    print(f"\n{args.rounds} rounds each, interleaved, median shown", file=sys.stderr)


if __name__ == "__main__":
    main()
