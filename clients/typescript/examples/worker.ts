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
 * how the lease ended. It exits with the code custody's command line gives for the same outcome
 * (docs/reference/exit-codes.md): 0 when released, 1 when the task failed (the lease released as
 * a failure) or the service refused for another reason, 2 on bad input before anything is
 * leased (an option missing or malformed, a token or URL the client cannot send with, a profile
 * id the client or the service refuses, or one the service does not know), 3 when the checkout was denied, 4 when the lease was
 * lost, 6 when nothing was leased because the service (or its store) could not be reached and 7
 * when the token may not check out (unknown, revoked, or not a worker's).
 */
import { join } from "node:path";
import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import {
  CheckoutDenied,
  CustodyClient,
  CustodyError,
  LeaseLost,
  ProfileLeases,
  ServiceUnreachable,
  StoreUnavailable,
  type WorkerLease,
} from "../src/index.js";

function need(name: string, value: string | undefined): string {
  if (!value) throw new Error(`${name} is required`);
  return value;
}

const say = (what: Record<string, unknown>): void => {
  process.stdout.write(`${JSON.stringify(what)}\n`);
};

/** What the command line takes, or why not: bad input, before anything is sent. */
function settings() {
  const { values } = parseArgs({
    options: {
      profile: { type: "string" },
      url: { type: "string" },
      run: { type: "string", default: `run-${process.pid}` },
      linger: { type: "string", default: "0" },
      crash: { type: "boolean", default: false },
    },
  });
  const profileId = need("--profile", values.profile);
  const url = need("--url", values.url);
  // Never echoed: the page's URL may hold a password.
  if (!URL.canParse(url)) throw new Error("--url must be an absolute URL");
  const linger = Number(values.linger);
  if (!(values.linger?.trim() && Number.isFinite(linger) && linger >= 0)) {
    throw new Error(`--linger must be a number of seconds, 0 or more (got ${JSON.stringify(values.linger)})`);
  }
  const client = new CustodyClient({
    baseUrl: need("CUSTODY_URL", process.env.CUSTODY_URL),
    token: need("CUSTODY_TOKEN", process.env.CUSTODY_TOKEN),
  });
  return { profileId, url, linger, run: values.run ?? "run", crash: values.crash === true, client };
}

/**
 * The service's refusal of the checkout, before any lease exists, as the command line's exit
 * code and the key of the line that says it (docs/how-to/serve-workers-over-http.md#errors);
 * null for what the command line calls "anything else" (1). A 404 no route answers (a profile id
 * holding a '/', or a CUSTODY_URL with a path) is the id or the URL at fault: bad input too.
 */
function refusal(error: CustodyError, profileId: string): { key: string; said: string; code: number } | null {
  switch (error.code) {
    case "invalid_input":
    case "unknown_profile":
      return { key: "bad_input", said: error.message, code: 2 };
    case "http_404":
      return {
        key: "bad_input",
        said: `no resource of the service takes the profile id ${JSON.stringify(profileId)} (${error.message}): check it and CUSTODY_URL`,
        code: 2,
      };
    case "unauthorised":
    case "forbidden":
      return { key: "forbidden", said: error.message, code: 7 };
    default:
      return null;
  }
}

async function main(): Promise<number> {
  let given: ReturnType<typeof settings>;
  try {
    given = settings();
  } catch (error) {
    // A missing or malformed option, or a token or URL the client cannot send with (rev32: such
    // a token was resent for the checkout's TTL, then exit 6): one line, no stack trace.
    say({ bad_input: error instanceof Error ? error.message : String(error) });
    return 2;
  }
  const { profileId, url, linger, run, crash, client } = given;
  const profilesDir = process.env.CUSTODY_PROFILES_DIR;
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
      { run_id: run, task_type: "inventory_check", ttl_seconds: 30 },
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
            await page.waitForTimeout(linger * 1000);
            await lease.step("submit_order", { mutating: true });
            say({ step: "submit_order" });
            if (crash) throw new Error("the worker crashed after submit_order");
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
    if (lease === null && error instanceof TypeError) {
      // The client refused what it was given before sending anything (rev38: a profile id
      // "." reached no resource of its own, and exited 1 with "Method Not Allowed").
      say({ bad_input: error.message });
      return 2;
    }
    const refused = lease === null && error instanceof CustodyError ? refusal(error, profileId) : null;
    if (refused !== null) {
      say({ [refused.key]: refused.said });
      return refused.code;
    }
    say({ failed: String(error), released: lease?.result ?? null, evidence: lease?.evidence ?? null });
    return 1;
  }
}

process.exitCode = await main();
