"""The landing side: which files a day has, and what identifies each one's content.

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> day = root / "sales" / "sale_date=2024-01-15"
>>> day.mkdir(parents=True)
>>> for name in ("S002.csv", "S001.csv", "_SUCCESS", ".hidden"):
...     _ = (day / name).write_text("x")
>>> (day / "old.csv").mkdir()
>>> listing = list_day(str(root), "2024-01-15")
>>> [source.name for source in listing.files]
['S001.csv', 'S002.csv']
>>> [(entry.file.rsplit("/", 1)[-1], entry.why) for entry in listing.skipped]
[('.hidden', 'hidden'), ('_SUCCESS', 'marker'), ('old.csv', 'directory')]
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel

from ..contract.layout import day_partition
from ..contract.manifest import SkippedEntry, SkipReason
from .storage import file_identity, list_entries, location, read_bytes, storage_access


class LandingFile(BaseModel):
    """A landing file and what identifies its content (the extraction cache key)."""

    url: str
    name: str
    identity: dict[str, Any]


class DayListing(BaseModel):
    """A day's landing folder: its landing files (sorted by name) and the entries skipped."""

    files: list[LandingFile]
    skipped: list[SkippedEntry] = []


def skip_reason(name: str, kind: str) -> SkipReason | None:
    """Why a folder entry is not a landing file, or None if it is one.

    >>> skip_reason("_SUCCESS", "file"), skip_reason("x.csv", "directory"), skip_reason("S1.csv", "file")
    ('marker', 'directory', None)
    """
    if name.startswith("."):
        return "hidden"
    if name.startswith("_"):
        return "marker"
    if kind == "directory":
        return "directory"
    if kind != "file":
        return "not_a_file"
    return None


def list_day(landing: str, sale_date: str, options: Mapping[str, Any] | None = None) -> DayListing:
    """Every file of the day's landing partition, sorted by name (the duplicate tie-break), from one
    listing: each file's identity comes from the listing's details, not from a request per file.

    Hidden files, markers such as ``_SUCCESS`` and folders are not landing files; they are listed
    as skipped.
    """
    root = location(landing, options)
    files, skipped = [], []
    for entry in list_entries(root.fs, root.join("sales", day_partition(sale_date))):
        path = str(entry["name"]).rstrip("/")
        url, name = root.url_of(path), posixpath.basename(path)
        why = skip_reason(name, str(entry.get("type")))
        if why:
            skipped.append(SkippedEntry(file=url, why=why))
        else:
            files.append(LandingFile(url=url, name=name, identity=file_identity(entry)))
    return DayListing(files=files, skipped=skipped)


def read_landing_files(sources: Sequence[LandingFile], options: Mapping[str, Any] | None = None) -> list[bytes]:
    """The bytes of several landing files (of one store), in order, in one call: concurrent requests on
    S3. ``cat_ranges`` rather than ``cat``: it takes the paths literally (``cat`` expands a name holding
    ``*``, ``?`` or ``[`` as a glob). Any I/O error raises."""
    if not sources:
        return []
    fs = location(sources[0].url, options).fs
    paths = [location(source.url, options).root for source in sources]
    with storage_access("read", posixpath.dirname(sources[0].url)):
        return list(fs.cat_ranges(paths, None, None, on_error="raise"))


def read_landing(source: LandingFile, options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of one landing file."""
    loc = location(source.url, options)
    return read_bytes(loc.fs, loc.root)
