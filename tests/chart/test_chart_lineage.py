"""Each environment release tells its processes which environment they are and which regions are real."""

from __future__ import annotations

import pytest
import yaml
from chartkit import REPO, base_job_template, container_env, find, render_environment

from retail_etl.synth.generate import REGIONS


@pytest.mark.parametrize("environment", ["dev", "staging", "prod"])
def test_environment_and_regions_reach_flow_runs_and_dask_workers(environment):
    objects = render_environment(environment)
    flow_run_env = base_job_template(objects)["variables"]["properties"]["env"]["default"]
    assert flow_run_env["RETAIL_ETL_ENVIRONMENT"] == environment
    # the stores' regions, none of the generator's bogus ones (atlantis, mars)
    assert flow_run_env["RETAIL_ETL_REGIONS"].split(",") == list(REGIONS)
    workers = [d for d in find(objects, "Deployment") if d["metadata"]["name"].endswith("dask-worker")]
    assert workers
    for container in workers[0]["spec"]["template"]["spec"]["containers"]:
        env = container_env(container)
        assert env["RETAIL_ETL_ENVIRONMENT"]["value"] == environment
        assert env["RETAIL_ETL_REGIONS"]["value"] == flow_run_env["RETAIL_ETL_REGIONS"]


def test_prefect_yaml_environments_name_themselves_and_their_regions():
    """The same for deployments registered straight from prefect.yaml (process pools, `prefect deploy`)."""
    project = yaml.safe_load((REPO / "prefect.yaml").read_text())
    names = set()
    for deployment in project["deployments"]:
        environment = deployment["name"].rsplit("-", 1)[-1]
        env = deployment["work_pool"]["job_variables"]["env"]
        assert env["RETAIL_ETL_ENVIRONMENT"] == environment, deployment["name"]
        assert env["RETAIL_ETL_REGIONS"].split(",") == list(REGIONS), deployment["name"]
        names.add(environment)
    assert names == {"dev", "staging", "prod"}
