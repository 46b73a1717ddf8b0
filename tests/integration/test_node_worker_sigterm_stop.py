"""How a Node worker (clients/typescript, ``ProfileLeases``) stops at SIGTERM, against a real
``custody serve`` on each store (docs/how-to/node-worker.md; docs/operations/workers.md,
"SIGTERM ends the lease truthfully"), as rev42 found it did not:

- a pool of worker loops: a checkout begun after the signal sends nothing, so no lease is left
  live when the process exits 143 (it ran its task, and the process exited under it);
- an application's own ``process.once`` listener decides, as a ``process.on`` one does (Node
  takes a once listener off before calling it, and the SDK exited 143 under the application);
- a service that does not answer holds the stop up ``STOP_WAIT_SECONDS`` only, then the lease
  is left live to go stale, saying so (the release was resent until the lease's local
  deadline, two thirds of its TTL, in silence);
- so too for a release already under way at the signal (it kept the client's 30 s timeout:
  33 s), and for a checkout under way at the signal (resent until the grant's deadline, the
  TTL, in silence).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from node_probe import built, worker_env
from serving import Served, serve

from ledger import Ledger, ProfileState, RegisterProfile
from ledger._domain import events as ev

pytestmark = pytest.mark.slow

# {PART} chooses the application; it prints "working" once its task is under way.
WORKER = """
import { CustodyClient, ProfileLeases } from "CLIENT_INDEX";
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const part = process.env.PART;
let signalled = false;
// After the signal each release takes 1.5 s: the process is still stopping when the pool's
// next checkout begins.
// "giveback": the first checkout's answer is held until the request is abandoned, so the grant
// comes back in a later try past the worker's deadline; every release hangs until abandoned.
const held_up = (signal) => new Promise((resolve, reject) => {
  const alive = setTimeout(resolve, 600_000); // an abort's timer keeps no process alive
  signal?.addEventListener("abort", () => { clearTimeout(alive); reject(signal.reason); },
    { once: true });
});
let checkouts = 0;
const slowed = async (url, init) => {
  if (part === "giveback" && String(url).endsWith("/checkout") && checkouts++ === 0) {
    await fetch(url, init);
    await held_up(init?.signal);
  }
  if (part === "giveback" && String(url).endsWith("/release")) await held_up(init?.signal);
  if (signalled && String(url).endsWith("/release")) await sleep(1500);
  if (part === "ending" && String(url).endsWith("/release")) console.log("releasing");
  return fetch(url, init);
};
const client = new CustodyClient({ baseUrl: process.env.URL, token: process.env.TOKEN,
  fetch: slowed });
const leases = new ProfileLeases({ client, evidenceDir: process.env.EVIDENCE });
const order = (run) => ({ run_id: run, task_type: "t", ttl_seconds: Number(process.env.TTL) });
let stop = false;
if (part === "once") process.once("SIGTERM", () => { stop = true; });
let holding;
const held = new Promise((resolve) => { holding = resolve; });
const first = leases.checkout("p1", order("run_1"), async (lease) => {
  await lease.step("dashboard_loaded", { safe: true });
  holding();
  if (part === "once") {
    console.log("working");
    while (!stop) await sleep(20);
    throw new Error("shutting down");
  }
  if (part === "ending") {
    // The task ends at SIGUSR2: its release is then sent.
    await new Promise((resolve) => process.once("SIGUSR2", resolve));
    throw new Error("the task failed");
  }
  await sleep(600_000);
});
if (part === "checkout" || part === "giveback") console.log("checking out");
if (part === "pool") {
  await held;
  // The pool's other loop: a short job, then the signal between two jobs, then the next job.
  for (let n = 1; n <= 2; n++) {
    await leases.checkout("p2", order(`run_b${n}`), async (lease) => {
      console.log(`b ran ${n}`);
      lease.visited("https://shop.example/done"); // a final URL: released cleanly
      await lease.step("b_working", { safe: true });
      await sleep(n === 1 ? 0 : 600_000);
    });
    if (n === 1) {
      signalled = true;
      process.kill(process.pid, "SIGTERM");
      await sleep(200); // the SDK's listener has run by now
    }
  }
} else {
  await held;
  if (part !== "once") console.log("working");
}
try {
  await first;
  console.log(JSON.stringify({ thrown: null }));
} catch (e) {
  console.log(JSON.stringify({ thrown: e.name }));
}
"""


@pytest.fixture
def service(store_url: str) -> Iterator[Served]:
    """``custody serve`` on a fresh store of each kind holding p1 and p2."""
    with Ledger.open(store_url) as ledger:
        for profile in ("p1", "p2"):
            ledger.handle(RegisterProfile(profile_id=profile, account_id="a1", proxy_id="x1"))
    running = serve(store_url)
    try:
        yield running
    finally:
        running.stop()


def start(service: Served, tmp_path: Path, part: str, ttl: int = 60) -> subprocess.Popen[str]:
    script = tmp_path / "worker.mjs"
    script.write_text(WORKER.replace("CLIENT_INDEX", built().as_uri()))
    env = {**os.environ, **worker_env(service, tmp_path, PART=part, TTL=str(ttl))}
    return subprocess.Popen(
        ["node", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def until_working(worker: subprocess.Popen[str]) -> str:
    """What the worker printed up to "working" (the task under way)."""
    assert worker.stdout is not None
    said: list[str] = []
    for line in worker.stdout:
        said.append(line)
        if line.strip() == "working":
            return "".join(said)
    raise AssertionError(f"the worker never said working: {''.join(said)}")


def history(service: Served, profile: str) -> list[ev.ProfileEvent]:
    with Ledger.open(service.store_url) as ledger:
        return list(ledger.history(profile))


def state_of(service: Served, profile: str) -> ProfileState:
    with Ledger.open(service.store_url) as ledger:
        return ledger.view(profile).state


def _stopped(worker: subprocess.Popen[str], timeout: float) -> tuple[str, str, float]:
    """SIGTERM ``worker``: its stdout and stderr, and the seconds it took to end."""
    signalled = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    out, err = worker.communicate(timeout=timeout)
    return out, err, time.monotonic() - signalled


def _stopped_checking_out(
    service: Served, tmp_path: Path, part: str, ttl: int
) -> tuple[int | None, str, str, float]:
    """The worker's ``part`` SIGTERMed 1 s after it began its checkout: its exit status, stdout,
    stderr, and the seconds it took to end."""
    with start(service, tmp_path, part, ttl=ttl) as worker:
        try:
            assert worker.stdout is not None
            said = worker.stdout.readline()
            assert said == "checking out\n", said
            time.sleep(1)
            out, err, took = _stopped(worker, 60)
        finally:
            worker.kill()
    return worker.returncode, out, err, took


def test_a_pools_checkout_after_sigterm_sends_nothing(service: Served, tmp_path: Path) -> None:
    """One loop holds p1; the other takes p2, is released, SIGTERM comes, and it checks p2 out
    again. That checkout is never sent: the process exits 143 once p1 is released, with no
    lease of p2 left live to go stale (rev42: the second lease of p2 ran its task, and the
    process exited under it once the leases held at the signal were released)."""
    with start(service, tmp_path, "pool") as worker:
        try:
            out, err = worker.communicate(timeout=60)
        finally:
            worker.kill()
    assert worker.returncode == 143, out + err
    assert "b ran 1" in out
    assert "b ran 2" not in out, out
    acquired = [e for e in history(service, "p2") if isinstance(e, ev.LeaseAcquired)]
    assert [e.lease.run_id for e in acquired] == ["run_b1"]
    assert state_of(service, "p2") is ProfileState.AVAILABLE
    (release,) = [e for e in history(service, "p1") if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.envelope.reason == "terminated by SIGTERM at step 'dashboard_loaded'"


def test_an_applications_once_listener_decides(service: Served, tmp_path: Path) -> None:
    """``process.once("SIGTERM", ...)`` is the application's listener, as ``process.on`` is:
    the SDK only notes the signal, the application's task ends its own way, and the release
    says SIGTERM came and what the task threw; the process exits as the application does."""
    with start(service, tmp_path, "once") as worker:
        try:
            said = until_working(worker)
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
        finally:
            worker.kill()
    assert worker.returncode == 0, said + out + err
    assert json.loads(out.strip().splitlines()[-1]) == {"thrown": "Error"}
    (release,) = [e for e in history(service, "p1") if isinstance(e, ev.LeaseReleaseRequested)]
    assert release.envelope.reason == (
        "terminated by SIGTERM at step 'dashboard_loaded' (Error: shutting down)"
    )


@pytest.mark.parametrize("down", ["stopped", "hung"])
def test_a_service_that_does_not_answer_holds_the_stop_up_five_seconds(
    service: Served, tmp_path: Path, down: str
) -> None:
    """The service stopped (connections refused) or hung (SIGSTOP: connections taken, never
    answered) under a held lease; SIGTERM: the release is resent for ``STOP_WAIT_SECONDS`` (5 s)
    from the signal, each try waiting 5 s at most, once more past it when an answer was lost,
    then the lease is left live to go stale, a process warning saying so, and the process
    exits 143 (rev42: 58 s at a 90 s TTL in silence, about 200 s at the default TTL)."""
    with start(service, tmp_path, "sleeping", ttl=90) as worker:
        try:
            said = until_working(worker)
            if down == "stopped":
                service.stop()
            else:
                service.process.send_signal(signal.SIGSTOP)
            out, err, took = _stopped(worker, 120)
        finally:
            worker.kill()
            if down == "hung":
                service.process.send_signal(signal.SIGCONT)
    assert worker.returncode == 143, said + out + err
    assert took < 20, (took, err)  # 5 s, a last try of 5 s after a lost answer, the rest
    assert "custody: lease-1@p1 was not released: " in err, err
    assert "lease-1@p1 is left live, to go stale at its deadline" in err, err
    if down == "hung":
        assert "the release may have been taken" in err, err
    assert state_of(service, "p1") is ProfileState.LEASED
    assert not [e for e in history(service, "p1") if isinstance(e, ev.LeaseReleaseRequested)]


def test_a_release_under_way_at_sigterm_is_abandoned_five_seconds_after_it(
    service: Served, tmp_path: Path
) -> None:
    """The service hung (SIGSTOP), the task ends and its release is sent; SIGTERM comes while
    that release waits for its answer: the try is abandoned ``STOP_WAIT_SECONDS`` after the
    signal, whatever timeout it was sent with, then tried once more for 5 s (its answer was
    lost), then the lease is left live, saying so: about 10 s (rev42 revB: the try kept the
    client's 30 s timeout, then one more: 33 s, past Kubernetes' 30 s grace, and the warning
    was never written)."""
    with start(service, tmp_path, "ending", ttl=90) as worker:
        try:
            said = until_working(worker)
            service.process.send_signal(signal.SIGSTOP)
            worker.send_signal(signal.SIGUSR2)
            assert worker.stdout is not None
            said += worker.stdout.readline()
            assert said.endswith("releasing\n"), said
            time.sleep(1)
            out, err, took = _stopped(worker, 120)
        finally:
            worker.kill()
            service.process.send_signal(signal.SIGCONT)
    assert worker.returncode == 143, said + out + err
    assert 9 < took < 15, (took, err)  # 5 s to the bound, a last try of 5 s, the rest
    assert "lease-1@p1 is left live, to go stale at its deadline" in err, err
    assert "the release may have been taken" in err, err


def test_a_checkout_under_way_at_sigterm_has_the_same_bound(
    service: Served, tmp_path: Path
) -> None:
    """The service hung (SIGSTOP) before the checkout is sent; SIGTERM comes while it waits
    for its answer: it is abandoned ``STOP_WAIT_SECONDS`` after the signal, tried once more for
    5 s (the grant may have landed), then a process warning names the profile whose lease may
    be left live, and the process exits 143 with no task run (rev42 revB: resent until the
    grant's deadline, the TTL, 300 s by default, in silence)."""
    service.process.send_signal(signal.SIGSTOP)
    try:
        returncode, out, err, took = _stopped_checking_out(service, tmp_path, "checkout", 90)
    finally:
        service.process.send_signal(signal.SIGCONT)
    assert returncode == 143, out + err
    assert 9 < took < 15, (took, err)
    assert "working" not in out, out
    assert (
        "custody: the process was stopped and the checkout of p1 was not answered within 5s: "
        "a lease it may have been granted is left live, to go stale at its deadline"
    ) in err, err


def test_a_grant_given_back_during_a_stop_has_the_same_bound(
    service: Served, tmp_path: Path
) -> None:
    """SIGTERM while the checkout is decided (TTL 7 s, its first answer held up); the grant
    comes back in the last try past the worker's deadline and is given back: that release is
    bounded as every release after the signal (rev42 revC: sent with the client's 30 s, the
    stop took 38 s, past Kubernetes' grace). About 5 s to the bound, then one try of 5 s."""
    returncode, out, err, took = _stopped_checking_out(service, tmp_path, "giveback", 7)
    assert returncode == 143, out + err
    assert took < 15, (took, err)
    assert "working" not in out, out
    assert "custody: lease-1@p1 was not released: TimeoutError" in err, err
    assert "no answer within 5 s" in err, err
