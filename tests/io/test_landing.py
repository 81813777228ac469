"""The landing listing: one listing per day, identities that follow content, skipped entries named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from retail_etl.io.landing import list_day, read_landing_files

DAY = "2024-01-15"


def day_folder(root: Path) -> Path:
    folder = root / "sales" / f"sale_date={DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_same_size_rewrite_with_its_modification_time_set_back_changes_the_identity(tmp_path):
    target = day_folder(tmp_path) / "S001.csv"
    target.write_text("quantity\n2\n")
    before = os.stat(target)
    (identity,) = [f.identity for f in list_day(str(tmp_path), DAY).files]

    target.write_text("quantity\n3\n")
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    (after,) = [f.identity for f in list_day(str(tmp_path), DAY).files]
    assert after["size"] == identity["size"] and after["mtime_ns"] == identity["mtime_ns"]
    assert after != identity  # the change time moved: only the kernel sets it


def test_folders_hidden_files_and_markers_are_skipped_and_named(tmp_path):
    folder = day_folder(tmp_path)
    for name in ("S001.csv", "notes.txt", ".S002.csv.swp", "_SUCCESS", "_tmp.csv"):
        (folder / name).write_text("x")
    (folder / "S003.csv").mkdir()
    listing = list_day(str(tmp_path), DAY)
    assert [f.name for f in listing.files] == ["S001.csv", "notes.txt"]  # a wrong type is rejected later, not skipped
    assert {Path(e.file).name: e.why for e in listing.skipped} == {
        ".S002.csv.swp": "hidden",
        "_SUCCESS": "marker",
        "_tmp.csv": "marker",
        "S003.csv": "directory",
    }
    assert all(e.file.startswith(str(folder)) for e in listing.skipped)


def test_a_batch_is_read_in_order_and_an_io_error_raises(tmp_path):
    folder = day_folder(tmp_path)
    for name, text in (("S[1].csv", "one"), ("S*.csv", "star"), ("S2.csv", "two")):
        (folder / name).write_text(text)
    files = list_day(str(tmp_path), DAY).files
    assert [f.name for f in files] == ["S*.csv", "S2.csv", "S[1].csv"]
    assert read_landing_files(files) == [b"star", b"two", b"one"]  # names are paths, never globs
    (folder / "S2.csv").unlink()
    with pytest.raises(FileNotFoundError):
        read_landing_files(files)


def test_a_missing_day_lists_nothing(tmp_path):
    listing = list_day(str(tmp_path), DAY)
    assert listing.files == [] and listing.skipped == []


@pytest.mark.s3
def test_s3_identities_come_from_the_listing(s3_bucket, s3_endpoint):
    import s3fs

    fs = s3fs.S3FileSystem(endpoint_url=s3_endpoint, skip_instance_cache=True)
    prefix = f"{s3_bucket.removeprefix('s3://')}/landing/sales/sale_date={DAY}"
    fs.pipe({f"{prefix}/S001.csv": b"a,b\n1,2\n", f"{prefix}/S002.csv": b"a,b\n1,3\n", f"{prefix}/_SUCCESS": b""})
    fs.pipe(f"{prefix}/old.csv/part-0.csv", b"a\n")
    listing = list_day(f"{s3_bucket}/landing", DAY, {"endpoint_url": s3_endpoint})
    assert [f.url for f in listing.files] == [f"s3://{prefix}/S001.csv", f"s3://{prefix}/S002.csv"]
    first, second = (f.identity for f in listing.files)
    assert first["size"] == second["size"] == 8 and first["etag"] != second["etag"]
    assert "LastModified" in first
    assert sorted((Path(e.file).name, e.why) for e in listing.skipped) == [
        ("_SUCCESS", "marker"),
        ("old.csv", "directory"),
    ]
