"""Where Prefect keeps task results and cache keys, and how DataFrames are stored there.

Results live under ``<warehouse>/_prefect/results`` (S3 when the warehouse is), so a
retried run on any Dask worker finds what finished. A result serializer stores
DataFrames as real Parquet files.

With metadata kept apart (`ExtractionCache`'s key storage), Prefect's result store
writes the serializer's bytes raw to result storage, so a cached extraction is a
plain Parquet object that pandas, DuckDB or Polars can open directly.
Anything else Prefect persists through it (the exception of a failed run, say)
falls back to cloudpickle, told apart by Parquet's ``PAR1`` magic bytes. A frame's
``attrs`` (a batch's verdicts) are kept as JSON in the Parquet schema metadata, so a
cache hit returns them too.

>>> import pandas as pd
>>> serializer = ParquetSerializer()
>>> frame = pd.DataFrame({"a": ["x", "y"]})
>>> frame.attrs["verdicts"] = [{"url": "s1.csv", "rows": 2}]
>>> blob = serializer.dumps(frame)
>>> back = serializer.loads(blob)
>>> blob[:4], back["a"].tolist(), back.attrs
(b'PAR1', ['x', 'y'], {'verdicts': [{'url': 's1.csv', 'rows': 2}]})
>>> serializer.loads(serializer.dumps({"rows": 3}))
{'rows': 3}
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import cloudpickle
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from prefect.filesystems import LocalFileSystem, RemoteFileSystem
from prefect.results import ResultStore
from prefect.serializers import Serializer

from ..contract.layout import PREFECT_CACHE_KEYS, PREFECT_RESULTS
from ..core.extraction import EXTRACTION_LAYOUT
from ..core.parse import EXTRACT_VERSION, ParseLimits
from ..io.landing import LandingFile
from ..io.storage import is_remote, parquet_bytes

PARQUET_MAGIC = b"PAR1"
#: Parquet schema metadata key of a frame's ``attrs`` (JSON).
ATTRS_KEY = b"retail_etl.attrs"


class ParquetSerializer(Serializer):
    """DataFrames as Parquet (zstd); other objects pickled."""

    type: Literal["retail-etl-parquet"] = "retail-etl-parquet"

    def dumps(self, obj: Any) -> bytes:
        if isinstance(obj, pd.DataFrame):
            return parquet_bytes(frame_table(obj))
        return cloudpickle.dumps(obj)

    def loads(self, blob: bytes) -> Any:
        if blob[:4] == PARQUET_MAGIC:
            table = pq.read_table(io.BytesIO(blob))
            frame = table.to_pandas()
            attrs = (table.schema.metadata or {}).get(ATTRS_KEY)
            frame.attrs = json.loads(attrs) if attrs else {}
            return frame
        return cloudpickle.loads(blob)


def frame_table(frame: pd.DataFrame) -> pa.Table:
    """The frame as an Arrow table, its ``attrs`` under our own metadata key (explicitly: whether
    pyarrow's pandas metadata keeps them depends on its version)."""
    bare = frame.copy(deep=False)
    bare.attrs = {}
    table = pa.Table.from_pandas(bare, preserve_index=False)
    if not frame.attrs:
        return table
    return table.replace_schema_metadata({**(table.schema.metadata or {}), ATTRS_KEY: json.dumps(frame.attrs)})


def batch_cache_key(batch: list[LandingFile], limits: ParseLimits) -> str:
    """The same extractor, parse limits and files (each one's URL and identity) mean the same extraction."""
    payload = json.dumps(
        [EXTRACT_VERSION, EXTRACTION_LAYOUT, asdict(limits), [[source.url, source.identity] for source in batch]],
        sort_keys=True,
        default=str,
    )
    return "extract-" + hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class ExtractionCache:
    """Extracted batches in Prefect's result store of the warehouse (values under
    `<warehouse>/_prefect/results`, metadata with the expiry under `<warehouse>/_prefect/cache-keys`),
    keyed by `batch_cache_key`.

    Used from inside the validate-files task rather than as a task of its own: a Prefect task run
    costs about 0.2 CPU s across worker, API and flow (measured), as much as parsing 100,000 rows.
    """

    warehouse: str
    options: dict[str, Any]
    expiration: timedelta

    def fetch(
        self, batch: list[LandingFile], limits: ParseLimits, extract: Callable[[], pd.DataFrame]
    ) -> tuple[pd.DataFrame, bool]:
        """The batch's extraction, and whether it came from the cache (else `extract` ran and was stored)."""
        store = ResultStore(
            result_storage=_filesystem(posixpath.join(self.warehouse, PREFECT_RESULTS), self.options),
            metadata_storage=_filesystem(posixpath.join(self.warehouse, PREFECT_CACHE_KEYS), self.options),
            serializer=ParquetSerializer(),
            cache_result_in_memory=False,
        )
        key = batch_cache_key(batch, limits)
        if store.exists(key):
            return store.read(key).result, True
        frame = extract()
        # Prefect types this as its DateTime alias (pendulum's below Python 3.13); it stores any aware datetime.
        store.write(frame, key=key, expiration=datetime.now(UTC) + self.expiration)  # type: ignore[arg-type]
        return frame, False


def _filesystem(url: str, options: Mapping[str, Any]) -> LocalFileSystem | RemoteFileSystem:
    return RemoteFileSystem(basepath=url, settings=dict(options)) if is_remote(url) else LocalFileSystem(basepath=url)


def result_storage(warehouse: str, options: Mapping[str, Any]) -> Path | RemoteFileSystem:
    """Prefect result storage under `<warehouse>/_prefect/results` (S3 when the warehouse is).

    Prefect needs remote result storage to be a saved block; it is saved with the
    endpoint and region only, and every process takes credentials from the AWS chain.
    """
    url = posixpath.join(warehouse, PREFECT_RESULTS)
    if not is_remote(url):
        return Path(url)
    block = RemoteFileSystem(basepath=url, settings=dict(options))
    digest = hashlib.sha256(f"{url} {options.get('endpoint_url')}".encode()).hexdigest()[:12]
    block.save(f"retail-etl-results-{digest}", overwrite=True)
    return block
