"""The manifest model: rows must add up, the stored form, and the published JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from retail_etl.contract.manifest import AcceptedFile, Manifest, RegionFigures, manifest_json_schema
from retail_etl.errors import RowAccountingError

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "manifest.schema.json"


def manifest(**changes) -> Manifest:
    fields = {
        "run_id": "r1",
        "sale_date": "2024-01-15",
        "landing": "/landing",
        "rows_in": 5,
        "rows_published": 3,
        "rows_quarantined": 2,
        "quarantine_reasons": {"bad_price": 1, "duplicate_transaction": 1},
        "files_accepted": [AcceptedFile(file="/landing/S001.csv", rows=5)],
        "regions": {"north": RegionFigures(rows=3, revenue=12.5)},
        "revenue": 12.5,
        "retail_etl_version": "1.0",
    }
    return Manifest(**(fields | changes))


@pytest.mark.parametrize(
    "changes",
    [
        {"rows_in": 6},
        {"quarantine_reasons": {"bad_price": 1}},
        {"regions": {"north": RegionFigures(rows=2, revenue=12.5)}},
    ],
)
def test_rows_that_do_not_add_up_refuse_the_manifest(changes):
    with pytest.raises(RowAccountingError):
        manifest(**changes)


def test_stored_form_round_trips_without_the_url():
    stored = json.loads(manifest(manifest_url="s3://w/manifests/x.json").to_json_bytes())
    assert "manifest_url" not in stored
    assert Manifest.model_validate(stored) == manifest()
    jsonschema.validate(stored, manifest_json_schema())


def test_published_json_schema_is_current():
    assert json.loads(SCHEMA_FILE.read_text()) == manifest_json_schema(), (
        "regenerate it: python -m retail_etl.contract.manifest > docs/manifest.schema.json"
    )


def test_manifest_records_build_and_environment_and_reads_earlier_manifests():
    """Lineage next to the Parquet: which build, in which environment, published the day. A manifest
    stored before these fields existed still reads (as `unknown`), and the version stays."""
    stored = json.loads(manifest(build="abc1234", environment="staging").to_json_bytes())
    assert (stored["build"], stored["environment"], stored["retail_etl_version"]) == ("abc1234", "staging", "1.0")
    jsonschema.validate(stored, manifest_json_schema())
    earlier = {key: value for key, value in stored.items() if key not in ("build", "environment")}
    jsonschema.validate(earlier, manifest_json_schema())
    read = Manifest.model_validate(earlier)
    assert (read.build, read.environment, read.retail_etl_version) == ("unknown", "unknown", "1.0")
    assert {"build", "environment", "retail_etl_version"} <= set(manifest_json_schema()["properties"])
