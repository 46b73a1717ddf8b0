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
 * - a checkout being decided: the answer is waited for; a lease granted is released the same way
 *   before the task runs ("before its first step"), a denial is dropped;
 *
 * then, every lease of the process released, the process exits with status 143, as one killed
 * by the signal. An application with a SIGTERM listener of its own (`process.on` or
 * `process.once`) decides instead: the SDK only notes the signal, so that a release after it
 * says SIGTERM came (and what the task threw). Playwright's own listener (a browser the
 * application launched with Playwright's defaults) is not the application's: it closes that
 * browser and exits nothing. Node's default comes back when the last lease is left.
 */
import { capped, pythonRepr, reasonOf, storable } from "./text.js";

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

/** What SIGTERM did to one checkout, from its sending to its release. */
export class Signalled {
  /** The signal that came, if one did. */
  signal: NodeJS.Signals | null = null;
  /** Whether the SDK stops the run (else the application's own listener decides). */
  stopping = false;
  /** Ends the held lease for the SDK; set once the checkout's lease is held. */
  end: (() => Promise<void>) | null = null;
  private resolveSettled: () => void = () => {};
  /** Settled once this checkout has nothing left to release. */
  readonly settled: Promise<void> = new Promise<void>((resolve) => {
    this.resolveSettled = resolve;
  });

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
    if (!(error instanceof Terminated)) said += ` (${reasonOf(error)})`;
    return capped(storable(said));
  }
}

const held = new Set<Signalled>();

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
  const leases = [...held];
  for (const lease of leases) {
    lease.signal ??= signal;
    if (!own) lease.stopping = true;
  }
  if (own) return;
  process.exitCode = 143;
  const ending = leases.map((lease) => {
    void lease.end?.().then(
      () => lease.done(),
      () => lease.done(), // a release that failed was warned of: the sweep settles the lease
    );
    return lease.settled;
  });
  void Promise.all(ending).then(() => process.exit(143));
}

/** SIGTERM is the SDK's for `lease`'s checkout until `leave`. */
export function enter(lease: Signalled): void {
  // Before any listener of the application's: see onSigterm.
  if (held.size === 0) process.prependListener("SIGTERM", onSigterm);
  held.add(lease);
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
