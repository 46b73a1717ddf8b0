"""The fleet benchmark, in users' terms: how many workers, each heartbeating every 10 s, one
service process and one PostgreSQL on this machine hold with the p99 heartbeat latency under
50 ms; the same through the Python ledger talking to PostgreSQL directly; and a plain psycopg
INSERT of a heartbeat-sized row on the same schedule, the raw baseline, in the same run.

    .venv/bin/python bench/fleet.py [--fleets 1000,2000,5000,10000,20000] [--seconds 30]
                                    [--interval 10] [--processes 4] [--p99-ms 50]
                                    [--json FILE]

Starts its own throwaway PostgreSQL on the disk with fsync on (``appenders.durable_cluster``),
registers and checks out as many profiles as the largest fleet, then for each fleet size and
each way (``service``: ``custody serve`` spoken to over HTTP/1.1 keep-alive connections by a
load process of its own; ``ledger``: ``Ledger.handle(Heartbeat)`` from ``--processes``
processes, each serving its share of the fleet on one connection; ``insert``: an autocommit
INSERT from as many processes) sends each worker's heartbeat every ``--interval`` seconds, at
phases spread over the interval, for ``--seconds``. A heartbeat's latency runs from the moment
it was due to its answer, so a load side that falls behind counts against the figure. A way
stops growing once its p99 passes 50 ms (``--p99-ms``); the largest fleet under it is its
figure, printed as "at least" where the way held every size tried (a lower bound, and so are
the ratios it takes part in). CPU is each side's, in cores (1.0 = one core busy): the service
process, PostgreSQL's processes, the load. The service closes a connection idle for 5 s; the
load opens it again. Stopped by SIGTERM (``timeout``, a cancelled job), it stops the service,
the load and the cluster, and deletes the cluster's directory.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing import get_context
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import raw as rawio  # noqa: E402

TARGET_P99_MS = 50.0
TTL = 86_400


# -- CPU of a process tree, from /proc ----------------------------------------------------


def _cpu_of(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry.name))
    return found


def _postgres_pids(data_dir: Path) -> list[int]:
    try:
        postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    except FileNotFoundError:  # the server is down: nothing of it to read
        return []
    return [postmaster, *_children(postmaster)]


class Sampler:
    """Each side's CPU over a step: its processes' times read every 0.2 s; a process born
    during the step counts from zero, one that ended counts what was last read."""

    def __init__(self, sides: dict[str, Callable[[], list[int]]]) -> None:
        import threading

        self.sides = sides
        self.seen: dict[str, dict[int, list[float]]] = {side: {} for side in sides}
        self._stop = threading.Event()
        self._first = True
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self) -> None:
        for side, pids in self.sides.items():
            for pid in pids():
                used = _cpu_of([pid])
                known = self.seen[side].get(pid)
                if known is None:
                    self.seen[side][pid] = [used if self._first else 0.0, used]
                else:
                    known[1] = max(known[1], used)
        self._first = False

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self._read()

    def __enter__(self) -> Sampler:
        self._read()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
        self._read()

    def stop(self) -> None:
        """Stop reading (again: nothing)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def used(self) -> dict[str, float]:
        return {side: sum(b - a for a, b in pids.values()) for side, pids in self.seen.items()}


# -- latencies --------------------------------------------------------------------------


def summary(latencies: list[float], failed: int, seconds: float) -> dict[str, float]:
    ordered = sorted(latencies)

    def at(q: float) -> float:
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000 if ordered else 0.0

    return {
        "done": len(ordered),
        "failed": failed,
        "per_s": round(len(ordered) / seconds, 1),
        "p50_ms": round(at(0.50), 1),
        "p99_ms": round(at(0.99), 1),
        "max_ms": round(at(1.0), 1),
    }


def _schedule(
    count: int, first: int, every: int, interval: float, seconds: float
) -> list[tuple[float, int]]:
    """(offset, worker) for workers ``first, first+every, ...`` below ``count``: each due at its
    phase, then every ``interval``, for ``seconds``."""
    due = []
    for worker in range(first, count, every):
        at = interval * worker / count
        while at < seconds:
            due.append((at, worker))
            at += interval
    due.sort()
    return due


# -- the service's load: one asyncio process, HTTP/1.1 keep-alive -----------------------

_Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter] | None


async def _http_load(
    host: str, port: int, token: str, leases: list[tuple[str, int]], interval: float,
    seconds: float, connections: int,
) -> dict[str, Any]:  # fmt: skip
    pool: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(host, port))
    latencies: list[float] = []
    failed = 0

    async def fresh(old: _Connection) -> _Connection:
        """A new connection in ``old``'s place; None where the service cannot be reached (the
        next heartbeat on it tries again)."""
        if old is not None:
            old[1].close()
        try:
            return await asyncio.open_connection(host, port)
        except OSError:
            return None

    async def beat(due: float, lease_id: str, token_no: int, counted: bool) -> None:
        nonlocal failed
        body = json.dumps({"fencing_token": token_no, "step": "fleet"}).encode()
        request = (
            f"POST /v1/leases/{lease_id}/heartbeat HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        connection = await pool.get()
        try:
            # Closed by the service while idle (its keep-alive timeout), or never reopened.
            if connection is None or connection[0].at_eof():
                connection = await fresh(connection)
            if connection is None:
                failed += 1  # the service cannot be reached: counted, not hidden
                return
            try:
                head = await _exchange(*connection, request)
            except (asyncio.IncompleteReadError, ConnectionError) as lost:
                if isinstance(lost, asyncio.IncompleteReadError) and lost.partial:
                    raise  # an answer began: not a connection closed before it was read
                # Closed as the request went out (the keep-alive race every HTTP client
                # meets): nothing was answered, so it is sent once more on a new connection.
                connection = await fresh(connection)
                if connection is None:
                    failed += 1
                    return
                head = await _exchange(*connection, request)
            if not head.startswith(b"HTTP/1.1 200"):
                failed += 1
            elif counted:
                latencies.append(time.perf_counter() - due)
        except (asyncio.IncompleteReadError, OSError):
            failed += 1  # counted, not hidden; the next heartbeat on it opens a new one
            connection = await fresh(connection)
        finally:
            pool.put_nowait(connection)

    start = time.perf_counter() + 0.5
    tasks = []
    for offset, worker in _schedule(len(leases), 0, 1, interval, interval + seconds):
        due = start + offset
        wait = due - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        lease_id, token_no = leases[worker]
        counted = offset >= interval  # the first round warms caches and connections
        tasks.append(asyncio.create_task(beat(due, lease_id, token_no, counted)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        if (connection := pool.get_nowait()) is not None:
            connection[1].close()
    return {"latencies": latencies, "failed": failed, "cpu": time.process_time()}


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> bytes:
    """Send ``request``, read the whole answer; its head."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return head


def http_load(job: dict[str, Any]) -> dict[str, Any]:
    import uvloop

    return uvloop.run(_http_load(**job))


# -- the direct ways: processes each serving a share of the fleet ------------------------


def _direct(job: dict[str, Any]) -> dict[str, Any]:
    """One process's share: ``ledger`` heartbeats through ``Ledger.handle``, ``insert`` plain
    autocommit INSERTs of a heartbeat-sized row."""
    way, url, leases = job["way"], job["url"], job["leases"]
    interval = job["interval"]
    due = _schedule(len(leases), job["first"], job["every"], interval, interval + job["seconds"])
    send: Callable[[int], None]
    if way == "ledger":
        from ledger import Heartbeat, Ledger

        # Every profile of its share stays loaded, as the service's writer keeps its fleet's.
        ledger = Ledger.open(url, cached_profiles=len(leases))
        ledger.check_lease(leases[0][0])  # connect before the clock starts

        def send(worker: int) -> None:
            lease_id, token_no = leases[worker]
            ledger.handle(Heartbeat(lease_id=lease_id, fencing_token=token_no, step="fleet"))

        close = ledger.close
    else:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        row = job["row"]  # the size of custody's own heartbeat event (bench/raw.py)

        def send(worker: int) -> None:
            conn.execute("INSERT INTO fleet_beats (worker, state) VALUES (%s, %s)", (worker, row))

        close = conn.close
    start = job["start"]
    latencies: list[float] = []
    failed = 0
    now = time.time()
    if start > now:
        time.sleep(start - now)
    for offset, worker in due:
        wait = start + offset - time.time()
        if wait > 0:
            time.sleep(wait)
        try:
            send(worker)
        except Exception:  # a lost lease or a failed insert: counted, not hidden
            failed += 1
            continue
        if offset >= interval:  # the first round warms caches and connections
            latencies.append(time.time() - (start + offset))
    close()
    return {"latencies": latencies, "failed": failed, "cpu": time.process_time()}


# -- the run ------------------------------------------------------------------------------


def set_up(url: str, count: int) -> list[tuple[str, int]]:
    """``count`` profiles registered and checked out (with commits unflushed: set-up only)."""
    from ledger import Checkout, Ledger, RegisterProfile

    leases = []
    with Ledger.open(url) as ledger:
        for i in range(count):
            ledger.handle(RegisterProfile(profile_id=f"f{i}", account_id="fleet", proxy_id="x"))
        for first in range(0, count, 200):
            commands = [
                Checkout(profile_id=f"f{i}", worker_id="fleet-worker", run_id=f"r{i}",
                         task_type="fleet", ttl_seconds=TTL)
                for i in range(first, min(first + 200, count))
            ]  # fmt: skip
            for lease in ledger.handle_together(commands):
                leases.append((lease.lease_id, lease.fencing_token))
    return leases


def serve(url: str, token_holder: str) -> tuple[subprocess.Popen[str], str, str]:
    from ledger import Ledger, Role
    from ledger.access import issue_token

    with Ledger.open(url) as ledger:
        token = issue_token(ledger, token_holder, Role.WORKER).token
    process = subprocess.Popen(
        [sys.executable, "-m", "custody", "--store", url, "serve", "--listen", "127.0.0.1:0"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stderr is not None
    line = process.stderr.readline()
    address = line.rsplit("http://", 1)[1].strip()
    return process, address, token


def measure(
    way: str, fleet: int, leases: list[tuple[str, int]], args: argparse.Namespace,
    url: str, address: str, token: str, pids: dict[str, Callable[[], list[int]]],
) -> dict[str, Any]:  # fmt: skip
    mine = leases[:fleet]
    ctx = get_context("spawn")
    sampler = Sampler(pids).__enter__()
    try:
        return _measured(way, mine, args, url, address, token, sampler, ctx)
    finally:
        sampler.stop()  # also when the load failed: its thread reads /proc until told


def _measured(
    way: str, mine: list[tuple[str, int]], args: argparse.Namespace, url: str, address: str,
    token: str, sampler: Sampler, ctx: Any,
) -> dict[str, Any]:  # fmt: skip
    started = time.perf_counter()
    if way == "service":
        host, port = address.rsplit(":", 1)
        job = {
            "host": host, "port": int(port), "token": token, "leases": mine,
            "interval": args.interval, "seconds": args.seconds, "connections": args.connections,
        }  # fmt: skip
        with ctx.Pool(1) as pool:
            results = [pool.apply(http_load, (job,))]
    else:
        row = rawio.event("lease_heartbeat")[1] if way == "insert" else b""
        start = time.time() + 3.0
        jobs = [
            {"way": way, "url": url, "leases": mine, "first": i, "every": args.processes,
             "interval": args.interval, "seconds": args.seconds, "start": start, "row": row}
            for i in range(args.processes)
        ]  # fmt: skip
        with ctx.Pool(args.processes) as pool:
            results = pool.map(_direct, jobs)
    spent = time.perf_counter() - started
    sampler.__exit__()
    used = sampler.used()
    used["load"] = sum(r["cpu"] for r in results)  # the load processes' own account
    latencies = [x for r in results for x in r["latencies"]]
    figure = summary(latencies, sum(r["failed"] for r in results), args.seconds)
    figure["cpu_cores"] = {side: round(used[side] / spent, 2) for side in used}
    return figure


def _held_text(fleet: int, capped: bool) -> str:
    if capped:
        return f"at least {fleet:,} workers (the largest fleet tried; never past the limit)"
    return f"{fleet:,} workers"


def _ratio(way: str, held: dict[str, int], capped: dict[str, bool]) -> str:
    """The way's figure against the raw INSERT's, with what a lower bound on either side
    leaves of it: at least, at most, or nothing."""
    if way == "insert" or not held.get("insert") or not held[way]:
        return ""
    value = f"{held[way] / held['insert']:.2f}"
    if capped[way] and capped["insert"]:
        return "  (no ratio to the raw INSERT's: both held every fleet tried)"
    if capped[way]:
        return f"  (at least {value} of the raw INSERT's)"
    if capped["insert"]:
        return f"  (at most {value} of the raw INSERT's, which held every fleet tried)"
    return f"  ({value} of the raw INSERT's)"


def main(argv: list[str] | None = None) -> int:
    from appenders import durable_cluster
    from pg_cluster import create_database

    from ledger import Ledger

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fleets", default="1000,2000,5000,10000,20000")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=10.0)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--ways", default="service,ledger,insert")
    parser.add_argument("--p99-ms", type=float, default=TARGET_P99_MS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    fleets = [int(f) for f in args.fleets.split(",")]
    ways = args.ways.split(",")
    cluster = durable_cluster()
    service = None
    figures: dict[str, list[dict[str, Any]]] = {}
    try:
        url = create_database(cluster.admin_url, "bench_fleet")
        Ledger.init(url).close()
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                "CREATE TABLE fleet_beats (id bigserial PRIMARY KEY, worker int, state bytea)"
            )
            conn.execute("ALTER SYSTEM SET synchronous_commit = off")  # set-up only
            conn.execute("SELECT pg_reload_conf()")
        print(f"registering and checking out {max(fleets):,} profiles...", flush=True)
        leases = set_up(url, max(fleets))
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM RESET synchronous_commit")
            conn.execute("SELECT pg_reload_conf()")
        service, address, token = serve(url, "fleet-worker")
        data_dir = cluster.base_dir / "data"
        service_pid = service.pid
        pids: dict[str, Callable[[], list[int]]] = {
            "service": lambda: [service_pid],
            "postgres": lambda: _postgres_pids(data_dir),
        }
        for way in ways:
            figures[way] = []
            for fleet in fleets:
                figure = {
                    "fleet": fleet,
                    **measure(way, fleet, leases, args, url, address, token, pids),
                }
                figures[way].append(figure)
                print(f"{way:>8} {fleet:>7,} workers: {json.dumps(figure)}", flush=True)
                if figure["p99_ms"] > args.p99_ms or figure["failed"]:
                    break
    finally:
        if service is not None:
            service.terminate()
            service.wait(30)
        cluster.stop()
    held = {
        way: max(
            (f["fleet"] for f in rows if f["p99_ms"] <= args.p99_ms and not f["failed"]),
            default=0,
        )
        for way, rows in figures.items()
    }
    # A way that held every size tried was never pushed past the limit: its figure is only a
    # lower bound, and so is (or caps) a ratio it takes part in.
    capped = {way: bool(held[way]) and held[way] == max(fleets) for way in held}
    load = os.getloadavg()[0]
    print()
    print(
        f"largest fleet with p99 under {args.p99_ms:g} ms, a heartbeat every {args.interval:g} s:"
    )
    for way, fleet in held.items():
        print(f"  {way:>8}: {_held_text(fleet, capped[way])}{_ratio(way, held, capped)}")
    print(f"1-minute load average {load:.1f}; fsync on; {args.seconds:g} s per step")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"figures": figures, "held": held, "at_least": capped, "load": load}, indent=2
            )
            + "\n"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
