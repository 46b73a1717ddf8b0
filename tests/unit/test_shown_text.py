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


@pytest.mark.parametrize("text", ["account_shop_17", "café", "東京", "हिन्दी", "a b/x07"])
def test_text_that_shows_as_itself_is_unchanged(text: str) -> None:
    assert shown(text) is text or shown(text) == text
    assert printable(text) == text


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("shop_17\u034f", "shop_17\\u034f"),  # an invisible mark, and its escape typed
        ("a b\x07", "a b\\x07"),
        ("shop_18\u202e\u0301", "shop_18\\u202\u00e9"),  # a mark sitting on an escape
        ("Cafe\u0301_shop", "Caf\u00e9_shop"),  # decomposed (macOS) and composed
        ("\u0301x", "\\u0301x"),
    ],
    ids=["escape_typed", "control_typed", "mark_on_an_escape", "normal_forms", "mark_first"],
)
def test_two_texts_never_display_alike(one: str, other: str) -> None:
    """rev27: a backslash typed is doubled, a combining mark on an escape (or on nothing) is
    escaped, and the marks of a text not in NFC are too: two stored texts, two displays."""
    assert one != other
    # What a screen draws: canonically equivalent strings are drawn alike.
    assert normalize("NFC", shown(one)) != normalize("NFC", shown(other))
    assert (printable(one), printable(other)) == (shown(one), shown(other))
