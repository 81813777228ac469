"""The generator is deterministic and says exactly what it spoiled."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from retail_etl.contract.columns import ROW_REASONS
from retail_etl.core.checks import Rules, split_rows
from retail_etl.core.parse import read_landing_bytes
from retail_etl.errors import RejectedFile
from retail_etl.synth.generate import REGIONS, generate_day


def read_day(files: list[str]) -> pd.DataFrame:
    frames = []
    for path in files:
        frame = read_landing_bytes(Path(path).read_bytes(), path)
        frame["source_file"] = path
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def test_same_seed_same_bytes(tmp_path):
    first = generate_day(tmp_path / "a", "2024-01-15", rows=500, stores=3, bad_fraction=0.05, seed=11)
    second = generate_day(tmp_path / "b", "2024-01-15", rows=500, stores=3, bad_fraction=0.05, seed=11)
    assert [Path(p).read_bytes() for p in first.files] == [Path(p).read_bytes() for p in second.files]
    assert Path(first.files[0]).parent.name == "sale_date=2024-01-15"


def test_injected_defects_are_exactly_what_validation_finds(tmp_path):
    day = generate_day(tmp_path, "2024-01-15", rows=20_000, stores=7, bad_fraction=0.03, seed=5, bad_files=3)
    assert set(day.injected) == set(ROW_REASONS)
    raw = read_day(day.files)
    clean, quarantine = split_rows(raw, Rules(run_date=date(2024, 1, 15), regions=frozenset(REGIONS)))
    assert len(raw) == day.rows == 20_000
    assert len(clean) + len(quarantine) == len(raw)
    assert quarantine["reason"].value_counts().to_dict() == dict(day.injected)
    for path in day.bad_files:
        try:
            read_landing_bytes(Path(path).read_bytes(), path)
        except RejectedFile:
            continue
        raise AssertionError(f"{path} should have been rejected")


def test_parquet_landing_format(tmp_path):
    day = generate_day(tmp_path, "2024-01-15", rows=300, stores=2, bad_fraction=0.1, seed=2, file_format="parquet")
    assert all(path.endswith(".parquet") for path in day.files)
    raw = read_day(day.files)
    _, quarantine = split_rows(raw, Rules(run_date=date(2024, 1, 15), regions=frozenset(REGIONS)))
    assert "malformed_row" not in day.injected
    assert quarantine["reason"].value_counts().to_dict() == dict(day.injected)
