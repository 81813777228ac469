"""Where Prefect keeps task results and cache keys, and how DataFrames are stored there.

Results live under ``<warehouse>/_prefect/results`` (S3 when the warehouse is), so a
retried run on any Dask worker finds what finished. A result serializer stores
DataFrames as real Parquet files.

With the cache policy's own key storage, Prefect writes the serializer's bytes
raw to result storage (metadata goes to the key storage), so a cached extraction
is a plain Parquet object that pandas, DuckDB or Polars can open directly.
Anything else Prefect persists through it (the exception of a failed run, say)
falls back to cloudpickle, told apart by Parquet's ``PAR1`` magic bytes.

>>> import pandas as pd
>>> serializer = ParquetSerializer()
>>> blob = serializer.dumps(pd.DataFrame({"a": ["x", "y"]}))
>>> blob[:4], serializer.loads(blob)["a"].tolist()
(b'PAR1', ['x', 'y'])
>>> serializer.loads(serializer.dumps({"rows": 3}))
{'rows': 3}
"""

from __future__ import annotations

import hashlib
import io
import json
import posixpath
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import cloudpickle
import pandas as pd
import pyarrow.parquet as pq
from prefect.filesystems import RemoteFileSystem
from prefect.serializers import Serializer

from ..contract.layout import PREFECT_CACHE_KEYS, PREFECT_RESULTS
from ..core.parse import EXTRACT_VERSION
from ..io.landing import LandingFile
from ..io.storage import is_remote, parquet_bytes

PARQUET_MAGIC = b"PAR1"


class ParquetSerializer(Serializer):
    """DataFrames as Parquet (zstd); other objects pickled."""

    type: Literal["retail-etl-parquet"] = "retail-etl-parquet"

    def dumps(self, obj: Any) -> bytes:
        if isinstance(obj, pd.DataFrame):
            return parquet_bytes(obj)
        return cloudpickle.dumps(obj)

    def loads(self, blob: bytes) -> Any:
        if blob[:4] == PARQUET_MAGIC:
            return pq.read_table(io.BytesIO(blob)).to_pandas()
        return cloudpickle.loads(blob)


def landing_cache_key(context: Any, parameters: dict[str, Any]) -> str:
    """Same path, size and ETag/mtime (and extractor version) means the same extraction."""
    source: LandingFile = parameters["source"]
    payload = json.dumps([EXTRACT_VERSION, source.url, source.identity], sort_keys=True, default=str)
    return "extract-" + hashlib.sha256(payload.encode()).hexdigest()


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


def cache_key_storage(warehouse: str, options: Mapping[str, Any]) -> Path | RemoteFileSystem:
    """Where extraction cache keys (result metadata) live, apart from the raw Parquet values."""
    url = posixpath.join(warehouse, PREFECT_CACHE_KEYS)
    if not is_remote(url):
        return Path(url)
    return RemoteFileSystem(basepath=url, settings=dict(options))
