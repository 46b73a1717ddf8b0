// What the TypeScript tests share: a fake fetch that answers as the service would, a lease, and
// scratch directories removed once a file's tests are done.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after } from "node:test";
import type { Lease } from "../src/index.js";

// A run left 75 evidence directories in /tmp (custody-ts-*, custody-gw-*, ...): each test
// file's own, removed when its tests end.
const made: string[] = [];
after(() => Promise.all(made.map((dir) => rm(dir, { recursive: true, force: true }))));

/** A new directory under the system's temporary one, removed when this file's tests end. */
export async function scratch(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}

export interface Sent {
  method: string;
  url: string;
  headers: Record<string, string>;
  body: Record<string, unknown> | null;
}

/** An answer, or the answer lost on its way (`lost`: what fetch rejects with, once the
 * request has reached the service). */
export type Answer = { status: number; body: unknown; headers?: Record<string, string> } | { lost: unknown };

/** A fetch that records each request and answers from `answers` in order; the revocation
 * watch's long poll is held open until it is aborted (the lease stays live). */
export function fakeFetch(answers: Answer[]): { fetch: typeof fetch; sent: Sent[] } {
  const sent: Sent[] = [];
  const fake = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    if (init?.method === "GET" && String(input).includes("/v1/leases/")) {
      const signal = init.signal;
      return new Promise((_, reject) => signal?.addEventListener("abort", () => reject(signal.reason)));
    }
    sent.push({
      method: init?.method ?? "GET",
      url: String(input),
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: typeof init?.body === "string" ? (JSON.parse(init.body) as Record<string, unknown>) : null,
    });
    const next = answers.shift();
    if (!next) throw new Error(`no answer left for ${String(input)}`);
    if ("lost" in next) throw next.lost;
    return new Response(JSON.stringify(next.body), { status: next.status, headers: next.headers ?? {} });
  };
  return { fetch: fake as typeof fetch, sent };
}

export const LEASE: Lease = {
  lease_id: "lease-1@p 1",
  profile_id: "p 1",
  account_id: "a1",
  worker_id: "w1",
  run_id: "r1",
  task_type: "t",
  proxy_id: "x1",
  lease_status: "active",
  lease_started_at: "2026-12-02T00:00:00Z",
  heartbeat_at: "2026-12-02T00:00:00Z",
  expires_at: "2026-12-02T00:05:00Z",
  ttl_seconds: 300,
  release_policy: "manual_review_on_unknown_state",
  fencing_token: 7,
};
