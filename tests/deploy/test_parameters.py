"""A deployment's parameter schema refuses a bad run when the run is created, on a real Prefect API:
an unknown key or a non-date run date never becomes a run that crashes in the worker."""

from __future__ import annotations

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.exceptions import ObjectAlreadyExists, PrefectHTTPStatusError

from retail_etl.deploy.parameters import deployment_parameter_schema
from retail_etl.deploy.spec import create_deployment
from retail_etl.orchestration.flows import backfill, daily_sales_etl

POOL = "test-parameters"


def deploy(client, flow, name: str, schema: dict) -> str:
    try:
        client.create_work_pool(WorkPoolCreate(name=POOL, type="process"))
    except ObjectAlreadyExists:
        pass
    return create_deployment(
        client,
        {"name": name, "work_pool": {"name": POOL}},
        flow_name=flow.name,
        version="abc1234",
        description="",
        tags=[],
        entrypoint="retail_etl.orchestration.flows:daily_sales_etl",
        parameter_schema=schema,
        job_variables={},
        pull_steps=[],
    )


@pytest.mark.parametrize(
    ("flow", "good", "bad"),
    [
        (
            daily_sales_etl,
            [{}, {"run_date": "2024-01-15", "regions": ["north"], "strict": True}],
            [{"run_dte": "2024-01-15"}, {"run_date": "2024-13-45"}, {"run_date": "yesterday"}],
        ),
        (
            backfill,
            [
                {"start": "2024-01-01", "end": "2024-01-03"},
                {"start": "2024-01-01", "end": "2024-01-03", "concurrency": 4},
            ],
            [
                {"start": "2024-01-01", "end": "2024-01-03", "dry": True},
                {"start": "2024-01-01", "end": "01/03/2024"},
                {"start": "2024-01-01", "end": "2024-01-03", "concurrency": 0},
            ],
        ),
    ],
    ids=["daily", "backfill"],
)
def test_runs_with_unknown_keys_or_bad_dates_are_refused_at_creation(prefect_api, flow, good, bad):
    with get_client(sync_client=True) as client:
        deployment_id = deploy(client, flow, f"params-{flow.name}", deployment_parameter_schema(flow))
        for parameters in good:
            assert client.create_flow_run_from_deployment(deployment_id, parameters=parameters).parameters == parameters
        for parameters in bad:
            with pytest.raises(PrefectHTTPStatusError) as refused:
                client.create_flow_run_from_deployment(deployment_id, parameters=parameters)
            assert refused.value.response.status_code in (409, 422), parameters
            assert "Validation failed" in refused.value.response.text, refused.value.response.text


def test_prefects_own_schema_would_let_an_unknown_key_through(prefect_api):
    """Why the schema is closed here: Prefect's schema of the flow accepts any extra key."""
    from prefect.utilities.callables import parameter_schema

    with get_client(sync_client=True) as client:
        deployment_id = deploy(
            client, daily_sales_etl, "params-open", parameter_schema(daily_sales_etl).model_dump_for_openapi()
        )
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"run_dte": "2024-01-15"})
    assert run.parameters == {"run_dte": "2024-01-15"}
