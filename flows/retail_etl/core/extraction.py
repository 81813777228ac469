"""A batch of landing files' bytes as one frame of raw rows, with a verdict on every file.

One frame per batch (not per file) is what the pipeline caches: per-file task runs cost
more than reading small files. Each file's verdict (its row count, or why it was rejected)
travels with the frame in ``attrs[VERDICTS]``, so a cached batch says everything a fresh
one does. A parse problem is a verdict, never an exception; details are bounded and escaped,
so landing content never reaches logs or the manifest beyond a short excerpt.

>>> header = b"transaction_id,sale_date,store_id,region,product,quantity,unit_price\\n"
>>> frame = extract_files([LandingBytes("/l/S1.csv", "S1.csv", header + b"t1,2024-01-15,S1,north,tea,2,3.5\\n"),
...                        LandingBytes("/l/S2.csv", "S2.csv", b"")])
>>> rows, verdicts = split_verdicts(frame)
>>> rows["source_file"].tolist(), [(v.url, v.rows, v.reason) for v in verdicts]
(['/l/S1.csv'], [('/l/S1.csv', 1, None), ('/l/S2.csv', 0, 'empty_file')])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..contract.layout import LANDING_SUFFIXES
from ..errors import RejectedFile
from .parse import RAW_COLUMNS, ParseLimits, excerpt, read_landing_bytes, reject

#: Bump when the batch frame or its verdicts change, so cached batches are not reused.
EXTRACTION_LAYOUT = "batch-1"
#: Where a batch frame keeps its verdicts (``frame.attrs``; the result serializer stores them).
VERDICTS = "retail_etl_verdicts"
#: The longest detail of a rejected file's verdict.
DETAIL_CHARS = 300
DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class LandingBytes:
    """One landing file's content (None: not read, its name says it is no landing file)."""

    url: str
    name: str
    data: bytes | None


@dataclass(frozen=True)
class Verdict:
    """What extracting one file gave: its rows, or the reason it was rejected."""

    url: str
    rows: int = 0
    reason: str | None = None
    detail: str | None = None

    @property
    def rejected(self) -> bool:
        return self.reason is not None


def is_landing_name(name: str) -> bool:
    """Whether the name has a landing file's suffix (other files are rejected without being read)."""
    return name.lower().endswith(LANDING_SUFFIXES)


def parse_file(source: LandingBytes, limits: ParseLimits) -> pd.DataFrame:
    """The file's raw rows, or `RejectedFile` (`read_landing_bytes` turns any parser failure into
    an ``unreadable`` one: the bytes are already in memory, so it is the file's fault)."""
    if source.data is None or not is_landing_name(source.name):
        raise reject("unsupported_file_type", f"{source.name}: expected one of {', '.join(LANDING_SUFFIXES)}")
    return read_landing_bytes(source.data, source.name, limits)


def extract_files(sources: Sequence[LandingBytes], limits: ParseLimits = DEFAULT_LIMITS) -> pd.DataFrame:
    """Raw rows of every readable file, in order, with ``source_file`` (the file's URL, a Categorical),
    and ``attrs[VERDICTS]``: one verdict per source, in order."""
    frames: list[pd.DataFrame] = []
    verdicts: list[Verdict] = []
    for source in sources:
        try:
            frame = parse_file(source, limits)
        except RejectedFile as rejected:
            verdicts.append(Verdict(source.url, reason=rejected.reason, detail=excerpt(rejected.detail, DETAIL_CHARS)))
            continue
        frames.append(frame)
        verdicts.append(Verdict(source.url, rows=len(frame)))
    accepted = [verdict.url for verdict in verdicts if not verdict.rejected]
    rows = pd.concat(frames, ignore_index=True) if frames else empty_rows()
    rows["source_file"] = pd.Categorical.from_codes(
        np.repeat(np.arange(len(frames)), [len(frame) for frame in frames]), categories=pd.Index(accepted, dtype="str")
    )
    rows.attrs[VERDICTS] = [asdict(verdict) for verdict in verdicts]
    return rows


def empty_rows() -> pd.DataFrame:
    """No raw rows, in the raw rows' columns and types."""
    frame = pd.DataFrame({column: pd.Series(dtype="str") for column in RAW_COLUMNS})
    frame["source_line"] = frame["source_line"].astype("int64")
    return frame


def split_verdicts(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[Verdict]]:
    """A batch frame's rows without ``attrs`` (pandas copies them on every operation), and its verdicts.

    `frame` itself is left as it is: Prefect may write a task's result only when the task around
    it commits, so changing it would change what is cached."""
    stored: list[dict[str, Any]] = frame.attrs[VERDICTS]
    rows = frame.copy(deep=False)
    rows.attrs = {}
    return rows, [Verdict(**verdict) for verdict in stored]
