/**
 * A leased profile's browser: Playwright's persistent context on the profile's directory, with
 * the lease guard on every request and the navigation watch.
 *
 * Every request of the context, whichever page or frame makes it, passes `context.route`'s
 * handler, which lets it through only while the lease is held and aborts it once the lease is
 * lost; and the moment the guard loses the lease (the revocation watch, a refused heartbeat,
 * the local deadline) the context is closed, which ends the browser. Not covered: a route the
 * task installs itself that calls `continue()` (use `fallback()`), WebSockets already open
 * (closed with the context), and `context.request` (Playwright's own HTTP client, no route).
 */
import { createHash } from "node:crypto";
import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type { BrowserContext, Frame, Page, Route } from "playwright-core";
import { writeWhole } from "./files.js";
import type { LeaseGuard, Progress } from "./guard.js";
import { nameOf, reasonOf, withoutPasswords } from "./text.js";

export const BLOCKED = "blockedbyclient";
const SCREENSHOT_TIMEOUT_MS = 10_000;
const CLOSE_TIMEOUT_MS = 10_000;

export class BrowserSession {
  private closing: Promise<void> | null = null;
  // The context closed before this session closed it: the browser went away (a crash, a
  // kill), which also closes every page.
  private gone = false;
  // The final screenshot was taken (or tried): the run's URL is the page's as of the capture,
  // and navigations delivered while the browser closes move it on no more (as the Python
  // SDK's `_captured`; a single-page app's pushState moved it 61-252 ms past the capture).
  private captured = false;
  private lastPage: Page | null = null;
  // Every page navigated, in the order of their last navigations: the one to fall back on
  // once the last is closed is the latest still open (rev30: the last one open stood for it).
  private navigatedPages: Page[] = [];

  constructor(
    readonly context: BrowserContext,
    private readonly guard: LeaseGuard,
    private readonly progress: Progress,
  ) {}

  /** The request guard on every request, the navigation watch on every page, and the stop
   * on the lease's loss. Call before any page loads. */
  async install(): Promise<void> {
    await this.context.route("**/*", (route) => this.decide(route));
    for (const page of this.context.pages()) this.watch(page);
    this.context.on("page", (page) => this.watch(page));
    this.context.on("close", () => {
      if (this.closing === null) this.gone = true;
    });
    this.guard.onLost(() => void this.close());
  }

  private decide(route: Route): Promise<void> {
    return this.guard.held() ? route.fallback() : route.abort(BLOCKED);
  }

  private watch(page: Page): void {
    page.on("framenavigated", (frame: Frame) => {
      if (frame.parentFrame() !== null || this.captured) return;
      this.lastPage = page;
      this.navigatedPages = [...this.navigatedPages.filter((p) => p !== page), page];
      this.progress.navigated(frame.url());
    });
  }

  /** Once the page last navigated is closed (a popup that closed itself), the page left open
   * (the one the final screenshot shows) becomes the last page and its URL the run's, so a
   * step names the page the task is on, never one gone (rev30, as the Python SDK's
   * `catch_up`). */
  catchUp(): void {
    if (this.lastPage === null || !this.lastPage.isClosed()) return;
    const page = this.finalPage();
    if (!page) return;
    this.lastPage = page;
    this.progress.shown(page.url());
  }

  /** Save the final page (the last navigated one, or, once that one is closed, the last one
   * open) to `path` and record its sha256. Once the page last navigated was closed (a popup
   * that closed itself, the task's own `close`), the run's URL (the release's final URL) is
   * the final page's, a blank page's included, so both name one page (rev30, as the Python
   * SDK's: the closed page was the final URL of a screenshot showing another); a run that
   * navigated no page keeps the URL it reported (`visited`), or none. No page left open (the
   * task closed its last one) and a capture that fails are recorded as the evidence problem,
   * never thrown (rev47, as the Python SDK's: it was skipped, and the run released cleanly). */
  async screenshot(path: string): Promise<void> {
    const page = this.finalPage();
    if (!page) {
      this.captured = true;
      // A browser gone closed every page with it: said as such, not as the task's closing
      // them (review 281), as the Python SDK's `EvidenceWatch` says it.
      if (this.gone) this.progress.problem("the browser was gone before the final screenshot");
      else if (this.closing === null)
        this.progress.problem("no page was left open for the final screenshot");
      return;
    }
    let shown = page.url();
    try {
      await mkdir(dirname(path), { recursive: true });
      let bytes: Buffer;
      try {
        bytes = await page.screenshot({ timeout: SCREENSHOT_TIMEOUT_MS });
      } finally {
        // The run's URL is the page's as of the capture, frozen from now on.
        this.captured = true;
        shown = page.url();
      }
      await writeWhole(path, bytes); // whole or not at all, as evidence.json
      this.progress.screenshot = path;
      this.progress.screenshotSha256 = createHash("sha256").update(bytes).digest("hex");
      this.progress.navigated(shown);
    } catch (failed) {
      this.captured = true; // a directory that could not be made: no capture either
      this.progress.problem(`the final screenshot failed: ${firstLine(failed)}`);
    }
    if (this.lastPage !== null && page !== this.lastPage) this.progress.shown(shown);
  }

  /** The page the final screenshot shows: of the pages navigated, the latest still open, else
   * the last one open, as the Python SDK's `final_page`. */
  private finalPage(): Page | undefined {
    const candidates = [...this.navigatedPages].reverse().concat([...this.context.pages()].reverse());
    return candidates.find((p) => !p.isClosed());
  }

  /** Close the context (which ends the browser); idempotent, never throws. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const timer = new Promise<void>((resolve) => setTimeout(resolve, CLOSE_TIMEOUT_MS).unref());
      await Promise.race([this.context.close().catch(() => undefined), timer]);
    })();
    return this.closing;
  }
}

/** An error's first line, a URL's password left out (it may go to the ledger as an evidence
 * problem, which is append-only). */
export function firstLine(error: unknown): string {
  let text: string;
  try {
    text = error instanceof Error ? `${nameOf(error)}: ${String(error.message)}` : String(error);
  } catch {
    text = reasonOf(error); // a message that cannot be read: its name, never a throw
  }
  return withoutPasswords(text.split("\n")[0] ?? text);
}
