"""Storage and publication: fsspec locations (local folders and S3 alike), the staged
publication of a day, and reading published days back.

May import `core`, `contract` and `errors`; never the environment (options come in as values).
"""
