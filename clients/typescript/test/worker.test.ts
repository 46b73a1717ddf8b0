// The example worker (examples/worker.ts) against a running custody service and Debian's
// Chromium, on a page this test serves on 127.0.0.1. Skipped unless CUSTODY_URL names the
// service; tests/integration/test_node_worker.py starts one, registers the profiles
// node_clean, node_crash and node_revoked under CUSTODY_PROFILES_DIR, and runs `npm test`.
//
// Environment: CUSTODY_URL, CUSTODY_WORKER_TOKEN, CUSTODY_OPERATOR_TOKEN, CUSTODY_PROFILES_DIR,
// CUSTODY_EVIDENCE_DIR, CHROMIUM (default /usr/bin/chromium), and CUSTODY_RESULTS: a file this
// test writes what it saw to, for the Python test to check against the ledger.
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { CustodyClient } from "../src/index.js";

const env = process.env;
const WORKER = fileURLToPath(new URL("../examples/worker.js", import.meta.url));
const STOP_WITHIN_MS = 2000; // the bound: the browser's traffic stops within 2 s
const results: Record<string, unknown> = {};

/** A page that keeps asking its site for more (every 100 ms), and the log of every request. */
class Site {
  readonly requests: { path: string; at: number }[] = [];
  private readonly server: Server;

  constructor() {
    this.server = createServer((request, response) => {
      const path = request.url ?? "/";
      this.requests.push({ path, at: performance.now() });
      if (path.startsWith("/tick")) {
        response.writeHead(200, { "Content-Type": "application/json", "Cache-Control": "no-store" });
        response.end("{}");
        return;
      }
      response.writeHead(200, { "Content-Type": "text/html", "Cache-Control": "no-store" });
      response.end(
        "<!doctype html><title>shop</title><h1>dashboard</h1>" +
          "<script>let n = 0; setInterval(() => fetch('/tick?n=' + n++).catch(() => {}), 100)</script>",
      );
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((done) => this.server.listen(0, "127.0.0.1", done));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/dashboard`;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((done) => this.server.close(() => done()));
  }
}

interface Run {
  code: number | null;
  said: Record<string, unknown>[];
  stderr: string;
}

/** Start the example worker; `onLine` hears each JSON line it prints, as it prints it. */
function startWorker(args: string[], onLine: (line: Record<string, unknown>) => void = () => {}): {
  child: ChildProcess;
  done: Promise<Run>;
} {
  const child = spawn(process.execPath, [WORKER, ...args], {
    env: { ...env, CUSTODY_TOKEN: env.CUSTODY_WORKER_TOKEN },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const said: Record<string, unknown>[] = [];
  let stderr = "";
  let pending = "";
  child.stdout?.on("data", (chunk: Buffer) => {
    pending += chunk.toString();
    let newline: number;
    while ((newline = pending.indexOf("\n")) >= 0) {
      const line = JSON.parse(pending.slice(0, newline)) as Record<string, unknown>;
      pending = pending.slice(newline + 1);
      said.push(line);
      onLine(line);
    }
  });
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const done = new Promise<Run>((resolve) => child.on("close", (code) => resolve({ code, said, stderr })));
  return { child, done };
}

const find = (run: Run, key: string): Record<string, unknown> | undefined => run.said.find((l) => key in l);

describe("the example worker against the service", { skip: !env.CUSTODY_URL && "CUSTODY_URL is not set" }, () => {
  const site = new Site();
  let url = "";
  let operator: CustodyClient;

  before(async () => {
    url = await site.start();
    operator = new CustodyClient({ baseUrl: env.CUSTODY_URL ?? "", token: env.CUSTODY_OPERATOR_TOKEN ?? "" });
  });

  after(async () => {
    await site.close();
    if (env.CUSTODY_RESULTS) await writeFile(env.CUSTODY_RESULTS, JSON.stringify(results, null, 2));
  });

  it("a clean run releases with the final URL, without the page's password, and the screenshot's sha256", async () => {
    // Chromium keeps `user:password@` in the page's URL; the worker records the URL without it.
    const withPassword = url.replace("http://", "http://alice:s3cret-pw@");
    const run = await startWorker(["--profile", "node_clean", "--url", withPassword, "--run", "run_clean"]).done;
    results.clean = run;
    assert.equal(run.code, 0, run.stderr + JSON.stringify(run.said));
    const { released, evidence } = find(run, "released") as {
      released: { profile_state: string; ending: string };
      evidence: { final_url: string; screenshot: string; screenshot_sha256: string };
    };
    assert.equal(released.ending, "clean");
    assert.equal(released.profile_state, "available");
    assert.equal(evidence.final_url, new URL("/done", url).href);
    const bytes = await readFile(evidence.screenshot);
    assert.equal(createHash("sha256").update(bytes).digest("hex"), evidence.screenshot_sha256);
  });

  it("a crash after a mutating step leaves the profile as the release policy says", async () => {
    const run = await startWorker(["--profile", "node_crash", "--url", url, "--run", "run_crash", "--crash"]).done;
    const why = await operator.why("node_crash");
    results.crash = { ...run, why };
    assert.equal(run.code, 1, run.stderr + JSON.stringify(run.said));
    const failed = find(run, "failed") as { released: { ending: string; profile_state: string } };
    assert.notEqual(failed.released.ending, "clean");
    assert.equal(why.state, failed.released.profile_state);
    assert.ok(["quarantined", "review_required"].includes(why.state), `the profile is ${why.state}`);
  });

  it("a lease revoked mid-run stops the browser's traffic within 2 s", async () => {
    let loaded: () => void = () => {};
    const dashboard = new Promise<void>((done) => (loaded = done));
    const worker = startWorker(
      ["--profile", "node_revoked", "--url", url, "--run", "run_revoked", "--linger", "20"],
      (line) => line.step === "dashboard_loaded" && loaded(),
    );
    await Promise.race([dashboard, worker.done]);
    await new Promise((done) => setTimeout(done, 1000)); // the page is busy with its site
    const before = site.requests.length;
    const revoked = performance.now();
    const forced = await operator.forceRelease("node_revoked", { reason: "revoked by the Node worker test" });
    const answered = performance.now() - revoked; // the revocation is in the ledger by now
    const run = await worker.done;
    const ticks = site.requests.filter((r) => r.path.startsWith("/tick"));
    const last = Math.max(...ticks.map((r) => r.at));
    const why = await operator.why("node_revoked");
    results.revoked = {
      ...run,
      why,
      forced,
      forceReleaseAnsweredMs: answered,
      lastRequestAfterRevocationMs: last - revoked,
      requestsAfterRevocation: site.requests.filter((r) => r.at > revoked).map((r) => [r.path, r.at - revoked]),
    };
    assert.ok(before > 5 && ticks.some((r) => r.at < revoked), "the page was talking to its site");
    assert.equal(run.code, 4, run.stderr + JSON.stringify(run.said)); // LeaseLost, as the CLI's
    assert.ok(
      last - revoked <= STOP_WITHIN_MS,
      `a request reached the site ${Math.round(last - revoked)} ms after the revocation`,
    );
    assert.ok(!run.said.some((l) => l.step === "submit_order"), "the task went on after the loss");
  });
});
