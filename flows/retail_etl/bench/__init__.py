"""`retail-etl bench`: the pipeline timed against hand-written pandas and DuckDB baselines on the
same generated day, with memory sampling and a check that every contender published the same.

Needs the `bench` extra (duckdb, pyinstrument, psutil). Sits on top: may import everything
below it; the pipeline never imports it.
"""
