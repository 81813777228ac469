"""retail-etl: the nightly retail-sales pipeline (Prefect 3, Dask, Parquet on disk or S3).

The package is layered; each layer imports only those below it (enforced by import-linter):

- `core`, `contract`: the business rules and the data contract (pure; no I/O, no Prefect);
- `io`: storage and publication;
- `orchestration`: Prefect tasks and flows, the local platform; `config` is read there;
- `deploy`, `cli`, `synth`, `bench`: on top.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("retail-etl")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
