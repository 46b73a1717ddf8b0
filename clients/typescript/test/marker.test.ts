// The lease's marker on the profile directory (src/marker.ts) and what `browser()` does with
// it, its directory and its proxy, as the Python SDK does (workers/_profile_dir.py,
// workers/_settings.py): the marker's JSON text, the judging rules, the lock a Python worker
// takes too, and the launch refused before any browser starts.
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { BrowserType } from "playwright-core";
import { claim, CustodyClient, LaunchRefused, LeaseLost, MARKER, ProfileLeases } from "../src/index.js";
import { lock } from "../src/marker.js";
import { PREFERENCES, pinWebrtcPolicy, WEBRTC_POLICY } from "../src/worker.js";
import { type Answer, fakeFetch, LEASE } from "./fakes.js";

const FIXTURE = new URL("../../test/fixtures/python-marker.json", import.meta.url);
const PYTHON = ["python3", "/usr/bin/python3"].find((p) => spawnSync(p, ["-c", "pass"]).status === 0);

// Each test's directories, removed once the file's tests are done (54 were left in /tmp a run).
const made: string[] = [];
after(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));
const fresh = async (): Promise<string> => {
  const dir = await mkdtemp(join(tmpdir(), "custody-marker-"));
  made.push(dir);
  return dir;
};
const lease = (token: number, profile = "p1") => ({ ...LEASE, profile_id: profile, fencing_token: token });

async function marked(text: string): Promise<string> {
  const dir = await fresh();
  await writeFile(join(dir, MARKER), text);
  return dir;
}

describe("the marker's text", () => {
  it("is what Python's claim writes for the same lease, byte for byte", async () => {
    // test/fixtures/python-marker.json: written by workers._profile_dir.claim, its clock fixed.
    const python = await readFile(FIXTURE, "utf8");
    const dir = join(await fresh(), "not", "yet"); // made, parents too, as Python makes it
    const written = await claim(dir, {
      fencing_token: 7,
      lease_id: "lease_0001",
      profile_id: "p\u00e9_1",
      worker_id: 'worker "w"\\1',
      run_id: "run_\u00e9\u{1F600}\u007f\t\u2028\u0001/",
    }, { now: new Date("2026-12-03T22:56:34.866Z") });
    assert.equal(await readFile(join(dir, MARKER), "utf8"), python);
    assert.deepEqual(written, JSON.parse(python));
  });

  it("matches Python's json.dumps(sort_keys=True) for awkward text", { skip: !PYTHON && "no python3" }, async () => {
    const run_id = "a\u0000b\u001f\u007f\u0080\uffff\u{10ffff}\\\"'/\r\n\b\f</script>";
    const dir = await fresh();
    await claim(dir, { ...lease(3), run_id, worker_id: "w\u00e9" }, { now: new Date("2026-01-01T00:00:00Z") });
    const node = await readFile(join(dir, MARKER), "utf8");
    const script = "import json,sys; m=json.loads(sys.stdin.read()); print(json.dumps(m, sort_keys=True), end='')";
    const python = spawnSync(PYTHON as string, ["-c", script], { input: node, encoding: "utf8" });
    assert.equal(python.stdout, node);
    assert.equal(JSON.parse(node).run_id, run_id);
    assert.match(node, /"written_at": "2026-01-01T00:00:00\+00:00"/); // as isoformat() drops zero microseconds
  });
});

describe("the marker's judging rules (Python's _judge)", () => {
  it("writes a missing or empty marker, and one with a lower or the same token of this profile", async () => {
    for (const before of [null, "", "  \n", '{"fencing_token": 6, "profile_id": "p1"}', '{"fencing_token": 7, "profile_id": "p1"}']) {
      const dir = before === null ? await fresh() : await marked(before);
      await claim(dir, lease(7));
      const after = JSON.parse(await readFile(join(dir, MARKER), "utf8"));
      assert.equal(after.fencing_token, 7, String(before));
      assert.equal(after.lease_id, LEASE.lease_id);
    }
  });

  it("refuses a higher token of this profile with LaunchRefused (the lease is not lost), and leaves the marker as it was", async () => {
    const before = '{"fencing_token": 99, "profile_id": "p1", "lease_id": "later"}';
    const dir = await marked(before);
    await assert.rejects(claim(dir, lease(1)), (error: unknown) => {
      assert.ok(error instanceof LaunchRefused);
      assert.ok(!(error instanceof LeaseLost));
      const path = join(dir, MARKER);
      assert.equal(
        error.message,
        `${path} holds fencing token 99, higher than lease ${LEASE.lease_id}'s 1, which the ledger has just ` +
          "renewed: the directory was opened under a lease this store never granted (copied or restored " +
          "from another store, or the store was created anew), or by a later lease of this profile in a " +
          `race. Once no browser uses it (custody inspect p1), remove ${path}: the next launch writes its own`,
      );
      return true;
    });
    assert.equal(await readFile(join(dir, MARKER), "utf8"), before);
  });

  it("refuses the same token written for another run with LaunchRefused, as Python's _judge", async () => {
    const before = '{"fencing_token": 1, "profile_id": "p1", "run_id": "r_first", "worker_id": "w1"}';
    for (const [worker, run] of [["w1", "r_second"], ["w2", "r_first"]] as const) {
      const dir = await marked(before);
      await assert.rejects(claim(dir, { ...lease(1), worker_id: worker, run_id: run }), (error: unknown) => {
        assert.ok(error instanceof LaunchRefused);
        const path = join(dir, MARKER);
        assert.equal(
          error.message,
          `${path} holds fencing token 1 for run r_first of worker w1, not for lease ${LEASE.lease_id}'s run ` +
            `${run} of worker ${worker}: the store granted this token twice (it was created anew, or restored ` +
            `from a backup). Once no browser uses the directory (custody inspect p1), remove ${path}: the ` +
            "next launch writes its own",
        );
        return true;
      });
      assert.equal(await readFile(join(dir, MARKER), "utf8"), before);
    }
    const same = await marked(before); // a relaunch of the same run is taken
    await claim(same, { ...lease(1), worker_id: "w1", run_id: "r_first" });
  });

  it("refuses another profile's directory with LaunchRefused, whatever the tokens", async () => {
    const before = '{"fencing_token": 1, "profile_id": "p2"}';
    const dir = await marked(before);
    await assert.rejects(claim(dir, lease(50)), (error: unknown) => {
      assert.ok(error instanceof LaunchRefused);
      assert.equal(
        error.message,
        `${dir} carries the lease marker of profile p2 (fencing token 1): it is p2's directory, not p1's, ` +
          `and one directory never serves two profiles; once p2 no longer uses it, remove ${join(dir, MARKER)}`,
      );
      return true;
    });
    assert.equal(await readFile(join(dir, MARKER), "utf8"), before);
  });

  it("refuses a marker it cannot read with LaunchRefused, and leaves it as it was", async () => {
    const unreadable = [
      "not json",
      "[1, 2]",
      '"p1"',
      "null",
      '{"fencing_token": "7", "profile_id": "p1"}',
      '{"fencing_token": true, "profile_id": "p1"}',
      '{"fencing_token": 1.5, "profile_id": "p1"}',
      '{"fencing_token": 1}',
      '{"fencing_token": 1, "profile_id": null}',
      '{"profile_id": "p1"}',
    ];
    for (const before of unreadable) {
      const dir = await marked(before);
      await assert.rejects(claim(dir, lease(7)), (error: unknown) => {
        assert.ok(error instanceof LaunchRefused, before);
        assert.match(error.message, /cannot be read: check the directory, then remove it$/);
        return true;
      });
      assert.equal(await readFile(join(dir, MARKER), "utf8"), before);
    }
  });
});

/** A Python process holding `fcntl.flock(LOCK_EX)` on `path`: it says "held", then after
 * `seconds` writes `then` (if any) into the file and lets the lock go. */
function pythonHolding(path: string, seconds: number, then: string | null): Promise<ChildProcess & { closed: Promise<unknown> }> {
  const script = [
    "import fcntl, os, sys, time",
    "f = open(sys.argv[1], 'r+')",
    "fcntl.flock(f, fcntl.LOCK_EX)",
    "print('held', flush=True)",
    "time.sleep(float(sys.argv[2]))",
    "if sys.argv[3]:",
    "    f.seek(0); f.truncate(); f.write(sys.argv[3]); f.flush(); os.fsync(f.fileno())",
    "fcntl.flock(f, fcntl.LOCK_UN)",
  ].join("\n");
  const child = spawn(PYTHON as string, ["-c", script, path, String(seconds), then ?? ""], { stdio: ["ignore", "pipe", "inherit"] });
  const closed = new Promise((done) => child.on("close", done));
  return new Promise((done, fail) => {
    child.stdout?.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("held")) done(Object.assign(child, { closed }));
    });
    child.on("error", fail);
  });
}

describe("the marker's lock, shared with Python workers", { skip: !PYTHON && "no python3" }, () => {
  it("waits while a Python worker holds fcntl.flock on the marker, then reads what it wrote", async () => {
    const dir = await marked("");
    const python = await pythonHolding(join(dir, MARKER), 1.5, '{"fencing_token": 9, "profile_id": "p1"}');
    const started = performance.now();
    // Unlocked, the claim would read the empty marker at once and write token 3 under Python.
    await assert.rejects(claim(dir, lease(3)), (error: unknown) => {
      assert.ok(error instanceof LaunchRefused);
      assert.match(error.message, /holds fencing token 9, higher than lease .+'s 3, /);
      return true;
    });
    assert.ok(performance.now() - started > 1200, "the claim did not wait for Python's lock");
    await python.closed;
    assert.equal(JSON.parse(await readFile(join(dir, MARKER), "utf8")).fencing_token, 9);
  });

  it("excludes a Python worker's fcntl.flock while it holds the lock, and lets it go after", async () => {
    const dir = await marked("");
    const path = join(dir, MARKER);
    const tryLock = (): string => {
      const script = [
        "import fcntl, sys",
        "f = open(sys.argv[1], 'r+')",
        "try:",
        "    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)",
        "    print('free')",
        "except BlockingIOError:",
        "    print('busy')",
      ].join("\n");
      return spawnSync(PYTHON as string, ["-c", script, path], { encoding: "utf8" }).stdout.trim();
    };
    const release = await lock(path, 5);
    try {
      assert.equal(tryLock(), "busy");
    } finally {
      await release();
    }
    assert.equal(tryLock(), "free");
  });

  it("gives up after its wait with LaunchRefused, the marker untouched", async () => {
    const dir = await marked("");
    const python = await pythonHolding(join(dir, MARKER), 3, null);
    try {
      await assert.rejects(claim(dir, lease(3), { waitSeconds: 1 }), (error: unknown) => {
        assert.ok(error instanceof LaunchRefused);
        assert.match(error.message, /was not had within 1 s: another launch holds it/);
        return true;
      });
      assert.equal(await readFile(join(dir, MARKER), "utf8"), "");
    } finally {
      python.kill();
    }
  });

  it("names flock(1) when it cannot be run", async () => {
    const dir = await fresh();
    await assert.rejects(claim(dir, lease(3), { flock: "/nonexistent/flock" }), (error: unknown) => {
      assert.ok(error instanceof LaunchRefused);
      assert.match(error.message, /\/nonexistent\/flock could not be run .*util-linux/);
      return true;
    });
  });
});

// -- browser(): the directory, the marker and the proxy, before any browser starts ------------

interface Launched {
  directory: string;
  options: Record<string, unknown>;
}

/** A browserType whose persistent context is a stand-in, recording each launch. */
function fakeChromium(): { chromium: BrowserType; launched: Launched[] } {
  const launched: Launched[] = [];
  const context = { route: async () => {}, pages: () => [], on: () => {}, close: async () => {} };
  const chromium = {
    launchPersistentContext: async (directory: string, options: Record<string, unknown>) => {
      launched.push({ directory, options });
      return context;
    },
  } as unknown as BrowserType;
  return { chromium, launched };
}

const RELEASED = { lease_id: LEASE.lease_id, profile_id: LEASE.profile_id, ending: "released_cleanly",
  profile_state: "available", message: "released" };

/** Checkout, the registration, the launch's heartbeat, the release. */
function answers(registered: string | null, proxy = "x1"): Answer[] {
  const record = { profile_id: LEASE.profile_id, account_id: "a1", proxy_id: proxy, user_data_dir: registered,
    release_policy: "manual_review_on_unknown_state", unclean_limit: 3, unclean_window_seconds: 3600 };
  return [
    { status: 201, body: { ...LEASE, proxy_id: proxy } },
    { status: 200, body: record },
    { status: 200, body: { ...LEASE, proxy_id: proxy } },
    { status: 200, body: RELEASED },
  ];
}

async function run(
  registered: string | null,
  options: { proxies?: ConstructorParameters<typeof ProfileLeases>[0]["proxies"]; profileDir?: (id: string) => string;
    launch?: Record<string, unknown>; proxy?: string } = {},
) {
  const { fetch, sent } = fakeFetch(answers(registered, options.proxy));
  const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
  const leases = new ProfileLeases({
    client,
    evidenceDir: await fresh(),
    proxies: options.proxies ?? { x1: "direct" },
    ...(options.profileDir ? { profileDir: options.profileDir } : {}),
  });
  const { chromium, launched } = fakeChromium();
  const outcome = leases.checkout(LEASE.profile_id, { run_id: "r1", task_type: "t" }, async (lease) => {
    await lease.browser(chromium, async () => {}, options.launch ?? {});
  });
  return { outcome, sent, launched };
}

describe("browser() before the launch", () => {
  it("does not launch on a directory a later lease of the profile opened (the review's repro)", async () => {
    const dir = await marked(`{"fencing_token": 99, "profile_id": "${LEASE.profile_id}", "lease_id": "later"}`);
    const { outcome, launched } = await run(dir);
    await assert.rejects(outcome, (error: unknown) => {
      assert.ok(error instanceof LaunchRefused);
      assert.match(error.message, /holds fencing token 99, higher than lease .+'s 7, /);
      return true;
    });
    assert.deepEqual(launched, [], "the browser was launched under a superseded token");
  });

  it("launches on the registered directory, marked with the lease, with the resolved proxy", async () => {
    const dir = join(await fresh(), "registered");
    const server = { server: "http://10.0.0.5:3128", username: "u", password: "p" };
    const { outcome, sent, launched } = await run(dir, { proxies: { proxy_de: server }, proxy: "proxy_de",
      profileDir: () => "/elsewhere", launch: { executablePath: "/usr/bin/chromium" } });
    await outcome;
    assert.equal(launched.length, 1);
    assert.equal(launched[0]?.directory, dir);
    assert.deepEqual(launched[0]?.options.proxy, server);
    assert.equal(launched[0]?.options.executablePath, "/usr/bin/chromium");
    const mark = JSON.parse(await readFile(join(dir, MARKER), "utf8"));
    assert.equal(mark.fencing_token, 7);
    assert.equal(mark.profile_id, LEASE.profile_id);
    assert.ok(sent.some((s) => s.method === "GET" && s.url.endsWith(`/v1/profiles/${encodeURIComponent(LEASE.profile_id)}`)));
    const release = sent.find((s) => s.url.endsWith("/release"));
    assert.equal(release?.body?.observed_proxy, "proxy_de");
  });

  it("launches direct for a proxy id mapped to DIRECT or null, or a function's", async () => {
    for (const proxies of [{ x1: "direct" as const }, { x1: null }, (id: string) => (id === "x1" ? "direct" as const : undefined)]) {
      const dir = join(await fresh(), "d");
      const { outcome, launched } = await run(dir, { proxies });
      await outcome;
      assert.equal(launched.length, 1);
      assert.ok(!("proxy" in (launched[0]?.options ?? {})));
      // Direct, whatever proxy the environment names: Chromium reads http_proxy without a switch;
      // never with shared workers (rev43: their requests pass no route).
      assert.deepEqual(launched[0]?.options.args, ["--disable-blink-features=SharedWorker", "--no-proxy-server"]);
    }
  });

  it("pins WebRTC to the proxy in the profile's preferences before the launch, keeping the rest and the file's mode", async () => {
    const dir = join(await fresh(), "p");
    const prefs = join(dir, PREFERENCES);
    await mkdir(join(dir, "Default"), { recursive: true });
    await writeFile(prefs, JSON.stringify({ intl: { accept_languages: "de" }, webrtc: { ip_handling_policy: "default" } }), { mode: 0o600 });
    const { outcome, launched } = await run(dir);
    await outcome;
    assert.equal(launched.length, 1);
    assert.deepEqual(JSON.parse(await readFile(prefs, "utf8")), {
      intl: { accept_languages: "de" },
      webrtc: { ip_handling_policy: WEBRTC_POLICY },
    });
    assert.equal((await stat(prefs)).mode & 0o777, 0o600);
    const fresh_ = join(await fresh(), "new");
    await pinWebrtcPolicy(fresh_);
    assert.deepEqual(JSON.parse(await readFile(join(fresh_, PREFERENCES), "utf8")), { webrtc: { ip_handling_policy: WEBRTC_POLICY } });
    assert.equal((await stat(join(fresh_, PREFERENCES))).mode & 0o777, 0o600);
    await writeFile(prefs, "{not json");
    const refused = await run(dir);
    await assert.rejects(refused.outcome, (error: unknown) => error instanceof LaunchRefused && /to pin WebRTC to the proxy/.test(error.message));
    assert.deepEqual(refused.launched, []);
    assert.equal(await readFile(prefs, "utf8"), "{not json");
  });

  it("falls back to profileDir when the profile has no registered directory", async () => {
    const base = await fresh();
    const { outcome, launched } = await run(null, { profileDir: (id) => join(base, id) });
    await outcome;
    assert.equal(launched[0]?.directory, join(base, LEASE.profile_id));
    assert.ok(existsSync(join(base, LEASE.profile_id, MARKER)));
  });

  it("refuses with LaunchRefused: no directory, a proxy id it cannot resolve, a userDataDir or proxy option", async () => {
    const dir = join(await fresh(), "d");
    const refusals: [Parameters<typeof run>, RegExp][] = [
      [[null], /profile p 1 was registered without a user_data_dir and this worker has no profileDir/],
      [[dir, { proxies: { other: "direct" } }], /no proxy configured for "x1": map it in ProfileLeases\(\{ proxies \}\) or in the file \$CUSTODY_PROXIES names/],
      [[dir, { proxies: () => undefined }], /no proxy configured for "x1"/],
      [[dir, { launch: { userDataDir: "/tmp/x" } }], /^userDataDir comes from the lease's profile, not a launch option$/],
      [[dir, { launch: { proxy: { server: "http://p" } } }], /^proxy comes from the lease's profile, not a launch option$/],
      // Chromium obeys the last --proxy-server it is given: Playwright puts the caller's after its own.
      [[dir, { launch: { args: ["--proxy-server=direct://"] } }], /^"--proxy-server=direct:\/\/" would change the browser's proxy/],
      [[dir, { launch: { args: ["-User-Data-Dir=/tmp/x"] } }], /would change the browser's proxy, profile directory or WebRTC policy/],
      [[dir, { launch: { args: ["--force-webrtc-ip-handling-policy=default"] } }], /WebRTC policy/],
      [[dir, { launch: { ignoreDefaultArgs: ["--proxy-bypass-list=<-loopback>"] } }], /not a launch argument$/],
      [[dir, { launch: { ignoreDefaultArgs: true } }], /^ignoreDefaultArgs: true would drop the lease's proxy and profile directory/],
    ];
    for (const [args, message] of refusals) {
      const { outcome, launched } = await run(...args);
      await assert.rejects(outcome, (error: unknown) => {
        assert.ok(error instanceof LaunchRefused, String(error));
        assert.match(error.message, message);
        return true;
      });
      assert.deepEqual(launched, []);
    }
    assert.ok(!existsSync(join(dir, MARKER)), "a refused launch marked the directory");
  });

  it("takes a marker wait of more than 0 seconds only", () => {
    const client = new CustodyClient({ baseUrl: "http://svc", token: "tok" });
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => new ProfileLeases({ client, markerWaitSeconds: bad }), RangeError, String(bad));
    }
    assert.equal(new ProfileLeases({ client }).markerWaitSeconds, 60);
  });

  it("reads $CUSTODY_PROXIES when it is given no proxies, as the Python SDK does", async () => {
    const base = await fresh();
    const file = join(base, "proxies.json");
    await writeFile(file, JSON.stringify({ x1: { server: "socks5://127.0.0.1:1080" } }));
    const before = process.env.CUSTODY_PROXIES;
    process.env.CUSTODY_PROXIES = file;
    try {
      const { fetch } = fakeFetch(answers(join(base, "d")));
      const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
      const leases = new ProfileLeases({ client, evidenceDir: base });
      const { chromium, launched } = fakeChromium();
      await leases.checkout(LEASE.profile_id, { run_id: "r1", task_type: "t" }, async (lease) => {
        await lease.browser(chromium, async () => {});
      });
      assert.deepEqual(launched[0]?.options.proxy, { server: "socks5://127.0.0.1:1080" });
    } finally {
      if (before === undefined) delete process.env.CUSTODY_PROXIES;
      else process.env.CUSTODY_PROXIES = before;
    }
  });

  it("refuses $CUSTODY_PROXIES and $CUSTODY_EVIDENCE_DIR set but empty, never reads them as unset", async () => {
    const base = await fresh();
    const before = [process.env.CUSTODY_PROXIES, process.env.CUSTODY_EVIDENCE_DIR] as const;
    process.env.CUSTODY_PROXIES = "";
    process.env.CUSTODY_EVIDENCE_DIR = " ";
    try {
      const { fetch } = fakeFetch(answers(join(base, "d")));
      const client = new CustodyClient({ baseUrl: "http://svc", token: "tok", fetch });
      assert.throws(() => new ProfileLeases({ client }), /^RangeError: CUSTODY_EVIDENCE_DIR: is set but empty/);
      const leases = new ProfileLeases({ client, evidenceDir: base });
      const { chromium, launched } = fakeChromium();
      await assert.rejects(
        leases.checkout(LEASE.profile_id, { run_id: "r1", task_type: "t" }, async (lease) => {
          await lease.browser(chromium, async () => {});
        }),
        /^LaunchRefused: \$CUSTODY_PROXIES is set but empty: unset it for the default \(no proxies\)/,
      );
      assert.equal(launched.length, 0);
    } finally {
      for (const [name, value] of [["CUSTODY_PROXIES", before[0]], ["CUSTODY_EVIDENCE_DIR", before[1]]] as const) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
    }
  });
});
