"""The promotion gate, audit record and rollback against a real Prefect API (runs' states set
through the API, as the engine would); every refusal through the CLI: one line, its exit code."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from retail_etl.cli import app
from retail_etl.deploy import audit
from retail_etl.deploy.promote import promote

COUNTER = itertools.count()


class Envs:
    """A fresh pair of environments (unique names: the API is shared by the session)."""

    def __init__(self, tmp_path: Path):
        n = next(COUNTER)
        self.source, self.target = f"gsrc{n}", f"gtgt{n}"
        self.root = tmp_path / "warehouse-target"

    def deploy(self, environment: str, build: str, family: str = "daily-sales-etl"):
        from prefect.client.orchestration import get_client

        warehouse = str(self.root) if environment == self.target else "/nonexistent/source-warehouse"
        with get_client(sync_client=True) as client:
            flow_id = client.create_flow_from_name(family)
            return client.create_deployment(
                flow_id=flow_id,
                name=f"{family}-{environment}",
                version=build,
                tags=[f"env:{environment}"],
                entrypoint=f"retail_etl.orchestration.flows:{family.replace('-', '_')}",
                job_variables={"image": f"retail-etl:{build}", "env": {"RETAIL_ETL_WAREHOUSE": warehouse}},
            )

    def run(self, environment: str, state: str, message: str | None = None, family: str = "daily-sales-etl"):
        """A run of the deployment as it is now (so of its current build), ended in `state`."""
        from prefect.client.orchestration import get_client
        from prefect.states import Completed, Failed

        with get_client(sync_client=True) as client:
            deployment = client.read_deployment_by_name(f"{family}/{family}-{environment}")
            run = client.create_flow_run_from_deployment(deployment.id)
            final = Completed() if state == "Completed" else Failed(message=message or "boom")
            client.set_flow_run_state(run.id, final, force=True)
            return client.read_flow_run(run.id)

    def target_deployment(self):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:
            return client.read_deployment_by_name(f"daily-sales-etl/daily-sales-etl-{self.target}")

    def cli(self, *args: str):
        result = CliRunner().invoke(app, ["promote", "--prefect-file", "/nonexistent.yaml", *args])
        return result


@pytest.fixture
def envs(prefect_api, tmp_path) -> Envs:
    return Envs(tmp_path)


def refused(result, code: int, *fragments: str) -> str:
    assert result.exit_code == code, result.output
    line = result.stderr.strip()
    assert len(line.splitlines()) == 1, line
    for fragment in fragments:
        assert fragment in line, line
    return line


def test_promotes_the_tested_build_and_records_it(envs):
    envs.deploy(envs.source, "1.0.1")
    envs.deploy(envs.target, "1.0.0")
    run = envs.run(envs.source, "Completed")
    result = envs.cli("--from", envs.source, "--to", envs.target)
    assert result.exit_code == 0, result.output
    assert f"passed: {run.name} ({run.id})" in result.stdout and "build 1.0.0 -> 1.0.1" in result.stdout
    target = envs.target_deployment()
    assert target.version == "1.0.1" and target.job_variables["image"] == "retail-etl:1.0.1"
    assert {f"promoted-from:{envs.source}", "build:1.0.1"} <= set(target.tags)
    assert "forced-promotion" not in target.tags and f"gate run {run.id}" in target.description
    (record,) = audit.read_records(str(envs.root), None)
    assert record["source_env"] == envs.source and record["target_env"] == envs.target
    assert (record["build"], record["previous_build"], record["forced"]) == ("1.0.1", "1.0.0", False)
    assert (record["gate_run_id"], record["gate_state"], record["kind"]) == (str(run.id), "Completed", "api")
    assert record["who"] and record["when"].endswith("Z")
    assert record["deployments"]["daily-sales-etl"]["image"] == "retail-etl:1.0.1"
    assert f"recorded: {envs.root}/_promotions/" in result.stdout


def test_refuses_a_source_that_never_ran(envs):
    envs.deploy(envs.source, "1.0.1")
    envs.deploy(envs.target, "1.0.0")
    refused(envs.cli("--from", envs.source, "--to", envs.target), 24, "never finished a run", "--force")
    assert envs.target_deployment().version == "1.0.0"
    assert not envs.root.exists()  # nothing recorded either


def test_refuses_a_build_other_than_the_one_that_ran(envs):
    envs.deploy(envs.source, "A")
    envs.deploy(envs.target, "0")
    run = envs.run(envs.source, "Completed")
    envs.deploy(envs.source, "B")  # re-registered with an untested build
    line = refused(envs.cli("--from", envs.source, "--to", envs.target), 24)
    assert f"{run.name} ({run.id}), ran build A, not build B to be promoted" in line
    assert envs.target_deployment().version == "0"


def test_refuses_a_failed_latest_run_of_the_build(envs):
    envs.deploy(envs.source, "A")
    envs.deploy(envs.target, "0")
    envs.run(envs.source, "Completed")
    failed = envs.run(envs.source, "Failed")
    refused(envs.cli("--from", envs.source, "--to", envs.target), 24, f"({failed.id}), is Failed, not Completed")


def test_a_run_with_invalid_parameters_does_not_count(envs):
    envs.deploy(envs.source, "A")
    envs.deploy(envs.target, "0")
    good = envs.run(envs.source, "Completed")
    envs.run(envs.source, "Failed", "Validation of flow parameters failed with error: run_date: invalid date")
    result = promote(envs.source, envs.target, dry_run=True)
    assert result.gate.run_id == str(good.id) and not result.gate.forced


def test_backfill_must_be_on_the_same_build_and_not_failing(envs):
    envs.deploy(envs.source, "A")
    envs.deploy(envs.source, "B", family="retail-etl-backfill")
    envs.deploy(envs.target, "0")
    envs.deploy(envs.target, "0", family="retail-etl-backfill")
    envs.run(envs.source, "Completed")
    refused(envs.cli("--from", envs.source, "--to", envs.target), 24, "on build B", "on build A", "one build")
    envs.deploy(envs.source, "A", family="retail-etl-backfill")
    envs.run(envs.source, "Failed", family="retail-etl-backfill")
    refused(envs.cli("--from", envs.source, "--to", envs.target), 24, "retail-etl-backfill", "is Failed")
    envs.run(envs.source, "Completed", family="retail-etl-backfill")
    assert promote(envs.source, envs.target, dry_run=True).gate.build == "A"


def test_force_is_marked_in_tags_and_record(envs):
    envs.deploy(envs.source, "B")
    envs.deploy(envs.target, "A")
    result = envs.cli("--from", envs.source, "--to", envs.target, "--force")
    assert result.exit_code == 0, result.output
    assert "FORCED past the gate" in result.stdout and "[FORCED]" in result.stdout
    assert "use --force" not in result.stdout.split("FORCED past the gate")[0]
    target = envs.target_deployment()
    assert "forced-promotion" in target.tags and "FORCED" in target.description and target.version == "B"
    (record,) = audit.read_records(str(envs.root), None)
    assert record["forced"] is True and record["gate_run_id"] is None


def promote_a_then_b(envs) -> None:
    """Builds A then B, each run Completed in the source and promoted to the target."""
    envs.deploy(envs.source, "A")
    envs.deploy(envs.target, "0")
    envs.run(envs.source, "Completed")
    promote(envs.source, envs.target)
    envs.deploy(envs.source, "B")
    envs.run(envs.source, "Completed")
    promote(envs.source, envs.target)


def test_rollback_returns_to_a_recorded_build_through_the_gate(envs):
    promote_a_then_b(envs)
    assert envs.target_deployment().version == "B"

    refused(envs.cli("--to", envs.target, "--build", "Z"), 25, "never promoted", "recorded builds: A, B")
    result = envs.cli("--to", envs.target, "--build", "A")
    assert result.exit_code == 0, result.output
    assert f"rollback {envs.source} -> {envs.target}: build B -> A (image retail-etl:A)" in result.stdout
    target = envs.target_deployment()
    assert target.version == "A" and target.job_variables["image"] == "retail-etl:A" and "rollback" in target.tags
    records = audit.read_records(str(envs.root), None)
    assert [(r["build"], r["rollback"]) for r in records] == [("A", False), ("B", False), ("A", True)]


def test_rollback_needs_a_completed_run_of_that_build(envs):
    promote_a_then_b(envs)
    envs.deploy(envs.source, "A")  # A again, and this time its run fails
    envs.run(envs.source, "Failed")
    envs.deploy(envs.source, "C")
    refused(envs.cli("--to", envs.target, "--build", "A"), 24, "on build A", "is Failed")


def test_refuses_when_the_record_cannot_be_written(envs, tmp_path):
    envs.deploy(envs.source, "A")
    envs.deploy(envs.target, "0")
    envs.run(envs.source, "Completed")
    (tmp_path / "a-file").write_text("")
    line = refused(
        envs.cli("--from", envs.source, "--to", envs.target, "--audit-root", str(tmp_path / "a-file" / "below")),
        26,
        "nothing promoted",
    )
    assert "a-file" in line and envs.target_deployment().version == "0"


def test_refuses_unknown_environment_even_forced(prefect_api):
    repo = Path(__file__).resolve().parents[2]
    result = CliRunner().invoke(
        app, ["promote", "--from", "dev", "--to", "qa", "--force", "--prefect-file", str(repo / "prefect.yaml")]
    )
    line = refused(result, 22, "unknown environment qa: known ones are")
    # the API's environments (other tests' deployments) are listed too
    assert all(name in line.split("known ones are", 1)[1] for name in ("dev", "prod", "staging")), line


def test_apply_needs_a_values_file(prefect_api):
    refused(CliRunner().invoke(app, ["promote", "--from", "dev", "--to", "staging", "--apply"]), 3, "--values-file")


def test_values_file_path_records_and_rewrites(envs, tmp_path):
    envs.deploy(envs.source, "A")
    envs.deploy(envs.target, "0")
    envs.run(envs.source, "Completed")
    values = tmp_path / "values-target.yaml"
    values.write_text("# target\nenvironment: target\n")
    refused(envs.cli("--from", envs.source, "--to", envs.target, "--values-file", str(tmp_path / "nope.yaml")), 27)
    refused(
        envs.cli("--from", envs.source, "--to", envs.target, "--values-file", str(values), "--image-ref", "repo"),
        27,
        "has no tag",
    )
    result = envs.cli("--from", envs.source, "--to", envs.target, "--values-file", str(values), "--apply", "--dry-run")
    assert result.exit_code == 0, result.output
    assert '+  tag: "A"' in result.stdout and values.read_text() == "# target\nenvironment: target\n"
    expected = f"would run: helm upgrade --install retail-etl charts/retail-etl -n retail-etl-{envs.target} -f {values}"
    assert expected in result.stdout
    result = envs.cli("--from", envs.source, "--to", envs.target, "--values-file", str(values))
    assert result.exit_code == 0, result.output
    assert 'tag: "A"' in values.read_text()
    assert envs.target_deployment().version == "0"  # the Helm path leaves the API to the registration hook
    (record,) = audit.read_records(str(envs.root), None)
    assert record["kind"] == "values-file" and record["image"] == "retail-etl:A"
    assert json.dumps(record)  # plain JSON
