/**
 * SIGTERM (how Kubernetes and systemd stop a process) while this process holds leases, as the
 * Python SDK's `workers._termination` handles it: the leases are ended truthfully rather than
 * left to go stale.
 *
 * Node's default for SIGTERM kills the process on the spot: no release, and the profile waits
 * out its TTL to be marked stale as "deadline missed". From the moment a checkout is sent until
 * its lease is released, the SDK listens for SIGTERM instead:
 *
 * - a lease held: its heartbeats stop, its browser is closed (so the task's next browser call
 *   fails), and it is released as a failure saying `terminated by SIGTERM at step '...'` (so
 *   review, or quarantine after an unconfirmed mutating step); the task's next SDK call throws
 *   `Terminated`;
 * - a checkout being decided: the answer is waited for (as a release is, below); a lease
 *   granted is released the same way before the task runs ("before its first step"), a denial
 *   is dropped;
 * - a checkout begun after the signal (a pool's next one) sends nothing and never settles;
 *
 * then, every lease of the process released, the process exits with status 143, as one killed
 * by the signal. A service that does not answer does not hold the stop up: from the signal, a
 * release or a checkout under way is resent for `STOP_WAIT_SECONDS` only (a try under way at
 * the bound abandoned there; once more past it, 5 s at most, when an answer was lost),
 * then the lease is left live, to go stale at its deadline, and a process warning says so, as
 * the Python SDK does.
 *
 * An application with a SIGTERM listener of its own (`process.on` or `process.once`) decides
 * instead: the SDK only notes the signal, so that a release after it says SIGTERM came (and
 * what the task threw). Playwright's own listener (a browser the application launched with
 * Playwright's defaults) is not the application's: it closes that browser and exits nothing.
 * Node's default comes back when the last lease is left.
 */
import { capped, pythonRepr, reasonOf, storable } from "./text.js";

/** After the SDK stops the process, how long a release waits for a service that does not
 * answer: the Python SDK's `STOP_WAIT_SECONDS`, well inside Kubernetes' 30 s grace period. */
export const STOP_WAIT_SECONDS = 5;

/** Thrown by a task's SDK calls once SIGTERM stopped the run; the process exits 143 once the
 * lease is released. */
export class Terminated extends Error {
  readonly signal: NodeJS.Signals;
  constructor(signal: NodeJS.Signals = "SIGTERM") {
    super(`terminated by ${signal}`);
    this.name = "Terminated";
    this.signal = signal;
  }
}

/** `error instanceof Terminated`, false where asking throws (a Proxy whose `getPrototypeOf`
 * trap throws): a task's error is asked before its lease is released, and a throw there left
 * the lease live (rev42). */
export function isTerminated(error: unknown): error is Terminated {
  try {
    return error instanceof Terminated;
  } catch {
    return false;
  }
}

/** What SIGTERM did to one checkout, from its sending to its release. */
export class Signalled {
  /** The signal that came, if one did. */
  signal: NodeJS.Signals | null = null;
  /** Whether the SDK stops the run (else the application's own listener decides). */
  stopping = false;
  /** When the SDK began stopping the run (`performance.now()`), or null. */
  stoppedAt: number | null = null;
  /** Ends the held lease for the SDK; set once the checkout's lease is held. */
  end: (() => Promise<void>) | null = null;
  private readonly bounding = new AbortController();
  /** Aborted `STOP_WAIT_SECONDS` after the SDK began stopping the run: a request under way
   * then is abandoned there, whatever timeout it was sent with (rev42: a release sent before
   * the signal kept the client's 30 s, and the stop took 33 s). */
  readonly bound: AbortSignal = this.bounding.signal;
  private resolveSettled: () => void = () => {};
  /** Settled once this checkout has nothing left to release. */
  readonly settled: Promise<void> = new Promise<void>((resolve) => {
    this.resolveSettled = resolve;
  });

  /** The SDK stops the run for `signal`. */
  stop(signal: NodeJS.Signals): void {
    this.signal ??= signal;
    this.stopping = true;
    if (this.stoppedAt !== null) return;
    this.stoppedAt = performance.now();
    const said = `no answer within ${STOP_WAIT_SECONDS}s of ${signal}`;
    setTimeout(() => this.bounding.abort(new DOMException(said, "TimeoutError")), STOP_WAIT_SECONDS * 1000);
  }

  /** What a request sent now is abandoned with at the bound: `bound`, or nothing past it (the
   * one last try after a lost answer has its own `STOP_WAIT_SECONDS`). */
  abandonedBy(): AbortSignal | undefined {
    return this.waitedEnough() ? undefined : this.bound;
  }

  /** `ms`, cut to what is left of `STOP_WAIT_SECONDS` once the run was stopped (0 past it). */
  serviceWait(ms: number): number {
    if (this.stoppedAt === null) return ms;
    return Math.max(0, Math.min(ms, this.stoppedAt + STOP_WAIT_SECONDS * 1000 - performance.now()));
  }

  /** True once the run was stopped `STOP_WAIT_SECONDS` ago or more: a release waits for the
   * service no more. */
  waitedEnough(): boolean {
    if (this.stoppedAt === null) return false;
    return this.bound.aborted || this.serviceWait(STOP_WAIT_SECONDS * 1000) <= 0;
  }

  /** The checkout has nothing left to release (released, denied, failed). */
  done(): void {
    this.resolveSettled();
  }

  /** The release's reason after the signal (null: no signal came), as the Python SDK says it:
   * the last step reached, and, when the run ended by another error (the application's own
   * listener's doing), that error. */
  reason(step: string | null, error: unknown): string | null {
    if (this.signal === null) return null;
    let said = `terminated by ${this.signal} `;
    said += step ? `at step ${pythonRepr(step)}` : "before its first step";
    if (!isTerminated(error)) said += ` (${reasonOf(error)})`;
    return capped(storable(said));
  }
}

const held = new Set<Signalled>();
/** The signal the SDK is stopping the process for (null: it is not): set at a SIGTERM no
 * application listener decides, never unset, for the process exits. */
let stoppedBy: NodeJS.Signals | null = null;

/** Whether `listener` is Playwright's own (`handleSIGTERM`, on by default for a browser the
 * application launched itself): it closes that browser and never exits, so it is not the
 * application deciding, and the leases are ended all the same. */
function playwrights(listener: NodeJS.SignalsListener): boolean {
  return listener.name === "sigtermHandler";
}

function onSigterm(signal: NodeJS.Signals): void {
  // The application listens too (a listener other than the SDK's and Playwright's): it decides.
  // The SDK's listener is the first (`enter`), so an application's `process.once` listener is
  // still there to be seen: Node takes a once listener off before it calls it (rev42: the SDK
  // took such an application for one without a listener, and exited under it).
  const own = process.listeners("SIGTERM").some((l) => l !== onSigterm && !playwrights(l));
  for (const lease of held) {
    if (own) lease.signal ??= signal;
    else lease.stop(signal);
  }
  if (own) return;
  const first = stoppedBy === null;
  stoppedBy ??= signal;
  process.exitCode = 143;
  for (const lease of held) {
    void lease.end?.().then(
      () => lease.done(),
      () => lease.done(), // a release that failed was warned of: the sweep settles the lease
    );
  }
  if (first) void exitOnceSettled();
}

/** Exit 143 once every lease of the process has nothing left to release: those held at the
 * signal, and any held since (`enter` lets none in). */
async function exitOnceSettled(): Promise<void> {
  for (;;) {
    const waited = [...held];
    await Promise.all(waited.map((lease) => lease.settled));
    if ([...held].every((lease) => waited.includes(lease))) break;
  }
  // After the turn: a warning emitted on the way (a lease not released) is written first.
  setImmediate(() => process.exit(143));
}

/** SIGTERM is the SDK's for `lease`'s checkout until `leave`. False, and nothing entered, when
 * the SDK is stopping the process already: that checkout must send nothing, for a lease
 * granted now would be left live when the process exits (rev42: a pool's next checkout ran
 * its task, and the process exited under it). */
export function enter(lease: Signalled): boolean {
  if (stoppedBy !== null) return false;
  // Before any listener of the application's: see onSigterm.
  if (held.size === 0) process.prependListener("SIGTERM", onSigterm);
  held.add(lease);
  return true;
}

export function leave(lease: Signalled): void {
  lease.done();
  held.delete(lease);
  if (held.size === 0) process.off("SIGTERM", onSigterm);
}

/** Never settles: what a checkout the SDK stopped answers while the process exits. */
export function exiting(): Promise<never> {
  return new Promise<never>(() => {});
}
