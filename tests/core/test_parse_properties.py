"""Property test: random CSV bytes mixing valid rows with every defect, against a reference parser.

The reference below is written from the contract alone, one character at a time (lines end at
LF, CRLF or CR; a quote opens a field only at its start; a quoted field may span lines up to
the limit, else its first line is one malformed row; blank lines are not rows), so it shares
no code with `retail_etl.core.parse`.
"""

from __future__ import annotations

from datetime import date

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from retail_etl.contract.columns import LANDING_COLUMNS, ROW_REASONS
from retail_etl.core.checks import Rules, split_rows
from retail_etl.core.parse import ParseLimits, read_landing_bytes

LIMITS = ParseLimits(max_record_lines=4, max_record_bytes=1 << 20)
HEADER = [*LANDING_COLUMNS, "note"]


def physical_lines(text: str) -> list[tuple[str, str]]:
    """(content, terminator) of each line."""
    lines, start, index = [], 0, 0
    while index < len(text):
        char = text[index]
        if char in "\r\n":
            end = index + (2 if text.startswith("\r\n", index) else 1)
            lines.append((text[start:index], text[index:end]))
            start = index = end
        else:
            index += 1
    if start < len(text):
        lines.append((text[start:], ""))
    return lines


def parse_record(lines: list[tuple[str, str]], first: int) -> tuple[list[str] | None, int]:
    """Fields of the record starting on line `first` (0-based) and how many lines it took;
    None as fields when its quoted field runs away."""
    fields: list[str] = []
    field, state, number = "", "start", first
    while True:
        content, terminator = lines[number]
        for char in content:
            if state == "start":
                state = "quoted" if char == '"' else "plain"
                if char == ",":
                    fields.append("")
                    state = "start"
                elif char != '"':
                    field = char
            elif state == "plain":
                if char == ",":
                    fields.append(field)
                    field, state = "", "start"
                else:
                    field += char
            elif state == "quoted":
                if char == '"':
                    state = "closing"
                else:
                    field += char
            else:  # "closing": just after a quote inside a quoted field
                if char == '"':
                    field, state = field + '"', "quoted"
                elif char == ",":
                    fields.append(field)
                    field, state = "", "start"
                else:
                    field, state = field + char, "plain"
        if state != "quoted":
            fields.append(field)
            return fields, number - first + 1
        field += terminator
        taken = number - first + 1
        if number + 1 >= len(lines) or taken >= LIMITS.max_record_lines:
            return None, 1
        number += 1


def reference(data: bytes) -> list[tuple[int, list[str] | None, str | None]]:
    """(line number, the seven landing fields or None, raw text of a malformed record)."""
    text = data.decode("utf-8").removeprefix("\ufeff")
    lines = physical_lines(text)
    blank = [not content.strip(" \t") for content, _ in lines]
    header = blank.index(False)
    names = [name.strip().lower() for name in lines[header][0].split(",")]
    rows, number = [], header + 1
    while number < len(lines):
        fields, taken = parse_record(lines, number)
        if not (taken == 1 and blank[number]):
            raw = None
            if fields is None or len(fields) != len(names):
                parts = [content + terminator for content, terminator in lines[number : number + taken]]
                raw = "".join(parts)[: -len(lines[number + taken - 1][1]) or None]
                fields = None
            else:
                fields = [fields[names.index(column)] for column in LANDING_COLUMNS]
            rows.append((number + 1, fields, raw))
        number += taken
    return rows


# -- generated files ------------------------------------------------------------------------------

ODD = st.sampled_from(
    ["", " ", "\t", "é", "\x0c", "\u2028", "\x85", "\x1c", "€", ",", '"', "\n", "\r\n", "\r", "\n\n\n", "\r\n\n\r\n\n"]
)
PLAIN = st.text(alphabet="abcxyz0129.-+ ", max_size=6)
VALUES = {
    "transaction_id": st.sampled_from(["t1", "t2", "t3", " t1 ", ""]),
    "sale_date": st.sampled_from(["2024-01-15", " 2024-01-15", "2024-01-14", "2024-02-30", "x"]),
    "store_id": st.sampled_from(["S1", "S2", ""]),
    "region": st.sampled_from(["north", "south", "r" * 70, " east "]),
    "product": st.one_of(PLAIN, st.tuples(PLAIN, ODD, PLAIN).map("".join)),
    "quantity": st.sampled_from(["1", "2", "0", "-1", "2.5", "2.0", "1e1", "10001", "2.00000000000000001"]),
    "unit_price": st.sampled_from(["3.50", "0", "1e2", "100000.000000000001", ".5", "free", "99.995"]),
    "note": st.one_of(PLAIN, ODD),
}


def field_text(value: str, quote: bool) -> str:
    return '"' + value.replace('"', '""') + '"' if quote or any(c in value for c in ',"\r\n') else value


@st.composite
def lines_of_a_file(draw) -> list[str]:
    """Header, then rows that are valid, short, long, blank, unclosed or oddly quoted."""
    lines = [",".join(HEADER)]
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["row", "row", "row", "blank", "short", "long", "unclosed", "stray"]))
        values = [draw(VALUES[column]) for column in HEADER]
        quoted = [field_text(value, draw(st.booleans())) for value in values]
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", " ", "\t \t"])))
        elif kind == "short":
            lines.append(",".join(quoted[: draw(st.integers(1, 6))]))
        elif kind == "long":
            lines.append(",".join([*quoted, "extra"]))
        elif kind == "unclosed":
            at = draw(st.integers(0, len(quoted) - 1))
            lines.append(",".join([*quoted[:at], '"' + values[at], *quoted[at + 1 :]]))
        elif kind == "stray":
            lines.append(",".join(quoted).replace(",", ',x"', 1))
        else:
            lines.append(",".join(quoted))
    return lines


@st.composite
def landing_files(draw) -> bytes:
    lines = draw(lines_of_a_file())
    endings = [draw(st.sampled_from(["\n", "\r\n", "\r"])) for _ in lines]
    body = "".join(line + ending for line, ending in zip(lines, endings, strict=True))
    if draw(st.booleans()):
        body = body.rstrip("\r\n")
    return (b"\xef\xbb\xbf" if draw(st.booleans()) else b"") + body.encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(landing_files())
@example(",".join(HEADER).encode() + b'\nt1,2024-01-15,S1,north,"tea,1,2,\nt2,2024-01-15,S1,north,tea,1,2,\n')
@example(",".join(HEADER).encode() + b'\nt1,2024-01-15,S1,north,,1,3.50,\nt1,2024-01-15,S1,north,,1,3.50,"\n')
def test_rows_lines_and_reasons_match_the_reference(data: bytes):
    expected = reference(data)
    frame = read_landing_bytes(data, "S1.csv", LIMITS)

    assert frame["source_line"].tolist() == [number for number, _, _ in expected]
    assert [None if pd.isna(raw) else raw for raw in frame["raw_line"]] == [raw for _, _, raw in expected]
    parsed = [fields for _, fields, _ in expected if fields is not None]
    assert frame.loc[frame["raw_line"].isna(), list(LANDING_COLUMNS)].values.tolist() == parsed

    frame["source_file"] = "S1.csv"
    clean, quarantine = split_rows(frame, Rules(run_date=date(2024, 1, 15)))
    assert len(clean) + len(quarantine) == len(frame)  # conservation
    assert quarantine["source_line"].is_unique  # one reason per row
    assert set(quarantine["reason"]) <= set(ROW_REASONS)
    malformed = quarantine[quarantine["reason"] == "malformed_row"]
    assert sorted(malformed["source_line"]) == [number for number, fields, _ in expected if fields is None]
