"""retail-etl: the nightly retail-sales pipeline (Prefect 3, Dask, Parquet on disk or S3).

The pure data steps (`extract`, `validation`, `transform`, `aggregate`) need no
Prefect API; `flows` wires them into Prefect tasks and flows.
"""

__version__ = "0.1.0"
