"""A report's frames written a page at a time (``custody timeline``'s csv and json) are
exactly what one frame of all their rows writes: the same bytes, one header."""

from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from custody._output import records, write_csv, write_csv_pages, write_json

FRAME = pd.DataFrame(
    {
        "position": pd.array([1, 2, 3, None, 5], dtype="Int64"),
        "at": pd.to_datetime(["2026-12-07T08:00:00Z"] * 5, utc=True),
        "url": pd.array(["=1+1", "a,\nb", None, 'q"uote', "é\u2028"], dtype="string"),
        "detail": pd.array(["", "x", "y", "z", "w"], dtype="string"),
    }
)


def _pages(frame: pd.DataFrame, rows: int) -> list[pd.DataFrame]:
    return [frame.iloc[start : start + rows] for start in range(0, max(len(frame), 1), rows)]


@pytest.mark.parametrize("rows", [1, 2, 5])
@pytest.mark.parametrize("frame", [FRAME, FRAME.iloc[:0]], ids=["rows", "none"])
def test_json_in_pages_is_json_dumps_of_every_record(frame: pd.DataFrame, rows: int) -> None:
    """An array of objects indented by two, "[]" when empty: byte for byte what
    ``json.dumps(records, indent=2)`` wrote when an export was one frame."""
    out = io.StringIO()
    write_json(_pages(frame, rows), out)
    assert out.getvalue() == json.dumps(records(frame), indent=2) + "\n"


@pytest.mark.parametrize("rows", [1, 2, 5])
def test_csv_in_pages_is_the_csv_of_the_whole_frame_with_one_header(rows: int) -> None:
    whole, paged = io.StringIO(), io.StringIO()
    write_csv(FRAME, whole)
    write_csv_pages(_pages(FRAME, rows), paged)
    assert paged.getvalue() == whole.getvalue()
    assert paged.getvalue().count("position,at,url,detail") == 1
