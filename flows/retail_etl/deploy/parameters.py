"""The parameter schema a deployment is registered with: Prefect's schema of the flow, closed.

Deployments are created with `enforce_parameter_schema`, so the API checks a run's parameters
against this schema when the run is created. Prefect's schema already types dates
(`format: date`, which the API checks); it allows any extra key, and a run with a typo in a
key would then start, crash in the worker and show the reason only in the worker's log. Closing
the schema (`additionalProperties: false`) refuses such a run at once, in the caller's terminal
or the UI. Registration and promotion both take the schema from here.

>>> from retail_etl.orchestration.flows import daily_sales_etl
>>> schema = deployment_parameter_schema(daily_sales_etl)
>>> schema["additionalProperties"], schema["properties"]["run_date"]["anyOf"][0]
(False, {'format': 'date', 'type': 'string'})
"""

from __future__ import annotations

from typing import Any

from prefect.utilities.callables import parameter_schema


def deployment_parameter_schema(flow: Any) -> dict[str, Any]:
    """The OpenAPI parameter schema of `flow` for its deployments: unknown keys refused."""
    schema: dict[str, Any] = parameter_schema(flow).model_dump_for_openapi()
    schema["additionalProperties"] = False
    return schema
