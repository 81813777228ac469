"""Compare-and-swap of one small object: read it with a tag, replace it only if the tag still holds.

What makes a lease safe without a lock server: renewing, taking over and releasing are writes
conditional on the version the writer last saw, so of two runs racing for a day exactly one
write lands. On S3 and MinIO the tag is the object's ETag and the write a `PutObject` with
`If-Match`; on a local disk the tag is a digest of the content, checked and replaced under an
exclusive `flock` of a sidecar file (writers on one machine).

>>> import tempfile, fsspec
>>> fs, path = fsspec.filesystem("file"), tempfile.mkdtemp() + "/lease.json"
>>> tag = create_tagged(fs, path, b"a")
>>> replace_if(fs, path, b"b", "stale") is None, replace_if(fs, path, b"b", tag) is not None
(True, True)
>>> read_tagged(fs, path)[0]
b'b'
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
from typing import Any

from .storage import create_exclusive, is_s3, precondition_failed, storage_access, url_of


def _digest(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _etag(fs: Any, path: str) -> str:
    fs.invalidate_cache(path)
    return str(fs.info(path)["ETag"])


def read_tagged(fs: Any, path: str) -> tuple[bytes, str] | None:
    """The object's content and tag, or None if there is none."""
    with storage_access("read", url_of(fs, path)):
        try:
            if not is_s3(fs):
                data: bytes = fs.cat_file(path)
                return data, _digest(data)
            while True:  # the content read between two equal ETags is that version's
                before = _etag(fs, path)
                data = fs.cat_file(path)
                if _etag(fs, path) == before:
                    return data, before
        except FileNotFoundError:
            return None


def create_tagged(fs: Any, path: str, data: bytes) -> str | None:
    """Create the object only if it does not exist; its tag, or None if it exists."""
    if not create_exclusive(fs, path, data):
        return None
    if not is_s3(fs):
        return _digest(data)
    with storage_access("read", url_of(fs, path)):
        return _etag(fs, path)


def replace_if(fs: Any, path: str, data: bytes, tag: str) -> str | None:
    """Replace the object with `data` if its tag is still `tag`; the new tag, or None if not."""
    with storage_access("write", url_of(fs, path)):
        if is_s3(fs):
            bucket, key, _ = fs.split_path(path)
            try:
                response = fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, IfMatch=tag)
            except FileNotFoundError:
                return None
            except OSError as error:  # 412 Precondition Failed: another writer came first
                if precondition_failed(error):
                    return None
                raise
            fs.invalidate_cache(path)
            return str(response["ETag"])
        return _replace_local(path, data, tag)


def _replace_local(path: str, data: bytes, tag: str) -> str | None:
    with open(f"{path}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            with open(path, "rb") as current:
                if _digest(current.read()) != tag:
                    return None
        except FileNotFoundError:
            return None
        temporary = posixpath.join(posixpath.dirname(path), f".{posixpath.basename(path)}.{os.getpid()}.tmp")
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
        return _digest(data)
