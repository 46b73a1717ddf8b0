"""Text as a person is shown it (``ledger.rules.shown``, the command line's ``printable``):
no text displays as another, and text that shows as itself is left as it is."""

from __future__ import annotations

from unicodedata import normalize

import pytest

from custody._text import printable
from ledger.rules import shown


@pytest.mark.parametrize(
    "hidden",
    [
        "\u034f",
        "\u2800",
        "\ufe0f",
        "\U000e0101",
        "\u3164",
        "\u115f",
        "\uffa0",
        "\u200b",
        "\u202e",
        "\x1b",
    ],
)
def test_a_character_shown_as_nothing_is_its_escape(hidden: str) -> None:
    """rev25: U+034F, variation selectors and fillers count as printable to Python, and three
    accounts (plain, with U+034F, with U+FE0F) all read ``account_shop_17``."""
    text = f"account_shop_1{hidden}7"
    said = shown(text)
    assert said != "account_shop_17"
    assert hidden not in said
    assert said == "account_shop_1" + hidden.encode("unicode_escape").decode() + "7"
    assert printable(text) == said


@pytest.mark.parametrize(
    "text",
    [
        "account_shop_17",
        "café",
        "東京",
        "हिन्दी note",
        "ไทย",
        "a b\\x7",
        "C:\\profiles\\p1",
        "C:\\Users\\x",
        "ends in \\",
    ],
)
def test_text_that_shows_as_itself_is_unchanged(text: str) -> None:
    """Letters with their marks (Hindi, Thai, a composed é) and a typed backslash that begins
    no escape (a Windows path, rev36: ``C:\\Users\\x`` stays readable) are shown as they are;
    and an error line, whose values ``repr`` already escaped, is shown again whole with its
    backslashes as they are (rev27's second read: a backslash doubled at each layer)."""
    assert shown(text) is text or shown(text) == text
    assert printable(text) == text
    assert shown(repr(text), repr_quoted=True) == repr(text) or not repr(text).isascii()
    assert printable(repr(text), repr_quoted=True) == shown(repr(text), repr_quoted=True)


# Texts typed with what reads as an escape, beside the characters it names (rev36).
LOOKALIKES = [
    ("acct\u200b17", "acct\\u200b17"),
    ("cafe\u0301", "cafe\\u0301"),
    ("a\nb", "a\\nb"),
    ("a\tb", "a\\tb"),
    ("a\rb", "a\\rb"),
    ("a\x07b", "a\\x07b"),
    ("a\x7fb", "a\\x7Fb"),
    ("a\U000e0101b", "a\\U000e0101b"),
    ("a\\\u200bb", "a\\u200bb"),
    ("a\\\\u200bb", "a\\\\\\u200bb"),
    ("a\\\\b", "a\\b"),
]


@pytest.mark.parametrize(("real", "typed"), LOOKALIKES)
def test_a_typed_escape_never_displays_as_the_character_it_names(real: str, typed: str) -> None:
    """rev36: an account registered as ``acct`` U+200B ``17`` and another typed as the text
    ``acct\\u200b17`` both displayed ``acct\\u200b17`` in ``status``, ``fleet`` and the HTML
    report (and NFD ``café`` beside the typed ``cafe\\u0301``): a typed backslash that begins
    what reads as an escape is doubled, so that no text displays as another."""
    assert real != typed
    assert normalize("NFC", shown(real)) != normalize("NFC", shown(typed))
    assert (printable(real), printable(typed)) == (shown(real), shown(typed))


def test_no_two_of_many_lookalike_texts_display_alike() -> None:
    """Every text of the lookalikes and their pieces joined in pairs displays apart from every
    other (rev36): the display of a typed backslash never depends on an escape written after
    it reading as something else."""
    pieces = sorted({c for pair in LOOKALIKES for t in pair for c in t} | {"\\", "\u200b"})
    texts = {a + b for a in pieces for b in pieces} | {t for pair in LOOKALIKES for t in pair}
    displays = {normalize("NFC", shown(t)): t for t in texts}
    assert len(displays) == len(texts)


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("shop_18\u202e\u0301", "shop_18\\u202\u00e9"),  # a mark sitting on an escape
        ("Cafe\u0301_shop", "Caf\u00e9_shop"),  # decomposed (macOS) and composed
        ("\u2126 e\u0301", "\u2126 \u00e9"),  # in a text not in NFC for another reason too
    ],
    ids=["mark_on_an_escape", "normal_forms", "mark_beside_a_compatibility_sign"],
)
def test_two_texts_never_display_alike(one: str, other: str) -> None:
    """rev27: a combining mark on an escape, at the start, or one the letter before it composes
    with (a decomposed text) is escaped: two stored texts, two displays."""
    assert one != other
    # What a screen draws: canonically equivalent strings are drawn alike.
    assert normalize("NFC", shown(one)) != normalize("NFC", shown(other))
    assert (printable(one), printable(other)) == (shown(one), shown(other))


@pytest.mark.parametrize(
    "text", ["a\u202eb", "Cafe\u0301", "x\u034f\u0301", "C:\\p", "हिन्दी", "\u2126 e\u0301"]
)
def test_a_shown_text_shown_again_is_the_same(text: str) -> None:
    """Shown twice reads as shown once: a message quotes a shown value, and the error line is
    shown again as a whole (``repr_quoted``: a line whose backslashes are already
    unambiguous, rev36)."""
    assert shown(shown(text), repr_quoted=True) == shown(text)
    assert printable(printable(text), repr_quoted=True) == shown(text)


def test_the_console_shows_a_notes_lines_as_the_command_line_shows_them() -> None:
    """The review console keeps a note's line breaks and tabs and shows each run between them
    as the command line does: a Hindi note reads as itself (rev27's second read: its marks were
    escaped one letter at a time), a bidi override as its escape."""
    from service._console import _visible

    assert _visible("हिन्दी note\nsecond\tline") == "हिन्दी note\nsecond\tline"
    assert _visible("a\u202eb\nCafe\u0301") == "a\\u202eb\nCafe\\u0301"


def test_an_error_line_quoting_a_value_keeps_repr_s_escapes_as_they_are() -> None:
    """An error line quotes a value as ``repr`` writes it, which doubles each typed backslash:
    the command line's line (``one_line``) and the service's problem show it with every
    backslash as it is, so that ``acct`` U+200B ``17`` reads ``'acct\\u200b17'`` and the typed
    ``acct\\u200b17`` reads ``'acct\\\\u200b17'`` (rev36: shown again as a value, the first
    would read as the second)."""
    from custody._text import one_line
    from ledger import InvalidInput
    from ledger.rules import quoted
    from service._errors import problem_of, quoted_name

    for value in ("acct\u200b17", "acct\\u200b17", "C:\\Users\\x"):
        line = f"invalid account_id: no profile is registered under it (got {quoted(value)})"
        assert one_line(line) == line
        assert problem_of(InvalidInput("account_id", line))[1].message.endswith(
            f"(got {quoted(value)})"
        )
        assert quoted_name(value) == quoted(value)
