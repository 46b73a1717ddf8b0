/**
 * Text the SDK derives for the ledger (a reason from an exception, a page's URL, what went
 * wrong with the evidence), made storable by the ledger's own rule (Python's
 * `ledger.rules.storable`): no store keeps a NUL character or a lone surrogate, and the ledger
 * refuses both at its door (422), so they are escaped here, as `\x00` and `\udcff`; and text
 * cut to what the ledger keeps is cut between code points, never inside a surrogate pair (which
 * would leave a lone surrogate). Any other text comes back unchanged.
 */

// A NUL, a high surrogate not followed by a low one, or a low one not preceded by a high one
// (without the `u` flag a class matches UTF-16 code units, so lone halves are seen).
const UNSTORABLE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** `text` with NUL and lone surrogates escaped as Python's
 * `text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")` escapes
 * them: `\x00`, and `\u` with four lowercase hex digits. */
export function storable(text: string): string {
  return text.replace(UNSTORABLE, (unit) =>
    unit === "\u0000" ? "\\x00" : `\\u${unit.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/** `text` cut to at most `limit` code points (what the ledger counts: a Python string's
 * length), never inside a surrogate pair. */
export function cut(text: string, limit: number): string {
  if (text.length <= limit) return text; // fewer code units than the limit: fewer code points
  let units = 0;
  let points = 0;
  while (units < text.length && points < limit) {
    const code = text.codePointAt(units) ?? 0;
    units += code > 0xffff ? 2 : 1;
    points += 1;
  }
  return text.slice(0, units);
}

/** The number of code points in `text` (what the ledger counts). */
export function lengthOf(text: string): number {
  let points = 0;
  for (const _ of text) points += 1;
  return points;
}

/** Derived text as the ledger keeps it: escaped, then cut to `limit` code points. */
export function kept(text: string, limit: number): string {
  return cut(storable(text), limit);
}

// What Python's str.strip() strips (str.isspace), as a regular expression's class: the ledger's
// test of an empty text. JavaScript's trim() strips U+FEFF too, and not U+001C..U+001F or U+0085.
export const PYTHON_SPACES = "\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

// What the ledger takes as showing nothing (Python's `ledger._domain.model.says_something`):
// the general categories of controls, format characters, surrogates and separators, and the
// characters it names as invisible (`INVISIBLE` there: fillers, variation selectors, Braille's
// blank, tags). rev29: this tested only what `strip()` strips, so an expected failure whose
// reason was a zero-width space was refused by the ledger at the release, not here.
const SHOWS_NOTHING = new RegExp(
  `^[${PYTHON_SPACES}\\p{Cc}\\p{Cf}\\p{Cs}\\p{Zs}\\p{Zl}\\p{Zp}` +
    "\\u00ad\\u034f\\u061c\\u115f\\u1160\\u17b4\\u17b5\\u180b-\\u180f\\u200b-\\u200f" +
    "\\u202a-\\u202e\\u2060-\\u206f\\u2800\\u3164\\ufe00-\\ufe0f\\ufeff\\uffa0\\ufff0-\\ufff8" +
    "\\u{1bca0}-\\u{1bca3}\\u{1d173}-\\u{1d17a}\\u{e0000}-\\u{e0fff}]*$",
  "u",
);

/** Whether the ledger takes `text` as saying nothing: spaces, controls, format characters,
 * separators and invisible characters alone (`says_something` in Python). */
export function blank(text: string): boolean {
  return SHOWS_NOTHING.test(text);
}

/** The most a reason derived from an error holds, as the Python SDK's (`workers._reasons`
 * `MAX_DERIVED`): its type and first line, cut and marked beyond this many code points. */
export const MAX_DERIVED = 200;
const CUT_MARK = "...";
// What Python's str.strip() strips from each end, and where str.splitlines() breaks a line.
const PYTHON_SPACE = new RegExp(`^[${PYTHON_SPACES}]$`);
const PYTHON_LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/** `text`'s first line as the Python SDK's `first_line` takes it: stripped, then the first of
 * its lines, stripped ("" when nothing is left). */
export function pythonFirstLine(text: string): string {
  const stripped = pythonStrip(text);
  return stripped ? pythonStrip(stripped.split(PYTHON_LINE_BREAK)[0] ?? "") : "";
}

/** `text` without Python's spaces at either end, as `str.strip()`: found a character at a
 * time from each end (rev31: a pattern anchored at the end read a long run of spaces again
 * from each of its characters, minutes for a million). */
function pythonStrip(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && PYTHON_SPACE.test(text.charAt(start))) start += 1;
  while (end > start && PYTHON_SPACE.test(text.charAt(end - 1))) end -= 1;
  return text.slice(start, end);
}

/** `text` cut to `limit` code points, the cut marked, as the Python SDK's `capped`. */
export function capped(text: string, limit: number = MAX_DERIVED): string {
  return lengthOf(text) <= limit ? text : cut(text, limit - CUT_MARK.length) + CUT_MARK;
}

// A URL's user and password, wherever one sits in a text (the Python SDK's
// `ledger.rules.without_passwords`): an error names the URL it failed on, and the ledger is
// append-only.
// The password runs to the last "@" before the host (rev30: one holding an "@" left its tail);
// the user, to the first ":", may hold an "@" too (rev31: "http://a@corp:pw@host/" kept "pw").
// Python's `\s`, not JavaScript's (rev30: one cut "\ufeff" from a password, the other "\x1c").
// The rule is the pattern `([A-Za-z][A-Za-z0-9+.-]*:[\\/\t\n\r]*)[^\s/\\?#:]*:[^\s/\\?#]*@`
// replaced by its first group, left to right; run as one regular expression it takes time
// growing with the square of a long word's length (rev31: minutes for a million characters), so
// it is found in one pass, as the ledger's `without_passwords` finds it: a scheme begins a run
// of scheme characters, its user ends at the next ":", its password at the last "@" of its
// segment.
// A URL may also come without its scheme, as a query's or a fragment's value, as the ledger's
// `_SCHEME_RELATIVE`: `?next=//bob:pw@intranet/` takes its page's scheme (rev47: it was
// recorded, and the ledger took it); two slashes in a path begin no URL (review 281).
// A browser drops every tab, line feed and carriage return in a URL, so one before, between or
// after a scheme's slashes ends none of them, as the ledger's `_SLASHES` (rev48: the rules
// ended the slashes at the tab of `?next=http:%2F%09%2Fbob%3Apw@intranet/`, which a browser
// follows as `http://bob:pw@intranet/`: the SDKs recorded the password, the ledger took it);
// nor one before, between or after the first two slashes of a URL without its scheme (review
// 281), each candidate read no further than that, in time linear in a text's length (a third
// slash past a tab written as one, `//\t/bob:pw@` in an error's text, begins no URL). Read
// decoded, an escaped tab or line break is no character at all (`DROPPED`), wherever it is.
const SLASHES = "[\\\\/\\t\\n\\r]*";
const TWO_SLASHES = `[\\t\\n\\r]*[\\\\/][\\t\\n\\r]*[\\\\/]${SLASHES}`;
const SCHEMELESS = "[\\\\/][\\t\\n\\r]*[\\\\/]+[\\t\\n\\r]*";
const SCHEME_RELATIVE = `(?<=[=&?#\\t\\n\\r])${SCHEMELESS}`;
const CANDIDATE = new RegExp(
  `(?<![A-Za-z0-9+.-])[0-9+.-]*(?=([A-Za-z][A-Za-z0-9+.-]*:${SLASHES}|${SCHEME_RELATIVE})` +
    `([^${PYTHON_SPACES}/\\\\?#:]*):)`,
  "dg",
);
const SEGMENT = new RegExp(`[^${PYTHON_SPACES}/\\\\?#]+`, "g");
// Then a URL's user with no password (rev33: `https://TOKEN@host/` stayed whole in a failure's
// reason), as the ledger's `_USER_IN_URL`: after a scheme and two slashes (or backslashes), or
// a special scheme's colon, up to the last "@" of its segment; found in one pass as well.
const SPECIAL_SCHEME = "(?:[hH][tT][tT][pP][sS]?|[wW][sS][sS]?|[fF][tT][pP])";
const USER_AFTER = `[A-Za-z][A-Za-z0-9+.-]*:${TWO_SLASHES}|${SPECIAL_SCHEME}:${SLASHES}`;
const USER_CANDIDATE = new RegExp(
  `(?<![A-Za-z0-9+.-])[0-9+.-]*(?=(${USER_AFTER}|${SCHEME_RELATIVE}))`,
  "dg",
);

/** `text` with the user and password of every URL in it left out (scheme and host kept), as
 * the Python SDK's `without_passwords`: passwords first, then users without one; as written,
 * then read percent-decoded (`DECODINGS`). */
export function withoutPasswords(text: string): string {
  return withoutPasswordsIn(text, false);
}

/** `url` without the user and password of every URL nested in it (a login page's
 * `?next=http://bob:pw@intranet/`, percent-encoded too), as the ledger's
 * `without_nested_passwords`: its own scheme's are `withoutUserinfo`'s (a file's name
 * "file:///notes:v2@a.html" stays). A URL with one comes back as a browser reads it; any other,
 * as it is. A query's or a fragment's token that is no URL's userinfo stays. */
export function withoutNestedPasswords(url: string): string {
  const read = asABrowserReads(url);
  const cutOut = withoutPasswordsIn(read, true);
  return cutOut === read ? url : cutOut;
}

/** Whether the ledger refuses `url` for a password in it (the ledger's `carries_password`, not
 * `bare`): one in its own userinfo as a browser reads it, or in a URL nested in it. */
export function carriesPassword(url: string): boolean {
  const read = asABrowserReads(url);
  const found = userinfo(read);
  if (found !== null && read.slice(found[0], found[1]).includes(":")) return true;
  return nestsAPassword(read);
}

// A URL nested in another's query is percent-encoded there ("?next=http%3A%2F%2Fbob%3Apw%40h"),
// a redirect's redirect twice ("%253A"): as the ledger's `_DECODINGS`, a text is read as
// written, then with its ASCII escapes decoded up to this many times, and what each reading
// finds is cut from the text as written.
const DECODINGS = 3;
const ESCAPE = /%[0-7][0-9A-Fa-f]/g;
// A scheme a browser reads a host after (the ledger's `_AN_AUTHORITY`): a special one with or
// without slashes, any other with two, or none before two (`SCHEME_RELATIVE`).
const AN_AUTHORITY = new RegExp(`^(?:${USER_AFTER}|${SCHEMELESS})$`);
type Stage = readonly [RegExp, number, number];
const STAGES: readonly Stage[] = [
  [CANDIDATE, 2, 1],
  [USER_CANDIDATE, 1, 0],
];

/** `text` without the userinfo of every URL in it, or (`nestedOnly`) of every URL but one whose
 * scheme begins the text, as the ledger's `_without_passwords`. */
function withoutPasswordsIn(text: string, nestedOnly: boolean): string {
  for (let times = 0; times <= DECODINGS; times += 1) {
    if (times > 0 && !text.includes("%")) break;
    for (const [candidates, group, past] of STAGES) {
      const [view, layers] = decoded(text, times);
      if (layers.length > 0 && layers[layers.length - 1]?.past.length === 0) return text;
      const own = nestedOnly ? begins(view) : -1;
      const spans = userinfoSpans(view, candidates, group, past, own, false, layers);
      text = leftOut(
        text,
        spans.map(([a, b]) => [origin(layers, a), origin(layers, b)] as const),
      );
    }
  }
  return text;
}

/** Whether `read` (a URL as a browser reads it) holds, past its own scheme, a URL with a
 * password whose scheme a browser reads a host after (`AN_AUTHORITY`), as written or read
 * decoded (the ledger's `_nests_a_password`). */
function nestsAPassword(read: string): boolean {
  for (let times = 0; times <= DECODINGS; times += 1) {
    if (times > 0 && !read.includes("%")) return false;
    const [view, layers] = decoded(read, times);
    if (layers.length > 0 && layers[layers.length - 1]?.past.length === 0) return false;
    if (userinfoSpans(view, CANDIDATE, 2, 1, begins(view), true, layers).length > 0) return true;
  }
  return false;
}

/** Where a URL's own scheme begins in `view`: past C0 controls and spaces. */
function begins(view: string): number {
  return (/^[\u0000-\u0020]*/.exec(view)?.[0] ?? "").length;
}

/** One decoding of a text (the ledger's `_Layer`): where in what it made a character was made
 * by an escape (`made`), and, for each escape in turn, the first position in what it made past
 * it (`past`) and how many written characters the escapes up to it removed (`removed`, one more
 * entry, 0 first): 2 for an escape decoded, 3 for one dropped. */
interface Layer {
  readonly made: number[];
  readonly past: number[];
  readonly removed: number[];
}

// A browser drops every tab, line feed and carriage return anywhere in a URL it follows, so an
// escape that decodes to one makes no character (the ledger's `_DROPPED`; rev48 review:
// `?next=http%09://bob:pw@H/`, `%2F%2F%09%2Fbob%3Apw%40H`, read with a tab, began no URL with a
// password, and a browser followed each as one).
const DROPPED = new Set(["\t", "\n", "\r"]);

/** `text` with its ASCII escapes decoded `times` times, one that decodes to a tab or a line
 * break to nothing (`DROPPED`), and for each time where its escapes were (the ledger's
 * `_decoded`). */
function decoded(text: string, times: number): [string, Layer[]] {
  const layers: Layer[] = [];
  for (let time = 0; time < times; time += 1) {
    const parts: string[] = [];
    const layer: Layer = { made: [], past: [], removed: [0] };
    let done = 0;
    let made = 0;
    for (const escape of text.matchAll(ESCAPE)) {
      const start = escape.index ?? 0;
      const character = String.fromCharCode(Number.parseInt(escape[0].slice(1), 16));
      made += start - done;
      parts.push(text.slice(done, start));
      const removed = layer.removed[layer.removed.length - 1] ?? 0;
      if (DROPPED.has(character)) {
        layer.past.push(made);
        layer.removed.push(removed + 3);
      } else {
        parts.push(character);
        layer.made.push(made);
        made += 1;
        layer.past.push(made);
        layer.removed.push(removed + 2);
      }
      done = start + escape[0].length;
    }
    parts.push(text.slice(done));
    text = parts.join("");
    layers.push(layer);
  }
  return [text, layers];
}

/** A host with its port (a name, with escapes or letters past ASCII, or an address in
 * brackets; a port of digits, never empty), then the next parameters of a query, the last an
 * address's name and "=" before its "@" (the ledger's `_HOST_PORT` and `_NEXT_PARAMETERS`): a
 * URL nested in a query's value that reads so names no user (an OAuth sign-in's redirect_uri
 * and login_hint, rev43's reviews); a password or a user holding a ";", an "&" or an "=" is
 * still one. */
const HOST_PORT = /^(?:\[[0-9A-Za-z:.%]*\]|(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*)(?::[0-9]+)?$/;
const NEXT_PARAMETERS =
  /^(?:&amp;|[&;])+(?:[^=&;@\s/?#:]*(?:=[^&;@\s/?#]*)?(?:&amp;|[&;])+)*[^=&;@\s/?#:]*=[^=&;@\s/?#:]+$/;

/** Whether the character at `at` in a decoded text may end a query's value: written, or made
 * by a decoding before the last; never one the last made (the ledger's `_a_separator`). */
function aSeparator(layers: readonly Layer[], at: number): boolean {
  const last = layers[layers.length - 1]?.made;
  if (last === undefined) return true;
  const before = escapesBefore(last, at);
  return !(before < last.length && last[before] === at);
}

/** Where a host ends when what runs from `start` (past a scheme) to the "@" at `at` is one,
 * perhaps with its port, then a query's next parameters, the last an address's name and "=";
 * -1 otherwise (the ledger's `_a_host_then_a_parameter`). */
function aHostThenAParameter(
  text: string,
  start: number,
  at: number,
  layers: readonly Layer[],
): number {
  for (let end = start; end < at; end += 1) {
    if ((text[end] !== "&" && text[end] !== ";") || !aSeparator(layers, end)) continue;
    if (!HOST_PORT.test(text.slice(start, end))) return -1;
    return NEXT_PARAMETERS.test(text.slice(end, at)) ? end : -1;
  }
  return -1;
}

/** Where the character at `at` in a decoded text begins in the text as written, past the
 * escapes dropped before it (the ledger's `_origin`). */
function origin(layers: readonly Layer[], at: number): number {
  for (let index = layers.length - 1; index >= 0; index -= 1) {
    const layer = layers[index];
    if (layer !== undefined) at += layer.removed[escapesBefore(layer.past, at + 1)] ?? 0;
  }
  return at;
}

/** How many of `escapes` (positions, ascending) lie before `at`. */
function escapesBefore(escapes: readonly number[], at: number): number {
  let low = 0;
  let high = escapes.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((escapes[middle] ?? 0) < at) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** `text` without its `spans` (in order, apart). */
function leftOut(text: string, spans: readonly (readonly [number, number])[]): string {
  if (spans.length === 0) return text;
  const kept: string[] = [];
  let done = 0;
  for (const [start, end] of spans) {
    kept.push(text.slice(done, start));
    done = end;
  }
  kept.push(text.slice(done));
  return kept.join("");
}

/** What runs from the end of each match of `candidates`' group 1 (a scheme, its colon and
 * slashes) to the last "@" of the segment holding the character `past` after the end of its
 * group `group`, "@" included; but a match beginning at `own` (the URL's own scheme), and with
 * `authority` one whose group 1 is no `AN_AUTHORITY`; as the ledger's `_userinfo_spans`. */
function userinfoSpans(
  text: string,
  candidates: RegExp,
  group: number,
  past: number,
  own: number,
  authority = false,
  layers: readonly Layer[] = [],
): [number, number][] {
  if (!text.includes("@")) return [];
  const segments = [...text.matchAll(SEGMENT)].map((m) => {
    const start = m.index ?? 0;
    const at = m[0].lastIndexOf("@");
    return [start, start + m[0].length, at < 0 ? -1 : start + at] as const;
  });
  const spans: [number, number][] = [];
  let done = 0;
  for (const found of text.matchAll(candidates)) {
    const [schemeStart, schemeEnd] = found.indices?.[1] ?? [0, 0];
    if (schemeStart < done || found.index === own) continue; // inside the last one cut, or own
    if (authority && !AN_AUTHORITY.test(found[1] ?? "")) continue;
    const from = (found.indices?.[group]?.[1] ?? 0) + past;
    const segment = segments[lastAtOrBefore(segments, from)];
    if (segment === undefined || segment[1] <= from || segment[2] < from) continue;
    // A nested URL's host, then the next parameter: no userinfo, nor in the host (an
    // address's "fe80:" is no scheme).
    const host = aHostThenAParameter(text, schemeEnd, segment[2], layers);
    if (host >= 0) {
      done = host;
      continue;
    }
    done = segment[2] + 1;
    spans.push([schemeEnd, done]);
  }
  return spans;
}

/** The index of the last segment starting at or before `position` (-1 for none). */
function lastAtOrBefore(
  segments: readonly (readonly [number, number, number])[],
  position: number,
): number {
  let low = 0;
  let high = segments.length;
  while (low < high) {
    const middle = (low + high) >> 1;
    if ((segments[middle]?.[0] ?? 0) <= position) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

/** The reason a failure is released with, derived from what the task threw as the Python
 * SDK's `reason_of` derives it from an exception: `Name: first line of its message`, or just
 * `Name` when the message has none or cannot be read; made storable, then capped at
 * `MAX_DERIVED`. A value thrown that is not an `Error` is named by its text's first line (or
 * its type). Never throws: a message getter that throws, a name that is no string (a Symbol),
 * a value with no text (a null-prototype object) fall back as Python's `reason_of` falls back
 * to the type's name (rev42: the release threw, and the lease was left to go stale). */
export function reasonOf(error: unknown, limit: number = MAX_DERIVED): string {
  if (!isError(error)) {
    return capped(storable(messageOf(error) || typeof error), limit);
  }
  const name = nameOf(error);
  const said = messageOf(error);
  return capped(storable(said ? `${name}: ${said}` : name), limit);
}

/** The first line (as Python splits lines) of what `error` says, its message for an `Error`,
 * without passwords; "" when it says nothing or cannot be read. Never throws. */
export function messageOf(error: unknown): string {
  try {
    const text = isError(error) ? String(error.message) : String(error);
    return withoutPasswords(pythonFirstLine(text));
  } catch {
    return "";
  }
}

/** `error instanceof Error`, false where asking throws (a Proxy's trap). */
export function isError(error: unknown): error is Error {
  try {
    return error instanceof Error;
  } catch {
    return false;
  }
}

/** The name an `Error` goes by: its `name` when that is a string that says something (an
 * empty one would leave a reason the ledger refuses), else its constructor's name, as Python
 * names an exception by its type; "Error" when neither can be read. */
export function nameOf(error: Error): string {
  for (const read of [() => error.name, () => error.constructor?.name]) {
    try {
      const name: unknown = read();
      if (typeof name === "string" && name) return name;
    } catch {
      // a getter that throws: the next way of naming it
    }
  }
  return "Error";
}

// What Python's str.isprintable() calls unprintable: the categories Other and Separator, but the
// space. Python escapes these in a string's repr.
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Cs}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]/u;

/** `text` as Python's `repr()` writes a string: in single quotes (double quotes when it holds a
 * single quote and no double one), backslash and that quote escaped, `\t` `\n` `\r`, and
 * other unprintable characters as `\xNN`, `\uNNNN` or `\UNNNNNNNN`. */
export function pythonRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let said = quote;
  for (const char of text) {
    const code = char.codePointAt(0) ?? 0;
    if (char === quote || char === "\\") said += `\\${char}`;
    else if (char === "\t") said += "\\t";
    else if (char === "\n") said += "\\n";
    else if (char === "\r") said += "\\r";
    else if (char !== " " && UNPRINTABLE.test(char)) {
      const [mark, width] = code < 0x100 ? ["x", 2] : code < 0x10000 ? ["u", 4] : ["U", 8];
      said += `\\${mark}${code.toString(16).padStart(width, "0")}`;
    } else said += char;
  }
  return said + quote;
}

// A URL's scheme, what follows its colon and its userinfo (the third item), up to the last "@"
// before the path, query or fragment: the ledger's own rule (`ledger.rules`'
// `carries_password`, `ledger/_domain/model.py` `_AUTHORITY` and `_OTHER_AUTHORITY`), whose
// `\s` is Python's. A special scheme takes slashes or backslashes or none; any other has an
// authority only after "//", which a backslash does not end (rev30).
// A URL nested in `view-source:` or `blob:` is the inner URL's (rev30), as the ledger's `_NESTED`,
// C0 controls and spaces before it cut (rev31: "view-source: http://u:pw@host/" kept "pw"). A
// scheme-relative URL ("//u:pw@host/", or more slashes or backslashes) takes its base's scheme
// and userinfo.
const NESTED =
  "(?:(?:[vV][iI][eE][wW]-[sS][oO][uU][rR][cC][eE]|[bB][lL][oO][bB]):[\\u0000-\\u0020]*)*";
const RELATIVE_AUTHORITY = new RegExp(`^[${PYTHON_SPACES}]*()[\\\\/]{2,}([^/\\\\?#]*)@`);
const AUTHORITY = new RegExp(
  `^[${PYTHON_SPACES}]*${NESTED}([A-Za-z][A-Za-z0-9+.-]*):[\\\\/]*([^/\\\\?#]*)@`,
);
const OTHER_AUTHORITY = new RegExp(
  `^[${PYTHON_SPACES}]*${NESTED}([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)@`,
);
// The special schemes but file:, which has no userinfo (rev31: a file's name was refused).
const SPECIAL_SCHEMES = new Set(["http", "https", "ws", "wss", "ftp"]);

/** The userinfo the ledger reads in `read` (a URL as a browser reads it): where it begins and
 * where it ends, "@" included; null for none. */
function userinfo(read: string): [number, number] | null {
  let found = RELATIVE_AUTHORITY.exec(read) ?? AUTHORITY.exec(read);
  if (found === null || !["", ...SPECIAL_SCHEMES].includes((found[1] ?? "").toLowerCase())) {
    found = OTHER_AUTHORITY.exec(read);
    if (found === null || SPECIAL_SCHEMES.has((found[1] ?? "").toLowerCase())) return null;
  }
  const end = found[0].length;
  return [end - (found[2] ?? "").length - 1, end];
}

/** `url` without the userinfo the ledger reads in it, "@" included
 * (`ledger.rules.without_userinfo`): `https:user:pw@host/a` is `https:host/a`, and so for
 * backslashes or spaces before the scheme; a user with no password goes too; a URL with a
 * userinfo comes back as a browser reads it (`asABrowserReads`). The ledger
 * refuses a URL with a password in it, so a heartbeat carrying one would be refused and the
 * lease lost. */
export function withoutUserinfo(url: string): string {
  let read = asABrowserReads(url);
  let found = userinfo(read);
  if (found === null) return url;
  for (let cut = 0; cut < CUTS_AT_MOST; cut += 1) {
    // what is left may read as a userinfo again (rev30)
    read = read.slice(0, found[0]) + read.slice(found[1]);
    found = userinfo(read);
    if (found === null) return read;
  }
  return pastLastAt(read);
}

// A text that reads as a userinfo again after this many cuts was built to (rev31: "//@//@..."
// took a cut for each "@"): all of it up to its last "@" before a query or fragment goes, as
// the ledger's `_past_last_at`.
const CUTS_AT_MOST = 16;

function pastLastAt(read: string): string {
  const ends = [read.indexOf("?"), read.indexOf("#")].filter((at) => at >= 0);
  const end = ends.length > 0 ? Math.min(...ends) : read.length;
  return read.slice(read.slice(0, end).lastIndexOf("@") + 1);
}

/** `url` as a browser reads it before parsing (the WHATWG URL standard), as the ledger's
 * `_as_a_browser_reads`: C0 controls and spaces at either end cut, every tab, line feed and
 * carriage return within taken out (rev30: `"http:/\n/user:pw@host"` kept its password). */
function asABrowserReads(url: string): string {
  return url.replace(/^[\u0000-\u0020]+|[\u0000-\u0020]+$/g, "").replace(/[\t\n\r]/g, "");
}
