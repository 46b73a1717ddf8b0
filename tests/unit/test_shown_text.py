"""Text as a person is shown it (``ledger.rules.shown``, the command line's ``printable``):
no text displays as another, and text that shows as itself is left as it is."""

from __future__ import annotations

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


@pytest.mark.parametrize("text", ["account_shop_17", "café", "cafe\u0301", "東京", "a b\\x07"])
def test_text_that_shows_as_itself_is_unchanged(text: str) -> None:
    assert shown(text) is text or shown(text) == text
    assert printable(text) == text
