// The client and the worker SDK without a service: a fake fetch answers as the service would.
import assert from "node:assert/strict";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
import { type AddressInfo, createServer } from "node:net";
import { describe, it } from "node:test";
import {
  CheckoutDenied,
  CustodyClient,
  CustodyError,
  type Lease,
  LeaseLost,
  ProfileLeases,
  ServiceTimedOut,
  ServiceUnreachable,
  StoreUnavailable,
} from "../src/index.js";
import { errorOf } from "../src/client.js";
import { LeaseGuard } from "../src/guard.js";
import { cut, storable } from "../src/text.js";
import { type Answer, fakeFetch, LEASE, scratch, type Sent } from "./fakes.js";


describe("the client", () => {
  it("sends the bearer token and Idempotency-Key, and fills the path escaped", async () => {
    const { fetch, sent } = fakeFetch([{ status: 201, body: LEASE }]);
    const client = new CustodyClient({ baseUrl: "http://svc/", token: "tok", fetch });
    const lease = await client.checkout("p 1", { run_id: "r1", task_type: "t" }, "key-1");
    assert.equal(lease.fencing_token, 7);
    assert.equal(sent[0]?.url, "http://svc/v1/profiles/p%201/checkout");
    assert.equal(sent[0]?.headers.Authorization, "Bearer tok");
    assert.equal(sent[0]?.headers["Idempotency-Key"], "key-1");
    assert.deepEqual(sent[0]?.body, { run_id: "r1", task_type: "t" });
  });

  it("answers each error status with its own error", () => {
    const denial = { profile_id: "p1", reason: "leased", message: "held", remediation: "wait" };
    const denied = errorOf(409, JSON.stringify({ error: "checkout_denied", message: "no", denial }), null);
    assert.ok(denied instanceof CheckoutDenied);
    assert.equal(denied.denial?.reason, "leased");
    assert.ok(errorOf(410, JSON.stringify({ error: "lease_lost", message: "gone" }), null) instanceof LeaseLost);
    const down = errorOf(503, JSON.stringify({ error: "store_unavailable", message: "down" }), "5");
    assert.ok(down instanceof StoreUnavailable);
    assert.equal(down.retryAfterSeconds, 5);
    const refused = errorOf(409, JSON.stringify({ error: "not_allowed", message: "no" }), null);
    assert.ok(refused instanceof CustodyError && !(refused instanceof CheckoutDenied));
    const odd = errorOf(502, "<html>bad gateway</html>", null);
    assert.equal(odd.code, "http_502");
    const backwards = errorOf(503, JSON.stringify({ error: "store_unavailable", message: "down" }), "-30");
    assert.equal((backwards as StoreUnavailable).retryAfterSeconds, 2); // rev20: not -30
  });

  it("names an answer that is not JSON, and follows no redirect (rev20)", async () => {
    const asked: RequestInit[] = [];
    const answers = [
      new Response("<html>captive portal</html>", { status: 201 }),
      new Response("", { status: 308, headers: { Location: "http://elsewhere/leak" } }),
    ];
    const fetch = (async (_input: string | URL | Request, init?: RequestInit) => {
      asked.push(init ?? {});
      return answers.shift() as Response;
    }) as typeof globalThis.fetch;
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const body = { run_id: "r1", task_type: "t" };
    await assert.rejects(client.checkout("p1", body, "key-1"), (error: unknown) => {
      assert.ok(error instanceof CustodyError, String(error));
      assert.equal(error.code, "http_201");
      assert.match(error.message, /is not JSON/);
      return true;
    });
    await assert.rejects(client.checkout("p1", body, "key-1"), (error: unknown) => {
      assert.ok(error instanceof CustodyError, String(error));
      assert.equal(error.code, "http_308");
      assert.match(error.message, /redirect \(HTTP 308\) to http:\/\/elsewhere\/leak; it is never followed/);
      return true;
    });
    assert.deepEqual(asked.map((init) => init.redirect), ["manual", "manual"]);
  });
});

describe("the lease guard", () => {
  it("loses the lease at its local deadline, telling each watcher once", () => {
    let now = 0;
    const guard = new LeaseGuard({ ...LEASE, ttl_seconds: 3 }, 0, () => now);
    const heard: string[] = [];
    guard.onLost((why) => heard.push(why));
    now = 1999;
    assert.ok(guard.held());
    now = 2001; // two thirds of a 3 s TTL after the checkout's start
    assert.ok(!guard.held());
    assert.ok(!guard.held());
    assert.equal(heard.length, 1);
    assert.match(heard[0] ?? "", /deadline/);
  });
});

describe("the lease guard at a hard limit", () => {
  const LIMITED: Lease = { ...LEASE, ttl_seconds: 300, hard_limit_at: "2026-12-02T00:00:02.5Z" };

  it("loses the lease at the hard limit, counted from the checkout's start on its own clock", () => {
    let now = 1000; // the clock's reading just before the checkout was sent
    const guard = new LeaseGuard(LIMITED, 1000, () => now);
    guard.renewed(3000); // a renewal never moves the deadline past the limit
    now = 3499;
    assert.ok(guard.held());
    now = 3500;
    assert.ok(!guard.held());
    assert.match(guard.whyLost, /hard limit of 2.5s reached/);
  });

  it("is asked at the limit, so the lease is lost there though nothing else asks", async () => {
    const started = performance.now();
    const limited = { ...LIMITED, hard_limit_at: "2026-12-02T00:00:00.3Z" };
    const { fetch, sent } = fakeFetch([{ status: 201, body: limited }]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    let why = "";
    await assert.rejects(
      leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async (lease) => {
        await new Promise((done) => setTimeout(done, 600));
        why = lease.whyLost; // read, not asked: `lost` would ask the guard itself
      }),
      LeaseLost,
    );
    assert.match(why, /hard limit/);
    assert.ok(performance.now() - started < 2000);
    assert.equal(sent.filter((s) => s.url.endsWith("/release")).length, 0, "a lost lease is not released");
  });
});

describe("the revocation watch", () => {
  /** `fakeFetch`'s answers, but each long poll of the watch answered `watchAnswer` (or held
   * open, when it is null), and the watch's URLs recorded. */
  function watched(answers: Answer[], watchAnswer: Answer | null): { fetch: typeof fetch; sent: Sent[]; polls: string[] } {
    const { fetch: inner, sent } = fakeFetch(answers);
    const polls: string[] = [];
    const fake: typeof fetch = async (input, init) => {
      if (init?.method === "GET" && String(input).includes("/v1/leases/")) {
        polls.push(String(input));
        if (watchAnswer !== null && "status" in watchAnswer) {
          return new Response(JSON.stringify(watchAnswer.body), { status: watchAnswer.status });
        }
      }
      return inner(input, init);
    };
    return { fetch: fake, sent, polls };
  }

  it("takes a hold of more than 0 and at most 60 seconds, and asks the service for at most 25", async () => {
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok" });
    for (const bad of [0, -1, 61, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new ProfileLeases({ client, watchSeconds: bad }), RangeError, String(bad));
    }
    assert.equal(new ProfileLeases({ client, watchSeconds: 60 }).watchSeconds, 25);
    assert.equal(new ProfileLeases({ client, watchSeconds: 7 }).watchSeconds, 7);
    assert.equal(new ProfileLeases({ client }).watchSeconds, 10);
    const { fetch, polls } = watched(
      [{ status: 201, body: LEASE }, { status: 200, body: { lease_id: LEASE.lease_id, profile_id: "p 1",
        ending: "clean", profile_state: "available", message: "released" } }],
      null,
    );
    const leases = new ProfileLeases({ client: new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch }),
      evidenceDir: await scratch("custody-ts-"), watchSeconds: 60 });
    await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {
      await new Promise((done) => setTimeout(done, 50));
    });
    assert.ok(polls.length >= 1);
    assert.equal(new URL(polls[0] ?? "http://x").searchParams.get("wait"), "25");
  });

  it("loses the lease when the service refuses the watch, rather than run on unwatched", async () => {
    const refused = { status: 422, body: { error: "invalid_input", message: "invalid wait: too long", field: "wait" } };
    const { fetch, sent, polls } = watched([{ status: 201, body: LEASE }], refused);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    let why = "";
    await assert.rejects(
      leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async (lease) => {
        await new Promise((done) => setTimeout(done, 1500));
        why = lease.whyLost;
      }),
      LeaseLost,
    );
    assert.match(why, /the revocation watch was refused \(422 invalid_input\): invalid wait/);
    assert.equal(polls.length, 1, "asked once, not again and again");
    assert.equal(sent.filter((s) => s.url.endsWith("/release")).length, 0);
  });

  it("asks again after an answer that may pass (a 503), the lease held meanwhile", async () => {
    const down = { status: 503, body: { error: "store_unavailable", message: "down" } };
    const { fetch, polls } = watched(
      [{ status: 201, body: LEASE }, { status: 200, body: { lease_id: LEASE.lease_id, profile_id: "p 1",
        ending: "clean", profile_state: "available", message: "released" } }],
      down,
    );
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const evidenceDir = await scratch("custody-ts-");
    const leases = new ProfileLeases({ client, evidenceDir });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {
      await new Promise((done) => setTimeout(done, 1200));
    });
    assert.equal(lease.result?.ending, "clean");
    assert.ok(polls.length >= 2, `${polls.length} polls`);
  });
});

describe("the worker SDK", () => {
  it("releases a task's exception as a failure naming it, then throws it on", async () => {
    const released = { lease_id: LEASE.lease_id, profile_id: "p 1", ending: "failed",
      profile_state: "quarantined", message: "quarantined" };
    const { fetch, sent } = fakeFetch([
      { status: 201, body: { ...LEASE, ttl_seconds: 3 } }, // resent after 200 ms, not 2 s
      { status: 200, body: { ...LEASE, last_step: "submit_order" } },
      { status: 503, body: { error: "store_unavailable", message: "down" }, headers: { "Retry-After": "1" } },
      { status: 200, body: released },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const evidenceDir = await scratch("custody-ts-");
    const leases = new ProfileLeases({ client, evidenceDir });
    await assert.rejects(
      leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async (lease) => {
        await lease.step("submit_order", { mutating: true });
        throw new Error("crashed after submit_order");
      }),
      /crashed after submit_order/,
    );
    const releases = sent.filter((s) => s.url.endsWith("/release"));
    assert.equal(releases.length, 2, "resent once after the 503");
    assert.equal(releases[0]?.headers["Idempotency-Key"], releases[1]?.headers["Idempotency-Key"]);
    assert.equal(releases[1]?.body?.outcome, "failure");
    assert.equal(releases[1]?.body?.reason, "Error: crashed after submit_order");
    assert.equal(releases[1]?.body?.fencing_token, 7);
    assert.equal(sent[1]?.body?.mutating, true);
  });

  it("does not release a lease the service says is lost, and says so", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 201, body: LEASE },
      { status: 410, body: { error: "lease_lost", message: "revoked", lease_id: LEASE.lease_id } },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    await assert.rejects(
      leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async (lease) => {
        await lease.step("dashboard_loaded", { safe: true });
      }),
      LeaseLost,
    );
    assert.equal(sent.filter((s) => s.url.endsWith("/release")).length, 0);
  });

  it("waits out a background renewal's unexpected answer instead of dying of it", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 201, body: { ...LEASE, ttl_seconds: 3 } }, // renewed every second
      { status: 500, body: { error: "internal", message: "the service failed" } }, // at 1 s
      { status: 200, body: LEASE }, // at 1.2 s: the retry period of a 3 s TTL
      { status: 200, body: { lease_id: LEASE.lease_id, profile_id: "p 1", ending: "clean",
        profile_state: "available", message: "released" } },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {
      await new Promise((done) => setTimeout(done, 1600));
    });
    assert.equal(lease.result?.ending, "clean");
    assert.equal(sent.filter((s) => s.url.endsWith("/heartbeat")).length, 2);
  });

  it("throws the task's own error on when its release is refused", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 201, body: LEASE },
      { status: 500, body: { error: "internal", message: "the service failed" } },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    const warned: string[] = [];
    const hear = (warning: Error): void => void warned.push(warning.message);
    process.on("warning", hear);
    try {
      await assert.rejects(
        leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {
          throw new RangeError("the task's own failure");
        }),
        (error: unknown) => error instanceof RangeError && /the task's own failure/.test(error.message),
      );
      await new Promise((done) => setImmediate(done)); // warnings are emitted on the next tick
    } finally {
      process.off("warning", hear);
    }
    assert.equal(sent.filter((s) => s.url.endsWith("/release")).length, 1);
    assert.match(warned.join("\n"), /was not released: CustodyError: the service failed/);
  });
});

describe("a command whose answer was lost", () => {
  const timedOut = (): DOMException => new DOMException("The operation was aborted due to timeout", "TimeoutError");
  const released = { lease_id: LEASE.lease_id, profile_id: "p 1", ending: "clean",
    profile_state: "available", message: "released" };

  it("is resent under its key with its first body: a heartbeat whose answer timed out", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 201, body: { ...LEASE, ttl_seconds: 3 } },
      { lost: timedOut() }, // the step's heartbeat: written, its answer late
      { status: 200, body: LEASE }, // the resend, answered from the first
      { status: 200, body: released },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async (lease) => {
      lease.visited("https://shop.example/pay");
      const stepping = lease.step("submit_order", { mutating: true });
      lease.visited("https://shop.example/order/thanks"); // the page moves on meanwhile
      await stepping;
    });
    assert.equal(lease.result?.ending, "clean");
    const beats = sent.filter((s) => s.url.endsWith("/heartbeat"));
    assert.equal(beats.length, 2, "resent once");
    assert.equal(beats[0]?.headers["Idempotency-Key"], beats[1]?.headers["Idempotency-Key"]);
    assert.deepEqual(beats[1]?.body, beats[0]?.body);
    assert.equal(beats[1]?.body?.url, "https://shop.example/pay");
  });

  it("loses the lease when the resend's answer says it ended since", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 201, body: { ...LEASE, ttl_seconds: 3 } },
      { lost: timedOut() }, // the step's heartbeat: written, its answer late
      { status: 200, body: { ...LEASE, lease_status: "revoked" } }, // force-released since
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    await assert.rejects(
      leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async (lease) => {
        await lease.step("submit_order", { mutating: true });
      }),
      (error: unknown) => error instanceof LeaseLost && /answered the lease as revoked/.test(error.message),
    );
    assert.equal(sent.filter((s) => s.url.endsWith("/release")).length, 0, "a lost lease is not released");
  });

  it("is resent under its key: a release whose answer timed out", async () => {
    const { fetch, sent } = fakeFetch([
      { status: 201, body: { ...LEASE, ttl_seconds: 3 } },
      { lost: new DOMException("This operation was aborted", "AbortError") },
      { status: 200, body: released },
    ]);
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {});
    assert.equal(lease.result?.ending, "clean");
    const releases = sent.filter((s) => s.url.endsWith("/release"));
    assert.equal(releases.length, 2);
    assert.equal(releases[0]?.headers["Idempotency-Key"], releases[1]?.headers["Idempotency-Key"]);
    assert.deepEqual(releases[1]?.body, releases[0]?.body);
  });

  it("is resent once more after the checkout's window closed: a grant is never orphaned", async () => {
    let now = 0;
    const { fetch, sent } = fakeFetch([
      { lost: timedOut() }, // answered after the whole window (the client's 30 s timeout)
      { status: 201, body: LEASE },
      { status: 200, body: released },
    ]);
    const slow: typeof globalThis.fetch = async (input, init) => {
      if (init?.method === "POST" && String(input).endsWith("/checkout")) now += 30_000;
      return fetch(input, init);
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch: slow });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-"),
      clock: () => now });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {});
    assert.equal(lease.result?.ending, "clean");
    const checkouts = sent.filter((s) => s.url.endsWith("/checkout"));
    assert.equal(checkouts.length, 2);
    assert.equal(checkouts[0]?.headers["Idempotency-Key"], checkouts[1]?.headers["Idempotency-Key"]);
  });

  it("renews a grant recovered late before its deadline, counted from the checkout", async () => {
    // TTL 1.5 s: renewed a third of it (0.5 s) after the checkout was first sent, lost at two
    // thirds (1 s). The grant comes back 0.5 s late (two answers lost), so the first heartbeat
    // is due at once, as the Python SDK sends it, not a whole third later (at 1 s, too late).
    let lostAnswers = 2;
    const sent: string[] = [];
    const fetch: typeof globalThis.fetch = async (input, init) => {
      const url = String(input);
      if (init?.method === "GET") {
        const signal = init.signal; // the watch: held open until aborted
        return new Promise((_, reject) => {
          signal?.addEventListener("abort", () => reject(signal.reason));
        });
      }
      sent.push(url);
      if (url.endsWith("/checkout") && lostAnswers-- > 0) throw new TypeError("fetch failed");
      const body = url.endsWith("/release") ? released : { ...LEASE, ttl_seconds: 1.5 };
      return new Response(JSON.stringify(body), { status: url.endsWith("/checkout") ? 201 : 200 });
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
    const evidenceDir = await scratch("custody-ts-");
    const leases = new ProfileLeases({ client, evidenceDir });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {
      await new Promise((done) => setTimeout(done, 1200));
    });
    assert.equal(lease.result?.ending, "clean");
    assert.ok(sent.filter((url) => url.endsWith("/heartbeat")).length >= 2, sent.join(" "));
  });

  it("is not resent past the checkout's window when the service answered 503", async () => {
    let now = 0;
    const down = { status: 503, body: { error: "store_unavailable", message: "down" } };
    const { fetch, sent } = fakeFetch([down, down, down]);
    const slow: typeof globalThis.fetch = async (input, init) => {
      now += 2_000;
      return fetch(input, init);
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch: slow });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-"),
      clock: () => now });
    await assert.rejects(leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {}), StoreUnavailable);
    assert.equal(sent.length, 2);
  });
});

describe("text the SDK derives for the ledger", () => {
  it("escapes what the ledger refuses as Python's storable does, and nothing else", () => {
    assert.equal(storable("a\u0000b"), "a\\x00b");
    assert.equal(storable("lone \ud83d high, lone \ude00 low"), "lone \\ud83d high, lone \\ude00 low");
    assert.equal(storable("\udcff"), "\\udcff");
    assert.equal(storable("a pair \u{1F600} stays, as does \\x00 typed"), "a pair \u{1F600} stays, as does \\x00 typed");
  });

  it("cuts between code points, counting them as the ledger does", () => {
    const text = "x".repeat(1999) + "\u{1F600}".repeat(2);
    const kept = cut(text, 2000);
    assert.equal([...kept].length, 2000);
    assert.ok(kept.endsWith("x\u{1F600}"));
    assert.equal(storable(kept), kept, "no lone surrogate left at the cut");
    assert.equal(cut("short", 2000), "short");
  });
});

describe("a service that never answers", () => {
  /** A server that takes every request and answers none; the requests it took. */
  async function silent(): Promise<{ url: string; took: IncomingMessage[]; stop: () => Promise<void> }> {
    const took: IncomingMessage[] = [];
    const server = createHttpServer((request) => void took.push(request));
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as AddressInfo;
    const stop = async () => {
      server.closeAllConnections();
      await new Promise((done) => server.close(done));
    };
    return { url: `http://127.0.0.1:${port}`, took, stop };
  }

  /**
   * rev41: a request whose answer never came threw fetch's bare `TimeoutError: The operation
   * was aborted due to timeout`, naming no request, where a refused connection names the
   * method and URL (`ServiceUnreachable`). It names them too, and the seconds it waited; it is
   * still a `DOMException` named "TimeoutError".
   */
  it("names the request and the seconds waited", async () => {
    const service = await silent();
    try {
      const client = new CustodyClient({ baseUrl: service.url, token: "tok", timeoutSeconds: 0.3 });
      await assert.rejects(client.profile("p1"), (error: unknown) => {
        assert.ok(error instanceof ServiceTimedOut && error instanceof DOMException, String(error));
        assert.equal(error.name, "TimeoutError");
        assert.equal(error.seconds, 0.3);
        const said = `GET ${service.url}/v1/profiles/p1: no answer within 0.3 s (the request may have been carried out)`;
        assert.equal(error.message, said);
        assert.equal((error.cause as { name?: string }).name, "TimeoutError");
        return true;
      });
    } finally {
      await service.stop();
    }
  });

  it("is resent under the checkout's one key until its deadline, then thrown naming it", async () => {
    const service = await silent();
    const warned: string[] = [];
    const hear = (warning: Error) => warned.push(warning.message);
    process.on("warning", hear);
    try {
      const client = new CustodyClient({ baseUrl: service.url, token: "tok", timeoutSeconds: 0.3 });
      const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-silent-") });
      let ran = false;
      await assert.rejects(
        leases.checkout("p1", { run_id: "r1", task_type: "t", ttl_seconds: 3 }, async () => {
          ran = true;
        }),
        (error: unknown) => {
          assert.ok(error instanceof ServiceTimedOut, String(error));
          assert.match(error.message, new RegExp(`^POST ${service.url}/v1/profiles/p1/checkout: no answer within [0-9.]+ s `));
          return true;
        },
      );
      await new Promise((done) => setImmediate(done));
      assert.equal(ran, false);
      const keys = service.took.map((request) => request.headers["idempotency-key"]);
      assert.ok(keys.length >= 2, `the checkout was sent ${keys.length} times`);
      assert.equal(new Set(keys).size, 1, `resent under other keys: ${keys.join(", ")}`);
      assert.ok(warned.some((w) => w.includes("never answered in time")), JSON.stringify(warned));
    } finally {
      process.off("warning", hear);
      await service.stop();
    }
  });

  it("leaves an abort of the caller's own signal as it is", async () => {
    const service = await silent();
    try {
      const client = new CustodyClient({ baseUrl: service.url, token: "tok", timeoutSeconds: 5 });
      const stop = new AbortController();
      setTimeout(() => stop.abort(), 100);
      await assert.rejects(client.watch("L1", 0, stop.signal), (error: unknown) => {
        assert.ok(!(error instanceof ServiceTimedOut), String(error));
        assert.equal((error as { name?: string }).name, "AbortError");
        return true;
      });
    } finally {
      await service.stop();
    }
  });
});

describe("a service that cannot be reached", () => {
  /**
   * rev29: a worker against a service that was down threw fetch's bare `TypeError: fetch
   * failed`, naming neither the service nor the cause (`ECONNREFUSED` was in `error.cause`),
   * and a base URL without its scheme was sent, resent for 3 s, then reported the same way.
   */
  it("names the request and the cause", async () => {
    const server = createServer();
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    const { port } = server.address() as AddressInfo;
    await new Promise((done) => server.close(done)); // nothing listens there now
    const client = new CustodyClient({ baseUrl: `http://127.0.0.1:${port}`, token: "tok", timeoutSeconds: 5 });
    await assert.rejects(client.profile("p1"), (error: unknown) => {
      assert.ok(error instanceof ServiceUnreachable && error instanceof TypeError);
      assert.equal(error.code, "ECONNREFUSED");
      const said = `GET http://127.0.0.1:${port}/v1/profiles/p1: the service could not be reached (`;
      assert.ok(error.message.startsWith(said) && error.message.includes("ECONNREFUSED"), error.message);
      return true;
    });
  });

  /**
   * rev32: a token with a character a header cannot carry (a pasted curly quote, a line
   * break), a base URL holding a password, or a timeout of 0 made fetch fail before sending;
   * the worker took that for a lost answer, resent the checkout for its whole TTL, then warned
   * of a lease it may have been granted, with the token or the password in the message.
   */
  it("refuses a token, a base URL with a password or a timeout it cannot send with", () => {
    for (const token of ["cst_sek\u2019", "cst_sek\nX-Other: 1", "", "cst_sek ret"]) {
      assert.throws(
        () => new CustodyClient({ baseUrl: "http://svc", token }),
        (error: unknown) => error instanceof TypeError && /^token: /.test(error.message) && !error.message.includes("sek"),
      );
    }
    assert.throws(
      () => new CustodyClient({ baseUrl: "http://u:secret-pw@svc", token: "tok" }),
      (error: unknown) => error instanceof TypeError && /^baseUrl: holds a user/.test(error.message) && !error.message.includes("secret-pw"),
    );
    for (const timeoutSeconds of [0, -1, Number.NaN, Number.POSITIVE_INFINITY, 1e10]) {
      assert.throws(() => new CustodyClient({ baseUrl: "http://svc", token: "tok", timeoutSeconds }), /^RangeError: timeoutSeconds: /);
    }
  });

  /**
   * rev36: a base URL on a port fetch blocks (the Fetch standard's bad ports: 10080, 6000, ...)
   * failed every request before sending ("bad port"), and the worker resent its checkout for
   * the whole TTL, then exited 6 warning of a lease it may have been granted. The client
   * refuses such a base URL when it is made, as bad input; each port it refuses so is one
   * fetch refuses (its own "bad port", sent nowhere), and a port fetch sends to is taken.
   */
  it("refuses a base URL on a port fetch will not send to, and only those", async () => {
    assert.throws(
      () => new CustodyClient({ baseUrl: "http://127.0.0.1:10080", token: "tok" }),
      (error: unknown) => error instanceof TypeError && /^baseUrl: port 10080 is one fetch refuses/.test(error.message),
    );
    const refused: number[] = [];
    for (let port = 0; port <= 65535; port += 1) {
      try {
        new CustodyClient({ baseUrl: `http://127.0.0.1:${port}`, token: "tok" });
      } catch {
        refused.push(port);
      }
    }
    assert.ok(refused.includes(6000) && refused.includes(1) && !refused.includes(8420), String(refused));
    for (const port of refused.filter((p) => p !== 0)) {
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`), (error: unknown) => {
        assert.equal(((error as { cause?: unknown }).cause as Error | undefined)?.message, "bad port", `port ${port}`);
        return true;
      });
    }
    for (const baseUrl of ["http://svc", "http://svc:80", "https://svc:443", "http://svc:8420", "http://svc:10081"]) {
      assert.doesNotThrow(() => new CustodyClient({ baseUrl, token: "tok" }), baseUrl);
    }
  });

  it("refuses an Idempotency-Key a header cannot carry before sending, and never resends it", async () => {
    let calls = 0;
    const { fetch } = fakeFetch([{ status: 201, body: LEASE }]);
    const counting: typeof globalThis.fetch = async (input, init) => {
      calls += 1;
      return fetch(input, init);
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch: counting });
    for (const key of ["k\n1", "k 1", "", "k".repeat(129), "k\u00e9"]) {
      await assert.rejects(client.checkout("p1", { run_id: "r1", task_type: "t" }, key), (error: unknown) => {
        assert.ok(error instanceof TypeError && !(error instanceof ServiceUnreachable), String(error));
        assert.match(error.message, /^Idempotency-Key: 1-128 visible ASCII characters/);
        return true;
      });
    }
    assert.equal(calls, 0);
  });

  it("takes an answer cut short after its headers for a lost answer: resent, the token never said", async () => {
    // rev32 reread: a body read that failed stayed fetch's bare TypeError, which the worker no
    // longer resent, and a lease granted in its name was left to go stale.
    let cut = 1;
    const sent: string[] = [];
    const released = { lease_id: LEASE.lease_id, profile_id: "p 1", ending: "clean",
      profile_state: "available", message: "released" };
    const fetch: typeof globalThis.fetch = async (input, init) => {
      const url = String(input);
      if (init?.method === "GET") {
        const signal = init.signal;
        return new Promise((_, reject) => {
          signal?.addEventListener("abort", () => reject(signal.reason));
        });
      }
      sent.push(url);
      if (url.endsWith("/checkout") && cut-- > 0) {
        const failing = new ReadableStream({
          start(controller) {
            controller.error(new TypeError("terminated", { cause: new Error("other side closed, Bearer cst_secret") }));
          },
        });
        return new Response(failing, { status: 201 });
      }
      const body = url.endsWith("/release") ? released : LEASE;
      return new Response(JSON.stringify(body), { status: url.endsWith("/checkout") ? 201 : 200 });
    };
    const client = new CustodyClient({ baseUrl: "http://svc", token: "cst_secret", fetch });
    const leases = new ProfileLeases({ client, evidenceDir: await scratch("custody-ts-") });
    const lease = await leases.checkout("p 1", { run_id: "r1", task_type: "t" }, async () => {});
    assert.equal(lease.result?.ending, "clean");
    assert.equal(sent.filter((url) => url.endsWith("/checkout")).length, 2);
    cut = 1;
    await assert.rejects(client.checkout("p 1", { run_id: "r1", task_type: "t" }), (error: unknown) => {
      assert.ok(error instanceof ServiceUnreachable, String(error));
      assert.ok(!error.message.includes("cst_secret") && error.message.includes("[token]"), error.message);
      return true;
    });
  });

  /** A client whose every request is recorded (``sent``) and answered with a lease. */
  const recording = () => {
    const sent: string[] = [];
    const fetch: typeof globalThis.fetch = async (input) => {
      sent.push(String(input));
      return new Response(JSON.stringify(LEASE), { status: 200 });
    };
    return { sent, client: new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch }) };
  };
  /** A check that an id was refused before sending, naming ``field``, its message going on with ``why``. */
  const refused = (why: string) => (field: string) => (error: unknown) => {
    assert.ok(error instanceof TypeError && !(error instanceof ServiceUnreachable), String(error));
    assert.match(error.message, new RegExp(`^${field}: ".*" is no id the service takes${why}`));
    return true;
  };

  it("refuses an id that is a dot segment before sending, and sends one that only holds dots (rev38)", async () => {
    // `new URL()` removed "." and "..": why(".") answered the profile "why"'s registration.
    const { sent, client } = recording();
    const refusedBeforeSending = refused("");
    for (const id of [".", "..", "%2e", "%2E", ".%2E", "%2e.", "%2e%2E"]) {
      await assert.rejects(client.why(id), refusedBeforeSending("profile_id"), id);
      await assert.rejects(client.profile(id), refusedBeforeSending("profile_id"), id);
      await assert.rejects(client.forceRelease(id, { reason: "stuck" }), refusedBeforeSending("profile_id"), id);
      await assert.rejects(client.heartbeat(id, { fencing_token: 1 }), refusedBeforeSending("lease_id"), id);
      await assert.rejects(client.watch(id), refusedBeforeSending("lease_id"), id);
    }
    assert.deepEqual(sent, []);
    await client.profile("a.b");
    await client.profile("...");
    await client.watch("lease-1@p..1");
    assert.deepEqual(sent, [
      "http://svc/v1/profiles/a.b",
      "http://svc/v1/profiles/...",
      "http://svc/v1/leases/lease-1%40p..1?wait=0",
    ]);
  });

  it("refuses an id holding a lone surrogate before sending, naming the field (rev44)", async () => {
    // encodeURIComponent threw a bare `URIError: URI malformed`, naming nothing.
    const { sent, client } = recording();
    const refusedBeforeSending = refused(" \\(it holds a lone surrogate");
    for (const id of ["a\ud800b", "\udc00", "lease-1@a\udc00", "p\ud83d"]) {
      await assert.rejects(client.why(id), refusedBeforeSending("profile_id"), id);
      await assert.rejects(client.forceRelease(id, { reason: "stuck" }), refusedBeforeSending("profile_id"), id);
      await assert.rejects(client.heartbeat(id, { fencing_token: 1 }), refusedBeforeSending("lease_id"), id);
      await assert.rejects(client.watch(id), refusedBeforeSending("lease_id"), id);
    }
    assert.deepEqual(sent, []);
    await client.profile("p\ud83d\ude00");  // a whole character, its two halves together
    assert.deepEqual(sent, ["http://svc/v1/profiles/p%F0%9F%98%80"]);
  });

  it("refuses a base URL without its scheme when the client is made", () => {
    for (const baseUrl of ["127.0.0.1:8420", "localhost:8420", "ftp://svc", ""]) {
      assert.throws(() => new CustodyClient({ baseUrl, token: "tok" }), /baseUrl: an http:\/\/ or https:\/\/ URL/);
    }
  });
});
