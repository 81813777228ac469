"""A Prefect result serializer that stores DataFrames as real Parquet files.

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

import io
from typing import Any, Literal

import cloudpickle
import pandas as pd
import pyarrow.parquet as pq
from prefect.serializers import Serializer

from .storage import parquet_bytes

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
