"""The day's manifest: what came in, what was published, what was quarantined and why.

The manifest is the record of a published day that analysts and other tools read
next to the Parquet (its JSON schema is published as docs/manifest.schema.json).
A manifest whose rows do not add up cannot be built.

>>> m = Manifest(run_id="r1", sale_date="2024-01-15", rows_in=3, rows_published=2, rows_quarantined=1,
...              quarantine_reasons={"bad_price": 1}, regions={"north": RegionFigures(rows=2, revenue=10.0)},
...              files_accepted=[AcceptedFile(file="s1.csv", rows=3)], revenue=10.0, retail_etl_version="0")
>>> m.rows_published, m.regions["north"].rows
(2, 2)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import RowAccountingError


class AcceptedFile(BaseModel):
    """A landing file that was read; its rows are published or quarantined."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(description="URL of the landing file.")
    rows: int = Field(ge=0, description="Rows read from it.")


class RejectedFileRecord(BaseModel):
    """A landing file that could not be read, kept byte for byte in quarantine/files."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(description="URL of the landing file.")
    reason: str = Field(description="One of the file rejection reasons.")
    detail: str = Field(description="What was wrong, in one line.")
    quarantined_to: str = Field(description="Where the file's bytes are published.")


#: Why an entry of a day's landing folder is not a landing file.
SkipReason = Literal["directory", "hidden", "marker", "not_a_file"]


class SkippedEntry(BaseModel):
    """An entry of the day's landing folder that is not a landing file: nothing of it was read."""

    model_config = ConfigDict(frozen=True)

    file: str = Field(description="URL of the entry.")
    why: SkipReason = Field(
        description="`directory` (a folder, whatever its name), `hidden` (the name starts with `.`), "
        "`marker` (the name starts with `_`, such as `_SUCCESS`) or `not_a_file` (a device, socket or pipe)."
    )


class RegionFigures(BaseModel):
    """Rows and revenue published for one region."""

    model_config = ConfigDict(frozen=True)

    rows: int = Field(ge=0)
    revenue: float


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Manifest(BaseModel):
    """One published day (`manifests/sale_date=D.json`)."""

    model_config = ConfigDict(frozen=True)

    run_id: str = Field(description="The Prefect flow run that published the day.")
    sale_date: str = Field(description="The day, YYYY-MM-DD.")
    landing: str | None = Field(None, description="The landing root the day was read from.")
    rows_in: int = Field(ge=0, description="Rows read from accepted files.")
    rows_published: int = Field(ge=0, description="Rows in curated/sales.")
    rows_quarantined: int = Field(ge=0, description="Rows in quarantine/sales.")
    quarantine_reasons: dict[str, int] = Field(default_factory=dict, description="Quarantined rows per reason.")
    files_accepted: list[AcceptedFile] = Field(default_factory=list)
    files_rejected: list[RejectedFileRecord] = Field(default_factory=list)
    files_skipped: list[SkippedEntry] = Field(
        default_factory=list,
        description="Entries of the landing folder that are not landing files (folders, hidden files, markers), "
        "so an upload that landed under the wrong name is visible.",
    )
    regions: dict[str, RegionFigures] = Field(default_factory=dict, description="Published figures per region.")
    revenue: float = Field(description="Total revenue published, rounded to cents.")
    created_at: str = Field(default_factory=_now, description="When the manifest was built (UTC, ISO 8601).")
    retail_etl_version: str = Field(description="Version of the code that published the day.")
    build: str = Field(
        "unknown",
        description="The build that published the day: the image's build id (git SHA, `RETAIL_ETL_BUILD`), "
        "or `<version>+local` outside an image; `unknown` in manifests written before it was recorded.",
    )
    environment: str = Field(
        "unknown",
        description="The environment whose run published the day (dev, staging, prod, or `local`); "
        "`unknown` in manifests written before it was recorded.",
    )
    tables: dict[str, int] = Field(
        default_factory=dict,
        description="The Delta table version that published the day, per table (curated, quarantine, marts).",
    )
    manifest_url: str | None = Field(
        None, exclude=True, description="Where the manifest was written (set after publication, not stored)."
    )

    @model_validator(mode="after")
    def _rows_add_up(self) -> Manifest:
        if self.rows_in != self.rows_published + self.rows_quarantined:
            raise RowAccountingError(
                f"{self.sale_date}: rows_in={self.rows_in} but published={self.rows_published}"
                f" + quarantined={self.rows_quarantined}"
            )
        if sum(self.quarantine_reasons.values()) != self.rows_quarantined:
            raise RowAccountingError(f"{self.sale_date}: quarantine reasons do not add up to rows_quarantined")
        if sum(region.rows for region in self.regions.values()) != self.rows_published:
            raise RowAccountingError(f"{self.sale_date}: region rows do not add up to rows_published")
        return self

    def to_json_bytes(self) -> bytes:
        """The stored form: sorted keys, two-space indent."""
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True).encode()


def manifest_json_schema() -> dict[str, Any]:
    """The JSON schema of a stored manifest (docs/manifest.schema.json is this, checked by a test)."""
    return Manifest.model_json_schema(mode="serialization")


if __name__ == "__main__":  # python -m retail_etl.contract.manifest > docs/manifest.schema.json
    print(json.dumps(manifest_json_schema(), indent=2, sort_keys=True))
