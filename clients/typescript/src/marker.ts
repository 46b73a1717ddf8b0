/**
 * The lease's mark on the profile directory, as the Python SDK writes and judges it
 * (workers/_profile_dir.py): a launch guard that Chromium's own lock is not.
 *
 * Before a browser opens a profile, the worker writes its profile and fencing token into
 * `.custody-lease` in the profile directory. Tokens rise within one profile only, so they are
 * compared only there. The launch has just renewed the lease, so a mark of its own profile
 * holding a higher token was written under a lease this store never granted (a directory
 * copied or restored from another store, a store created anew) or by a later lease in a race:
 * the launch is refused with `LaunchRefused` saying so and what to do, and the lease is not
 * lost for that. A mark written by another profile means the directory is that profile's: the
 * launch is refused with `LaunchRefused` naming it, whatever the tokens. A mark that cannot be
 * read is refused too (`LaunchRefused`): a directory whose guard is damaged is not opened on a
 * guess. The Python SDK's `workers/_profile_dir._judge`, message for message.
 *
 * The read-compare-write holds an exclusive flock(2) on the marker, the lock Python's
 * `fcntl.flock` takes, so Node and Python workers sharing the directories exclude each other:
 * of two racing launches the lower token always loses. Node has no flock(2) of its own, so
 * util-linux's `flock(1)` holds it for the claim. The marker is the same JSON text Python's
 * `json.dumps(marker, sort_keys=True)` writes.
 */
import { spawn } from "node:child_process";
import { mkdir, open } from "node:fs/promises";
import { join } from "node:path";

export const MARKER = ".custody-lease";
/** Where util-linux's flock(1) is looked for (Debian and Ubuntu always have it there). */
export const FLOCK = "/usr/bin/flock";
const LOCK_WAIT_SECONDS = 60;

/** The browser was not launched: the profile or this worker's configuration does not allow
 * it (no directory for the profile, a proxy id this worker cannot resolve, an option that
 * would launch something other than the leased profile, a directory another profile marked,
 * the marker's lock not had). The Python SDK's `workers.LaunchRefused`. */
export class LaunchRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = "LaunchRefused";
  }
}

/** What the marker holds: the lease that last opened the directory. */
export interface Marker {
  fencing_token: number;
  lease_id: string;
  profile_id: string;
  worker_id: string;
  run_id: string;
  written_at: string;
}

/** The lease a claim is made for (a `Lease` of the service has all of these). */
export interface MarkingLease {
  fencing_token: number;
  lease_id: string;
  profile_id: string;
  worker_id: string;
  run_id: string;
}

export interface ClaimOptions {
  /** How long to wait for the marker's lock (seconds; default 60). `LaunchRefused` after. */
  waitSeconds?: number;
  /** The flock(1) to run (default /usr/bin/flock). */
  flock?: string;
  /** The moment written into the marker (default now). */
  now?: Date;
}

/** Write the lease's marker into `directory` (made if missing) and answer it. `LaunchRefused`
 * if another profile marked the directory, this profile's mark holds a higher fencing token or
 * the same for another worker or run, or the mark cannot be read; the marker is then left as
 * it was. The same token again for the same worker and run (a relaunch) is allowed. */
export async function claim(directory: string, lease: MarkingLease, options: ClaimOptions = {}): Promise<Marker> {
  await mkdir(directory, { recursive: true });
  const path = join(directory, MARKER);
  const marker: Marker = {
    fencing_token: lease.fencing_token,
    lease_id: lease.lease_id,
    profile_id: lease.profile_id,
    worker_id: lease.worker_id,
    run_id: lease.run_id,
    written_at: isoformat(options.now ?? new Date()),
  };
  await (await open(path, "a", 0o644)).close(); // made as Python makes it, before flock(1) opens it
  const release = await lock(path, options.waitSeconds ?? LOCK_WAIT_SECONDS, options.flock ?? FLOCK);
  try {
    const file = await open(path, "r+");
    try {
      const text = utf8(await file.readFile());
      judge(directory, text === null ? null : markIn(text), lease);
      await file.truncate(0);
      await file.write(pythonJson(marker), 0, "utf8");
      await file.sync();
    } finally {
      await file.close();
    }
  } finally {
    await release();
  }
  return marker;
}

/** A marker's fencing token, profile, and the worker and run it was written for (null: a mark
 * of an earlier custody, which wrote none, or a new file): Python's `Mark`. */
export type Mark = [number, string | null, [string, string] | null];

/** Refuse the launch unless the directory's mark `held` (token, profile, worker and run)
 * allows it: Python's `_judge`, message for message. */
export function judge(directory: string, held: Mark | null, lease: MarkingLease): void {
  const path = join(directory, MARKER);
  if (held === null) {
    throw new LaunchRefused(`${path} cannot be read: check the directory, then remove it`);
  }
  const [token, owner, holder] = held;
  if (owner !== null && owner !== lease.profile_id) {
    throw new LaunchRefused(
      `${directory} carries the lease marker of profile ${owner} (fencing token ${token}): it is ` +
        `${owner}'s directory, not ${lease.profile_id}'s, and one directory never serves two ` +
        `profiles; once ${owner} no longer uses it, remove ${path}`,
    );
  }
  if (token > lease.fencing_token) {
    throw new LaunchRefused(
      `${path} holds fencing token ${token}, higher than lease ${lease.lease_id}'s ` +
        `${lease.fencing_token}, which the ledger has just renewed: the directory was opened ` +
        "under a lease this store never granted (copied or restored from another store, or " +
        "the store was created anew), or by a later lease of this profile in a race. Once no " +
        `browser uses it (custody inspect ${lease.profile_id}), remove ${path}: the next launch ` +
        "writes its own",
    );
  }
  if (token === lease.fencing_token && holder !== null && (holder[0] !== lease.worker_id || holder[1] !== lease.run_id)) {
    // rev33: a store created anew, or a backup moved over it, grants a token again.
    throw new LaunchRefused(
      `${path} holds fencing token ${token} for run ${holder[1]} of worker ${holder[0]}, not for lease ` +
        `${lease.lease_id}'s run ${lease.run_id} of worker ${lease.worker_id}: the store granted ` +
        "this token twice (it was created anew, or restored from a backup). Once no browser " +
        `uses the directory (custody inspect ${lease.profile_id}), remove ${path}: the next ` +
        "launch writes its own",
    );
  }
}

/** The (token, profile, [worker, run]) a marker's text holds; (0, null, null) for an empty
 * (new) file; null when it cannot be read (not JSON, not an object naming an integer token and
 * a profile). A mark without a worker and a run holds null for them. */
export function markIn(text: string): Mark | null {
  if (!text.trim()) return [0, null, null];
  let loaded: unknown;
  try {
    loaded = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof loaded !== "object" || loaded === null || Array.isArray(loaded)) return null;
  const { fencing_token: token, profile_id: owner, worker_id: worker, run_id: run } = loaded as Record<string, unknown>;
  if (typeof token !== "number" || !Number.isSafeInteger(token) || typeof owner !== "string") return null;
  return [token, owner, typeof worker === "string" && typeof run === "string" ? [worker, run] : null];
}

/** `value` as Python's `json.dumps(value, sort_keys=True)` writes it: keys sorted, ", " and
 * ": " between, every character outside printable ASCII escaped as \uXXXX. */
export function pythonJson(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new TypeError(`not an integer the marker holds: ${value}`);
    return String(value);
  }
  if (typeof value === "string") return pythonString(value);
  if (Array.isArray(value)) return `[${value.map(pythonJson).join(", ")}]`;
  if (typeof value === "object") {
    const record = value as Record<string, unknown>;
    const keys = Object.keys(record).sort(byCodePoint);
    return `{${keys.map((k) => `${pythonString(k)}: ${pythonJson(record[k])}`).join(", ")}}`;
  }
  throw new TypeError(`not JSON: ${typeof value}`);
}

const SHORT: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

function pythonString(text: string): string {
  let out = '"';
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    const unit = text.charCodeAt(i); // UTF-16 code units: a pair outside the BMP, as Python writes it
    if (SHORT[c] !== undefined) out += SHORT[c];
    else if (unit < 0x20 || unit > 0x7e) out += `\\u${unit.toString(16).padStart(4, "0")}`;
    else out += c;
  }
  return `${out}"`;
}

/** Python sorts str keys by code point; JS's default sort compares UTF-16 code units. */
function byCodePoint(a: string, b: string): number {
  const x = Array.from(a, (c) => c.codePointAt(0) as number);
  const y = Array.from(b, (c) => c.codePointAt(0) as number);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] as number) - (y[i] as number);
  }
  return x.length - y.length;
}

/** `datetime.now(UTC).isoformat()`'s form: 2026-12-03T22:54:51.123000+00:00. */
export function isoformat(moment: Date): string {
  const iso = moment.toISOString(); // 2026-12-03T22:54:51.123Z
  const ms = moment.getUTCMilliseconds();
  const base = iso.slice(0, 19);
  return ms === 0 ? `${base}+00:00` : `${base}.${String(ms * 1000).padStart(6, "0")}+00:00`;
}

function utf8(bytes: Buffer): string | null {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
}

/** Hold an exclusive flock(2) on `path` with flock(1) until the answered function is called.
 * `LaunchRefused` when flock(1) cannot be run or the lock is not had within `waitSeconds`. */
export async function lock(path: string, waitSeconds: number, flock: string = FLOCK): Promise<() => Promise<void>> {
  // -o: the lock is flock(1)'s alone, not the shell's; `exec cat` keeps it until stdin ends,
  // which a dying worker's pipe also does, so a lock is never left behind.
  const child = spawn(flock, ["-x", "-o", "-w", String(waitSeconds), path, "-c", "echo locked; exec cat >/dev/null"], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let spawnError: Error | null = null;
  const exited = new Promise<number | null>((done) => {
    child.on("error", (error) => {
      spawnError = error;
      done(null);
    });
    child.on("close", (code) => done(code));
  });
  let err = "";
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString()));
  const locked = await new Promise<boolean>((done) => {
    let said = "";
    child.stdout.on("data", (chunk: Buffer) => {
      said += chunk.toString();
      if (said.includes("locked\n")) done(true);
    });
    void exited.then(() => done(false));
  });
  if (!locked) {
    const code = await exited;
    if (spawnError !== null) {
      const why = (spawnError as Error).message;
      throw new LaunchRefused(
        `${flock} could not be run (${why}): util-linux's flock(1) takes the lock on ${path} ` +
          "that Python workers take with fcntl.flock; install util-linux",
      );
    }
    if (code === 1) {
      throw new LaunchRefused(`the lock on ${path} was not had within ${waitSeconds} s: another launch holds it`);
    }
    throw new LaunchRefused(`flock(1) could not lock ${path} (exit ${String(code)}): ${err.trim()}`);
  }
  return async () => {
    child.stdin.end();
    await exited;
  };
}
