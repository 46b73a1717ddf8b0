"""The code blocks of the README and of docs/, found and run as a reader would run them.

A fenced block whose language is ``python`` or ``sh`` is an example, and every example runs.
The words after the language (GitHub shows none of them) say how:

- ``exit=N``: the block ends with exit status N (a denied checkout, say); by default 0. Shell
  blocks run under ``bash -euo pipefail``, so the first command that fails ends the block.
- ``repo``: a shell block run from the repository's root (``bash scripts/demo.sh``), not from
  the page's scratch directory.
- ``browser``, ``postgres``, ``slow``: the page's test gets that pytest marker. A ``postgres``
  page gets a database of its own, and ``PG_EXAMPLE_URL`` in its blocks is replaced with it.
- ``suite``: the one block that is the test suite itself (``bash scripts/test.sh``); it is the
  only block not run here, and nothing else may say ``suite``.

The blocks of a page run in order, in one scratch directory (the page's ``./custody.db``), with
one namespace shared by its Python blocks, so a page can build on what it did before.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
RUN_LANGUAGES = ("python", "sh")
# Spellings of a shell or Python block that would slip past the runner: refused outright.
OTHER_SPELLINGS = ("bash", "shell", "console", "zsh", "py", "python3", "pycon", "sh-session")
ATTRIBUTES = {"repo", "browser", "postgres", "slow", "suite"}
SUITE_COMMAND = "bash scripts/test.sh"
# The PostgreSQL URL the operations pages show; a postgres page runs on a real database instead.
PG_EXAMPLE_URL = "postgresql://custody:secret@db.example:5432/custody"
BLOCK_TIMEOUT = 600

_FENCE = re.compile(r"^```(\S*)(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced block: where it is, its language and words, and its code."""

    page: Path
    line: int  # the line of the opening fence, counted from 1
    language: str
    words: tuple[str, ...]
    code: str

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def runs(self) -> bool:
        return self.language in RUN_LANGUAGES and "suite" not in self.words

    @property
    def exit_code(self) -> int:
        for word in self.words:
            if word.startswith("exit="):
                return int(word.removeprefix("exit="))
        return 0


@dataclass
class Ran:
    """What a block printed."""

    block: Block
    stdout: str = ""
    stderr: str = ""


@dataclass
class Scene:
    """Where a page's blocks run: its directory, environment and Python namespace."""

    directory: Path
    env: dict[str, str]
    namespace: dict[str, Any] = field(default_factory=dict)
    pg_url: str | None = None


def pages() -> list[Path]:
    """Every page of docs/, in a stable order."""
    return sorted(DOCS.rglob("*.md"))


def blocks(page: Path) -> list[Block]:
    """The page's fenced blocks (top-level fences only), in order."""
    found: list[Block] = []
    opened: tuple[int, str, tuple[str, ...]] | None = None
    body: list[str] = []
    for number, text in enumerate(page.read_text().splitlines(), start=1):
        fence = _FENCE.match(text)
        if opened is None:
            if fence:
                opened, body = (number, fence[1], tuple(fence[2].split())), []
            continue
        if text.rstrip() == "```":
            line, language, words = opened
            found.append(Block(page, line, language, words, "\n".join(body) + "\n"))
            opened = None
        else:
            body.append(text)
    if opened is not None:
        raise AssertionError(f"{page}:{opened[0]}: a fence is never closed")
    return found


def examples(page: Path) -> list[Block]:
    return [b for b in blocks(page) if b.language in RUN_LANGUAGES]


def marks(page: Path) -> list[pytest.MarkDecorator]:
    """The markers a page's test needs, from its blocks' words."""
    words = {w for b in examples(page) for w in b.words}
    return [getattr(pytest.mark, m) for m in ("browser", "postgres", "slow") if m in words]


def problems(block: Block) -> list[str]:
    """What is wrong with how a block is written (an unknown word, a misspelt language)."""
    found = []
    if block.language in OTHER_SPELLINGS:
        found.append(f"{block.where}: write ```sh or ```python, not ```{block.language}")
    for word in block.words:
        if word not in ATTRIBUTES and not re.fullmatch(r"exit=\d+", word):
            found.append(f"{block.where}: unknown word {word!r} after ```{block.language}")
    if "suite" in block.words and block.code.strip() != SUITE_COMMAND:
        found.append(f"{block.where}: only `{SUITE_COMMAND}` may be marked suite")
    return found


def scene_env(directory: Path) -> dict[str, str]:
    """The environment of a reader in a fresh directory: the venv's commands on PATH, no store
    or evidence directory chosen, state kept under the directory."""
    env = dict(os.environ)
    for name in ("CUSTODY_STORE", "CUSTODY_EVIDENCE_DIR", "CUSTODY_PROXIES"):
        env.pop(name, None)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["XDG_STATE_HOME"] = str(directory / "state")
    return env


@contextmanager
def entered(scene: Scene) -> Iterator[None]:
    """The process inside the scene's directory and environment, for the Python blocks."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(scene.directory)
        for name in set(os.environ) - set(scene.env):
            patch.delenv(name)
        for name, value in scene.env.items():
            patch.setenv(name, value)
        yield


def run_page(page: Path, scene: Scene) -> list[Ran]:
    """Run every example of the page in order; fail naming the first that does not do what
    its page says."""
    done = []
    for block in examples(page):
        for problem in problems(block):
            raise AssertionError(problem)
        if block.runs:
            done.append(run_block(block, scene))
    return done


def run_block(block: Block, scene: Scene) -> Ran:
    code = block.code
    if scene.pg_url is not None:
        code = code.replace(PG_EXAMPLE_URL, scene.pg_url)
    if block.language == "sh":
        return _run_shell(block, code, scene)
    # Padded so that a traceback names the page's own line numbers.
    compiled = compile("\n" * block.line + code, str(block.page), "exec")
    with entered(scene):
        try:
            exec(compiled, scene.namespace)  # noqa: S102 - our own docs
        except SystemExit as stopped:
            raise AssertionError(f"{block.where}: exited {stopped.code}") from stopped
    return Ran(block)


def _run_shell(block: Block, code: str, scene: Scene) -> Ran:
    cwd = ROOT if "repo" in block.words else scene.directory
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", code],
        cwd=cwd,
        env=scene.env,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
        check=False,
    )
    if done.returncode != block.exit_code:
        raise AssertionError(
            f"{block.where}: exited {done.returncode}, the page says {block.exit_code}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-4000:]}"
        )
    return Ran(block, done.stdout, done.stderr)
