// The Node worker's checkout and release against answers a review found mishandled (fakes.ts).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { CustodyClient, LeaseLost, ProfileLeases, ServiceUnreachable } from "../src/index.js";
import { fakeFetch, LEASE, scratch } from "./fakes.js";

const timedOut = (): DOMException => new DOMException("The operation was aborted due to timeout", "TimeoutError");

describe("a resent checkout answered with a lease that ended since", () => {
  /**
   * Guarantee (the Python SDK's `checkout`, ce0b5d2; the Node worker's own resend of lost
   * answers): a checkout resent under its key whose first send landed is answered with the
   * lease *as it stands now*; when that lease was revoked (or released) since, the worker must
   * not run its task under it — the Python SDK raises LeaseLost ("granted, then ended before
   * the resend"). The Node worker's `ProfileLeases.checkout` never looks at the granted
   * lease's `lease_status` (9b337fc added the check to heartbeats only): it starts the task
   * (which may launch the browser and act on the account) under a revoked lease.
   */
  it("does not run the task under a lease the resend's answer says was revoked", async () => {
    const { fetch, sent } = fakeFetch([
      { lost: timedOut() }, // the checkout: granted, its answer lost on the way
      { status: 201, body: { ...LEASE, lease_status: "revoked" } }, // force-released since (the service answers a replayed checkout 201)
      { status: 410, body: { error: "lease_lost", message: "revoked", lease_id: LEASE.lease_id } },
      { status: 410, body: { error: "lease_lost", message: "revoked", lease_id: LEASE.lease_id } },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-r8-") });
    let ran = false;
    await assert.rejects(
      leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {
        ran = true;
      }),
      (error: unknown) => error instanceof LeaseLost,
    );
    assert.equal(ran, false, "the task ran under a revoked lease");
    assert.equal(sent.filter((s) => s.url.endsWith("/checkout")).length, 2);
  });
});

describe("an expected failure's reason the ledger counts as empty", () => {
  /**
   * Guarantee (`WorkerLease.expectedFailure`'s doc): a reason the ledger would refuse (empty)
   * is a `RangeError` at once, so the task fails there and its lease is still released. The
   * ledger's test was Python's `str.strip()` (ledger/_commands.py `_expected_failure_says_why`;
   * `says_something` since rev28), which strips U+001C..U+001F and U+0085; the Node worker
   * tested JavaScript's `trim()`, which strips neither. `expectedFailure("\x1c")` is taken; the release is then refused 422 naming
   * `reason` (not a field the worker drops and resends), so `checkout` rejects with that
   * CustodyError and the lease is never released: it stays held until the sweep marks it stale
   * and sends the profile to review, for a run that ended as an expected failure.
   */
  // rev29: "\u200b" (a zero-width space), "\u2800" (Braille's blank) and "\x07" say nothing
  // to the ledger's `says_something` too (its rule since rev28), and were taken here.
  for (const reason of ["\x1c", "\u200b", "\u2800", "\x07", " \u2060\ufe0f"]) {
    it(`refuses at once a reason the ledger takes as saying nothing: ${JSON.stringify(reason)}`, async () => {
      const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "unclean",
        profile_state: "review_required", message: "released" };
      const { fetch, sent } = fakeFetch([
        { status: 201, body: LEASE },
        // what the service answers the release with reason "\x1c" (verified against custody serve)
        { status: 422, body: { error: "invalid_input", field: "reason",
          message: "invalid reason: an expected failure must say what it was (got '\\x1c')" } },
        { status: 200, body: released },
      ]);
      const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
      const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-r8-") });
      await assert.rejects(
        leases.checkout("p1", { run_id: "r1", task_type: "t" }, async (lease) => {
          lease.expectedFailure(reason);
        }),
        (error: unknown) => error instanceof RangeError,
      );
      const releases = sent.filter((s) => s.url.endsWith("/release"));
      assert.equal(releases.length, 1);
    });
  }
});

describe("a grant the extra checkout resend recovers after the local deadline", () => {
  /**
   * Guarantee (worker.ts, the checkout's extra resend after its window): "An answer lost on
   * its way ... may have been a grant: it is asked for once more, so that no lease is left
   * held in this worker's name with nobody running under it."
   *
   * Observed: the first checkout's answer is lost to the client's timeout (30 s by default);
   * the resend returns the grant. The guard's deadline is counted from before the first send
   * (two thirds of the TTL), so with a TTL of 30 s (any TTL up to 45 s against the default
   * timeout) the recovered lease is already lost on the worker's clock when it arrives. The
   * worker still runs the task under it (nothing checks the guard before the task), then
   * `end` sees the guard lost and releases nothing. The ledger's lease is live until the
   * first send's landing + TTL: when that send landed late (a slow service, whose answer then
   * missed the client's timeout) it is left held with nobody running under it, and the sweep
   * marks it stale and sends the profile to review. Expected: a recovered grant the worker
   * will not run under is released (a release of one already past its deadline is answered
   * 410, harmless), and no task runs under it. Lower severity: needs TTL <= 1.5 x the
   * client's timeout.
   */
  it("is released, not left held, when it comes back past the worker's deadline", async () => {
    let now = 0;
    const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "clean",
      profile_state: "available", message: "released" };
    const { fetch, sent } = fakeFetch([
      { lost: timedOut() }, // the checkout: granted at once, its answer lost (the 30 s timeout)
      { status: 201, body: { ...LEASE, ttl_seconds: 30 } }, // the resend returns the grant
      { status: 200, body: released },
      { status: 200, body: released },
    ]);
    const slow: typeof globalThis.fetch = async (input, init) => {
      if (init?.method === "POST" && String(input).endsWith("/checkout") && now === 0) now += 30_000;
      return fetch(input, init);
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch: slow });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-r8-"),
      clock: () => now });
    let ran = false;
    try {
      await leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {
        ran = true;
      });
    } catch {
      // whatever the worker throws, the lease must not be left held
    }
    assert.equal(sent.filter((s) => s.url.endsWith("/checkout")).length, 2, "the grant was recovered");
    assert.equal(sent.filter((s) => s.url.endsWith("/release")).length, 1,
      `the recovered lease was left held (the task ${ran ? "ran" : "did not run"})`);
  });
});

describe("a gateway's 502 or 504 in front of the service", () => {
  /**
   * Guarantee (node-worker.md: "a grant is never left with nobody running under it"; review13):
   * with replicas behind a load balancer, a gateway may answer 504 after the service applied
   * the checkout, or 502 for a release that landed. The worker took both for the ledger's
   * word: the checkout threw with the lease granted in its name (stale after its TTL, the
   * profile sent to review), and a landed release threw. Both are resent under their key.
   */
  it("resends a checkout and a release a gateway answered for, under the same key", async () => {
    const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "clean",
      profile_state: "available", message: "released" };
    const gateway = (status: number) => ({ status, body: "<html>Bad Gateway</html>" });
    const { fetch, sent } = fakeFetch([
      gateway(504), // the checkout: granted, the gateway gave up waiting for its answer
      { status: 201, body: LEASE }, // the resend: the grant, replayed
      gateway(502), // the release: applied, its answer lost at the gateway
      { status: 200, body: released },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-gw-") });
    let ran = false;
    await leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {
      ran = true;
    });
    assert.equal(ran, true, "the task never ran under the lease granted in its name");
    for (const path of ["/checkout", "/release"]) {
      const keys = sent.filter((s) => s.url.endsWith(path)).map((s) => s.headers["Idempotency-Key"]);
      assert.equal(keys.length, 2, `${path} was not resent`);
      assert.ok(keys[0], `${path} was sent without a key`);
      assert.equal(keys[0], keys[1], `${path} was resent under another key`);
    }
  });

  it("does not resend a refusal of the request itself", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 400, body: { error: "invalid_input", field: "run_id", message: "run_id: bad" } },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-gw-") });
    await assert.rejects(leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {}));
    assert.equal(sent.length, 1);
  });
});

describe("a service slower than the client's timeout", () => {
  /**
   * Guarantee (node-worker.md: "a grant is never left with nobody running under it"; rev29):
   * every checkout reached the ledger and the first was granted, but each answer came back
   * after the client's timeout. The worker resent for 3 s and once more, each resend waiting
   * no longer than the first, then threw the TimeoutError: the task never ran and the lease
   * granted in its name went stale and sent the profile to review. A resend after a lost
   * answer now waits twice as long as the one before, until the grant's deadline, so the
   * answer of a slow service is learnt and the task runs under it.
   */
  function slowService(latencyMs: number) {
    const keys: string[] = [];
    let granted = false;
    const fetch: typeof globalThis.fetch = async (input, init) => {
      const path = String(input);
      if (init?.method === "GET") {
        const signal = init.signal;
        return new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
      }
      const key = (init?.headers as Record<string, string>)["Idempotency-Key"] ?? "";
      const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "clean",
        profile_state: "available", message: "released" };
      let answer: Response;
      if (path.endsWith("/checkout")) {
        keys.push(key);
        granted = true; // every send reaches the ledger: the first grants, the rest replay it
        answer = new Response(JSON.stringify(LEASE), { status: 201 });
      } else if (path.endsWith("/release")) {
        releases.push(key);
        answer = new Response(JSON.stringify(released), { status: 200 });
      } else {
        answer = new Response(JSON.stringify(LEASE), { status: 200 });
      }
      const signal = init?.signal;
      return new Promise((done, reject) => {
        const timer = setTimeout(() => done(answer), latencyMs);
        signal?.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(signal.reason);
        });
      });
    };
    const releases: string[] = [];
    return { fetch, keys, releases, granted: () => granted };
  }

  it("learns the grant from a resend that waits longer, and runs the task under it", async () => {
    const service = slowService(1200);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", timeoutSeconds: 0.3, fetch: service.fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-slow-") });
    let ran = false;
    const lease = await leases.checkout("p1", { run_id: "r1", task_type: "t", ttl_seconds: 60 }, async () => {
      ran = true;
    });
    assert.equal(ran, true, "the task never ran under the lease granted in its name");
    assert.ok(service.keys.length >= 2, "the checkout was not resent");
    assert.equal(new Set(service.keys).size, 1, "a resend went under another key");
    // The release's answers are as slow: its resends wait longer too, and learn it.
    assert.equal(lease.result?.ending, "clean");
    assert.ok(service.releases.length >= 2 && new Set(service.releases).size === 1);
  });

  it("gives up at the grant's deadline, saying so, when no answer ever comes in time", async () => {
    const service = slowService(60_000);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", timeoutSeconds: 0.2, fetch: service.fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-slow-") });
    const warnings: string[] = [];
    const warned = (warning: Error) => warnings.push(warning.message);
    process.on("warning", warned);
    const started = Date.now();
    try {
      await assert.rejects(
        leases.checkout("p1", { run_id: "r1", task_type: "t", ttl_seconds: 4 }, async () => {}),
        (error: unknown) => (error as { name?: string }).name === "TimeoutError",
      );
      await new Promise((done) => setImmediate(done));
    } finally {
      process.off("warning", warned);
    }
    const seconds = (Date.now() - started) / 1000;
    assert.ok(seconds >= 3.5 && seconds < 8, `gave up after ${seconds} s, not at the 4 s deadline`);
    assert.ok(warnings.some((w) => w.includes("never answered in time")), JSON.stringify(warnings));
  });
});

describe("a gateway that answers 502 at once, every time", () => {
  /**
   * rev29 reread of the growing resends: with the client's default timeout (30 s) and TTL
   * (300 s), the fourth lost answer capped the resend's timeout at the time left, a fraction
   * of a millisecond, and AbortSignal.timeout threw a RangeError the worker did not resend
   * (the grant left with nobody under it); and once that was mended, a gateway answering 502
   * at once was asked every 250 ms until the grant's deadline (238 requests in 60 s).
   */
  it("learns the grant after fourteen 502s, the resends backing off past the window", async () => {
    const gateway = { status: 502, body: "<html>Bad Gateway</html>" };
    const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "clean",
      profile_state: "available", message: "released" };
    const { fetch, sent } = fakeFetch([...Array<typeof gateway>(14).fill(gateway),
      { status: 201, body: LEASE }, { status: 200, body: released }]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-gw-") });
    let ran = false;
    const started = Date.now();
    await leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {
      ran = true;
    });
    assert.equal(ran, true, "the grant was not learnt");
    assert.equal(sent.filter((s) => s.url.endsWith("/checkout")).length, 15);
    // every 250 ms for the 3 s window, then 500, 1000, 2000 ms: not 14 x 250
    assert.ok(Date.now() - started >= 5500, `15 sends in ${Date.now() - started} ms`);
  });
});

describe("an answer that is not the service's", () => {
  /**
   * rev29 (the node review's suspicion, confirmed here): a 200 or 201 whose body is not JSON (a
   * captive portal, a proxy's page) was a CustodyError the worker never resent, so a checkout
   * the service may have granted behind it failed at once, its grant left with nobody under
   * it. It is resent under its key, as an answer lost on its way.
   */
  it("resends a checkout answered with a page, and learns the grant", async () => {
    const portal = { status: 201, body: "<html>captive portal</html>" };
    const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "clean",
      profile_state: "available", message: "released" };
    const answers = [portal, { status: 201, body: LEASE }, { status: 200, body: released }];
    const sent: string[] = [];
    const fetch = (async (input: string | URL | Request, init?: RequestInit) => {
      if (init?.method === "GET") {
        const signal = init.signal;
        return new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
      }
      sent.push(`${String(input)} ${(init?.headers as Record<string, string>)["Idempotency-Key"]}`);
      const next = answers.shift();
      if (!next) throw new Error("no answer left");
      const text = typeof next.body === "string" ? next.body : JSON.stringify(next.body);
      return new Response(text, { status: next.status });
    }) as typeof globalThis.fetch;
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-page-") });
    let ran = false;
    await leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {
      ran = true;
    });
    assert.equal(ran, true, "the grant behind the page was never learnt");
    const checkouts = sent.filter((s) => s.includes("/checkout "));
    assert.equal(checkouts.length, 2);
    assert.equal(new Set(checkouts.map((s) => s.split(" ")[1])).size, 1, "resent under another key");
  });
});

describe("a fetch that refuses the request before sending it", () => {
  /**
   * rev36: a base URL on a port fetch blocks ("bad port", http://127.0.0.1:10080) was resent
   * for the checkout's whole TTL, then warned that a lease may have been granted, though no
   * request ever left the process. The client refuses such a base URL when it is made; a
   * fetch of the caller's own that refuses so is never taken for a lost answer nor resent.
   */
  it("does not resend a checkout fetch refused as a bad port, nor warn of a grant", async () => {
    let calls = 0;
    const refusing: typeof globalThis.fetch = async () => {
      calls += 1;
      throw new TypeError("fetch failed", { cause: new Error("bad port") });
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch: refusing });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-port-") });
    const warnings: string[] = [];
    const warned = (warning: Error) => warnings.push(warning.message);
    process.on("warning", warned);
    const started = Date.now();
    let ran = false;
    try {
      await assert.rejects(
        leases.checkout("p1", { run_id: "r1", task_type: "t", ttl_seconds: 4 }, async () => {
          ran = true;
        }),
        (error: unknown) => error instanceof ServiceUnreachable && /bad port/.test(error.message),
      );
      await new Promise((done) => setImmediate(done));
    } finally {
      process.off("warning", warned);
    }
    assert.equal(ran, false);
    assert.equal(calls, 1, "a request fetch refused before sending was resent");
    assert.ok(Date.now() - started < 1000, `gave up after ${Date.now() - started} ms`);
    assert.deepEqual(warnings.filter((w) => w.includes("never answered")), []);
  });
});

describe("a task's error whose text cannot be read", () => {
  /**
   * Guarantee (`reasonOf`, as the Python SDK's `reason_of`): naming what the task threw never
   * throws; a message that cannot be read leaves the name, a name that is no string the
   * constructor's, a value with no text its type. rev42: a message getter that throws, a
   * Symbol name, a null-prototype object or a `toString` that throws made `settle` throw, so
   * the lease was never released ("was not released: Error: getter") and went stale. rev42
   * again: a Proxy whose `getPrototypeOf` trap throws made `instanceof Terminated` throw
   * before the release, and the lease was left live.
   */
  const unreadableMessage = (): Error => {
    const error = new Error("x");
    Object.defineProperty(error, "message", { get: () => { throw new Error("getter"); } });
    return error;
  };
  const symbolName = (): Error => {
    const error = new Error("the page went away");
    (error as unknown as { name: unknown }).name = Symbol("s");
    return error;
  };
  const cases: [string, () => unknown, string][] = [
    ["a message getter that throws", unreadableMessage, "Error"],
    ["a Symbol for a name", symbolName, "Error: the page went away"],
    ["a null-prototype object", () => Object.create(null), "object"],
    ["a toString that throws", () => ({ toString: () => { throw new Error("no text"); } }), "object"],
    ["a Proxy whose getPrototypeOf trap throws", () => new Proxy(new Error("p"), {
      getPrototypeOf: () => { throw new Error("proto trap"); },
    }), "Error: p"],
  ];
  for (const [what, make, reason] of cases) {
    it(`releases the lease as a failure named ${JSON.stringify(reason)}: ${what}`, async () => {
      const released = { lease_id: LEASE.lease_id, profile_id: "p1", ending: "unclean",
        profile_state: "review_required", message: "released" };
      const { fetch, sent } = fakeFetch([{ status: 201, body: LEASE }, { status: 200, body: released }]);
      const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
      const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-r42-") });
      const thrown = make();
      await assert.rejects(
        leases.checkout("p1", { run_id: "r1", task_type: "t" }, async () => {
          throw thrown;
        }),
        (error: unknown) => error === thrown, // the task's own, not one the SDK met naming it
      );
      const releases = sent.filter((s) => s.url.endsWith("/release"));
      assert.equal(releases.length, 1, "the lease was not released");
      assert.equal(releases[0]?.body?.outcome, "failure");
      assert.equal(releases[0]?.body?.reason, reason);
    });
  }
});
