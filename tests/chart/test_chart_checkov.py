"""checkov on the rendered manifests: no failed check; every skip is annotated, reasoned and needed."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from chartkit import ENVIRONMENTS, KITCHEN_SINK, example_modes, render_chart_text, render_example_text

RENDERS = [*ENVIRONMENTS, "kitchen-sink", *(f"example:{mode}" for mode in example_modes())]


def rendered(render: str) -> str:
    if render == "kitchen-sink":
        return render_chart_text(KITCHEN_SINK)
    if render.startswith("example:"):
        return render_example_text(render.removeprefix("example:"))
    values_file, namespace = ENVIRONMENTS[render]
    return render_chart_text(None, [values_file] if values_file else [], namespace)


def offline_environment() -> dict[str, str]:
    """This process's environment without platform credentials, so checkov stays offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env["LOG_LEVEL"] = "ERROR"
    return env


def run_checkov(checkov, manifests: str, directory) -> dict:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "manifests.yaml").write_text(manifests)
    result = subprocess.run(
        [
            str(checkov),
            "--directory",
            str(directory),
            "--framework",
            "kubernetes",
            "--output",
            "json",
            "--skip-download",
            "--compact",
            "--soft-fail",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=offline_environment(),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    reports = report if isinstance(report, list) else [report]
    kubernetes = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert len(kubernetes) == 1, result.stdout[:2000]
    return kubernetes[0]


@pytest.mark.slow
@pytest.mark.parametrize("render", RENDERS)
def test_checkov_reports_no_failed_check(checkov, render, tmp_path):
    report = run_checkov(checkov, rendered(render), tmp_path / "annotated")
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0
    assert summary["passed"] > 100

    skipped = report["results"]["skipped_checks"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{check['check_id']} on {check['resource']}: reason too thin: {reason!r}"

    # Every skip is needed: without the annotations, exactly the skipped checks fail.
    bare = re.sub(r"^\s*checkov\.io/skip\d+:.*\n", "", rendered(render), flags=re.M)
    bare_report = run_checkov(checkov, bare, tmp_path / "bare")
    failing_without = {(c["check_id"], c["resource"]) for c in bare_report["results"]["failed_checks"]}
    assert failing_without == {(c["check_id"], c["resource"]) for c in skipped}
