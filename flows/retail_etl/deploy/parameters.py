"""The parameter schema a deployment is registered with: Prefect's schema of the flow, closed.

Deployments are created with `enforce_parameter_schema`, so the API checks a run's parameters
against this schema when the run is created. Prefect's schema of a flow allows any extra key and
marks dates only with `format: date`, which the API's validator does not check: a run with a typo
in a key or a run date like "yesterday" would be created, crash in the worker and show the reason
only in the worker's log. Here the schema is closed (`additionalProperties: false`) and every date
also carries a YYYY-MM-DD `pattern`, which the API does check, so such a run is refused at once,
in the caller's terminal or the UI. (A well-formed impossible day such as 2024-02-30 still reaches
the flow, whose own validation fails it.) Registration and promotion both take the schema from here.

>>> from retail_etl.orchestration.flows import daily_sales_etl
>>> schema = deployment_parameter_schema(daily_sales_etl)
>>> schema["additionalProperties"], schema["properties"]["run_date"]["anyOf"][0]["pattern"] == DATE_PATTERN
(False, True)
"""

from __future__ import annotations

from typing import Any

from prefect.utilities.callables import parameter_schema

#: A YYYY-MM-DD date with a real month and a day from 01 to 31.
DATE_PATTERN = r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"


def deployment_parameter_schema(flow: Any) -> dict[str, Any]:
    """The OpenAPI parameter schema of `flow` for its deployments: unknown keys and malformed dates refused."""
    schema: dict[str, Any] = parameter_schema(flow).model_dump_for_openapi()
    schema["additionalProperties"] = False
    _pattern_dates(schema)
    return schema


def _pattern_dates(node: Any) -> None:
    """Give every `format: date` string (at any depth: anyOf, definitions) the date pattern."""
    if isinstance(node, dict):
        if node.get("type") == "string" and node.get("format") == "date":
            node.setdefault("pattern", DATE_PATTERN)
        for value in node.values():
            _pattern_dates(value)
    elif isinstance(node, list):
        for value in node:
            _pattern_dates(value)
