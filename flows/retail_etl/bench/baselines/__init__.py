"""Hand-written baselines the pipeline is benchmarked against (`retail-etl bench`).

Each baseline does the pipeline's work for one landing day (the same row checks with the
same reason priority, the same enrichment, the same Parquet outputs and per-region mart)
the way a user would script it by hand: `pandas_baseline` with plain vectorised pandas,
`duckdb_baseline` as SQL in DuckDB. Neither has retries, caching, staging or an
orchestrator; both write straight into the warehouse.
"""
