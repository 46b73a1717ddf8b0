"""How the reports read a time a person typed, and how they say a duration or write a time
(rev22: each was wrong for an ordinary input)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import reports
from custody._output import records
from ledger import InvalidInput


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(-30, "-30s"), (-1, "-1s"), (-0.4, "0s"), (-3_700, "-1h 01m"), (-90_000, "-1d 01h"),
     (0, "0s"), (45, "45s"), (318, "5m 18s"), (90_000, "1d 01h")],
)  # fmt: skip
def test_a_negative_duration_is_said_as_it_is(seconds: float, said: str) -> None:
    """A clock set back between two events makes a duration negative: -30 s was said as
    "-1d 23h" (divmod of a negative number)."""
    assert reports.spoken(seconds) == said


@pytest.mark.parametrize(
    ("spaced", "joined"),
    [
        ("2026-12-04 15:15:02 +0000", "2026-12-04T15:15:02+00:00"),
        ("2026-12-04T15:15:02 Z", "2026-12-04T15:15:02Z"),
        ("2026-12-04T15 +05:30", "2026-12-04T15+05:30"),
        ("2026-12-04T15:15 -01:00", "2026-12-04T15:15-01:00"),
        ("2026-12-04 15:15:02.5 +0000", "2026-12-04T15:15:02.5+00:00"),  # rev33: refused
        ("2026-12-04T15:15:02.5 Z", "2026-12-04T15:15:02.5Z"),
    ],
)
def test_an_until_with_a_space_before_its_offset_is_the_same_unit(spaced: str, joined: str) -> None:
    """git and Ruby print a space before the offset: --until took the offset's digits for the
    time of day (a second became a minute, an hour its first minute, 'S Z' an instant)."""
    assert reports.moment("until", spaced, until=True) == reports.moment(
        "until", joined, until=True
    )


@pytest.mark.parametrize("text", ["2026-12-04T15.5", "2026-12-04T15:04.9", "2026-12-04T1504,9"])
def test_decimal_hours_or_minutes_are_refused(text: str) -> None:
    """ISO 8601's decimal hours and minutes: Python read T15.5 as 15:00:00.5, not 15:30."""
    with pytest.raises(InvalidInput, match="a fraction goes after the seconds"):
        reports.moment("since", text)
    assert reports.moment("since", "2026-12-04T15:04:05.5").microsecond == 500_000


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("2026-12-06x00:55.5", "apart by T (or a space)"),
        ("2026-12-06_00:55:30", "apart by T (or a space)"),
        ("2026-11-27509:45", "apart by T (or a space)"),
        ("20261206Z0955", "apart by T (or a space)"),
        ("2026-12-06\n01:17:45", "apart by T (or a space)"),  # a review: "." stopped at it
        ("2026-12-06T00:56:45.8418849Z", "at most 6 digits"),
        ("2026-12-06 00:56:45,123456789", "at most 6 digits"),
        ("2026-335", "an ordinal date"),  # review 260: "expected an ISO 8601 time"
        ("2026335", "an ordinal date"),
        ("2026-335T10:00:00Z", "an ordinal date"),
    ],
)
def test_a_time_python_would_read_otherwise_is_refused(text: str, said: str) -> None:
    """rev33: ``fromisoformat`` takes any character between the date and the time (so
    ``x00:55.5`` was 00:55:00.5, where ``T00:55.5`` is refused as a decimal minute) and cuts a
    fraction finer than a microsecond (a --since a little before the instant given kept an
    event from before it). Both are bad input; the forms that are read stay read."""
    with pytest.raises(InvalidInput) as refused:
        reports.moment("since", text)
    assert said in str(refused.value)
    for kept in ("2026-12-06T00:55:30Z", "2026-12-06t00:55:30", "2026-12-06 00:55:30.123456"):
        assert reports.moment("since", kept) is not None
    assert reports.moment("since", "20261206T0955Z") == datetime(2026, 12, 6, 9, 55, tzinfo=UTC)
    assert reports.moment("since", "2026-W49-7T09:55") == datetime(2026, 12, 6, 9, 55, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-01T10:00:00+00:00:00.5",  # read as UTC: the half second dropped (rev47)
        "2026-12-01T10:00:00-00:00:00,5",
        "2026-12-01T10:00:00+000000.5",
        "2026-12-01T10:00:00.25+01:00:00.5",
        "2026-12-01 10:00:00 +00:00:00.5",
    ],
)
def test_an_offset_with_a_fraction_of_a_second_is_refused(text: str) -> None:
    """rev47: Python reads the offset +00:00:00.5 as UTC, so ``--at T+00:00:00.5`` was judged
    at T, not half a second before it. An offset of whole seconds is still read exactly."""
    for until in (False, True):
        with pytest.raises(InvalidInput, match="an offset from UTC is whole seconds at most"):
            reports.moment("at", text, until=until)
    whole = reports.moment("at", "2026-12-01T10:00:00+00:00:30")
    assert whole == datetime(2026, 12, 1, 9, 59, 30, tzinfo=UTC)
    assert reports.moment("at", "2026-12-01T10:00:00.5-01:00") == datetime(
        2026, 12, 1, 11, 0, 0, 500_000, tzinfo=UTC
    )


def test_a_time_finer_than_a_microsecond_is_refused_from_python_as_from_text() -> None:
    """Review 260: a pandas Timestamp with nanoseconds was taken (and an as-of report said
    that time), where the command line refuses a fraction of more than 6 digits."""
    import pandas as pd

    with pytest.raises(InvalidInput, match="finer than a microsecond"):
        reports.moment("at", pd.Timestamp("2026-12-01T10:00:10.000001500Z"))
    kept = reports.moment("at", pd.Timestamp("2026-12-01T10:00:10.000001Z"))
    assert kept == datetime(2026, 12, 1, 10, 0, 10, 1, tzinfo=UTC)


def test_an_exported_time_always_has_its_microseconds() -> None:
    """One form per column: a time on a whole second was written without its fraction, and
    pandas could not read a column of both forms."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "at": [
                datetime(2026, 12, 1, 9, tzinfo=UTC),
                datetime(2026, 12, 1, 9, 0, 1, 250_000, tzinfo=UTC),
            ]
        }
    )
    written = [row["at"] for row in records(frame)]
    assert written == ["2026-12-01T09:00:00.000000+00:00", "2026-12-01T09:00:01.250000+00:00"]
    assert pd.to_datetime(pd.Series(written)).tolist() == frame["at"].tolist()


def test_a_time_in_a_table_says_its_offset() -> None:
    """rev40: ``usage`` and ``health`` tables cut a time to its first 19 characters, dropping
    the ``+00:00`` every other text view prints: a reader in another zone could not tell."""
    from custody._output import cell

    at = datetime(2026, 12, 6, 22, 25, 34, 987_654, tzinfo=UTC)
    assert cell(at) == "2026-12-06 22:25:34+00:00"
    assert cell("2026-12-06 22:25:34.987654+00:00") == "2026-12-06 22:25:34.987654+00:00"
