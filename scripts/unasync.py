"""Make the sync worker SDK from the asyncio one, as httpcore does with unasync.

The asyncio flavour is the one written by hand (``workers/aio/_leases.py``,
``workers/aio/_browser.py``); this script rewrites each into the sync flavour's module
(``workers/_leases.py``, ``workers/_browser.py``) by exact substitutions (``async def`` to
``def``, ``await x`` to ``x``, Playwright's async API to its sync API, ``workers.aio._x`` to
``workers._x``), then sorts the imports and formats the result with the repository's ruff, so
the generated files pass ``ruff format --check`` as they are. What a flavour does its own way
(where the ledger's calls run, heartbeats, SIGTERM) lives in its ``_flavour`` module, written
by hand in each flavour, with the same names.

    python scripts/unasync.py           # write the sync files
    python scripts/unasync.py --check   # exit 1 naming each sync file that is stale

A source that would keep an asyncio word after the rewrite (``async``, ``await``, ``asyncio``,
``aio``) stops the script with exit 2, naming the line: what only asyncio can do belongs in
``workers/aio/_flavour.py``. ``--root DIR`` works on another copy of the repository.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Each source written by hand, and the sync module made from it.
PAIRS = {
    "workers/aio/_leases.py": "workers/_leases.py",
    "workers/aio/_browser.py": "workers/_browser.py",
}
SUBSTITUTIONS = [
    (re.compile(pattern), replacement)
    for pattern, replacement in (
        (r"\basync def\b", "def"),
        (r"\basync with\b", "with"),
        (r"\basync for\b", "for"),
        (r"\bawait ", ""),
        (r"\bAsyncIterator\b", "Iterator"),
        (r"\basynccontextmanager\b", "contextmanager"),
        (r"\b__aenter__\b", "__enter__"),
        (r"\b__aexit__\b", "__exit__"),
        (r"\bplaywright\.async_api\b", "playwright.sync_api"),
        (r"\basync_playwright\b", "sync_playwright"),
        (r"\bworkers\.aio\._", "workers._"),
    )
]
LEFTOVER = re.compile(r"\b(async|await|asyncio|aio)\b")
HEADER = """\
# Generated from {source} by scripts/unasync.py: do not edit it by hand. Edit the
# source, then run `python scripts/unasync.py` (tests/e2e/test_unasync.py fails while this
# file is stale).
"""


class CannotRewrite(Exception):
    """The source keeps something only asyncio has after the rewrite."""


def rewrite(text: str, source: str) -> str:
    """The sync module's text from the source's, before formatting: the source's leading
    comment (which says it is a source) replaced by the generated file's header. Raises
    ``CannotRewrite`` naming the first line that keeps an asyncio word."""
    lines = text.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    body = "".join(lines)
    for pattern, replacement in SUBSTITUTIONS:
        body = pattern.sub(replacement, body)
    for number, line in enumerate(body.splitlines(), start=1):
        if LEFTOVER.search(line):
            msg = f"{source}: after the rewrite, line {number} still says {line.strip()!r}"
            raise CannotRewrite(msg)
    return HEADER.format(source=source) + body


def formatted(text: str, target: str, root: Path) -> str:
    """``text`` with its imports sorted and formatted as ruff does for ``target``."""
    for command in (["check", "--fix-only", "--select", "I", "--quiet"], ["format"]):
        text = subprocess.run(
            [sys.executable, "-m", "ruff", *command, "--stdin-filename", target, "-"],
            input=text,
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
        ).stdout
    return text


def generate(root: Path) -> dict[str, str]:
    """Each sync module's path (relative to ``root``) and the text it must hold."""
    return {
        target: formatted(rewrite((root / source).read_text(), source), target, root)
        for source, target in PAIRS.items()
    }


def _current(path: Path) -> str | None:
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this)")
    args = parser.parse_args(argv)
    try:
        wanted = generate(args.root)
    except CannotRewrite as bad:
        print(f"unasync: {bad}", file=sys.stderr)
        return 2
    stale = [t for t, text in wanted.items() if _current(args.root / t) != text]
    if args.check:
        for target in stale:
            print(f"unasync: {target} is stale: run python scripts/unasync.py", file=sys.stderr)
        return 1 if stale else 0
    for target in stale:
        (args.root / target).write_text(wanted[target])
        print(f"unasync: wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
