/**
 * An example Node worker: lease a profile through custody's service, open its browser, work,
 * and release with the evidence.
 *
 *   node dist/examples/worker.js --profile ID --url URL [--linger SECONDS] [--crash]
 *
 * Environment: CUSTODY_URL (the service), CUSTODY_TOKEN (a worker's bearer token),
 * CUSTODY_PROXIES (a JSON file from proxy id to Playwright's proxy settings, null for a direct
 * connection: the profile's proxy id must be in it), CUSTODY_PROFILES_DIR (optional: where a
 * profile registered without a directory lives, at <dir>/<profile id>; a registered
 * user_data_dir always wins), CUSTODY_EVIDENCE_DIR, CHROMIUM (default /usr/bin/chromium). It prints one JSON line per step reached and one with
 * how the lease ended; it exits 0 when released, 1 when the task failed (the lease released as a
 * failure), 2 when its settings are bad input (a token or URL the client cannot send with),
 * 3 when the checkout was denied, 4 when the lease was lost and 6 when nothing was leased
 * because the service (or its store) could not be reached, as custody's command line does.
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import {
  CheckoutDenied,
  CustodyClient,
  LeaseLost,
  ProfileLeases,
  ServiceUnreachable,
  StoreUnavailable,
  type WorkerLease,
} from "../src/index.js";

const { values } = parseArgs({
  options: {
    profile: { type: "string" },
    url: { type: "string" },
    run: { type: "string", default: `run-${process.pid}` },
    linger: { type: "string", default: "0" },
    crash: { type: "boolean", default: false },
  },
});

function need(name: string, value: string | undefined): string {
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const say = (what: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(what)}\n`);
};

async function main(): Promise<number> {
  const profileId = need("--profile", values.profile);
  const url = need("--url", values.url);
  const profilesDir = process.env.CUSTODY_PROFILES_DIR;
  let client: CustodyClient;
  try {
    client = new CustodyClient({
      baseUrl: need("CUSTODY_URL", process.env.CUSTODY_URL),
      token: need("CUSTODY_TOKEN", process.env.CUSTODY_TOKEN),
    });
  } catch (error) {
    // rev32: a token it could not send with was resent for the checkout's TTL, then exit 6.
    say({ bad_input: error instanceof Error ? error.message : String(error) });
    return 2;
  }
  // The proxies come from $CUSTODY_PROXIES, as the Python SDK reads them.
  const leases = new ProfileLeases({
    client,
    ...(profilesDir ? { profileDir: (id: string) => join(profilesDir, id) } : {}),
  });
  const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
  let held: WorkerLease | null = null;
  try {
    const lease = await leases.checkout(
      profileId,
      { run_id: values.run ?? "run", task_type: "inventory_check", ttl_seconds: 30 },
      async (lease) => {
        held = lease;
        say({ leased: lease.leaseId, fencing_token: lease.fencingToken });
        await lease.browser(
          chromium,
          async (context) => {
            const page = await context.newPage();
            await page.goto(url);
            await lease.step("dashboard_loaded", { safe: true });
            say({ step: "dashboard_loaded" });
            // The page keeps talking to its site while the worker waits for it to settle.
            await page.waitForTimeout(Number(values.linger) * 1000);
            await lease.step("submit_order", { mutating: true });
            say({ step: "submit_order" });
            if (values.crash) throw new Error("the worker crashed after submit_order");
            await page.goto(new URL("/done", url).href);
          },
          { executablePath },
        );
      },
    );
    say({ released: lease.result, evidence: lease.evidence });
    return 0;
  } catch (error) {
    const lease = held as WorkerLease | null;
    if (error instanceof CheckoutDenied) {
      say({ denied: error.denial });
      return 3;
    }
    if (error instanceof LeaseLost) {
      say({ lost: error.message });
      return 4;
    }
    if (lease === null && (error instanceof StoreUnavailable || error instanceof ServiceUnreachable)) {
      // Nothing was leased: the service (or its store) could not be reached.
      say({ unavailable: String(error) });
      return 6;
    }
    say({ failed: String(error), released: lease?.result ?? null, evidence: lease?.evidence ?? null });
    return 1;
  }
}

process.exitCode = await main();
