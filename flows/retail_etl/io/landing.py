"""The landing side: which files a day has, and what identifies each one's content.

>>> import pathlib, tempfile
>>> root = pathlib.Path(tempfile.mkdtemp())
>>> day = root / "sales" / "sale_date=2024-01-15"
>>> day.mkdir(parents=True)
>>> for name in ("S002.csv", "S001.csv", "_SUCCESS", ".hidden"):
...     _ = (day / name).write_text("x")
>>> [source.name for source in list_day(str(root), "2024-01-15")]
['S001.csv', 'S002.csv']
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ..contract.layout import day_partition
from .storage import file_identity, list_folder, location


class LandingFile(BaseModel):
    """A landing file and what identifies its content (the extraction cache key)."""

    url: str
    name: str
    identity: dict[str, Any]


def list_day(landing: str, sale_date: str, options: Mapping[str, Any] | None = None) -> list[LandingFile]:
    """Every file of the day's landing partition, sorted by name (the duplicate tie-break).

    Hidden files and markers such as ``_SUCCESS`` are not landing files.
    """
    root = location(landing, options)
    folder = root.join("sales", day_partition(sale_date))
    files = []
    for path in list_folder(root.fs, folder):
        name = posixpath.basename(path)
        if name.startswith((".", "_")) or root.fs.isdir(path):
            continue
        files.append(LandingFile(url=root.url_of(path), name=name, identity=file_identity(root.fs, path)))
    return files


def read_landing(source: LandingFile, options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of one landing file."""
    loc = location(source.url, options)
    data: bytes = loc.fs.cat_file(loc.root)
    return data
