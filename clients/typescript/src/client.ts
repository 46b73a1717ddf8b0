/**
 * A typed client of custody's lease service. Every path, body and answer type here is taken
 * from `openapi.ts`, which is generated from the service's own /openapi.json (see
 * scripts/openapi-types.mjs): a resource the service renames, a field it drops or a body it
 * changes makes `tsc` refuse this file.
 *
 * Errors are the service's: a 409 denial is `CheckoutDenied` (with the ledger's denial), a 410
 * is `LeaseLost`, a 503 is `StoreUnavailable` (with Retry-After), anything else a
 * `CustodyError` carrying the body's `error` code and the ledger's sentence.
 */
import type { components, paths } from "./openapi.js";

export type Schemas = components["schemas"];
export type Lease = Schemas["Lease"];
export type LeaseCheck = Schemas["LeaseCheck"];
export type ReleaseResult = Schemas["ReleaseResult"];
export type Availability = Schemas["Availability"];
export type Explanation = Schemas["Explanation"];
export type Problem = Schemas["Problem"];
export type Denial = Schemas["Denial"];
export type Outcome = Schemas["Outcome"];
export type ProfileState = Schemas["ProfileState"];
export type ProfileRecord = Schemas["ProfileRecord"];

type Method = "get" | "post";
type Operation<P extends keyof paths, M extends Method> = NonNullable<paths[P][M]>;
type JsonOf<T> = T extends { content: { "application/json": infer B } } ? B : never;
/** The JSON body an operation takes. */
export type BodyOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { requestBody: infer R } ? JsonOf<R> : never;
/** The JSON an operation answers with `status`. */
export type AnswerOf<
  P extends keyof paths,
  M extends Method,
  S extends keyof Operation<P, M>["responses"],
> = JsonOf<Operation<P, M>["responses"][S]>;
type PathOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { path: infer A } } ? A : never;
type QueryOf<P extends keyof paths, M extends Method> =
  Operation<P, M> extends { parameters: { query?: infer Q } } ? Q : never;

export type CheckoutOrder = BodyOf<"/v1/profiles/{profile_id}/checkout", "post">;
export type HeartbeatBody = BodyOf<"/v1/leases/{lease_id}/heartbeat", "post">;
export type ExtendBody = BodyOf<"/v1/leases/{lease_id}/extend", "post">;
export type ReleaseBody = BodyOf<"/v1/leases/{lease_id}/release", "post">;
export type OperatorBody = BodyOf<"/v1/profiles/{profile_id}/force-release", "post">;

/** An answer of the service other than the one asked for. */
export class CustodyError extends Error {
  readonly status: number;
  readonly problem: Problem;

  constructor(status: number, problem: Problem) {
    super(problem.message);
    this.name = "CustodyError";
    this.status = status;
    this.problem = problem;
  }

  get code(): string {
    return this.problem.error;
  }
}

/** The expected status, with a body that is not JSON: not the service's answer (a captive
 * portal's or a proxy's page). The command may have been carried out: the worker resends it
 * under its Idempotency-Key to learn the service's own answer, as for one lost on its way. */
export class UnreadableAnswer extends CustodyError {
  override name = "UnreadableAnswer";
}

/** 409 to a checkout: the ledger's denial (reason code, holder, until, what unblocks it). */
export class CheckoutDenied extends CustodyError {
  override name = "CheckoutDenied";

  get denial(): Denial | null | undefined {
    return this.problem.denial;
  }
}

/** 410: the lease is lost (revoked, ended, stale, superseded). Stop working. */
export class LeaseLost extends CustodyError {
  override name = "LeaseLost";

  get leaseId(): string | null | undefined {
    return this.problem.lease_id;
  }
}

/** 503: the store did not answer; the same request (same Idempotency-Key) may be sent again. */
export class StoreUnavailable extends CustodyError {
  override name = "StoreUnavailable";
  retryAfterSeconds = 2;
}

/** The ports fetch refuses to send a request to, before sending ("bad port"): the Fetch
 * standard's port blocking list (https://fetch.spec.whatwg.org/#port-blocking), as `URL.port`
 * writes them. Node's fetch (undici) keeps its own copy, which it does not export; 0 is the
 * standard's, where no service listens either. */
const BAD_PORTS: ReadonlySet<string> = new Set(
  [
    0, 1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101,
    102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161, 179, 389,
    427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636,
    989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665,
    6666, 6667, 6668, 6669, 6679, 6697, 10080,
  ].map(String),
);

/** The longest a request may wait for its answer (a day), long polls included. */
const MAX_TIMEOUT_SECONDS = 86_400;
/** An Idempotency-Key the service takes: 1-128 visible ASCII characters. */
const KEY = /^[!-~]{1,128}$/;

export interface ClientOptions {
  /** The service's base URL, e.g. http://127.0.0.1:8420 (custody serve's default) */
  baseUrl: string;
  /** A bearer token (`custody access token ACTOR --role ROLE`). */
  token: string;
  /** Seconds a request may take, beyond any long poll's wait (default 30). */
  timeoutSeconds?: number;
  fetch?: typeof fetch;
}

interface Sending {
  path?: Record<string, string>;
  query?: Record<string, string | number | undefined | null>;
  body?: unknown;
  idempotencyKey?: string | undefined;
  waitSeconds?: number;
  signal?: AbortSignal | undefined;
  timeoutMs?: number | undefined;
}

/** The lease service's resources, one method each, typed from its OpenAPI document. */
export class CustodyClient {
  readonly baseUrl: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  /** Seconds a request may take (`timeoutSeconds`, 30 by default). */
  readonly timeoutSeconds: number;
  private readonly fetchFn: typeof fetch;

  constructor(options: ClientOptions) {
    let base: URL | undefined;
    try {
      base = new URL(options.baseUrl);
    } catch {
      base = undefined;
    }
    if (base === undefined || (base.protocol !== "http:" && base.protocol !== "https:")) {
      // rev29: a base URL without its scheme ("127.0.0.1:8420") was resent for 3 s, then
      // reported as "fetch failed".
      throw new TypeError(`baseUrl: an http:// or https:// URL, got ${JSON.stringify(options.baseUrl)}`);
    }
    if (base.username !== "" || base.password !== "") {
      // rev32: fetch refuses such a URL before sending, and the worker took that for a lost
      // answer (resent for the checkout's whole TTL), printing the password with it.
      throw new TypeError("baseUrl: holds a user or a password; give it without them (the token signs the client in)");
    }
    if (BAD_PORTS.has(base.port)) {
      // rev36: fetch refuses a request to such a port before sending ("bad port"), and the
      // worker took that for an outage (resent for the checkout's whole TTL, then warned that
      // a lease may have been granted, exit 6), though no request left the process.
      throw new TypeError(`baseUrl: port ${base.port} is one fetch refuses to send to (the Fetch standard's bad ports); serve custody on another port`);
    }
    if (typeof options.token !== "string" || !/^[!-~]+$/.test(options.token)) {
      // rev32: a pasted token with a curly quote or a line break made every request fail
      // before it was sent, as if the service were unreachable, with the token in the message.
      throw new TypeError("token: must be the token custody access token printed (visible ASCII characters, no spaces or line breaks); the one given is not, and is not shown");
    }
    const timeoutSeconds = options.timeoutSeconds ?? 30;
    if (typeof timeoutSeconds !== "number" || !(timeoutSeconds > 0 && timeoutSeconds <= MAX_TIMEOUT_SECONDS)) {
      // AbortSignal.timeout takes at most 2**32 - 1 ms: past it every request would fail.
      throw new RangeError(`timeoutSeconds: a number of seconds above 0 and at most ${MAX_TIMEOUT_SECONDS}, got ${String(timeoutSeconds)}`);
    }
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    this.token = options.token;
    this.timeoutSeconds = timeoutSeconds;
    this.timeoutMs = this.timeoutSeconds * 1000;
    this.fetchFn = options.fetch ?? fetch;
  }

  // -- the worker's lease --------------------------------------------------------------

  /** Check the profile out for the token's worker: the lease, or `CheckoutDenied`.
   * `timeoutSeconds`: this request's, instead of the client's (a resend after a lost answer
   * waits longer for its answer). `signal`: abandons the request, thrown as its reason. */
  checkout(
    profileId: string,
    order: CheckoutOrder,
    idempotencyKey?: string,
    timeoutSeconds?: number,
    signal?: AbortSignal,
  ): Promise<AnswerOf<"/v1/profiles/{profile_id}/checkout", "post", 201>> {
    return this.send("/v1/profiles/{profile_id}/checkout", "post", 201, {
      path: { profile_id: profileId } satisfies PathOf<"/v1/profiles/{profile_id}/checkout", "post">,
      body: order,
      idempotencyKey,
      timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
      signal,
    });
  }

  /** Renew the lease, recording the step and URL; `LeaseLost` once it is lost.
   * `timeoutSeconds`: this request's, instead of the client's. */
  heartbeat(
    leaseId: string,
    body: HeartbeatBody,
    idempotencyKey?: string,
    timeoutSeconds?: number,
  ): Promise<AnswerOf<"/v1/leases/{lease_id}/heartbeat", "post", 200>> {
    return this.send("/v1/leases/{lease_id}/heartbeat", "post", 200, {
      path: { lease_id: leaseId } satisfies PathOf<"/v1/leases/{lease_id}/heartbeat", "post">,
      body,
      idempotencyKey,
      timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
    });
  }

  extend(
    leaseId: string,
    body: ExtendBody,
    idempotencyKey?: string,
  ): Promise<AnswerOf<"/v1/leases/{lease_id}/extend", "post", 200>> {
    return this.send("/v1/leases/{lease_id}/extend", "post", 200, {
      path: { lease_id: leaseId } satisfies PathOf<"/v1/leases/{lease_id}/extend", "post">,
      body,
      idempotencyKey,
    });
  }

  /** End the lease with its outcome and evidence; the answer says where the profile stands.
   * `timeoutSeconds`: this request's, instead of the client's. `signal`: abandons the
   * request, thrown as its reason. */
  release(
    leaseId: string,
    body: ReleaseBody,
    idempotencyKey?: string,
    timeoutSeconds?: number,
    signal?: AbortSignal,
  ): Promise<AnswerOf<"/v1/leases/{lease_id}/release", "post", 200>> {
    return this.send("/v1/leases/{lease_id}/release", "post", 200, {
      path: { lease_id: leaseId } satisfies PathOf<"/v1/leases/{lease_id}/release", "post">,
      body,
      idempotencyKey,
      timeoutMs: timeoutSeconds === undefined ? undefined : timeoutSeconds * 1000,
      signal,
    });
  }

  /** Whether the lease is live; with `waitSeconds`, a long poll answering the moment it is not. */
  watch(
    leaseId: string,
    waitSeconds = 0,
    signal?: AbortSignal,
  ): Promise<AnswerOf<"/v1/leases/{lease_id}", "get", 200>> {
    const query: QueryOf<"/v1/leases/{lease_id}", "get"> = { wait: waitSeconds };
    return this.send("/v1/leases/{lease_id}", "get", 200, {
      path: { lease_id: leaseId } satisfies PathOf<"/v1/leases/{lease_id}", "get">,
      query,
      waitSeconds,
      signal,
    });
  }

  // -- people's actions and reads ------------------------------------------------------

  /** End the profile's live lease now (operators). */
  forceRelease(
    profileId: string,
    body: OperatorBody,
    idempotencyKey?: string,
  ): Promise<AnswerOf<"/v1/profiles/{profile_id}/force-release", "post", 200>> {
    return this.send("/v1/profiles/{profile_id}/force-release", "post", 200, {
      path: { profile_id: profileId },
      body,
      idempotencyKey,
    });
  }

  quarantine(
    profileId: string,
    body: BodyOf<"/v1/profiles/{profile_id}/quarantine", "post">,
    idempotencyKey?: string,
  ): Promise<AnswerOf<"/v1/profiles/{profile_id}/quarantine", "post", 200>> {
    return this.send("/v1/profiles/{profile_id}/quarantine", "post", 200, {
      path: { profile_id: profileId },
      body,
      idempotencyKey,
    });
  }

  /** The profile's registration: its account, proxy id and directory (what a worker needs to
   * launch its browser on the leased profile). */
  profile(profileId: string): Promise<AnswerOf<"/v1/profiles/{profile_id}", "get", 200>> {
    return this.send("/v1/profiles/{profile_id}", "get", 200, {
      path: { profile_id: profileId },
    });
  }

  /** Why the profile is (or is not) available, and what unblocks it. */
  why(profileId: string): Promise<AnswerOf<"/v1/profiles/{profile_id}/why", "get", 200>> {
    return this.send("/v1/profiles/{profile_id}/why", "get", 200, {
      path: { profile_id: profileId },
    });
  }

  /** Mark every lease past its renewal deadline stale (schedulers, operators). */
  sweep(idempotencyKey?: string): Promise<AnswerOf<"/v1/sweep", "post", 200>> {
    return this.send("/v1/sweep", "post", 200, { idempotencyKey });
  }

  // -- the wire ------------------------------------------------------------------------

  private async send<
    P extends keyof paths,
    M extends Method,
    S extends keyof Operation<P, M>["responses"] & number,
  >(path: P, method: M, status: S, sending: Sending): Promise<AnswerOf<P, M, S>> {
    const url = new URL(this.baseUrl + fill(path, sending.path ?? {}));
    for (const [name, value] of Object.entries(sending.query ?? {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    if (sending.body !== undefined) headers["Content-Type"] = "application/json";
    if (sending.idempotencyKey !== undefined) {
      if (!KEY.test(sending.idempotencyKey)) {
        // rev32: fetch refused it before sending, which read as an outage and was resent.
        throw new TypeError(`Idempotency-Key: 1-128 visible ASCII characters, no spaces, got ${JSON.stringify(sending.idempotencyKey.slice(0, 40))}`);
      }
      headers["Idempotency-Key"] = sending.idempotencyKey;
    }
    const waitMs = (sending.timeoutMs ?? this.timeoutMs) + (sending.waitSeconds ?? 0) * 1000;
    // Whole milliseconds: AbortSignal.timeout throws a RangeError for a fraction (rev29 reread:
    // a resend's timeout, cut to the time a command has left, was one).
    const timeout = AbortSignal.timeout(Math.ceil(waitMs));
    let answer: Response;
    let text: string;
    try {
      answer = await this.fetchFn(url, {
        method: method.toUpperCase(),
        headers,
        body: sending.body === undefined ? null : JSON.stringify(sending.body),
        signal: sending.signal ? AbortSignal.any([timeout, sending.signal]) : timeout,
        // A redirect is answered as an error (its 3xx), never followed: following it would
        // send the command, its body and its Idempotency-Key, to wherever the Location points.
        redirect: "manual",
      });
      // The body read here too: a connection dropped after the headers is an answer lost on
      // its way, resent as one dropped before them is (rev32 reread: it was left unresent).
      text = await answer.text();
    } catch (error) {
      const request = `${method.toUpperCase()} ${url.origin}${url.pathname}`;
      // Only this request's own timeout is named as such: an abort the caller's signal made is
      // the caller's, thrown as it is.
      if (timeout.aborted && lostToTimeout(error)) throw new ServiceTimedOut(request, Math.ceil(waitMs) / 1000, error);
      throw unreached(error, request, this.token);
    }
    if (answer.status === status) return parsed<AnswerOf<P, M, S>>(answer.status, text);
    throw errorOf(answer.status, text, answer.headers.get("Retry-After"), answer.headers.get("Location"));
  }
}

/** The service could not be reached, or the connection broke before its answer: fetch's
 * `TypeError` ("fetch failed") named with the request and why (`code`: `ECONNREFUSED`, a DNS
 * failure, a reset connection), the original in `cause`. A `TypeError` still, as fetch's is. */
export class ServiceUnreachable extends TypeError {
  override name = "ServiceUnreachable";
  readonly code: string | undefined;

  constructor(request: string, error: TypeError, token = "") {
    const cause = (error as { cause?: unknown }).cause;
    const code = typeof cause === "object" && cause !== null ? (cause as { code?: unknown }).code : undefined;
    const told = cause instanceof Error ? cause.message : error.message;
    const said = token === "" ? told : told.split(token).join("[token]");
    const why = typeof code === "string" && !said.includes(code) ? `${code}: ${said}` : said;
    super(`${request}: the service could not be reached (${why})`, { cause: error });
    this.code = typeof code === "string" ? code : undefined;
  }
}

/** The request's answer did not come within the client's timeout (`timeoutSeconds`, or the
 * longer one a resend waits): fetch's `DOMException` "TimeoutError" (or "AbortError", as some
 * fetch implementations reject an aborted request) named with the request and the seconds
 * waited, the original in `cause` (rev41: a worker's last error read only "TimeoutError: The
 * operation was aborted due to timeout"). A `DOMException` named "TimeoutError" still, so
 * that it is taken for a lost answer and resent under its key as before, and a caller's
 * `error.name === "TimeoutError"` still holds. The request may have been carried out. */
export class ServiceTimedOut extends DOMException {
  readonly seconds: number;
  override readonly cause: unknown;

  constructor(request: string, seconds: number, error: unknown) {
    super(`${request}: no answer within ${seconds} s (the request may have been carried out)`, "TimeoutError");
    this.seconds = seconds;
    this.cause = error;
  }
}

function lostToTimeout(error: unknown): boolean {
  const name = typeof error === "object" && error !== null ? (error as { name?: unknown }).name : undefined;
  return name === "TimeoutError" || name === "AbortError";
}

/** fetch's `TypeError` (the request or its answer lost on the way) as a `ServiceUnreachable`
 * (rev29: a worker against a service that was down printed only "fetch failed"), the token
 * never in its message; any other error as it is. What fetch would refuse before sending (a
 * token or key a header cannot carry, a URL holding a password, a bad port) the client refuses first,
 * as bad input, so that no such request is taken for an outage and resent (rev32). */
function unreached(error: unknown, request: string, token: string): unknown {
  return error instanceof TypeError ? new ServiceUnreachable(request, error, token) : error;
}

/** The path segments the URL standard takes for "this directory" and "its parent", in any
 * case (https://url.spec.whatwg.org/#single-dot-path-segment): `new URL()` removes such a
 * segment, and the one before it. */
const DOT_SEGMENT = /^(?:\.|%2e){1,2}$/i;

/** The template with each `{name}` filled by its value escaped as one path segment; a
 * `TypeError` (bad input, before anything is sent) for a value that is a dot segment: "." or
 * ".." (rev38: `new URL()` removed it, so `why(".")` answered the registration of a profile
 * named "why", `forceRelease(".")` a 405 and `profile(".")` a 307), or one written with
 * `%2e` (escaped, it would reach the service as such; a proxy that decodes a path before it
 * routes it would take it for the dots). No id the service takes is either. So too for a value
 * holding a lone surrogate, half a character no URL can carry (rev44: `encodeURIComponent`
 * threw a bare `URIError: URI malformed`, naming nothing). */
function fill(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new TypeError(`no value for {${name}} in ${template}`);
    if (DOT_SEGMENT.test(value)) {
      throw new TypeError(`${name}: ${JSON.stringify(value)} is no id the service takes (a URL reads it as a directory, not as one)`);
    }
    try {
      return encodeURIComponent(value);
    } catch (error) {
      if (!(error instanceof URIError)) throw error;
      throw new TypeError(`${name}: ${JSON.stringify(value)} is no id the service takes (it holds a lone surrogate: half a character, which no URL carries)`);
    }
  });
}

/** The expected answer's JSON; a body that is not JSON (a proxy's or a captive portal's
 * page) is a `CustodyError` naming its status, never a bare `SyntaxError`. The command may
 * have been carried out: resend it under its Idempotency-Key to learn its answer. */
function parsed<T>(status: number, text: string): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    const message = `the answer (HTTP ${status}) is not JSON: ${text.slice(0, 200)}`;
    throw new UnreadableAnswer(status, { error: `http_${status}`, message });
  }
}

/** The error an answer means; a body that is not the service's Problem is named as such. */
export function errorOf(
  status: number,
  text: string,
  retryAfter: string | null,
  location: string | null = null,
): CustodyError {
  let problem: Problem;
  try {
    const parsed = JSON.parse(text) as Partial<Problem>;
    if (typeof parsed.error !== "string" || typeof parsed.message !== "string") throw new Error();
    problem = parsed as Problem;
  } catch {
    problem = { error: `http_${status}`, message: text.slice(0, 500) || `HTTP ${status}` };
  }
  if (status >= 300 && status < 400) {
    const where = location ?? "nowhere it said";
    const message = `the service answered a redirect (HTTP ${status}) to ${where}; it is never followed: set baseUrl to where the service is`;
    return new CustodyError(status, { error: `http_${status}`, message });
  }
  if (status === 409 && problem.error === "checkout_denied") return new CheckoutDenied(status, problem);
  if (status === 410) return new LeaseLost(status, problem);
  if (status === 503) {
    const unavailable = new StoreUnavailable(status, problem);
    const seconds = Number(retryAfter);
    if (retryAfter !== null && Number.isFinite(seconds) && seconds >= 0) {
      unavailable.retryAfterSeconds = seconds;
    }
    return unavailable;
  }
  return new CustodyError(status, problem);
}
