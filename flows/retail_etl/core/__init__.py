"""The business rules as pure steps: parsing landing bytes, field checks, the duplicate check,
enrichment, aggregation, row accounting, run dates and the split of a day into Dask work.

No I/O, no Prefect, no environment: every function takes values and returns values, so the
rules can be read and tested on their own. May import `contract` and `errors` only.
"""
