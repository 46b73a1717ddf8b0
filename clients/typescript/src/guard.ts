/**
 * What a worker knows about its lease: held until `lose` is called, and never past its local
 * deadline (two thirds of the TTL after the last renewal's start, as the Python SDK's
 * `RenewalTiming`), so a worker whose renewals stopped reaching the service stops on its own
 * clock before the ledger marks the lease stale; nor past its hard limit (`hard_limit_at`),
 * counted on the worker's clock from just before the checkout was sent, so the worker stops
 * before the ledger refuses the lease (as the Python SDK's `LeaseGuard`). `Progress` is what
 * the run reported.
 */
import type { Lease } from "./client.js";
import {
  carriesPassword,
  cut,
  lengthOf,
  storable,
  withoutNestedPasswords,
  withoutUserinfo,
} from "./text.js";

export type Clock = () => number; // milliseconds, monotonic
export const monotonic: Clock = () => performance.now();

/** When a lease with this TTL renews, gives up, and retries (all in milliseconds). */
export interface RenewalTiming {
  ttlMs: number;
  intervalMs: number;
  renewDeadlineMs: number;
  retryMs: number;
}

export function timingOf(ttlSeconds: number): RenewalTiming {
  if (!(ttlSeconds > 0)) throw new RangeError(`a lease's TTL must be positive, got ${ttlSeconds}`);
  const ttlMs = ttlSeconds * 1000;
  return {
    ttlMs,
    intervalMs: ttlMs / 3,
    renewDeadlineMs: (ttlMs * 2) / 3,
    retryMs: Math.min(2000, Math.max(50, ttlMs / 15)),
  };
}

type Lost = (why: string) => void;

export class LeaseGuard {
  readonly leaseId: string;
  readonly timing: RenewalTiming;
  /** The lease's hard limit in ms from its start (null: none), and when it falls on `clock`. */
  readonly maxDurationMs: number | null;
  readonly hardLimit: number | null;
  private renewedAt: number;
  private why = "";
  private readonly watchers: Lost[] = [];

  constructor(
    lease: Lease,
    started: number,
    private readonly clock: Clock = monotonic,
  ) {
    this.leaseId = lease.lease_id;
    this.timing = timingOf(lease.ttl_seconds);
    this.renewedAt = started;
    this.maxDurationMs = maxDurationOf(lease);
    this.hardLimit = this.maxDurationMs === null ? null : started + this.maxDurationMs;
  }

  /** The local deadline: the renewal deadline after the last renewal's start, and never past
   * the hard limit. */
  get validUntil(): number {
    const until = this.renewedAt + this.timing.renewDeadlineMs;
    return this.hardLimit === null ? until : Math.min(until, this.hardLimit);
  }

  /** When the next renewal is due on the clock: a third of the TTL after the last renewal's
   * start (the checkout's, at first), as the Python SDK's hub judges it. */
  get renewalDue(): number {
    return this.renewedAt + this.timing.intervalMs;
  }

  /** Held: not lost, and before the local deadline (which loses it, once, here). */
  held(): boolean {
    if (this.why) return false;
    const now = this.clock();
    if (now < this.validUntil) return true;
    if (this.hardLimit !== null && now >= this.hardLimit) {
      this.lose(`hard limit of ${(this.maxDurationMs ?? 0) / 1000}s reached: stop the run`);
    } else {
      this.lose("not renewed before its deadline (the service did not answer in time)");
    }
    return false;
  }

  /** Why the lease was lost ("" while held). */
  get whyLost(): string {
    return this.why;
  }

  /** A renewal sent at `started` succeeded: the local deadline moves. */
  renewed(started: number): void {
    if (!this.why) this.renewedAt = Math.max(this.renewedAt, started);
  }

  /** Lose the lease (once); every watcher hears why, at once. */
  lose(why: string): void {
    if (this.why) return;
    this.why = why || "lost";
    for (const watcher of this.watchers.splice(0)) {
      try {
        watcher(this.why);
      } catch {
        // a watcher's failure must not keep the others from stopping
      }
    }
  }

  onLost(watcher: Lost): void {
    if (this.why) watcher(this.why);
    else this.watchers.push(watcher);
  }
}

/** The lease's hard limit in milliseconds from its start, as the ledger set it (the tighter
 * of the checkout's `max_duration_seconds` and the profile's `max_lease_seconds`); null when
 * it has none, or its times cannot be read. */
function maxDurationOf(lease: Lease): number | null {
  if (lease.hard_limit_at === undefined || lease.hard_limit_at === null) return null;
  const ms = Date.parse(lease.hard_limit_at) - Date.parse(lease.lease_started_at);
  return Number.isFinite(ms) ? Math.max(0, ms) : null;
}

/** What the run reported: its steps, the page's URL, the final screenshot. */
export class Progress {
  step: string | null = null;
  lastSafeStep: string | null = null;
  mutatingStep: string | null = null;
  url: string | null = null;
  screenshot: string | null = null;
  screenshotSha256: string | null = null;
  evidenceProblem: string | null = null;

  stepped(name: string, safe: boolean, mutating: boolean): void {
    this.step = name;
    if (safe) this.lastSafeStep = name;
    if (mutating) this.mutatingStep = name;
  }

  /** A page's URL as the worker records it (the Python SDK's `recorded_url`): without the
   * userinfo the ledger reads in it (`withoutUserinfo`; Chromium keeps `user:password@` in a
   * page's URL; the ledger is append-only and refuses a password), nor a nested URL's
   * (`withoutNestedPasswords`: a login page's `?next=http://bob:pw@intranet/`), kept storable
   * and within the ledger's limit (a longer one cut, ending with `CUT_MARK`), so no heartbeat
   * or release is refused for one (null for one it would refuse all the same). Chromium's page for a navigation that failed (`ERROR_PAGE`)
   * is not the run's: the URL stays the last page committed (as the Python SDK's
   * `Progress.update`). */
  navigated(url: string): void {
    if (!url || url === "about:blank" || url.startsWith(ERROR_PAGE)) return;
    const whole = withoutNestedPasswords(withoutUserinfo(storable(url)));
    const kept = lengthOf(whole) > MAX_URL ? cut(whole, MAX_URL - 1) + CUT_MARK : whole;
    this.url = kept && !carriesPassword(kept) ? kept : null;
  }

  /** The final page's URL (the page the final screenshot shows), recorded as `navigated`
   * records one, a blank page's included: the screenshot shows that page. */
  shown(url: string): void {
    if (url === "about:blank") this.url = url;
    else this.navigated(url);
  }

  problem(said: string): void {
    this.evidenceProblem = this.evidenceProblem ? `${this.evidenceProblem}; ${said}` : said;
  }
}

// Where Chromium shows a navigation that failed (refused, DNS, net::ERR_*): its own page, whose
// URL (chrome-error://chromewebdata/) names none the run tried (the Python SDK's ERROR_PAGE).
const ERROR_PAGE = "chrome-error://";
export const MAX_URL = 4096; // what the ledger keeps of a URL: a longer one is cut, not refused
// The last character of a URL cut to `MAX_URL`: the record says it is not the whole URL (as the
// Python SDK's `CUT_MARK`; review 275: a cut URL read as the page's own).
export const CUT_MARK = "\u2026";
