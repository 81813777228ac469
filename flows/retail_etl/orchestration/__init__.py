"""Prefect glue: tasks (retries with backoff, caching, result storage), the daily and backfill
flows, and the local platform (a temporary API and a LocalCluster when none is configured).

May import `io`, `core`, `contract`, `config` and `errors`; never `synth`, `bench`, `deploy` or
`cli`. Settings are read once, when a flow starts, and passed down as values.
"""
