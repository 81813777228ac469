"""One way to reach local folders and S3 alike, through fsspec.

Every path the pipeline handles is a URL string (a local absolute path or
``s3://bucket/prefix``); `location` turns it into a filesystem plus a path.
Wherever the pipeline touches storage, `storage_access` turns a refusal (wrong or missing
credentials, a bucket policy, a folder's permissions) into `StorageAccessError`, which names
the operation and the URL and is never retried.

>>> loc = location("/tmp/wh")
>>> loc.join("curated", "sales")
'/tmp/wh/curated/sales'
"""

from __future__ import annotations

import errno
import io
import json
import os
import posixpath
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import fsspec
import pandas as pd
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from deltalake.exceptions import DeltaError
from fsspec.implementations.local import LocalFileSystem

from ..errors import StorageAccessError


def is_remote(url: str | os.PathLike) -> bool:
    url = os.fspath(url)
    return "://" in url and not url.startswith("file://")


def normalize(url: str | os.PathLike) -> str:
    """Absolute local paths (so Dask workers agree on them), URLs unchanged."""
    url = os.fspath(url)
    if is_remote(url):
        return url.rstrip("/")
    if url.startswith("file://"):
        url = url[len("file://") :]
    return os.path.abspath(os.path.expanduser(url))


#: S3 error codes that refuse the request for who sent it (s3fs raises PermissionError for them).
REFUSAL_CODES = frozenset(
    {
        "AccessDenied",
        "AccountProblem",
        "AllAccessDisabled",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidSecurity",
        "InvalidToken",
        "NotSignedUp",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
    }
)
#: botocore's "no usable credentials" errors, by name (botocore is s3fs's, not a dependency of ours).
CREDENTIAL_ERRORS = frozenset(
    {"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError", "ProfileNotFound"}
)
#: How delta-rs (object_store) words a refusal when no S3 error code comes with it.
_REFUSAL_WORDS = {
    "403 Forbidden": "403 Forbidden",
    "lacked the necessary privileges": "403 Forbidden",
    "401 Unauthorized": "401 Unauthorized",
    "lacked valid authentication": "401 Unauthorized",
}
S3_HINT = (
    "check the S3 credentials (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or the pod's role) "
    "and the bucket policy"
)
LOCAL_HINT = "check that the user running retail-etl may read and write that folder"


def refusal(error: BaseException) -> str | None:
    """Why the storage refused access, if `error` is such a refusal (None for any other failure,
    which may be transient). Only an error code goes into the reason: never a message, which
    could quote a key.

    >>> refusal(PermissionError(errno.EACCES, "Permission denied"))
    'permission denied'
    >>> refusal(OSError("Generic S3 error ... 403 Forbidden <Error><Code>InvalidAccessKeyId</Code>"))
    'access denied (InvalidAccessKeyId)'
    >>> refusal(OSError("Generic S3 error ... 503 Service Unavailable")) is None
    True
    """
    if type(error).__name__ in CREDENTIAL_ERRORS:
        return f"no usable credentials ({type(error).__name__})"
    if isinstance(error, PermissionError):
        code = _client_error_code(error.__cause__)
        if code:
            return f"access denied ({code})"
        return "permission denied" if error.errno in (errno.EACCES, errno.EPERM) else "access denied"
    if isinstance(error, OSError) and error.errno == errno.EROFS:
        return "read-only file system"
    if isinstance(error, OSError | DeltaError):
        status = _object_store_refusal(str(error))
        return f"access denied ({status})" if status else None
    return None


def _client_error_code(cause: BaseException | None) -> str | None:
    """The S3 error code of the botocore ClientError s3fs translated (a HEAD request has none but 403)."""
    code = str((getattr(cause, "response", None) or {}).get("Error", {}).get("Code") or "")
    return "403 Forbidden" if code == "403" else code or None


def _object_store_refusal(text: str) -> str | None:
    """The S3 code or HTTP status of a refusal in a delta-rs (object_store) message."""
    codes = [code for code in re.findall(r"<Code>(\w+)</Code>", text) if code in REFUSAL_CODES]
    statuses = [status for words, status in _REFUSAL_WORDS.items() if words in text]
    return (codes + statuses or [None])[0]


@contextmanager
def storage_access(operation: str, url: str) -> Iterator[None]:
    """Turn a refusal of access into one StorageAccessError naming the operation and the URL:
    a bare "Forbidden" names neither, and no retry fixes credentials or a policy.

    >>> try:
    ...     with storage_access("write", "/srv/warehouse/manifests"):
    ...         raise PermissionError(errno.EACCES, "Permission denied")
    ... except StorageAccessError as error:
    ...     print(str(error)[:60])
    cannot write /srv/warehouse/manifests: permission denied; ch
    """
    try:
        yield
    except Exception as error:
        reason = refusal(error)
        if reason is None:
            raise
        hint = S3_HINT if is_remote(url) else LOCAL_HINT
        raise StorageAccessError(f"cannot {operation} {_shorten(url)}: {reason}; {hint}") from error


def _shorten(url: str, limit: int = 300) -> str:
    return url if len(url) <= limit else url[: limit - 3] + "..."


def protocol_of(fs: Any) -> str:
    """The filesystem's main protocol (fsspec gives a name or a tuple of them)."""
    return str(fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0])


def is_s3(fs: Any) -> bool:
    return protocol_of(fs) in ("s3", "s3a")


def url_of(fs: Any, path: str) -> str:
    """The URL of a filesystem path, for messages (``s3://bucket/key``, or the local path)."""
    return path if protocol_of(fs) in ("file", "local") else str(fs.unstrip_protocol(path))


@dataclass(frozen=True)
class Location:
    """A root URL with the filesystem that serves it."""

    url: str
    fs: Any

    @property
    def root(self) -> str:
        return self.fs._strip_protocol(self.url) if is_remote(self.url) else self.url

    def join(self, *parts: str) -> str:
        return posixpath.join(self.root, *parts)

    def url_of(self, path: str) -> str:
        """The full URL of a path on this filesystem (for task arguments)."""
        return self.fs.unstrip_protocol(path) if is_remote(self.url) else path


def location(url: str | os.PathLike, options: Mapping[str, Any] | None = None) -> Location:
    """The filesystem serving `url`; `options` are fsspec's S3 options (endpoint, region)."""
    url = normalize(url)
    if is_remote(url):
        fs, _ = fsspec.core.url_to_fs(url, **dict(options or {}))
    else:
        fs = fsspec.filesystem("file")
    return Location(url=url, fs=fs)


def make_bucket(bucket: str, options: Mapping[str, Any] | None = None) -> bool:
    """Create an S3 bucket unless it exists; True if created. (us-east-1 takes no location constraint.)"""
    fs = location(f"s3://{bucket}", options).fs
    with storage_access("create the bucket", f"s3://{bucket}"):
        if fs.exists(bucket):
            return False
        params: dict[str, Any] = {"Bucket": bucket}
        region = (dict(options or {}).get("client_kwargs") or {}).get("region_name")
        if region and region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": region}
        fs.call_s3("create_bucket", **params)
    fs.invalidate_cache()
    return True


def list_entries(fs: Any, path: str) -> list[dict[str, Any]]:
    """What is directly under `path` with its details, from one listing (no request per entry),
    sorted by name; empty if `path` does not exist. Local entries carry ``mtime_ns``,
    ``ctime_ns`` and ``ino`` from the stat of the listing itself."""
    fs.invalidate_cache(path)
    with storage_access("list", url_of(fs, path)):
        try:  # listing straight away (no HEAD first) keeps S3's error code in a refusal
            entries = _local_entries(path) if isinstance(fs, LocalFileSystem) else fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
    return sorted(entries, key=lambda entry: str(entry["name"]))


def _local_entries(path: str) -> list[dict[str, Any]]:
    """A local folder's entries with what identifies their content (fsspec's local listing rounds times
    to floats, and its ``created`` is the birth time where the platform has one, not the change time)."""
    entries = []
    with os.scandir(path) as found:
        for entry in found:
            stat = entry.stat()  # follows symbolic links, as reading the file does
            kind = "directory" if entry.is_dir() else "file" if entry.is_file() else "other"
            entries.append(
                {
                    "name": posixpath.join(path, entry.name),
                    "type": kind,
                    "size": stat.st_size,
                    "mtime_ns": stat.st_mtime_ns,
                    "ctime_ns": stat.st_ctime_ns,
                    "ino": stat.st_ino,
                }
            )
    return entries


#: Listing details that change when an object's content can have changed: S3's ETag, VersionId
#: (versioned buckets) and LastModified; on local disk modification time, change time and inode.
IDENTITY_KEYS = ("ETag", "etag", "VersionId", "LastModified", "mtime_ns", "ctime_ns", "ino")


def file_identity(entry: Mapping[str, Any]) -> dict[str, Any]:
    """What identifies a listed file's content: its size plus every identity detail the listing has.

    Local disk: a same-size rewrite whose modification time is set back (``os.utime``) still moves
    the change time, which only the kernel sets. What it cannot see is a rewrite of identical size
    within the file system's timestamp resolution that also keeps the inode: a store needs content
    hashes (ETags) for that.

    >>> file_identity({"size": 3, "ETag": '"abc"', "LastModified": "2024-01-15 06:00:00+00:00"})
    {'size': 3, 'etag': 'abc', 'LastModified': '2024-01-15 06:00:00+00:00'}
    """
    identity: dict[str, Any] = {"size": int(entry.get("size") or 0)}
    for key in IDENTITY_KEYS:
        value = entry.get(key)
        if value is None or value == "":
            continue
        if key in ("ETag", "etag"):
            identity["etag"] = str(value).strip('"')
        else:
            identity[key] = value if isinstance(value, int) else str(value)
    if len(identity) == 1 and entry.get("mtime") is not None:  # another fsspec backend
        identity["mtime"] = str(entry["mtime"])
    return identity


def write_bytes(fs: Any, path: str, data: bytes) -> None:
    with storage_access("write", url_of(fs, path)):
        fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with fs.open(path, "wb") as handle:
            handle.write(data)


def read_bytes(fs: Any, path: str) -> bytes:
    """One whole object (pyarrow over an fsspec handle would make many small Python-level reads)."""
    with storage_access("read", url_of(fs, path)):
        data: bytes = fs.cat_file(path)
    return data


def read_json(fs: Any, path: str) -> Any:
    return json.loads(read_bytes(fs, path))


#: Columns with unique values (dictionary-encoding them is wasted work, measured ~25% of a write).
UNIQUE_COLUMNS = frozenset({"transaction_id", "raw_line", "source_line", "total"})


def parquet_bytes(frame: pd.DataFrame | pa.Table, compression: str = "zstd") -> bytes:
    """Parquet of a frame; zstd for published data, none for scratch files read back at once."""
    table = frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    sink = io.BytesIO()
    dictionary = [name for name in table.column_names if name not in UNIQUE_COLUMNS]
    pq.write_table(table, sink, compression=compression, use_dictionary=dictionary)
    return sink.getvalue()


def write_arrow(fs: Any, path: str, table: pa.Table) -> None:
    """Scratch rows read back once by another task: Arrow IPC with lz4 (no encoding to undo, about
    half the cost of an uncompressed Parquet write and a fraction of its read)."""
    sink = io.BytesIO()
    with ipc.new_file(sink, table.schema, options=ipc.IpcWriteOptions(compression="lz4")) as writer:
        writer.write_table(table)
    write_bytes(fs, path, sink.getvalue())


def read_arrow_dir(fs: Any, path: str) -> pa.Table | None:
    """All Arrow IPC files directly under `path` (in name order) as one table; None if there are none."""
    fs.invalidate_cache(path)
    with storage_access("list", url_of(fs, path)):
        files = sorted(p for p in fs.ls(path, detail=False) if p.endswith(".arrow"))
    tables = [ipc.open_file(pa.BufferReader(read_bytes(fs, p))).read_all() for p in files]
    return pa.concat_tables(tables) if tables else None


def exists(fs: Any, path: str) -> bool:
    """Whether `path` exists; a refusal is an error, not a "no"."""
    with storage_access("look for", url_of(fs, path)):
        found: bool = fs.exists(path)
    return found


def list_folder(fs: Any, path: str) -> list[str]:
    """What is directly under `path`, listed fresh from the store (no stale listing cache),
    sorted; empty if `path` does not exist."""
    fs.invalidate_cache(path)
    with storage_access("list", url_of(fs, path)):
        try:  # listing straight away (no HEAD first) keeps S3's error code in a refusal
            return sorted(fs.ls(path, detail=False))
        except FileNotFoundError:
            return []


def remove_tree(fs: Any, path: str) -> None:
    with storage_access("delete", url_of(fs, path)):
        if fs.exists(path):
            fs.rm(path, recursive=True)


def create_exclusive(fs: Any, path: str, data: bytes) -> bool:
    """Create `path` only if it does not exist (a conditional put on S3 and MinIO, ``O_EXCL`` on a
    local disk); False if it exists. What makes leases and append-only records safe without locks."""
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    try:
        if is_s3(fs):
            fs.pipe_file(path, data, mode="create")
        else:
            with fs.open(path, "xb") as handle:
                handle.write(data)
    except FileExistsError:
        return False
    except OSError as error:  # s3fs: 412 Precondition Failed when the key exists
        if precondition_failed(error):
            return False
        raise
    return True


def precondition_failed(error: OSError) -> bool:
    """Whether s3fs's error is S3's 412 (a conditional write refused). s3fs keeps the code in some
    errors and only AWS's message in others (MinIO's refusal arrives as EINVAL with the message).

    >>> precondition_failed(OSError(22, "At least one of the pre-conditions you specified did not hold"))
    True
    >>> precondition_failed(OSError(22, "The specified bucket is not valid."))
    False
    """
    text = f"{error!r} {error}".lower()
    return "preconditionfailed" in text or "412" in text or "pre-conditions you specified did not hold" in text
