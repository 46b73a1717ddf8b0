"""Run a Node script against the TypeScript client's build (clients/typescript/dist), for the
Node worker tests that probe one guarantee each: the client as a Node worker uses it, against
a real ``custody serve`` (first written as review7's reproducers)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from serving import Served, serve

from ledger import Ledger, RegisterProfile, Role

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "typescript"
INDEX = CLIENT / "dist" / "src" / "index.js"


def built() -> Path:
    """The client's compiled entry point, built with tsc when it is missing."""
    assert shutil.which("node"), "node is not on PATH (Node 20 is needed)"
    assert (CLIENT / "node_modules").is_dir(), "run: npm ci --prefix clients/typescript"
    if not INDEX.is_file():
        subprocess.run(
            ["npm", "run", "build"], cwd=CLIENT, check=True, capture_output=True, timeout=300
        )
    return INDEX


def run_node(tmp: Path, script: str, env: dict[str, str], timeout: float = 90) -> dict[str, Any]:
    """Run ``script`` (an ES module; ``CLIENT_INDEX`` in it is replaced by the client's entry
    point) and answer the JSON object its last line of stdout prints."""
    path = tmp / "probe.mjs"
    path.write_text(script.replace("CLIENT_INDEX", built().as_uri()))
    done = subprocess.run(
        ["node", str(path)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert lines, f"node printed nothing (exit {done.returncode}): {done.stderr[-2000:]}"
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


@contextmanager
def serving(tmp: Path, *profiles: RegisterProfile) -> Iterator[Served]:
    """``custody serve`` on a fresh SQLite store under ``tmp`` holding ``profiles`` (one, p1 of
    account a1 on proxy x1, when none is given)."""
    url = f"sqlite:///{tmp / 'custody.db'}"
    Ledger.init(url).close()
    running = serve(url)
    try:
        with Ledger.open(url) as ledger:
            for profile in profiles or (P1,):
                ledger.handle(profile)
        yield running
    finally:
        running.stop()


P1 = RegisterProfile(profile_id="p1", account_id="a1", proxy_id="x1")


def worker_env(service: Served, tmp: Path, **more: str) -> dict[str, str]:
    """What a probe's Node worker reads: the service's URL, a worker's token, where evidence
    goes, and ``more``."""
    return {
        "URL": service.url,
        "TOKEN": service.tokens[Role.WORKER],
        "EVIDENCE": str(tmp / "evidence"),
        **more,
    }
