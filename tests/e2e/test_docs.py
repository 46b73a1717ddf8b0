"""docs/ cannot rot: its examples run, its links and paths resolve, and its reference pages name
what the code has (every command and option, public name, exit code and setting), and nothing
it has not."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import re
import signal
import typing
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from doc_examples import (
    DOCS,
    README,
    ROOT,
    SUITE_COMMAND,
    Scene,
    blocks,
    marks,
    pages,
    problems,
    run_page,
    scene_env,
)
from local_site import CountingProxy, LocalSite

PAGES = pages()
# Every page a reader may follow a link from.
LINKED_PAGES = [README, *PAGES, ROOT / "tests" / "README.md", ROOT / "bench" / "README.md"]
PACKAGES = ("ledger", "projections", "workers", "reports", "service", "custody")
REFERENCE = DOCS / "reference"


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def _prose(page: Path) -> str:
    """A page's text outside its fenced blocks."""
    return re.sub(r"^```.*?^```", "", page.read_text(), flags=re.DOTALL | re.MULTILINE)


def _spans(page: Path) -> list[str]:
    """The inline code spans of a page's prose."""
    return [" ".join(s.split()) for s in re.findall(r"`([^`]+)`", _prose(page))]


@pytest.mark.parametrize("page", [pytest.param(p, marks=marks(p), id=_page_id(p)) for p in PAGES])
def test_the_examples_of_a_page_run(
    page: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """Every Python and shell example of a docs page runs as written, in order, in a fresh
    directory with no store chosen (so on SQLite), on PostgreSQL or with Chromium where the
    page says so, and ends as the page says."""
    words = {w for b in blocks(page) for w in b.words}
    scene = Scene(tmp_path, scene_env(tmp_path))
    if "postgres" in words:
        scene.pg_url = request.getfixturevalue("pg_url")
    if "browser" not in words:
        run_page(page, scene)
        return
    with _browser_scene(scene) as proxy:
        run_page(page, scene)
        left = _browsers_under(tmp_path)
    assert left == [], "the page's examples left a browser running"
    if re.search(r"\burl\b", " ".join(b.code for b in blocks(page) if b.language == "python")):
        assert scene.namespace["url"] in proxy.requests, "the page's browser bypassed its proxy"


@contextmanager
def _browser_scene(scene: Scene) -> Iterator[CountingProxy]:
    """A page driving Chromium gets ``url``, a page served on 127.0.0.1, and ``$CUSTODY_PROXIES``
    naming a file that maps the examples' proxy id to a local proxy wanting credentials. A
    browser the page left running under its directory is killed afterwards, whatever
    happened."""
    site, proxy = LocalSite(), CountingProxy("w3", "pw")
    try:
        proxies = {"proxy_us_east_12": {"server": proxy.server, "username": "w3", "password": "pw"}}
        path = scene.directory / "harness-proxies.json"
        path.write_text(json.dumps(proxies))
        scene.env["CUSTODY_PROXIES"] = str(path)
        scene.namespace["url"] = f"{site.url}/dashboard"
        yield proxy
    finally:
        for pid in _browsers_under(scene.directory):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        site.close()
        proxy.close()


def _browsers_under(directory: Path) -> list[int]:
    """Live Chromium processes whose profile directory lies under ``directory``."""
    wanted = f"--user-data-dir={directory}/".encode()
    found = []
    for entry in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            args = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state != "Z" and b"chrom" in args[0] and any(a.startswith(wanted) for a in args):
            found.append(int(entry))
    return found


# What a reader may spend on the prose between two blocks: a lease shorter than this dies
# between them.
READING_S = 60


def test_a_short_lease_is_waited_out_in_the_block_that_takes_it() -> None:
    """rev29: the tutorial checked out with ``--ttl 10`` and renewed in a later block, after
    prose; a reader who took more than ten seconds found the lease lost (exit 4) and nothing
    after matched the page. A TTL under a minute (``--ttl``, ``ttl_seconds=``) is set only in
    a block that then waits it out (``sleep``), so no later block counts on it still running."""
    short = re.compile(r"(?:--ttl |ttl_seconds=)(\d+)")
    wrong = [
        f"{block.where}: a TTL of {m[1]} s outlives no reader, and its block does not wait it out"
        for page in (README, *PAGES)
        for block in blocks(page)
        if block.runs
        for m in short.finditer(block.code)
        if int(m[1]) < READING_S and not re.search(r"\bsleep\b", block.code[m.end() :])
    ]
    assert wrong == []


def test_examples_are_written_to_be_run() -> None:
    """No example hides from the runner: Python and shell blocks are spelt ``python`` and
    ``sh``, their words are known, and the only block not run is the test suite's command."""
    everything = [b for p in [README, *PAGES] for b in blocks(p)]
    found = [problem for b in everything for problem in problems(b)]
    assert found == []
    suites = [b.where for b in everything if "suite" in b.words]
    assert suites == ["README.md:" + str(_line_of(README, SUITE_COMMAND))]


def _line_of(page: Path, text: str) -> int:
    lines = page.read_text().splitlines()
    return next(i for i, line in enumerate(lines, start=1) if line == text) - 1


# -- links, paths and names ------------------------------------------------------------------


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: a link's text kept, punctuation but ``-`` and ``_``
    dropped, spaces made hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    return {_slug(h) for h in re.findall(r"^#{1,6} (.+)$", _prose(page), flags=re.MULTILINE)}


@pytest.mark.parametrize("page", LINKED_PAGES, ids=_page_id)
def test_every_link_resolves(page: Path) -> None:
    """Every relative link of the page names a file of the repository, and its anchor a
    heading of that file."""
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", _prose(page)):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        unanchored = anchor and linked.suffix == ".md" and anchor not in _anchors(linked)
        if not linked.exists() or unanchored:
            broken.append(target)
    assert broken == []


_PATH = re.compile(r"^(?:ledger|projections|workers|reports|custody|tests|bench|scripts|docs)/\S*$")


def _named_paths(page: Path) -> list[str]:
    return [s.split("::")[0] for s in _spans(page) if _PATH.match(s)]


@pytest.mark.parametrize("page", [README, *PAGES], ids=_page_id)
def test_every_repository_path_named_exists(page: Path) -> None:
    """A file or directory the page names in code (``tests/e2e/test_docs.py``) exists."""
    assert [p for p in _named_paths(page) if not (ROOT / p).exists()] == []


def test_the_code_points_only_at_docs_that_exist() -> None:
    """A docs/ page a module of the packages points at exists (and no module points outside
    the repository, at ``../shared/``)."""
    named, outside = [], []
    for package in PACKAGES:
        for module in (ROOT / package).rglob("*.py"):
            text = module.read_text()
            named += [p for p in re.findall(r"\bdocs/[\w./-]+\.md", text) if "/../" not in p]
            outside += [f"{module.relative_to(ROOT)}" for _ in re.findall(r"\.\./shared/", text)]
    assert named, "the inspector points at its explanation in docs/"
    assert [p for p in named if not (ROOT / p).exists()] == []
    assert outside == []


_FILE_SUFFIXES = (".db", ".py", ".md", ".json", ".html", ".csv", ".png", ".ipynb", ".parquet")


def _dotted_names(page: Path) -> set[str]:
    """``ledger.rules.lease_ending``, ``Ledger.check_lease(...)``, ``reports.fleet``: names in
    code spans that start with a package or a public class."""
    found = set()
    for span in _spans(page):
        head = re.match(r"([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)+)", span)
        if head and not span.startswith(head[1] + "/") and not head[1].endswith(_FILE_SUFFIXES):
            found.add(head[1])
    return found


def _public_names() -> dict[str, Any]:
    names: dict[str, Any] = {}
    for package in ("ledger", "projections", "reports", "workers", "workers.aio"):
        module = importlib.import_module(package)
        names.update({n: getattr(module, n) for n in module.__all__ if n[:1].isupper()})
    return names


def _resolves(dotted: str, public: dict[str, Any]) -> bool | None:
    """True if the name exists, False if it should and does not, None if it is not ours."""
    first, *rest = dotted.split(".")
    if first in PACKAGES:
        target: Any = importlib.import_module(first)
        for part in rest:
            try:
                target = getattr(target, part)
            except AttributeError:
                try:
                    target = importlib.import_module(f"{target.__name__}.{part}")
                except (ImportError, AttributeError):
                    return False
        return True
    if first in public:
        target = public[first]
        for part in rest:
            fields = getattr(target, "model_fields", {})
            if part in fields:
                return True
            if not hasattr(target, part):
                return False
            target = _through_property(getattr(target, part))
            if target is None:
                return True  # a property whose type cannot be told: not ours to judge
        return True
    return None


def _through_property(value: Any) -> Any:
    """What a property of a class gives (its return annotation), else the value itself."""
    if not isinstance(value, property):
        return value
    try:
        return typing.get_type_hints(value.fget).get("return")
    except NameError:
        return None


@pytest.mark.parametrize("page", [README, *PAGES], ids=_page_id)
def test_every_python_name_named_exists(page: Path) -> None:
    """A module, function, class or attribute of the packages that the page names in code
    (``ledger.rules.lease_ending``, ``Ledger.check_lease``) exists under that name."""
    public = _public_names()
    assert sorted(n for n in _dotted_names(page) if _resolves(n, public) is False) == []


# -- the reference pages against the code ----------------------------------------------------


def _cli_commands() -> dict[str, click.Command]:
    """Every command of the command line by its path (``projections rebuild``)."""
    from custody.cli import cli

    found: dict[str, click.Command] = {}

    def walk(group: click.Group, prefix: str) -> None:
        ctx = click.Context(group)  # listed as --help lists them: each command's module imported
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            assert command is not None, name
            if isinstance(command, click.Group):
                walk(command, f"{prefix}{name} ")
            else:
                found[f"{prefix}{name}"] = command

    walk(cli, "")
    return found


def _long_options(command: click.Command) -> set[str]:
    return {
        o for p in command.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts
    } - {"--help"}


def _sections(page: Path, level: str) -> dict[str, str]:
    """The text under each heading of ``level`` (``###``), by heading."""
    parts = re.split(rf"^{level} (.+)$", page.read_text(), flags=re.MULTILINE)
    return {parts[i].strip(): parts[i + 1].split("\n## ")[0] for i in range(1, len(parts), 2)}


def test_the_cli_reference_has_each_command_with_exactly_its_options() -> None:
    """docs/reference/cli.md has a section ``custody COMMAND`` for every command, and each
    section names every option of its command and no option the command does not have."""
    from custody.cli import cli

    sections = _sections(REFERENCE / "cli.md", "###")
    documented = {
        h.strip("`").removeprefix("custody "): text
        for h, text in sections.items()
        if h.startswith("`custody ")
    }
    commands = _cli_commands()
    assert sorted(documented) == sorted(commands)
    global_options = _long_options(cli)
    wrong = {}
    for path, command in commands.items():
        named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", documented[path]))
        missing = _long_options(command) - named
        unknown = named - _long_options(command) - global_options - {"--help"}
        if missing or unknown:
            wrong[path] = {"missing": sorted(missing), "not an option": sorted(unknown)}
    assert wrong == {}
    prose = _prose(REFERENCE / "cli.md")
    assert all(o in prose for o in global_options)


def test_the_exit_codes_page_says_what_each_error_exits_with() -> None:
    """docs/reference/exit-codes.md gives every error of the hierarchy its real exit code, and
    the codes the command line adds itself (0, 5, 130)."""
    import ledger

    errors = {
        n: getattr(ledger, n)
        for n in ledger.__all__
        if isinstance(getattr(ledger, n), type) and issubclass(getattr(ledger, n), Exception)
    }
    said: dict[str, int] = {}
    codes = set()
    for row in re.findall(
        r"^\| `?(\d+)`? \|(.*)\|$", (REFERENCE / "exit-codes.md").read_text(), re.M
    ):
        codes.add(int(row[0]))
        for name in re.findall(r"`(\w+)`", row[1]):
            if name in errors:
                said[name] = int(row[0])
    assert said == {n: e.exit_code for n, e in errors.items() if n in said}
    assert sorted(said) == sorted(errors)
    assert {0, 1, 2, 3, 4, 5, 6, 7, 130} == codes


def test_the_python_api_reference_names_every_public_name() -> None:
    """docs/reference/python-api.md names each public name of ledger, ledger.rules,
    ledger.files, projections, reports, workers and workers.aio."""
    spans = set(_spans(REFERENCE / "python-api.md"))
    text = " ".join(spans)
    missing = {}
    for package in (
        "ledger",
        "ledger.rules",
        "ledger.files",
        "projections",
        "reports",
        "workers",
        "workers.aio",
    ):
        module = importlib.import_module(package)
        absent = [n for n in module.__all__ if not re.search(rf"(?<![\w]){n}(?![\w])", text)]
        if absent:
            missing[package] = absent
    assert missing == {}


def test_the_asyncio_sdk_says_which_lease_calls_are_not_awaited() -> None:
    """rev41: ``await lease.visited(...)`` on ``workers.aio`` raised ``TypeError`` inside the
    block and released every lease as an unexpected failure; where the reference describes the
    asyncio SDK it names each call on a lease it documents that is not a coroutine, and the
    how-to's asyncio sentence names them too."""
    from workers import aio

    calls = ("step", "visited", "expected_failure")
    plain = [c for c in calls if not inspect.iscoroutinefunction(getattr(aio.WorkerLease, c))]
    assert plain == ["visited", "expected_failure"]
    reference = " ".join(_prose(REFERENCE / "python-api.md").split())
    said = re.search(r"On asyncio, not awaited: (.*?)\. ", reference)
    assert said is not None
    assert re.findall(r"`lease\.(\w+)\(", said.group(1)) == plain
    how_to = " ".join(_prose(DOCS / "how-to" / "write-a-browser-worker.md").split())
    assert all(f"`lease.{c}(" in how_to.split("not awaited on asyncio")[1][:200] for c in plain)


def test_every_setting_is_documented() -> None:
    """Every environment variable the packages read (``CUSTODY_...``, ``XDG_STATE_HOME``,
    ``NO_COLOR``) is in docs/reference/configuration.md, which names none they do not read."""
    read = set()
    for package in (*PACKAGES, "reports/notebooks"):
        for source in [*(ROOT / package).rglob("*.py"), *(ROOT / package).rglob("*.ipynb")]:
            read |= set(
                re.findall(
                    r"\b(CUSTODY_[A-Z_]+|XDG_STATE_HOME|NO_COLOR|FORCE_COLOR)\b", source.read_text()
                )
            )
    read -= {"CUSTODY_"}
    documented = set(
        re.findall(
            r"\b(CUSTODY_[A-Z_]+|XDG_STATE_HOME|NO_COLOR|FORCE_COLOR)\b",
            (REFERENCE / "configuration.md").read_text(),
        )
    )
    tests_only = set(
        re.findall(r"\bCUSTODY_TEST_[A-Z_]+", (ROOT / "tests" / "conftest.py").read_text())
    )
    assert sorted(read - documented) == []
    assert sorted(documented - read - tests_only) == []


def test_the_benchmarks_named_exist_with_their_options() -> None:
    """Each ``bench/NAME.py --option`` docs/performance.md quotes is a script of bench/ that
    takes that option, so the figures keep the command that measures them again."""
    text = (DOCS / "performance.md").read_text()
    quoted = re.findall(r"bench/(\w+\.py)((?: \[?--?[\w-]+(?: [^\s\]`-][^\s\]`]*)?\]?)*)", text)
    assert quoted
    wrong = []
    for script, tail in quoted:
        path = ROOT / "bench" / script
        if not path.exists():
            wrong.append(script)
            continue
        source = path.read_text()
        wrong += [f"{script} {o}" for o in re.findall(r"--[\w-]+", tail) if f'"{o}"' not in source]
    assert wrong == []


def test_the_readme_stays_a_front_door() -> None:
    """The README stays short (the issue: at most about 200 lines) and leads into docs/."""
    text = README.read_text()
    assert len(text.splitlines()) <= 210
    assert "docs/tutorial.md" in text
    assert all(f"docs/{part}" in text for part in ("how-to/", "reference/", "explanation/"))
