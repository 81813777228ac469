"""Physical lines of a landing file, as every CSV reader splits them.

A line ends at LF, CRLF or a lone CR (what pyarrow, Python's csv module and
spreadsheet tools all accept), and at nothing else: form feeds, U+2028 and the
like are ordinary characters. A line is blank when it holds only spaces and tabs.
Quarantine rows point back at these line numbers (1-based, header = its own line).

>>> lines = PhysicalLines(b"a,b\\r\\n\\r\\n1,2\\r3\\x0c4\\n \\t\\n5")
>>> len(lines), lines.text(4), lines.blank.tolist()
(6, '3\\x0c4', [False, True, False, False, True, False])
"""

from __future__ import annotations

import numpy as np

_LF, _CR, _SPACE, _TAB = 10, 13, 32, 9


class PhysicalLines:
    """Where each line starts and ends (terminator excluded) in a byte string."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        buffer = np.frombuffer(data, dtype=np.uint8)
        if b"\r" in data:
            lf = buffer == _LF
            cr = buffer == _CR
            lone_cr = cr.copy()
            lone_cr[:-1] &= ~lf[1:]
            breaks = np.flatnonzero(lf | lone_cr)  # last byte of each terminator
            crlf = np.zeros(len(breaks), dtype=bool)
            at_lf = breaks[lf[breaks]]
            crlf[lf[breaks]] = (at_lf > 0) & cr[np.maximum(at_lf - 1, 0)]
            ends = breaks - crlf
        else:  # LF only (the usual): one pass over the bytes
            breaks = np.flatnonzero(buffer == _LF)
            ends = breaks
        starts = np.concatenate(([0], breaks[:-1] + 1)) if len(breaks) else breaks
        nexts = breaks + 1
        tail = int(nexts[-1]) if len(breaks) else 0
        if tail < len(data):  # a last line without a terminator
            starts = np.append(starts, tail)
            ends = np.append(ends, len(data))
            nexts = np.append(nexts, len(data))
        self.starts = starts.astype(np.int64)
        self.ends = ends.astype(np.int64)
        self.nexts = nexts.astype(np.int64)
        #: Lines holding nothing but spaces and tabs (or nothing at all).
        self.blank = _blank_lines(buffer, self.starts, self.ends)
        #: Lines with no byte at all between their start and terminator.
        self.empty = self.ends == self.starts

    def __len__(self) -> int:
        return len(self.starts)

    def text(self, first: int, last: int | None = None) -> str:
        """Lines first..last (1-based, inclusive) as written, inner terminators kept."""
        last = first if last is None else last
        return self.data[self.starts[first - 1] : self.ends[last - 1]].decode("utf-8")

    def number_at(self, offset: int) -> int:
        """The 1-based line holding byte `offset`."""
        return int(np.searchsorted(self.nexts, offset, side="right")) + 1


def _blank_lines(buffer: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each line has nothing but spaces and tabs. Only a line that starts with one can be
    blank and not empty, so only those are looked at (rows start with their first field)."""
    blank = ends == starts
    filled = np.flatnonzero(~blank)
    first = buffer[starts[filled]]
    suspects = filled[(first == _SPACE) | (first == _TAB)]
    if len(suspects):
        content = ~((buffer == _SPACE) | (buffer == _TAB) | (buffer == _LF) | (buffer == _CR))
        # Whether any content byte lies in [start, end): a count of content bytes before each offset.
        before = np.concatenate(([0], np.cumsum(content[: int(ends[suspects].max())], dtype=np.int64)))
        blank[suspects] = before[ends[suspects]] == before[starts[suspects]]
    return blank
