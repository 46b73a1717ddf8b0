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

// What Python's str.strip() strips (str.isspace): the ledger's test of an empty text. JavaScript's
// trim() strips U+FEFF too, and not U+001C..U+001F or U+0085.
const PYTHON_SPACE = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]*$/;

/** Whether the ledger takes `text` as empty: nothing but what Python's `strip()` strips. */
export function blank(text: string): boolean {
  return PYTHON_SPACE.test(text);
}
