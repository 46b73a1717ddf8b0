"""The lease vocabulary: states, roles, outcomes, reasons, and the records crossing boundaries.

Everything here is a frozen pydantic model or a string enum, so it serialises to the same JSON
in the event store, on the CLI's ``--json`` output and in reports.
"""

from __future__ import annotations

import bisect
import contextlib
import functools
import json
import os
import re
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, NamedTuple
from uuid import NAMESPACE_URL, UUID, uuid5

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

PROFILE_ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}"
# fullmatch, never ``$``: ``$`` also matches before a trailing newline, which let a look-alike
# of an id ("p2\n") through. Matched through ``re``'s functions, which compile a pattern on its
# first use and keep it: an import compiles none (a read that checks no name never needs them).
_LEASE_ID = rf"lease-([1-9][0-9]{{0,17}})@({PROFILE_ID_PATTERN})"
_CONTROL = r"[\x00-\x1f\x7f-\x9f\u2028\u2029]"
_SURROGATE = "[\ud800-\udfff]"

# Bounds that keep every deadline computable: ``now + ttl`` and ``now - window`` stay inside
# datetime's range for any store clock short of year 9999's last days (one there is refused in
# words: ``leasing.later``).
MAX_TTL_SECONDS = 86_400
MAX_LEASE_SECONDS = 7 * 86_400  # a lease's hard limit (a browser task, not a standing job)
MAX_UNCLEAN_WINDOW_SECONDS = 366 * 86_400
MAX_UNCLEAN_LIMIT = 64  # a profile remembers this many unclean endings (state.py)
MAX_FENCING_TOKEN = 10**18 - 1  # a lease id carries at most 18 digits
# A profile's directory, in UTF-8 bytes: the store looks directories up by an index, and
# PostgreSQL's B-tree takes at most 2,704 bytes an entry (a longer one failed the registration
# as "store unavailable" where SQLite kept it). Linux's paths stop at 4,096 bytes, and Chromium
# writes files some hundreds of bytes deep below its directory.
MAX_DIRECTORY_BYTES = 2048


# A number written plainly: ASCII digits, a minus before them for a negative; a number of
# seconds perhaps with a fraction after a point (``0.5``, ``.5``).
_WHOLE = r"-?[0-9]+"
_DECIMAL = r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
# A fraction as programs write one: JavaScript's ``String(1e-7)`` and Python's ``str(1e-05)``
# give an exponent (review 250: the TypeScript client's ``watch(id, 1e-7)`` was refused).
_EXPONENT = _DECIMAL + r"(?:[eE][-+]?[0-9]+)?"


def plain_number(text: str, *, fraction: bool = False, exponent: bool = False) -> bool:
    """Whether ``text`` is a number written plainly: ASCII digits, a minus before them for a
    negative, and with ``fraction`` perhaps a fraction after a point (and with ``exponent``
    an exponent after it, as JSON, JavaScript and Python write small and large numbers).
    Python's ``int()`` and ``float()`` also read ``1_0`` as 10, ``+1``, `` 2``, other scripts'
    digits, and ``float()`` ``inf`` and ``nan``: none is written plainly. The one rule for the
    command line's numbers and the service's query numbers (rev37, rev40, rev44)."""
    pattern = (_EXPONENT if exponent else _DECIMAL) if fraction else _WHOLE
    return re.fullmatch(pattern, text) is not None


def os_name(text: str) -> str:
    """A file's name given as text as the OS takes it: as it is where the filesystem's encoding
    holds it, else as its UTF-8 bytes (in the surrogate form Python gives them in), the bytes
    of an argument typed so. Under LC_ALL=C with PYTHONUTF8=0 that encoding is ASCII, and
    ``--store sqlite:///störe.db``, ``--output rép.csv`` were internal errors
    (UnicodeEncodeError), an existing ``--screenshot shöt.png`` no file (rev40). The one rule
    for the store's SQLite path and the command line's file names."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate nothing typed
            return os.fsdecode(text.encode("utf-8", "surrogateescape"))
    return text


def takes_profile_id(value: object) -> bool:
    """Whether ``value`` is a profile id ``register`` takes (the pattern compiled by re's own
    cache when first used: the read commands compile none at start-up)."""
    return isinstance(value, str) and re.fullmatch(PROFILE_ID_PATTERN, value) is not None


def _check_profile_id(value: str) -> str:
    if not takes_profile_id(value):
        msg = "must be 1-128 characters of letters, digits, '_', '.', ':' or '-'"
        raise ValueError(msg)
    return value


def _check_storable(value: str) -> str:
    """Text every store and every export can keep exactly: PostgreSQL's text cannot hold a NUL
    character, and nothing encodes a lone surrogate (what undecodable bytes become in Python).
    Refused here, at the door, so that an accepted text reads back unchanged forever."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters (\\x00)")
    if not value.isascii() and re.search(_SURROGATE, value):
        raise ValueError("must be valid Unicode text (it holds bytes that were not UTF-8)")
    return value


def storable(text: str) -> str:
    """``text`` with NUL and lone surrogates escaped (as ``\\x00`` and ``\\udcff``), so that
    ``_check_storable`` takes it: for text made from what no caller typed (an exception's
    message, a file name that is not UTF-8). Any other text comes back unchanged."""
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def _check_name(value: str) -> str:
    if not says_something(value):
        raise ValueError("must not be empty (nor only spaces or invisible characters)")
    if re.search(_CONTROL, value):
        raise ValueError("must not contain control characters")
    return _check_storable(value)


def _check_identity(value: str) -> str:
    """Who or what acts: compared exactly as stored, so no spelling can pass for another."""
    _check_name(value)
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    return value


def _check_directory(value: str) -> str:
    """A profile directory is absolute: a relative one would name a different directory on
    every worker, depending on where it was started."""
    _check_name(value)
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    if len(value.encode("utf-8")) > MAX_DIRECTORY_BYTES:
        raise ValueError(f"must be at most {MAX_DIRECTORY_BYTES} bytes in UTF-8")
    return value


# A URL's scheme, what follows its colon and its userinfo (group 2): up to the last "@" before
# the path, query or fragment. Browsers read http:, https:, ws:, wss:, ftp: and file: with or
# without the slashes, backslashes as slashes ("https:user:pw@host" is a host with
# credentials); any other scheme has an authority only after "//", which a backslash ends no
# more than any other character (rev30: "foo://u:p\\x@host" carries the password "p\\x").
# A URL nested in ``view-source:`` or ``blob:`` is the inner URL's (rev30: its password passed),
# read as a browser reads a URL: C0 controls and spaces before it go (rev31: Chromium sent the
# password of "view-source: http://user:pw@host/"). A scheme-relative URL ("//user:pw@host/")
# takes its base's scheme, and with it the userinfo, past any number of slashes or backslashes
# (rev31; "///user:pw@host/" after an https: base is https://user:pw@host/ to Chromium).
_NESTED = r"(?:(?:[vV][iI][eE][wW]-[sS][oO][uU][rR][cC][eE]|[bB][lL][oO][bB]):[\x00-\x20]*)*"
_AUTHORITY = re.compile(r"\s*" + _NESTED + r"([A-Za-z][A-Za-z0-9+.-]*):[\\/]*([^/\\?#]*)@")
_OTHER_AUTHORITY = re.compile(r"\s*" + _NESTED + r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)@")
_RELATIVE_AUTHORITY = re.compile(r"\s*()[\\/]{2,}([^/\\?#]*)@")
# The special schemes but file:, which has no userinfo (rev31 reread2: "file:///notes:v2@a.html",
# a file's name, was refused, and "file:///a@b.html" recorded as another file's URL).
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
# ``user:password@host``, the way proxies are often written, with no scheme.
_BARE_USERINFO = re.compile(r"\s*[^/\\?#@:\s]*:[^/\\?#@]*@")


# What a browser takes out of a URL before it reads it (the WHATWG URL standard): C0 controls
# and spaces at either end, and every tab, line feed and carriage return within (rev30:
# "http:/\n/user:pw@host" and "\x01https://user:pw@host" were read as credentials by Chromium,
# and not by this rule).
_C0_OR_SPACE = "".join(map(chr, range(0x21)))
_TAB_OR_NEWLINE = str.maketrans("", "", "\t\n\r")


def _as_a_browser_reads(url: str) -> str:
    return url.strip(_C0_OR_SPACE).translate(_TAB_OR_NEWLINE)


def _userinfo(value: str) -> re.Match[str] | None:
    """The match of the URL ``value`` (as a browser reads it: ``_as_a_browser_reads``)'s
    userinfo (group 2, before its "@") when a browser reads one in it: a special scheme with
    or without slashes, any other with "//", no scheme after "//" (or backslashes)."""
    found = _RELATIVE_AUTHORITY.match(value)
    if found is not None:
        return found
    found = _AUTHORITY.match(value)
    if found is not None and found.group(1).lower() in _SPECIAL_SCHEMES:
        return found
    found = _OTHER_AUTHORITY.match(value)
    return found if found is not None and found.group(1).lower() not in _SPECIAL_SCHEMES else None


def carries_password(value: str | None, *, bare: bool = False) -> bool:
    """Whether ``value`` is a URL with a password in it (``https://user:password@host/``), or
    one with a URL nested in it that has one (``/login?next=http://bob:pw@intranet/``, or
    percent-encoded: ``?next=http%3A%2F%2Fbob%3Apw%40...``; ``_nests_a_password``), or, with
    ``bare`` (a proxy id), ``user:password@host`` with no scheme: the log is
    append-only and read by every role, so a command not applied yet that carries one is
    refused (``Command.refusal``; events already recorded are never judged by it). The worker
    SDKs leave a URL's userinfo out (``without_userinfo``) and a nested URL's
    (``without_nested_passwords``)."""
    if value is None:
        return False
    read = _as_a_browser_reads(value)
    found = _userinfo(read)
    if found is not None and ":" in found.group(2):
        return True
    if _nests_a_password(read):
        return True
    return bare and _BARE_USERINFO.match(value) is not None


def without_userinfo(url: str) -> str:
    """``url`` without the userinfo ``carries_password`` reads in it, "@" included
    (``https:user:pw@host/a`` is ``https:host/a``; a user with no password goes too), so that
    the ledger never refuses a URL a worker SDK records for the password in it. A URL with a
    userinfo comes back as a browser reads it (no tab or line break within, nothing
    unprintable or blank at either end); any other, as it is."""
    read = _as_a_browser_reads(url)
    found = _userinfo(read)
    if found is None:
        return url
    for _ in range(_CUTS_AT_MOST):  # what is left may read as a userinfo again (rev30)
        read = read[: found.start(2)] + read[found.end() :]
        found = _userinfo(read)
        if found is None:
            return read
    return _past_last_at(read)


# A text that reads as a userinfo again after this many cuts was built to (rev31 reread2:
# "//@//@//@..." took a cut for each "@", 7 s at 200,000 characters): all of it up to its last
# "@" before a query or fragment goes, and no userinfo is left to read.
_CUTS_AT_MOST = 16


def _past_last_at(read: str) -> str:
    ends = [at for at in (read.find("?"), read.find("#")) if at >= 0]
    return read[read.rfind("@", 0, min(ends, default=len(read))) + 1 :]


# A URL's user and password wherever one sits in a text (``without_passwords``): a scheme, its
# colon and slashes (or backslashes), then ``user:password@`` up to the host.
# The password runs to the last "@" before the host (rev30: a password holding an "@" left its
# tail behind, read as a user name); the user, to the first ":", may hold an "@" too (rev31: in
# "http://alice@corp.example:pw@host/" the password was kept whole).
# A URL may also come without its scheme, as a query's or a fragment's value (after "=", "&",
# "?" or "#"): two slashes (or backslashes) (``_SCHEME_RELATIVE``). ``?next=//bob:pw@intranet/``
# takes its page's scheme, so a browser follows it as ``http://bob:pw@intranet/`` (rev47: it was
# recorded, and the ledger took it). Not two slashes in a path (``/@//48.85:2.35@15z``,
# ``/a_//b:c@d``): no URL begins there (review 281: refused).
# A browser drops every tab, line feed and carriage return in a URL, so one before, between or
# after a scheme's slashes ends none of them (``_SLASHES``; rev48: the rules ended the slashes
# at the tab of ``?next=http:%2F%09%2Fbob%3Apw@intranet/``, which a browser follows as
# ``http://bob:pw@intranet/``: the SDKs recorded the password and the ledger took it); nor one
# before, between or after the first two slashes of a URL without its scheme (review 281), whose
# candidates are the slashes after "=", "&", "?", "#" or a tab or line break, each read no
# further than that, so that the text is read in time linear in its length (a third slash past
# a tab written as one, ``//\t/bob:pw@`` in a failure's reason, begins no URL). Read decoded,
# an escaped tab or line break is no character at all (``_DROPPED``), wherever it is.
_SLASHES = r"[\\/\t\n\r]*"
_TWO_SLASHES = r"[\t\n\r]*[\\/][\t\n\r]*[\\/]" + _SLASHES
_SCHEMELESS = r"[\\/][\t\n\r]*[\\/]+[\t\n\r]*"
_SCHEME_RELATIVE = r"(?<=[=&?#\t\n\r])" + _SCHEMELESS
# The rule is this pattern, replaced by its first group wherever it is found, left to right
# (the tests hold ``without_passwords`` to it):
_PASSWORD_IN_URL = re.compile(
    r"([A-Za-z][A-Za-z0-9+.-]*:" + _SLASHES + "|" + _SCHEME_RELATIVE + r")[^\s/\\?#:]*:[^\s/\\?#]*@"
)
# Run as one regular expression it backtracks from every letter of a long word and reads a long
# tail again from every colon (rev31: a message of 64,000 characters took 3 s, of a million,
# minutes, while the lease went stale). So it is found in one pass: a scheme begins a run of
# scheme characters (a later letter of the run would give the same rest), its user ends at the
# next ":" (each colon has one candidate), and its password at the last "@" of the segment
# (between a space, "/", "\\", "?" or "#") it begins in, read from a table of segments.
_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9+.-])[0-9+.-]*(?=([A-Za-z][A-Za-z0-9+.-]*:"
    + _SLASHES
    + "|"
    + _SCHEME_RELATIVE
    + r")([^\s/\\?#:]*):)"
)
_SEGMENT = re.compile(r"[^\s/\\?#]+")
# Then a URL's user with no password (rev33: ``https://TOKEN@host/``, the way many services
# take a token, stayed whole in a failure's reason): after a scheme and two slashes (or
# backslashes), or a special scheme's colon, up to the last "@" of its segment. Its pattern,
# substituted left to right after ``_PASSWORD_IN_URL``'s, and found in one pass as that is:
_SPECIAL_SCHEME = r"(?:[hH][tT][tT][pP][sS]?|[wW][sS][sS]?|[fF][tT][pP])"
_USER_AFTER = r"[A-Za-z][A-Za-z0-9+.-]*:" + _TWO_SLASHES + "|" + _SPECIAL_SCHEME + ":" + _SLASHES
_USER_IN_URL = re.compile(
    r"(?<![A-Za-z0-9+.-])([0-9+.-]*(?:" + _USER_AFTER + "|" + _SCHEME_RELATIVE + r"))[^\s/\\?#]*@"
)
_USER_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9+.-])[0-9+.-]*(?=(" + _USER_AFTER + "|" + _SCHEME_RELATIVE + r"))"
)


def without_passwords(text: str) -> str:
    """``text`` with the user and password of every URL in it left out (scheme and host kept):
    an exception names the URL it failed on (``net::ERR_... at https://user:pw@host/``), and a
    reason a worker SDK derives from one goes to the append-only ledger. ``without_userinfo``
    is the same for a text that is one URL. ``_PASSWORD_IN_URL``'s substitution, then
    ``_USER_IN_URL``'s, each in time linear in the text's length; then the same in the text
    read percent-decoded (``_DECODINGS``), what they find cut from the text as written."""
    return _without_passwords(text, nested_only=False)


def without_nested_passwords(url: str) -> str:
    """``url`` without the user and password of every URL nested in it, by
    ``without_passwords``' rule (a login page's ``?next=http://bob:pw@intranet/`` is
    ``?next=http://intranet/``, and so percent-encoded), its own scheme's left to
    ``without_userinfo`` (``file:///notes:v2@a.html`` names a file): what a worker SDK records
    of a page's URL, which ``carries_password`` then reads no nested password in. A URL with
    one comes back as a browser reads it (``without_userinfo``); any other, as it is.
    A query's or a fragment's secret that is no URL's userinfo (``#access_token=...``) stays."""
    read = _as_a_browser_reads(url)
    cut = _without_passwords(read, nested_only=True)
    return url if cut == read else cut


# A URL nested in another's query is percent-encoded there ("?next=http%3A%2F%2Fbob%3Apw%40h"),
# a redirect's redirect twice ("%253A"): the rules read a text as written, then with its ASCII
# escapes decoded up to this many times, and cut what each reading finds from the text as
# written.
_DECODINGS = 3
_ESCAPE = r"%[0-7][0-9A-Fa-f]"
# A scheme a browser reads a host after, as ``_USER_IN_URL``'s: a special one with or without
# slashes, any other with two, or none before two (``_SCHEME_RELATIVE``).
_AN_AUTHORITY = _USER_AFTER + "|" + _SCHEMELESS
# The passwords (``_PASSWORD_IN_URL``), then the users without one (``_USER_IN_URL``): each
# one's candidates, the group whose end the password (or user) begins past, and by how much.
_STAGES = ((_CANDIDATE, 2, 1), (_USER_CANDIDATE, 1, 0))


def _without_passwords(text: str, *, nested_only: bool) -> str:
    """``text`` without the userinfo of every URL in it, or (``nested_only``) of every URL but
    one whose scheme begins the text, as written and read decoded (``_DECODINGS``)."""
    for times in range(_DECODINGS + 1):
        if times and "%" not in text:
            break
        for candidates, group, past in _STAGES:
            view, layers = _decoded(text, times)
            if layers and not layers[-1].past:  # nothing more to decode
                return text
            own = _begins(view) if nested_only else -1
            spans = _userinfo_spans(view, candidates, group, past, own, layers=layers)
            text = _left_out(text, [(_origin(layers, a), _origin(layers, b)) for a, b in spans])
    return text


def _nests_a_password(read: str) -> bool:
    """Whether ``read`` (a URL as a browser reads it) holds, past its own scheme, a URL with a
    password whose scheme a browser reads a host after (``_AN_AUTHORITY``: not the time in
    ``?at=12h:30:00@utc``), as written or read decoded; ``without_nested_passwords`` cuts
    these and more."""
    for times in range(_DECODINGS + 1):
        if times and "%" not in read:
            return False
        view, layers = _decoded(read, times)
        if layers and not layers[-1].past:  # nothing more to decode
            return False
        if _userinfo_spans(view, _CANDIDATE, 2, 1, _begins(view), authority=True, layers=layers):
            return True
    return False


def _begins(view: str) -> int:
    """Where a URL's own scheme begins in ``view``: past C0 controls and spaces."""
    return len(view) - len(view.lstrip(_C0_OR_SPACE))


class _Layer(NamedTuple):
    """One decoding of a text (``_decoded``): where in what it made a character was made by an
    escape (``made``), and, for each escape in turn, the first position in what it made that
    lies past it (``past``) and how many written characters the escapes up to it removed
    (``removed``, one more entry, 0 first): 2 for an escape decoded, 3 for one dropped."""

    made: list[int]
    past: list[int]
    removed: list[int]


# A browser drops every tab, line feed and carriage return anywhere in a URL it follows, so an
# escape that decodes to one makes no character (rev48 review: ``?next=http%09://bob:pw@H/``,
# ``http%3A%2F%2Fbob%3Ap%09w%40H``, ``%2F%2F%09%2Fbob%3Apw%40H``, ``ht%09tp:bob:pw@H/``, read
# with a tab, began no URL with a password, and a browser followed each as one).
_DROPPED = frozenset("\t\n\r")


def _decoded(text: str, times: int) -> tuple[str, list[_Layer]]:
    """``text`` with its ASCII escapes (``%3A`` is ":") decoded ``times`` times, one that
    decodes to a tab or a line break to nothing (``_DROPPED``), and for each time where its
    escapes were (``_Layer``; ``_origin`` reads them back)."""
    layers: list[_Layer] = []
    for _ in range(times):
        parts: list[str] = []
        layer = _Layer([], [], [0])
        at = made = 0  # in the text, and in what is made of it
        for escape in re.finditer(_ESCAPE, text):
            character = chr(int(escape[0][1:], 16))
            made += escape.start() - at
            parts.append(text[at : escape.start()])
            if character in _DROPPED:
                layer.past.append(made)
                layer.removed.append(layer.removed[-1] + 3)
            else:
                parts.append(character)
                layer.made.append(made)
                made += 1
                layer.past.append(made)
                layer.removed.append(layer.removed[-1] + 2)
            at = escape.end()
        parts.append(text[at:])
        text = "".join(parts)
        layers.append(layer)
    return text, layers


# A host with its port (a name, with escapes or letters past ASCII, or an address in
# brackets; a port of digits, never empty), then the next parameters of a query, the last an
# address's name and "=" before its "@": a URL nested in a query's value that reads so names no
# user ("?redirect_uri=http://localhost:8080&login_hint=bob@corp.com", encoded once or twice,
# with empty or valueless parameters between: rev43's reviews, an OAuth sign-in refused as a
# password and recorded as another URL). A separator an escape made at the last decoding is
# no separator ("bob%3A%26a%3D1%40intranet": a password), one made before it is (a return
# address encoded twice). A password or a user holding a ";", an "&" or an "=" is still one:
# "bob:&Tr0ub4dor=@", "svc:2024;Summer=@", "bob;role=admin:pw@".
_VALUE_ENDS = re.compile(r"[&;]")
_HOST_PORT = re.compile(
    r"(?:\[[0-9A-Za-z:.%]*\]|(?:[A-Za-z0-9._~-]|%[0-9A-Fa-f]{2}|[^\x00-\x7f])*)(?::[0-9]+)?"
)
_NEXT_PARAMETERS = re.compile(
    r"(?:&amp;|[&;])+(?:[^=&;@\s/?#:]*(?:=[^&;@\s/?#]*)?(?:&amp;|[&;])+)*"
    r"[^=&;@\s/?#:]*=[^=&;@\s/?#:]+"
)


def _a_separator(layers: list[_Layer], at: int) -> bool:
    """Whether the character at ``at`` in a decoded text (``_decoded``) may end a query's
    value: written, or made by a decoding before the last; never one the last made."""
    if not layers:
        return True
    last = layers[-1].made
    before = bisect.bisect_left(last, at)
    return not (before < len(last) and last[before] == at)


def _a_host_then_a_parameter(text: str, start: int, at: int, layers: list[_Layer]) -> int | None:
    """Where a host ends when what runs from ``start`` (past a scheme) to the "@" at ``at``
    is one, perhaps with its port, then a query's next parameters, the last an address's
    name and "=" (``_NEXT_PARAMETERS``); else None."""
    for end in _VALUE_ENDS.finditer(text, start, at):
        if not _a_separator(layers, end.start()):
            continue
        ends = end.start()
        if _HOST_PORT.fullmatch(text, start, ends) is None:
            return None
        return ends if _NEXT_PARAMETERS.fullmatch(text, ends, at) is not None else None
    return None


def _origin(layers: list[_Layer], at: int) -> int:
    """Where the character at ``at`` in a decoded text (``_decoded``) begins in the text as
    written (its length for the decoded text's length): past the escapes dropped before it."""
    for layer in reversed(layers):
        at += layer.removed[bisect.bisect_right(layer.past, at)]
    return at


def _left_out(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without its ``spans`` (in order, apart)."""
    if not spans:
        return text
    kept, done = [], 0
    for start, end in spans:
        kept.append(text[done:start])
        done = end
    kept.append(text[done:])
    return "".join(kept)


def _userinfo_spans(
    text: str,
    candidates: re.Pattern[str],
    group: int,
    past: int,
    own: int = -1,
    *,
    authority: bool = False,
    layers: list[_Layer] | None = None,
) -> list[tuple[int, int]]:
    """What runs from the end of each match of ``candidates``' group 1 (a scheme, its colon and
    slashes) to the last "@" of the segment that holds the character ``past`` after the end of
    its group ``group`` (past a user's colon, or none), "@" included; but a match beginning at
    ``own`` (the URL's own scheme, ``without_userinfo``'s), and with ``authority`` one whose
    group 1 is no ``_AN_AUTHORITY``; nor one whose authority reads as a host, then the next
    parameter of a query (``_a_host_then_a_parameter``; ``layers``: how ``text`` was decoded)."""
    if "@" not in text:
        return []
    segments = [(m.start(), m.end(), text.rfind("@", *m.span())) for m in _SEGMENT.finditer(text)]
    starts = [start for start, _, _ in segments]
    spans: list[tuple[int, int]] = []
    done = 0
    for found in candidates.finditer(text):
        if found.start(1) < done or found.start() == own:  # inside the last one cut, or own
            continue
        if authority and not re.fullmatch(_AN_AUTHORITY, found[1]):
            continue
        password = found.end(group) + past
        at = bisect.bisect_right(starts, password) - 1
        if at < 0 or segments[at][1] <= password or segments[at][2] < password:
            continue  # no "@" after the password's (or user's) start, before the host
        host = _a_host_then_a_parameter(text, found.end(1), segments[at][2], layers or [])
        if host is not None:  # a nested URL's host, then the next parameter: no userinfo
            done = host  # nor in the host (an address's "fe80:" is no scheme)
            continue
        done = segments[at][2] + 1
        spans.append((found.end(1), done))
    return spans


def _check_lease_id(value: str) -> str:
    if not re.fullmatch(_LEASE_ID, value):
        raise ValueError("expected lease-<token>@<profile_id>")
    return value


# The most characters a name, an identity or a command id holds (a screenshot's path is a name:
# the worker SDK and the CLI record one from nearer when its absolute path is longer).
MAX_NAME = 200
ProfileId = Annotated[str, AfterValidator(_check_profile_id)]
Name = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_check_name)]
Identity = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_check_identity)]
CommandId = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_check_identity)]
LeaseId = Annotated[str, Field(max_length=160), AfterValidator(_check_lease_id)]
Directory = Annotated[str, Field(max_length=MAX_DIRECTORY_BYTES), AfterValidator(_check_directory)]
Text = Annotated[str, Field(max_length=2000), AfterValidator(_check_storable)]
Url = Annotated[str, Field(min_length=1, max_length=4096), AfterValidator(_check_storable)]
# A file's sha256 as 64 lowercase hex digits (hashlib's hexdigest).
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
TtlSeconds = Annotated[int, Field(ge=1, le=MAX_TTL_SECONDS)]
MaxLeaseSeconds = Annotated[int, Field(ge=1, le=MAX_LEASE_SECONDS)]
FencingToken = Annotated[int, Field(ge=1, le=MAX_FENCING_TOKEN)]
StreamVersion = Annotated[int, Field(ge=1, le=2**63 - 1)]  # an event's, as a store keeps it
UncleanLimit = Annotated[int, Field(ge=1, le=MAX_UNCLEAN_LIMIT)]
UncleanWindow = Annotated[int, Field(ge=1, le=MAX_UNCLEAN_WINDOW_SECONDS)]


def lease_id_for(profile_id: str, fencing_token: int) -> str:
    """The lease id names the profile and the token, so a lease id alone routes a command."""
    return f"lease-{fencing_token}@{profile_id}"


PROFILE_NAMESPACE = uuid5(NAMESPACE_URL, "urn:custody:profile")


@functools.lru_cache(maxsize=4096)
def stream_id(profile_id: str) -> UUID:
    """A profile's event stream id is derived from the profile's own id, so no lookup is
    needed (the aggregate's id, ``AggregateRoot.create_id``). Remembered for the profiles a
    process last asked about: a command asks for it more than once, and a UUID is immutable."""
    return uuid5(PROFILE_NAMESPACE, profile_id)


def parse_lease_id(lease_id: str) -> tuple[str, int]:
    """Split a lease id into (profile_id, fencing_token); raise ValueError when malformed."""
    match = re.fullmatch(_LEASE_ID, lease_id)
    if match is None:
        msg = f"malformed lease id {lease_id!r}: expected lease-<token>@<profile_id>"
        raise ValueError(msg)
    return match.group(2), int(match.group(1))


class ProfileState(StrEnum):
    """Where a profile stands. Only ``available`` may be checked out."""

    AVAILABLE = "available"
    LEASED = "leased"
    STALE = "stale"
    REVIEW_REQUIRED = "review_required"
    QUARANTINED = "quarantined"
    DISABLED = "disabled"


class Role(StrEnum):
    """Who may say what: the role is recorded on every event."""

    WORKER = "worker"
    SCHEDULER = "scheduler"
    REVIEWER = "reviewer"
    OPERATOR = "operator"


class Outcome(StrEnum):
    """What a worker reports when it releases its lease."""

    SUCCESS = "success"
    EXPECTED_FAILURE = "expected_failure"
    FAILURE = "failure"


class ReviewDecision(StrEnum):
    """A reviewer's verdict on a blocked profile."""

    RETURN = "return"
    QUARANTINE = "quarantine"
    DISABLE = "disable"


# Unicode's Default_Ignorable_Code_Point (DerivedCoreProperties.txt, 15.1): what a text shows
# nothing for, whether a format control (zero-width space, joiners, soft hyphen, bidi
# controls, BOM, tags), a variation selector or a filler; and U+2800, the Braille blank, a
# printable symbol drawn with no ink (rev26: "acct\u2800_17" read as "acct _17"). Dropped
# before two identities are compared (``aggregate.same_identity``) and before a final URL is
# judged to show anything (``policies.shown``), never from what is stored.
INVISIBLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f"
    "\u202a-\u202e\u2060-\u206f\u2800\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


# The general categories of what draws nothing: controls, format characters (bidi controls,
# zero-width ones), surrogates, and space, line and paragraph separators.
_BLANK_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


# What a line of parts shows where nothing was recorded.
NOTHING = "-"


def one_part(value: str) -> str:
    """A recorded text or an id inside a line of parts apart by spaces, ``;`` or ``,``: one
    holding a space, a quote, a semicolon or a comma is its JSON string, so that no value
    reads as more parts (rev26: a step ``open_cart; last URL: https://shop/cart`` read as that
    URL; rev33: a reviewer named ``alice at 2026-01-01T00:00:00+00:00: all good; quarantine by
    bob`` read as a verdict's time and a second reviewer). So is ``-``, which a line shows for
    nothing recorded (review 262: a step ``-`` read as no step at all); any other comes back as
    it is."""
    if value == NOTHING or any(c.isspace() or c in '";,' for c in value):
        return json.dumps(value, ensure_ascii=False)
    return value


def in_line(value: str) -> str:
    """An id inside an error line (a denial's, a refusal's), which is shown keeping its
    backslashes (``shown``'s ``repr_quoted``): ``one_part``'s, or its ``repr`` where ``shown``
    would change it, so that a typed escape and the character it names read apart (rev36
    review: a worker ``w`` U+200B ``1`` and one typed ``w\\u200b1`` read alike in the
    denial's line)."""
    return one_part(value) if shown(value) == value else repr(value)


# How much of a refused value an error line quotes.
QUOTED_PREFIX = 60


def quoted(value: object) -> str:
    """A value as an error line may show it: its repr, cut to a short prefix, then how long
    the value is (a text's characters, so that it reads against a bound such as "at most 200
    characters"; its repr's quotes and escapes are not counted). Here, not at the door, so
    that the domain's refusals quote as the door's do."""
    shown = repr(value)
    if len(shown) <= QUOTED_PREFIX:
        return shown
    size = f"{len(value)} characters" if isinstance(value, str) else f"{len(shown)}"
    return f"{shown[:QUOTED_PREFIX]}... ({size})"


def says_something(text: str) -> bool:
    """Whether ``text`` shows anything: one of spaces, controls or invisible characters alone
    (" ", a zero-width space, a no-break space, ESC) says nothing (rev28: an expected failure
    whose reason was a zero-width space returned its profile to the pool). A character the
    running Python's Unicode does not know yet (an emoji newer than it) or a private-use one
    is taken to show something, as it may on the reader's screen: whether a text is accepted
    must not depend on the Python that reads it (rev28's second read)."""
    return any(
        unicodedata.category(c) not in _BLANK_CATEGORIES and not c.isspace()
        for c in INVISIBLE.sub("", text)
    )


# What reads as an escape ``shown`` writes (``unicode_escape``'s: ``\\``, ``\\n``, ``\\r``,
# ``\\t``, ``\\xHH``, ``\\uHHHH``, ``\\UHHHHHHHH``), in either case: a typed backslash
# before one is doubled.
_READS_AS_AN_ESCAPE = re.compile(r"\\|[nrt]|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}")
_LONGEST_ESCAPE = 9  # ``UHHHHHHHH``, what follows the backslash


def shown(text: str, *, repr_quoted: bool = False) -> str:
    """``text`` as a person is shown it, on a terminal or in a page, so that no text displays as
    another: each character that a terminal or a browser would act on or show nothing for
    (controls, line separators, and every ``INVISIBLE`` one: bidi controls, zero-width
    characters, variation selectors, fillers) written as its escape (``\\u034f``; three
    accounts, plain and with U+034F or U+FE0F inside, all read ``account_shop_17``: rev25), and
    a combining mark that would be drawn on an escape or on nothing (the start), or that
    composes with the letter before it (``Cafe`` and U+0301, as macOS writes it, is not ``Caf``
    and U+00E9: rev27). A typed backslash stays one (``C:\\Users\\x``) unless it begins what
    reads as such an escape (``\\u200b``, ``\\n``, ``\\\\``, or an escape written after it):
    that one is doubled (rev36: ``acct`` U+200B ``17`` and the typed ``acct\\u200b17`` both read
    ``acct\\u200b17``). Any other text comes back unchanged.

    ``repr_quoted``: ``text`` is a line whose values are quoted by ``repr`` already (an error
    line), which has doubled each typed backslash: every backslash is kept as it is, so that a
    line is not escaped twice (rev27) and a shown value quoted in it reads the same."""
    if (
        text.isprintable()
        and INVISIBLE.search(text) is None
        and unicodedata.is_normalized("NFC", text)
        and not (text and unicodedata.category(text[0]).startswith("M"))
        and (repr_quoted or "\\" not in text)
    ):
        return text
    said: list[str] = []
    typed: list[int] = []  # where in ``said`` a typed backslash stands
    before = ""  # the character drawn last, "" at the start and after an escape
    for c in text:
        mark = unicodedata.category(c).startswith("M")
        # A mark drawn on an escape, on nothing, or one the letter before it composes with.
        astray = mark and (not before or unicodedata.normalize("NFC", before + c) != before + c)
        if not c.isprintable() or INVISIBLE.match(c) or astray:
            said.append(c.encode("unicode_escape").decode())
            before = ""
        else:
            if c == "\\" and not repr_quoted:
                typed.append(len(said))
            said.append(c)
            before = c
    for at in typed:
        # What is written after it: a piece is one character or one escape.
        after = "".join(said[at + 1 : at + 1 + _LONGEST_ESCAPE])[:_LONGEST_ESCAPE]
        if _READS_AS_AN_ESCAPE.match(after):
            said[at] = "\\\\"
    return "".join(said)


def told_apart(a: str, b: str) -> str:
    """Why two texts that read the same differ, for a message naming both: the same letters in
    two Unicode forms (composed, NFC; decomposed, NFD: what macOS writes); else nothing."""
    if a == b or unicodedata.normalize("NFC", a) != unicodedata.normalize("NFC", b):
        return ""
    return (
        f" (the same letters in two Unicode forms: {_form(a)}, then {_form(b)}; "
        f"as stored: '{shown(a)}', then '{shown(b)}')"
    )


def _form(text: str) -> str:
    if unicodedata.is_normalized("NFC", text):
        return "composed (NFC)"
    if unicodedata.is_normalized("NFD", text):
        return "decomposed (NFD)"
    return "mixed"


class LeaseStatus(StrEnum):
    """Where a lease stands: live (``active``, ``stale``) or ended."""

    ACTIVE = "active"
    STALE = "stale"
    RELEASED = "released"
    ENDED_UNCLEAN = "ended_unclean"
    REVOKED = "revoked"


class DenialReason(StrEnum):
    """Closed set of reasons a checkout is refused; each has a remediation."""

    ALREADY_LEASED = "already_leased"
    STALE = "stale"
    REVIEW_REQUIRED = "review_required"
    QUARANTINED = "quarantined"
    DISABLED = "disabled"
    PROXY_MISMATCH = "proxy_mismatch"
    ACCOUNT_MISMATCH = "account_mismatch"
    PREVIOUS_RUN_UNKNOWN = "previous_run_unknown"
    # A routed checkout (any matching profile of an account) found none it could lease: the
    # denial is about a pool, not one profile, so none of the reasons above would be true.
    NO_PROFILE_AVAILABLE = "no_profile_available"


class Cause(StrEnum):
    """Why a profile was sent to review or quarantine (recorded on the event)."""

    LEASE_EXPIRED = "lease_expired"
    # The lease reached its hard limit (``--max-duration``, ``--max-lease``), heartbeats and all:
    # not a worker gone silent, though how the run ended is as unknown (rev30).
    HARD_LIMIT_REACHED = "hard_limit_reached"
    MUTATION_UNCONFIRMED = "mutation_unconfirmed"
    UNKNOWN_FINAL_URL = "unknown_final_url"
    MISSING_SCREENSHOT = "missing_screenshot"
    VERIFICATION_PROMPT = "verification_prompt"
    UNEXPECTED_FAILURE = "unexpected_failure"
    PROXY_MISMATCH = "proxy_mismatch"
    ACCOUNT_MISMATCH = "account_mismatch"
    # The worker could not collect its evidence at release (a browser that did not answer,
    # a dead driver): the release says so, and proves nothing.
    EVIDENCE_FAILED = "evidence_failed"
    FORCE_RELEASE = "force_release"
    REPEATED_UNCLEAN_ENDINGS = "repeated_unclean_endings"
    OPERATOR = "operator"
    REVIEWER = "reviewer"


# Causes that mean "nobody knows how the last run ended"; a checkout denied for one of them
# says previous_run_unknown rather than a bare review_required.
UNKNOWN_ENDING_CAUSES = frozenset(
    {
        Cause.LEASE_EXPIRED,
        Cause.HARD_LIMIT_REACHED,
        Cause.UNKNOWN_FINAL_URL,
        Cause.MISSING_SCREENSHOT,
        Cause.UNEXPECTED_FAILURE,
        Cause.EVIDENCE_FAILED,
        Cause.FORCE_RELEASE,
    }
)


class Frozen(BaseModel):
    """Base for every value model: immutable, strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)


class Envelope(Frozen):
    """The audit envelope every event carries. ``at`` is the store's clock at the command."""

    actor_id: str
    actor_role: Role
    reason: str = ""
    correlation_id: str
    causation_id: str
    command_id: str
    command: str = ""
    at: AwareDatetime


def past_deadline(deadline: datetime, now: datetime) -> bool:
    """TTL is a renewal deadline: past it (at the instant itself the lease is still live), a
    lease may no longer be acted on. The one rule every judge of a deadline applies."""
    return now > deadline


class Lease(Frozen):
    """The article's lease record, plus the fencing token and what the run reported."""

    lease_id: str
    profile_id: str
    account_id: str
    worker_id: str
    run_id: str
    task_type: str
    proxy_id: str
    lease_status: LeaseStatus
    lease_started_at: AwareDatetime
    heartbeat_at: AwareDatetime
    expires_at: AwareDatetime
    ttl_seconds: TtlSeconds
    last_safe_step: str | None = None
    release_policy: str
    fencing_token: int
    last_step: str | None = None
    last_url: str | None = None
    mutating_step: str | None = None
    ending: str | None = None  # how it ended, in one word (``ledger._domain.endings``)
    # The cause recorded beside the ending. Left out of the JSON while empty: the lease a
    # ``lease_acquired`` event carries has not ended, so those events stay byte for byte what
    # they were before the field existed (tests/fixtures/stored_events).
    ending_cause: Cause | None = Field(default=None, exclude_if=lambda cause: cause is None)
    ended_at: AwareDatetime | None = None
    hard_limit_at: AwareDatetime | None = None  # no renewal reaches past it (None: no limit)

    def overdue_at(self, now: datetime) -> bool:
        """TTL is a renewal deadline: past it, the lease may no longer be acted on."""
        return past_deadline(self.expires_at, now)

    def capped(self, deadline: datetime) -> datetime:
        """``deadline``, or the hard limit if that comes first: no renewal moves past it."""
        if self.hard_limit_at is None:
            return deadline
        return min(deadline, self.hard_limit_at)

    def ended_by_hard_limit(self) -> bool:
        """Its deadline is its hard limit: past it, no renewal could have kept the lease."""
        return self.hard_limit_at is not None and self.expires_at >= self.hard_limit_at


class Holder(Frozen):
    """Who holds (or last held) a profile."""

    worker_id: str
    run_id: str
    task_type: str
    lease_id: str


class Denial(Frozen):
    """Why a checkout was refused, in words for a person and codes for a program.
    ``profile_id`` is None only for ``no_profile_available``: a pool was refused, not one
    profile."""

    profile_id: str | None
    reason: DenialReason
    message: str
    since: datetime | None = None
    until: datetime | None = None
    holder: Holder | None = None
    remediation: str


class ProfileRecord(Frozen):
    """A profile's registration: the account context a checkout must match."""

    profile_id: str
    account_id: str
    proxy_id: str
    region: str | None = None
    user_data_dir: str | None = None
    release_policy: str
    unclean_limit: int
    unclean_window_seconds: int
    max_lease_seconds: int | None = None  # every lease's hard limit (None: no limit)
