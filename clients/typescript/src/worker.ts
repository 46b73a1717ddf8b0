/**
 * The worker SDK, in the Python SDK's shape (`workers.ProfileLeases`), over the lease service:
 *
 *     const leases = new ProfileLeases({ client, proxies: { proxy_de_1: { server: "http://10.0.0.5:3128" } } });
 *     const lease = await leases.checkout("profile_shop_17", { run_id: "run_0945",
 *       task_type: "check" }, async (lease) => {
 *       await lease.browser(chromium, async (context) => {
 *         ...
 *         await lease.step("dashboard_loaded", { safe: true });
 *       }, { executablePath: "/usr/bin/chromium" });
 *     });
 *     lease.result?.message;
 *
 * `browser()` opens the profile's registered directory (`user_data_dir`, read from the service;
 * else `profileDir`) with the lease's proxy (its `proxy_id` resolved through `proxies`), after
 * writing the lease's marker into the directory as the Python SDK does (see marker.ts): a
 * directory another profile marked, or one a later lease of this profile already opened, is
 * never launched.
 *
 * Leaving the task releases the lease: success with the final URL and screenshot (and its
 * sha256); an exception as a failure naming it (and the exception is thrown on);
 * `lease.expectedFailure(reason)` as an expected failure. While the task runs, the lease is
 * renewed every third of its TTL and watched with the service's long poll; the moment it is
 * lost (revoked, stale, refused) the browser's requests are aborted and its context closed, and
 * the task's next SDK call throws `LeaseLost`. A lost lease is never released by the worker.
 */
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readFile, realpath, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import type { BrowserContext, BrowserType, LaunchOptions } from "playwright-core";
import { BrowserSession, firstLine } from "./browser.js";
import { writeWhole } from "./files.js";
import {
  type CheckoutOrder,
  type CustodyClient,
  CustodyError,
  type Lease,
  LeaseLost,
  type Outcome,
  type ProfileRecord,
  type ReleaseBody,
  type ReleaseResult,
  ServiceUnreachable,
  StoreUnavailable,
  UnreadableAnswer,
} from "./client.js";
import { type Clock, LeaseGuard, monotonic, Progress } from "./guard.js";
import { claim, LaunchRefused } from "./marker.js";
import * as termination from "./termination.js";
import { isTerminated, Signalled, STOP_WAIT_SECONDS, Terminated } from "./termination.js";
import { blank, isError, kept, lengthOf, messageOf, nameOf, reasonOf, storable } from "./text.js";

export const MAX_REASON = 2000; // what the ledger keeps of a reason
const MAX_RECORDED_PATH = 200; // what the ledger keeps of a screenshot's path
const CHECKOUT_RESEND_MS = 3000;
const DEFAULT_TTL_SECONDS = 300; // the ledger's, for a checkout order that names none
const WATCH_SECONDS = 10;
const MAX_WATCH_SECONDS = 60; // what the option takes
// The longest hold the service gives a long poll (service/_app.py MAX_WAIT_SECONDS): it refuses
// a longer `wait` 422, so a longer watchSeconds is asked for as this.
export const SERVICE_MAX_WAIT_SECONDS = 25;
const WATCH_RETRY_MS = 500;
export const PROXIES_ENV_VAR = "CUSTODY_PROXIES";

/** A proxy id's value meaning "no proxy: a direct connection" (JSON's null means it too, as
 * in the Python SDK's `$CUSTODY_PROXIES` file). */
export const DIRECT = "direct";
/** How a direct profile is launched: no proxy at all (the Python SDK's `DIRECT_SWITCH`). */
export const DIRECT_SWITCH = "--no-proxy-server";
/** Switches every launch gets after the caller's, and no `ignoreDefaultArgs` list may name: a
 * shared worker's requests pass no route of the context (Playwright does not attach to one),
 * so once the lease is lost a page could reach the site through one (rev43, as the Python
 * SDK's `GUARD_SWITCHES`). */
export const GUARD_SWITCHES: readonly string[] = ["--disable-blink-features=SharedWorker"];
export type ProxySettings = NonNullable<LaunchOptions["proxy"]>;
type Resolved = ProxySettings | typeof DIRECT | null;
/** From proxy id to Playwright's proxy settings (or `DIRECT`); a function answers `undefined`
 * for an id it does not know. */
export type ProxyResolver = Record<string, Resolved> | ((proxyId: string) => Resolved | undefined);
/** Launch options that would make the launch something other than the lease's profile and
 * proxy (the Python SDK's `RESERVED_OPTIONS`). */
const RESERVED_OPTIONS = ["userDataDir", "proxy"] as const;
/** Chromium switches a caller may not pass (in `args`, or an `ignoreDefaultArgs` list): each
 * would change the proxy, the hosts that bypass it, the profile directory (or the profile in
 * it), or the WebRTC policy the SDK pins. Names as Chromium reads them: after "-" or "--", up
 * to "=". The Python SDK's `RESERVED_SWITCHES`. */
export const RESERVED_SWITCHES: ReadonlySet<string> = new Set([
  "proxy-server",
  "proxy-pac-url",
  "no-proxy-server",
  "proxy-auto-detect",
  "proxy-bypass-list",
  "user-data-dir",
  "profile-directory",
  "force-webrtc-ip-handling-policy",
  "webrtc-ip-handling-policy",
]);
/** Where Chromium keeps the profile's preferences, and the WebRTC policy pinned there (the
 * Python SDK's `workers._launch.pin_webrtc_policy`). */
export const PREFERENCES = join("Default", "Preferences");
export const WEBRTC_POLICY = "disable_non_proxied_udp";

export interface ProfileLeasesOptions {
  client: CustodyClient;
  /** The directory of a profile on this host, for a profile registered without one (a
   * registered `user_data_dir` always wins). */
  profileDir?: (profileId: string) => string;
  /** How the lease's `proxy_id` becomes the proxy the browser is launched with: a record from
   * proxy id to Playwright's proxy settings (`DIRECT`, or null, for none), or a function doing
   * the same that answers `undefined` for an id it does not know. Unset: the JSON file named by
   * `$CUSTODY_PROXIES` (an object of the same shape, the Python SDK's), else no proxy is known.
   * A proxy id that does not resolve refuses the launch (`LaunchRefused`), never a silent
   * direct connection. */
  proxies?: ProxyResolver;
  /** How long `browser()` waits for the lock on the profile directory's marker (seconds,
   * default 60); `LaunchRefused` after. */
  markerWaitSeconds?: number;
  /** Where each lease's screenshot and evidence.json go; default as the Python SDK's. */
  evidenceDir?: string;
  /** How long each long poll of the revocation watch holds (seconds, more than 0 and at most
   * 60; default 10). The service holds one at most 25 s: a longer one is asked for as 25. A
   * force-release is heard at once whatever the hold. `RangeError` at construction otherwise. */
  watchSeconds?: number;
  clock?: Clock;
}

/** What a release reported, kept as `evidence.json` beside the screenshot. */
export interface Evidence {
  lease_id: string;
  profile_id: string;
  run_id: string;
  outcome: Outcome;
  reason: string | null;
  final_url: string | null;
  /** The proxy id the browser was launched with (null: no browser was launched). */
  observed_proxy: string | null;
  screenshot: string | null;
  screenshot_sha256: string | null;
  last_step: string | null;
  last_safe_step: string | null;
  mutating_step: string | null;
  evidence_problem: string | null;
}

export class ProfileLeases {
  readonly client: CustodyClient;
  readonly evidenceDir: string;
  /** The hold each long poll of the revocation watch asks for (the option, at most the
   * service's 25 s). */
  readonly watchSeconds: number;
  readonly clock: Clock;
  readonly markerWaitSeconds: number;
  private readonly profileDir: ((profileId: string) => string) | undefined;
  private readonly proxies: ProxyResolver | undefined;

  constructor(options: ProfileLeasesOptions) {
    this.client = options.client;
    this.profileDir = options.profileDir;
    this.proxies = options.proxies;
    const markerWait = options.markerWaitSeconds ?? 60;
    if (typeof markerWait !== "number" || !(markerWait > 0 && Number.isFinite(markerWait))) {
      throw new RangeError(`markerWaitSeconds: a number of seconds more than 0, got ${String(markerWait)}`);
    }
    this.markerWaitSeconds = markerWait;
    this.evidenceDir = resolve(options.evidenceDir ?? defaultEvidenceDir());
    const watch = options.watchSeconds ?? WATCH_SECONDS;
    if (typeof watch !== "number" || !(watch > 0 && watch <= MAX_WATCH_SECONDS)) {
      throw new RangeError(`watchSeconds: more than 0 and at most ${MAX_WATCH_SECONDS}, got ${String(watch)}`);
    }
    this.watchSeconds = Math.min(watch, SERVICE_MAX_WAIT_SECONDS);
    this.clock = options.clock ?? monotonic;
  }

  /** Lease the profile (`CheckoutDenied` with the ledger's denial), run `task` under the lease,
   * and release it when the task ends (see the module's comment). Answers the lease, whose
   * `result` and `evidence` say how the release went. */
  async checkout(
    profileId: string,
    order: CheckoutOrder,
    task: (lease: WorkerLease) => Promise<void>,
  ): Promise<WorkerLease> {
    const signalled = new Signalled(); // SIGTERM is the SDK's from the checkout on
    // The SDK is stopping the process: nothing is sent, and the process exits 143 once the
    // leases it held are released.
    if (!termination.enter(signalled)) return await termination.exiting();
    try {
      return await this.leased(profileId, order, task, signalled);
    } catch (error) {
      if (!signalled.stopping) throw error;
      signalled.done(); // a denial or failure after SIGTERM: the process exits 143
      return await termination.exiting();
    } finally {
      termination.leave(signalled);
    }
  }

  private async leased(
    profileId: string,
    order: CheckoutOrder,
    task: (lease: WorkerLease) => Promise<void>,
    signalled: Signalled,
  ): Promise<WorkerLease> {
    const started = this.clock();
    const key = randomUUID(); // resent under the same id: a grant whose answer was lost returns
    const body = { ...order }; // each resend is the same command
    const until = started + CHECKOUT_RESEND_MS;
    // A grant's deadline, at the latest: past it, a lease granted in this worker's name is
    // the sweep's (stale, then reviewed), and no resend can still run a task under it.
    const granting = started + (order.ttl_seconds ?? DEFAULT_TTL_SECONDS) * 1000;
    let granted: Lease;
    let lost = 0; // answers lost on their way (the client's timeout, a dropped connection)
    let late = 0; // resends after the window
    let lastTry = false; // past the stop's bound, as a release's (WorkerLease.ended)
    for (;;) {
      if (signalled.waitedEnough()) lastTry = true;
      // After a lost answer each resend waits twice as long for its answer (a slow service's
      // answer comes back, where one as short as the first would be lost again), never past
      // the grant's deadline; 5 s at most once the SDK stops the process.
      const longer = longerAfter(lost, this.client.timeoutSeconds, granting - this.clock());
      const wait = stopWait(signalled, longer, this.client.timeoutSeconds);
      try {
        granted = await this.client.checkout(profileId, body, key, wait, signalled.abandonedBy());
        break;
      } catch (error) {
        if (!transient(error)) throw error;
        if (mayHaveLanded(error)) lost += 1;
        // Once the SDK stops the process, the checkout has the release's budget: resent for
        // STOP_WAIT_SECONDS from the signal, once more past it after a lost answer (rev42: it
        // was resent until the grant's deadline, 300 s by default, in silence).
        if (signalled.waitedEnough()) {
          if (lost > 0 && !lastTry) continue;
          if (lost > 0) {
            process.emitWarning(
              `custody: the process was stopped and the checkout of ${profileId} was not answered ` +
                `within ${STOP_WAIT_SECONDS}s: a lease it may have been granted is left live, to go ` +
                "stale at its deadline",
            );
          }
          throw error;
        }
        const now = this.clock() + 250;
        // Within the window, any failure worth resending is sent again. After it, only while
        // an answer was lost, for it may have been a grant: it is asked for until it is
        // learnt (and given back if the worker will not run under it) or its deadline passes,
        // so that no lease is left held in this worker's name with nobody running under it
        // (rev29: a service slower than the client's timeout had its grant left to go stale).
        if (now >= until && (lost === 0 || now >= granting)) {
          if (lost > 0) {
            process.emitWarning(
              `custody: the checkout of ${profileId} was never answered in time; a lease it may ` +
                "have been granted is left to its deadline and the sweep",
            );
          }
          throw error;
        }
        // Past the window, twice as long each time, at most 8 s: a gateway that answers 502
        // at once is not asked 4 times a second until the grant's deadline (rev29 reread: 238
        // requests in 60 s).
        await sleep(signalled.serviceWait(now < until ? 250 : Math.min(250 * 2 ** ++late, 8000)));
      }
    }
    if (granted.lease_status !== "active") {
      // A resend's answer is the lease as it stands now: ended since it was granted.
      throw lostError(granted.lease_id, `the service answered the lease as ${granted.lease_status}`);
    }
    const guard = new LeaseGuard(granted, started, this.clock);
    if (!guard.held()) await this.giveBack(granted, key, signalled);
    const lease = new WorkerLease(granted, this, guard, signalled);
    let stopped: Promise<void> | null = null;
    // A release that fails after SIGTERM is warned of here: the task may never end to say it.
    signalled.end = () =>
      (stopped ??= lease.end({ error: new Terminated(signalled.signal ?? "SIGTERM") }).catch((error: unknown) =>
        lease.notReleased(error),
      ));
    lease.start();
    if (signalled.stopping) {
      await signalled.end(); // SIGTERM came while the checkout was decided: no task runs
      signalled.done();
      return await termination.exiting();
    }
    let failure: unknown = undefined;
    let failed = false;
    try {
      await task(lease);
    } catch (error) {
      failure = error;
      failed = true;
    }
    if (!failed) {
      await lease.end(null);
      if (signalled.stopping) return await termination.exiting();
      return lease;
    }
    try {
      await lease.end({ error: failure });
    } catch (error) {
      // The task's own error goes on (it is the one the caller must see); why the lease was
      // not released is a warning. The sweep settles the lease at its deadline.
      lease.notReleased(error);
    }
    if (signalled.stopping) return await termination.exiting();
    throw lease.insteadOf(failure);
  }

  /** A grant recovered past the worker's own deadline (its answer lost on the way, then
   * resent): no task runs under it, and it is released as an expected failure that ran
   * nothing, rather than left held with nobody under it until the sweep. Then `LeaseLost`. */
  private async giveBack(granted: Lease, key: string, signalled: Signalled): Promise<never> {
    const reason = "the checkout's answer came back past the worker's deadline: no task ran";
    try {
      // Within the stop's bound, as every release after SIGTERM (rev42: 30 s, a 38 s stop).
      await this.client.release(
        granted.lease_id,
        { fencing_token: granted.fencing_token, outcome: "expected_failure", reason },
        `${key}-given-back`,
        stopWait(signalled, undefined, this.client.timeoutSeconds),
        signalled.abandonedBy(),
      );
    } catch (error) {
      if (!(error instanceof LeaseLost)) {
        process.emitWarning(`custody: ${granted.lease_id} was not released: ${firstLine(error)}`);
      }
    }
    throw lostError(granted.lease_id, reason);
  }

  /** The directory a profile is launched on: its registered `user_data_dir`, else
   * `profileDir`'s; `LaunchRefused` when there is neither. */
  directoryOf(record: Pick<ProfileRecord, "profile_id" | "user_data_dir">): string {
    if (record.user_data_dir) return record.user_data_dir;
    if (this.profileDir) return this.profileDir(record.profile_id);
    throw new LaunchRefused(
      `profile ${record.profile_id} was registered without a user_data_dir and this worker ` +
        "has no profileDir: give ProfileLeases a profileDir, or register the browser profile " +
        "under a new id with --user-data-dir DIR (a registration never changes) and retire " +
        `this one (custody disable ${record.profile_id} --actor NAME --reason TEXT)`,
    );
  }

  /** The proxy to launch with for `proxyId` (null: a direct connection); `LaunchRefused` if
   * this worker has no configuration for it. */
  resolveProxy(proxyId: string): ProxySettings | null {
    const resolver = this.proxies ?? proxiesFromEnvironment();
    const found =
      typeof resolver === "function"
        ? resolver(proxyId)
        : Object.hasOwn(resolver, proxyId)
          ? resolver[proxyId]
          : undefined;
    if (found === undefined) {
      throw new LaunchRefused(
        `this worker has no proxy configured for ${JSON.stringify(proxyId)}: map it in ` +
          `ProfileLeases({ proxies }) or in the file $${PROXIES_ENV_VAR} names`,
      );
    }
    return found === null || found === DIRECT ? null : found;
  }
}

export interface StepOptions {
  /** A point where the account is in a known state (the lease's last safe step). */
  safe?: boolean;
  /** A step that may change the account: an unclean ending after it goes to review. */
  mutating?: boolean;
}

/** Playwright's launch options but the directory and the proxy, which come from the lease's
 * profile (either one given is refused with `LaunchRefused`). */
export type BrowserOptions = Omit<LaunchOptions, "proxy"> & { serviceWorkers?: "allow" | "block" };

/** One checked-out lease, used by the task that checked it out. */
export class WorkerLease {
  lease: Lease;
  result: ReleaseResult | null = null;
  evidence: Evidence | null = null;
  private readonly progress = new Progress();
  private session: BrowserSession | null = null;
  private expected: string | null = null;
  private heartbeats: NodeJS.Timeout | null = null;
  private deadline: NodeJS.Timeout | null = null;
  private readonly watching = new AbortController();
  private watchDone: Promise<void> = Promise.resolve();
  private observedProxy: string | null = null;
  private ending: Promise<void> | null = null;
  private notReleasedSaid = false;

  constructor(
    lease: Lease,
    private readonly leases: ProfileLeases,
    private readonly guard: LeaseGuard,
    private readonly signalled: Signalled = new Signalled(),
  ) {
    this.lease = lease;
  }

  get leaseId(): string {
    return this.lease.lease_id;
  }

  get fencingToken(): number {
    return this.lease.fencing_token;
  }

  get lost(): boolean {
    return !this.guard.held();
  }

  get whyLost(): string {
    return this.guard.whyLost;
  }

  /** Record the step in the ledger now, as a heartbeat naming it with the page's last URL.
   * `LeaseLost` (the browser closed first) once the lease is lost. */
  async step(name: string, options: StepOptions = {}): Promise<void> {
    this.ensureHeld();
    this.session?.catchUp();
    const safe = options.safe ?? false;
    const mutating = options.mutating ?? false;
    if (await this.renew({ step: name, safe, mutating })) {
      this.progress.stepped(name, safe, mutating);
    }
    this.ensureHeld();
  }

  /** A page reached without `browser()`: its URL goes with the next heartbeat and is the
   * final URL unless another follows. */
  visited(url: string): void {
    this.progress.navigated(url);
  }

  /** End the lease as an expected failure with `reason` (an exception still makes it a
   * failure). `RangeError` at once for a reason the ledger would refuse (empty, or longer than
   * it keeps); a NUL or a lone surrogate in it is escaped (`storable`, as in Python). */
  expectedFailure(reason: string): void {
    reason = storable(reason);
    if (blank(reason) || lengthOf(reason) > MAX_REASON) {
      throw new RangeError(`an expected failure's reason: 1 to ${MAX_REASON} characters`);
    }
    this.expected = reason;
  }

  /** A persistent context on the profile's registered directory, with its proxy, launched
   * with Playwright's `browserType` (`chromium` of playwright-core; pass `executablePath`).
   *
   * Before launching: `LaunchRefused` if the profile has no directory, this worker cannot
   * resolve its proxy id, or an option would choose the directory or the proxy; a heartbeat
   * proves the lease current (`LeaseLost`); the fencing token is written to the directory's
   * marker (`LaunchRefused` if a higher token of this profile is there, another profile's mark
   * is, or it cannot be read). Leaving `body` takes the final screenshot (unless the lease was lost) and always
   * closes the context. */
  async browser<T>(
    browserType: BrowserType,
    body: (context: BrowserContext) => Promise<T>,
    options: BrowserOptions = {},
  ): Promise<T> {
    this.ensureHeld();
    for (const name of RESERVED_OPTIONS) {
      if (name in options) throw new LaunchRefused(`${name} comes from the lease's profile, not a launch option`);
    }
    refuseReservedSwitches(options);
    const record = await this.registration();
    const directory = this.leases.directoryOf(record);
    const proxy = this.leases.resolveProxy(this.lease.proxy_id);
    await this.step("browser_launch");
    await claim(directory, this.lease, { waitSeconds: this.leases.markerWaitSeconds });
    await pinWebrtcPolicy(directory);
    this.ensureHeld();
    // Service workers' requests would pass no route of the context: blocked, as in Python.
    // SIGTERM is the SDK's (termination.ts), which closes the browser after its screenshot:
    // Playwright's own listener would close it first, and keep the process alive after.
    const context = await browserType.launchPersistentContext(directory, {
      headless: true,
      serviceWorkers: "block",
      handleSIGTERM: false,
      ...options,
      // Direct means direct: no proxy its environment (or `env`) names, which Chromium would
      // use when given no proxy switch, and the ledger would not know (as the Python SDK).
      args: [...(options.args ?? []), ...GUARD_SWITCHES, ...(proxy === null ? [DIRECT_SWITCH] : [])],
      ...(proxy === null ? {} : { proxy }),
    });
    this.observedProxy = this.lease.proxy_id;
    const session = (this.session = new BrowserSession(context, this.guard, this.progress));
    try {
      await session.install();
    } catch (error) {
      await session.close();
      throw error;
    }
    try {
      return await body(context);
    } finally {
      // A lease SIGTERM is ending took its screenshot there, before it closed the browser.
      if (this.guard.held() && this.ending === null) {
        await session.screenshot(join(this.directory(), "final.png"));
      }
      await session.close();
      this.session = null;
    }
  }

  /** The profile's registration, asked again while the service does not answer and the
   * lease is held. */
  private async registration(): Promise<ProfileRecord> {
    for (;;) {
      try {
        return await this.leases.client.profile(this.lease.profile_id);
      } catch (error) {
        if (!transient(error)) throw error;
        this.ensureHeld();
        await sleep(this.guard.timing.retryMs);
      }
    }
  }

  // -- the lease's life ------------------------------------------------------------------

  /** Begin renewing every third of the TTL and watching for a revocation. Each renewal is
   * due a third of the TTL after the last one's start (the checkout's, at first): a grant that
   * came back late, or a renewal answered late, is renewed at once, not a third later, by
   * which time the local deadline may have passed. */
  start(): void {
    const due = (): number => Math.max(0, this.guard.renewalDue - this.leases.clock());
    const beat = async (): Promise<void> => {
      if (!this.guard.held()) return;
      let next: number;
      try {
        await this.renew({});
        next = due();
      } catch {
        // An answer it does not expect (a 403, a 500) is waited out: the deadline decides.
        next = this.guard.timing.retryMs;
      }
      if (this.guard.held() && !this.watching.signal.aborted) this.heartbeats = setTimeout(beat, next);
    };
    this.heartbeats = setTimeout(beat, due());
    this.watchDone = this.watch();
    this.awaitDeadline();
  }

  /** Ask the guard at its local deadline (the hard limit, or the renewal deadline), so the
   * lease is lost there on the worker's own clock and its browser stopped, whether or not
   * anything else asks; after a renewal moved the deadline, again at the new one. */
  private awaitDeadline(): void {
    if (!this.guard.held() || this.watching.signal.aborted) return;
    const due = Math.max(0, this.guard.validUntil - this.leases.clock()) + 1;
    this.deadline = setTimeout(() => this.awaitDeadline(), Math.min(due, 2 ** 31 - 1));
    this.deadline.unref();
  }

  /** The revocation watch: the service's long poll on the lease, again and again, until the
   * lease is not live (then the lease is lost, which stops the browser) or the watch is
   * stopped. A service that does not answer (the network, a timeout, a 5xx, a 408 or 429) is
   * asked again; the deadline decides. A watch the service refuses (any other 4xx: the token,
   * the request) could never hear a revocation: the lease is lost at once, saying why, rather
   * than run on unwatched. */
  private async watch(): Promise<void> {
    const signal = this.watching.signal;
    while (!signal.aborted && this.guard.held()) {
      try {
        const check = await this.leases.client.watch(this.leaseId, this.leases.watchSeconds, signal);
        if (!check.live && !signal.aborted) this.guard.lose(`revoked: ${check.why ?? "not live"}`);
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof LeaseLost) this.guard.lose(error.message);
        else if (refusedForGood(error)) {
          this.guard.lose(`the revocation watch was refused (${error.status} ${error.code}): ${error.message}`);
        } else await sleep(WATCH_RETRY_MS);
      }
    }
  }

  /** One heartbeat, resent under its own Idempotency-Key while the service is unavailable
   * and the lease held. Its body is built once, from the page's URL when it is first sent:
   * a resend is the same command, byte for byte (the service refuses a key used for another
   * body). True: renewed. False: the lease is lost (the guard says why). */
  private async renew(fields: { step?: string; safe?: boolean; mutating?: boolean }): Promise<boolean> {
    const key = randomUUID();
    const started = this.leases.clock();
    const body = { fencing_token: this.fencingToken, url: this.progress.url, ...fields };
    let lost = 0; // answers lost on their way: each resend waits longer, as the checkout's
    while (this.guard.held()) {
      const wait = longerAfter(lost, this.leases.client.timeoutSeconds, this.guard.validUntil - this.leases.clock());
      try {
        const answered = await this.leases.client.heartbeat(this.leaseId, body, key, wait);
        if (answered.lease_status !== "active") {
          // A resend's answer: the lease as it stands now, ended since the first landed.
          this.guard.lose(`the service answered the lease as ${answered.lease_status}`);
          return false;
        }
        this.lease = answered;
        this.guard.renewed(started);
        return true;
      } catch (error) {
        if (error instanceof LeaseLost) {
          this.guard.lose(error.message);
          return false;
        }
        if (!transient(error)) throw error;
        if (mayHaveLanded(error)) lost += 1;
        await sleep(this.guard.timing.retryMs);
      }
    }
    return false;
  }

  private ensureHeld(): void {
    if (this.signalled.stopping) throw new Terminated(this.signalled.signal ?? "SIGTERM");
    if (this.guard.held()) return;
    void this.session?.close();
    throw lostError(this.leaseId, this.guard.whyLost);
  }

  /** Stop renewing and watching, close the browser, then release with the evidence (a lost
   * lease releases nothing: `LeaseLost` when no other error is on its way). Once only: a
   * second call (the task ending while SIGTERM's release runs) answers the first's end. */
  end(failure: { error: unknown } | null): Promise<void> {
    this.ending ??= this.ended(failure);
    return this.ending;
  }

  private async ended(failure: { error: unknown } | null): Promise<void> {
    if (this.heartbeats) clearTimeout(this.heartbeats);
    if (this.deadline) clearTimeout(this.deadline);
    this.watching.abort();
    await this.watchDone;
    if (failure !== null && isTerminated(failure.error) && this.session !== null && this.guard.held()) {
      // SIGTERM ends the lease while the task runs: the final screenshot, as the browser's
      // block takes it when a task ends.
      await this.session.screenshot(join(this.directory(), "final.png"));
    }
    await this.session?.close();
    if (!this.guard.held()) {
      if (failure === null) throw lostError(this.leaseId, this.guard.whyLost);
      return;
    }
    let evidence = await this.kept(this.settle(failure));
    const key = randomUUID();
    let lost = 0; // answers lost on their way: each resend waits longer, as the checkout's
    let lastTry = false;
    for (;;) {
      // Past the stop's bound a release is tried once more at most (below).
      if (this.signalled.waitedEnough()) lastTry = true;
      const wait = stopWait(
        this.signalled,
        longerAfter(lost, this.leases.client.timeoutSeconds, this.guard.validUntil - this.leases.clock()),
        this.leases.client.timeoutSeconds,
      );
      try {
        // A try under way when the stop's bound passes is abandoned there (rev42: one sent
        // before the signal waited the client's 30 s, then one more try: 33 s).
        const body = releaseBody(evidence, this.fencingToken);
        const abandoned = this.signalled.abandonedBy();
        this.result = await this.leases.client.release(this.leaseId, body, key, wait, abandoned);
        this.evidence = evidence;
        return;
      } catch (error) {
        if (error instanceof LeaseLost) {
          this.guard.lose(error.message);
          if (failure === null) throw error;
          return;
        }
        const refused = refusedField(error);
        if (refused !== null && evidence.evidence_problem?.includes(refused) !== true) {
          evidence = withoutRefused(evidence, refused, (error as CustodyError).message);
          continue;
        }
        if (!transient(error) || !this.guard.held()) throw error;
        if (mayHaveLanded(error)) lost += 1;
        // Once the SDK stops the process, the service is waited for STOP_WAIT_SECONDS only,
        // as in the Python SDK (rev42: 58 s at a 90 s TTL, in silence); a release whose answer
        // was lost may have been taken, and is resent once more under its key to learn it.
        if (this.signalled.waitedEnough()) {
          if (lost > 0 && !lastTry) {
            lastTry = true;
            continue;
          }
          throw leftLive(this.leaseId, error, lost > 0);
        }
        await sleep(this.signalled.serviceWait(this.guard.timing.retryMs));
      }
    }
  }

  /** Warn, once, that the lease was not released and why: the task's end and SIGTERM's may
   * both learn it. */
  notReleased(error: unknown): void {
    if (this.notReleasedSaid) return;
    this.notReleasedSaid = true;
    process.emitWarning(`custody: ${this.leaseId} was not released: ${firstLine(error)}`);
  }

  /** What the checkout throws instead of the task's `error`: `LeaseLost` when the error is the
   * browser failing because the lease was lost (its context was closed under the task). */
  insteadOf(error: unknown): unknown {
    const browserGone = isError(error) && /closed|Target page|has been closed/i.test(messageOf(error));
    if (!this.guard.held() && browserGone) return lostError(this.leaseId, this.guard.whyLost);
    return error;
  }

  private settle(failure: { error: unknown } | null): Evidence {
    const p = this.progress;
    let outcome: Outcome = "success";
    let reason: string | null = null;
    if (failure !== null) {
      outcome = "failure";
      // As the Python SDK names it, a run SIGTERM stopped saying so and the step it reached.
      reason = this.signalled.reason(p.step, failure.error) ?? reasonOf(failure.error);
    } else if (this.expected !== null) {
      outcome = "expected_failure";
      reason = this.expected;
    }
    return {
      lease_id: this.leaseId,
      profile_id: this.lease.profile_id,
      run_id: this.lease.run_id,
      outcome,
      reason,
      final_url: p.url,
      observed_proxy: this.observedProxy,
      screenshot: p.screenshot === null ? null : this.recordedPath(p.screenshot),
      screenshot_sha256: p.screenshotSha256,
      last_step: p.step,
      last_safe_step: p.lastSafeStep,
      mutating_step: p.mutatingStep,
      evidence_problem: p.evidenceProblem === null ? null : kept(p.evidenceProblem, MAX_REASON),
    };
  }

  /**
   * The lease's evidence directory: `<evidenceDir>/<profile_id>/lease-<token>-<started>/`, its
   * start beside its token (as the Python SDK's), so that two stores on one host, each leasing
   * a profile first with token 1, never write over each other's evidence.
   */
  directory(): string {
    const name = `lease-${this.fencingToken}-${startedStamp(this.lease.lease_started_at)}`;
    return join(this.leases.evidenceDir, this.lease.profile_id, name);
  }

  private recordedPath(path: string): string {
    return path.length <= MAX_RECORDED_PATH ? path : relative(this.leases.evidenceDir, path);
  }

  /** `evidence` kept as `evidence.json`, or, when it cannot be written (an evidence directory
   * under /proc, a file in its way, a full disk), saying so as its evidence problem: the lease
   * is released all the same, never left to go stale (the Python SDK's `Evidence.kept`). */
  private async kept(evidence: Evidence): Promise<Evidence> {
    try {
      await this.keep(evidence);
      return evidence;
    } catch (failed) {
      const said = `evidence.json could not be written: ${reasonOf(failed)}`;
      const problem = evidence.evidence_problem ? `${evidence.evidence_problem}; ${said}` : said;
      return { ...evidence, evidence_problem: kept(problem, MAX_REASON) };
    }
  }

  private async keep(evidence: Evidence): Promise<void> {
    await mkdir(this.directory(), { recursive: true });
    const text = JSON.stringify(evidence, Object.keys(evidence).sort(), 2);
    await writeWhole(join(this.directory(), "evidence.json"), `${text}\n`);
  }
}

/**
 * A lease's start as its evidence directory names it, `20261202T094500123456Z`: UTC to the
 * microsecond, as the Python SDK writes it (`%Y%m%dT%H%M%S%fZ`); any other text with
 * everything but letters and digits left out.
 */
export function startedStamp(iso: string): string {
  const at = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?(?:Z|\+00:00)$/.exec(iso);
  if (at === null) {
    return iso.replace(/[^0-9A-Za-z]/g, "");
  }
  const [, y, mo, d, h, mi, s, fraction] = at;
  return `${y}${mo}${d}T${h}${mi}${s}${(fraction ?? "").padEnd(6, "0")}Z`;
}

function releaseBody(evidence: Evidence, fencingToken: number): ReleaseBody {
  return {
    fencing_token: fencingToken,
    outcome: evidence.outcome,
    reason: evidence.reason,
    final_url: evidence.final_url,
    observed_proxy: evidence.observed_proxy,
    screenshot: evidence.screenshot,
    screenshot_sha256: evidence.screenshot_sha256,
    evidence_problem: evidence.evidence_problem,
  };
}

const DROPPABLE: Record<string, (keyof Evidence)[]> = {
  final_url: ["final_url"],
  screenshot: ["screenshot", "screenshot_sha256"],
  screenshot_sha256: ["screenshot", "screenshot_sha256"],
  observed_proxy: ["observed_proxy"],
};

function refusedField(error: unknown): string | null {
  if (!(error instanceof CustodyError) || error.status !== 422) return null;
  const field = error.problem.field;
  return field && field in DROPPABLE ? field : null;
}

/** The evidence without what the ledger refused as bad input, saying so: the lease ends,
 * unproven, rather than being left to expire. */
function withoutRefused(evidence: Evidence, field: string, said: string): Evidence {
  const note = `the ledger refused the release's ${field}: ${said}`;
  const problem = evidence.evidence_problem ? `${evidence.evidence_problem}; ${note}` : note;
  const changed: Evidence = { ...evidence, evidence_problem: kept(problem, MAX_REASON) };
  for (const name of DROPPABLE[field] ?? []) (changed as unknown as Record<string, null>)[name] = null;
  return changed;
}

/** The release given up after `STOP_WAIT_SECONDS` of a stop, saying what the Python SDK says
 * (`workers._renewal`), under the last failure's name. */
function leftLive(leaseId: string, error: unknown, answerLost: boolean): Error {
  const down = messageOf(error);
  const said = answerLost
    ? "the process was stopped and the service's answer to the release was lost, then not " +
      `given again within ${STOP_WAIT_SECONDS}s: the release may have been taken; if not, ` +
      `${leaseId} is left live, to go stale at its deadline (${down})`
    : `the process was stopped and the service did not take the release within ${STOP_WAIT_SECONDS}s: ` +
      `${leaseId} is left live, to go stale at its deadline (${down})`;
  const left = new Error(said, { cause: error });
  left.name = isError(error) ? nameOf(error) : "Error";
  return left;
}

/** The seconds one try of a checkout or a release waits for its answer (undefined: the
 * client's own `timeoutSeconds`): at most `STOP_WAIT_SECONDS` once the SDK stops the process. */
function stopWait(signalled: Signalled, wait: number | undefined, timeoutSeconds: number): number | undefined {
  if (!signalled.stopping) return wait;
  return Math.min(wait ?? timeoutSeconds, STOP_WAIT_SECONDS);
}

function lostError(leaseId: string, why: string): LeaseLost {
  return new LeaseLost(410, { error: "lease_lost", message: `${leaseId} is lost: ${why}`, lease_id: leaseId });
}

/** A failure worth resending the same request for, under its Idempotency-Key: the store (503),
 * a request not yet taken (408, 429), or an answer lost on its way, which the ledger may have
 * written (the network: fetch's `TypeError`; the client's timeout: a `DOMException`
 * "TimeoutError", or "AbortError"; a gateway's 502 or 504; an answer that is not JSON, a
 * captive portal's or a proxy's page: `UnreadableAnswer`). Never the ledger's own word. */
function transient(error: unknown): boolean {
  if (error instanceof CustodyError) {
    return error instanceof StoreUnavailable || NOT_YET.has(error.status) || notTheServices(error);
  }
  // A fetch that could not send its request for what it holds is no outage (rev32: a bad
  // header was resent for the checkout's whole TTL), nor one fetch refused to send (rev36: a
  // bad port): only the service out of reach is.
  return (error instanceof ServiceUnreachable && !refusedBeforeSending(error)) || lostAnswer(error);
}

/** How long a resend waits for its answer after `lost` answers were lost: the client's own
 * timeout at first, then twice as long each time (a slow service's answer comes back, where
 * one as short would be lost again), never longer than the `leftMs` the command has unless
 * that is less than the client's own. */
function longerAfter(lost: number, first: number, leftMs: number): number | undefined {
  return lost === 0 ? undefined : Math.min(first * 2 ** lost, Math.max(first, leftMs / 1000));
}

/** Whether the request may have been carried out and only its answer lost: the client's
 * timeout, a connection that dropped, a gateway's 502 or 504; not a connection the service
 * refused or a name that did not resolve (never sent), nor the service's own 503, 408 or 429. */
function mayHaveLanded(error: unknown): boolean {
  if (error instanceof CustodyError) return notTheServices(error);
  if (lostAnswer(error)) return true;
  return !(error instanceof ServiceUnreachable && error.code !== undefined && NEVER_SENT.has(error.code));
}

/** fetch's refusals of a request it never sent, with no code: a port it blocks ("bad port";
 * the client refuses such a base URL when it is made, but a fetch of the caller's own may
 * refuse so too). rev36: one was resent for the checkout's whole TTL, then warned that a
 * lease may have been granted. Never sent, and refused again if resent: not `transient`, so
 * never asked whether it may have landed (`mayHaveLanded`). */
const REFUSED_BEFORE_SENDING = new Set(["bad port"]);

function refusedBeforeSending(error: unknown): boolean {
  if (!(error instanceof ServiceUnreachable) || error.code !== undefined) return false;
  const cause = (error.cause as { cause?: unknown } | undefined)?.cause;
  return cause instanceof Error && REFUSED_BEFORE_SENDING.has(cause.message);
}

/** fetch's causes for a request that never reached the service. */
const NEVER_SENT = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

/** Asked again later, answered: a request timed out before the service had it (408), too many
 * requests (429). Neither was applied. */
const NOT_YET = new Set([408, 429]);

/** An answer that is not the service's: a gateway's 502 or 504 between the worker and the
 * service (replicas behind a load balancer), or a page that is not JSON (a captive portal's:
 * `UnreadableAnswer`). The request may have been applied and its answer lost, as with the
 * client's timeout. */
function notTheServices(error: CustodyError): boolean {
  return error.status === 502 || error.status === 504 || error instanceof UnreadableAnswer;
}

/** A refusal asking again will not change: a 4xx other than 408 (timeout) and 429 (too many). */
function refusedForGood(error: unknown): error is CustodyError {
  if (!(error instanceof CustodyError)) return false;
  return error.status >= 400 && error.status < 500 && error.status !== 408 && error.status !== 429;
}

function lostAnswer(error: unknown): boolean {
  const name = typeof error === "object" && error !== null ? (error as { name?: unknown }).name : undefined;
  return name === "TimeoutError" || name === "AbortError";
}

function sleep(ms: number): Promise<void> {
  return new Promise((done) => setTimeout(done, ms));
}

/** The proxies of the JSON file `$CUSTODY_PROXIES` names (none when it is unset; set but empty,
 * `LaunchRefused`, never none), read at each launch as the Python SDK reads it. */
function proxiesFromEnvironment(): Record<string, Resolved> {
  const path = process.env[PROXIES_ENV_VAR];
  if (path === undefined) return {};
  if (path.trim() === "") throw new LaunchRefused(`$${PROXIES_ENV_VAR} ${SET_BUT_EMPTY("no proxies")}`);
  let loaded: unknown;
  try {
    loaded = JSON.parse(readFileSync(path, "utf8"));
  } catch (error) {
    throw new LaunchRefused(`cannot read $${PROXIES_ENV_VAR} (${path}): ${firstLine(error)}`);
  }
  if (typeof loaded !== "object" || loaded === null || Array.isArray(loaded)) {
    throw new LaunchRefused(`$${PROXIES_ENV_VAR} (${path}) must hold a JSON object`);
  }
  return loaded as Record<string, Resolved>;
}

/** An environment variable set but empty (or spaces alone) is refused, never read as unset
 * (rev45: `Environment=CUSTODY_STORE=${UNSET}` quietly meant ./custody.db): the Python SDK's
 * `ledger.rules.environment_setting`. */
const SET_BUT_EMPTY = (fallback: string): string =>
  `is set but empty: unset it for the default (${fallback}), or give a value`;

/** `$CUSTODY_EVIDENCE_DIR`, else the user's state directory; set but empty, `RangeError`. */
function defaultEvidenceDir(): string {
  const named = process.env.CUSTODY_EVIDENCE_DIR;
  if (named !== undefined && named.trim() === "") {
    throw new RangeError(`CUSTODY_EVIDENCE_DIR: ${SET_BUT_EMPTY("the user's state directory")}`);
  }
  if (named !== undefined) return resolve(named);
  const state = process.env.XDG_STATE_HOME ?? "";
  const base = isAbsolute(state) ? state : join(homedir(), ".local", "state");
  return join(base, "custody", "evidence");
}


/** `LaunchRefused` for `ignoreDefaultArgs: true` (it drops the proxy and the directory
 * Playwright passes), for a list naming one of `GUARD_SWITCHES`, and for a switch of
 * `RESERVED_SWITCHES` in `args` or `ignoreDefaultArgs`. */
export function refuseReservedSwitches(options: BrowserOptions): void {
  const ignored = options.ignoreDefaultArgs;
  if (ignored === true) {
    throw new LaunchRefused(
      "ignoreDefaultArgs: true would drop the lease's proxy and profile directory: name the default arguments to drop instead",
    );
  }
  for (const arg of Array.isArray(ignored) ? ignored : []) {
    if (GUARD_SWITCHES.includes(arg)) {
      throw new LaunchRefused(
        `${JSON.stringify(arg)} keeps every request of the browser passing the lease's guard: ` +
          "not a default argument to drop",
      );
    }
  }
  for (const arg of [...(options.args ?? []), ...(Array.isArray(ignored) ? ignored : [])]) {
    const name = switchName(arg);
    if (name !== null && RESERVED_SWITCHES.has(name)) {
      throw new LaunchRefused(
        `${JSON.stringify(arg)} would change the browser's proxy, profile directory or WebRTC policy, ` +
          "which come from the lease's profile and this SDK: not a launch argument",
      );
    }
  }
}

/** The Chromium switch `arg` names (`--proxy-server=x` and `-proxy-server=x` both name
 * `proxy-server`), lower-cased; null for an argument that is not a switch. */
export function switchName(arg: unknown): string | null {
  if (typeof arg !== "string" || !arg.startsWith("-") || arg === "--") return null;
  return (arg.replace(/^-+/, "").split("=", 1)[0] ?? "").trim().toLowerCase();
}

/** Set the profile's WebRTC IP handling policy to `disable_non_proxied_udp` in
 * `Default/Preferences` (made if missing, 0600; every other preference and the file's mode
 * kept; a symlink written through), before each launch: without it WebRTC sends UDP straight
 * from the host, around the profile's proxy. `LaunchRefused` when the file is not a JSON
 * object (Chromium would start the profile afresh: a person should look first). */
export async function pinWebrtcPolicy(directory: string): Promise<void> {
  let path = join(directory, PREFERENCES);
  let prefs: Record<string, unknown> = {};
  let mode = 0o600;
  try {
    path = await realpath(path);
    const text = await readFile(path, "utf8");
    mode = (await stat(path)).mode & 0o7777;
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (error) {
      throw new LaunchRefused(`cannot read ${path} to pin WebRTC to the proxy: ${String(error)}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new LaunchRefused(`${path} does not hold a JSON object: Chromium would reset it`);
    }
    prefs = parsed as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw error;
  }
  const found = prefs.webrtc;
  const webrtc = typeof found === "object" && found !== null && !Array.isArray(found) ? (found as Record<string, unknown>) : {};
  if (webrtc.ip_handling_policy === WEBRTC_POLICY) return;
  prefs.webrtc = { ...webrtc, ip_handling_policy: WEBRTC_POLICY };
  await mkdir(dirname(path), { recursive: true });
  await writeWhole(path, JSON.stringify(prefs), mode); // whole, as the Python SDK (ledger.files)
}
