"""The command line's options in seconds (``custody._wiring.Seconds``): what they read."""

from __future__ import annotations

import click
import pytest

from custody._wiring import Seconds


@pytest.mark.parametrize("typed", ["\u0661", " 2", "+1", "1_0", "1e1", "inf", "nan", "", "."])
def test_text_that_is_no_plain_number_is_refused(typed: str) -> None:
    """Only ASCII digits with perhaps a fraction are seconds; ``float()`` reads the rest."""
    with pytest.raises(click.BadParameter, match="is not a valid number of seconds"):
        Seconds(0.1, 60).convert(typed, None, None)


@pytest.mark.parametrize(("typed", "seconds"), [("2", 2.0), (".5", 0.5), ("2.", 2.0)])
def test_a_plain_number_is_read(typed: str, seconds: float) -> None:
    """Digits on either side of the point, or none after it, read as Python reads them."""
    assert Seconds(0.1, 60).convert(typed, None, None) == seconds


def test_nan_handed_over_as_a_number_is_out_of_range() -> None:
    """A ``nan`` that arrives as a number (a default) is refused, as click's range is not."""
    with pytest.raises(click.BadParameter, match="nan is not in the range"):
        Seconds(0.1, 60).convert(float("nan"), None, None)


@pytest.mark.parametrize("typed", ["99999999999999999999", "1" * 400, "0.00000001", "60.5"])
def test_a_number_out_of_range_is_quoted_as_typed(typed: str) -> None:
    """rev42: the refusal quoted the float read (``1e+20``, ``inf``, ``1e-08``), a number nobody
    typed; it quotes the text. Guard: the ``except click.BadParameter`` in ``convert``."""
    with pytest.raises(click.BadParameter) as refused:
        Seconds(0.1, 60).convert(typed, None, None)
    assert refused.value.message == f"{typed} is not in the range 0.1<=x<=60."
