"""checkov on the rendered manifests: no failed check; every skip is annotated, reasoned and needed.

checkov takes seconds to start, so it runs twice in all, not twice per render: once over a directory
holding every render's manifests (one file per render) and once over the same renders with the skip
annotations stripped; the results are mapped back to their render by file path. checkov's graph
checks connect objects across files regardless of namespace (a NetworkPolicy of one render would
"cover" the pods of another by their labels; a RoleBinding would reach the same-named Role of
another render), so each render's copy gets its own app.kubernetes.io/instance value, and the test
first asserts the preconditions that keep the renders apart.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from chartkit import (
    ENVIRONMENTS,
    KITCHEN_SINK,
    deep_merge,
    example_modes,
    render_chart_text,
    render_example_text,
)

# Every optional feature with the NetworkPolicies off: each workload needs its CKV2_K8S_6 skip.
KITCHEN_SINK_NO_NETWORK_POLICIES = deep_merge(KITCHEN_SINK, {"networkPolicy": {"enabled": False}})

RENDERS = [
    *ENVIRONMENTS,
    "kitchen-sink",
    "kitchen-sink-no-networkpolicies",
    *(f"example:{mode}" for mode in example_modes()),
]

OUTCOMES = ("passed_checks", "failed_checks", "skipped_checks")
SKIP_ANNOTATION = re.compile(r"^\s*checkov\.io/skip\d+:.*\n", flags=re.M)
INSTANCE_LABEL = re.compile(r'^([ \t]*app\.kubernetes\.io/instance:[ \t]*)"?([^"\s]+)"?[ \t]*$', flags=re.M)


def rendered(render: str) -> str:
    if render == "kitchen-sink":
        return render_chart_text(KITCHEN_SINK)
    if render == "kitchen-sink-no-networkpolicies":
        return render_chart_text(KITCHEN_SINK_NO_NETWORK_POLICIES)
    if render.startswith("example:"):
        return render_example_text(render.removeprefix("example:"))
    values_file, namespace = ENVIRONMENTS[render]
    return render_chart_text(None, [values_file] if values_file else [], namespace)


def file_name(render: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", render) + ".yaml"


def isolated(render: str, manifests: str) -> str:
    """The render with its own app.kubernetes.io/instance value, in labels and selectors alike."""
    suffix = re.sub(r"[^a-z0-9]", "-", render.lower())
    return INSTANCE_LABEL.sub(lambda m: f'{m.group(1)}"{m.group(2)}--{suffix}"', manifests)


def assert_renders_stay_apart(texts: dict[str, str]) -> None:
    """What the per-render instance label cannot separate must not differ between renders: every
    NetworkPolicy selects by app.kubernetes.io/instance (an empty or other selector would reach the
    pods of every render), and same-named Roles grant the same rules in every render (RoleBindings
    find their Role by name)."""
    roles: dict[str, tuple[str, list]] = {}
    for render, text in texts.items():
        for obj in (o for o in yaml.safe_load_all(text) if o):
            name = obj["metadata"]["name"]
            if obj["kind"] == "NetworkPolicy":
                labels = (obj["spec"].get("podSelector") or {}).get("matchLabels") or {}
                assert "app.kubernetes.io/instance" in labels, (
                    f"{render}: NetworkPolicy {name} does not select by app.kubernetes.io/instance"
                )
            if obj["kind"] in ("Role", "ClusterRole"):
                rules = obj.get("rules", [])
                first = roles.setdefault(f"{obj['kind']}/{name}", (render, rules))
                assert first[1] == rules, f"{obj['kind']} {name} differs between {first[0]} and {render}"


def offline_environment() -> dict[str, str]:
    """This process's environment without platform credentials, so checkov stays offline."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BC_", "PRISMA_", "CKV_"))}
    env["LOG_LEVEL"] = "ERROR"
    return env


def start_checkov(checkov, directory: Path) -> subprocess.Popen:
    return subprocess.Popen(
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
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=offline_environment(),
    )


def kubernetes_report(process: subprocess.Popen) -> dict:
    stdout, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr[-3000:]
    report = json.loads(stdout)
    reports = report if isinstance(report, list) else [report]
    kubernetes = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert len(kubernetes) == 1, stdout[:2000]
    return kubernetes[0]


def by_file(report: dict) -> tuple[dict[str, dict[str, list]], set[str]]:
    """({file name: {"passed_checks": [...], "failed_checks": [...], "skipped_checks": [...]}},
    names of the files checkov could not parse)."""
    files: dict[str, dict[str, list]] = {}
    for outcome in OUTCOMES:
        for check in report["results"][outcome]:
            entry = files.setdefault(Path(check["file_path"]).name, {o: [] for o in OUTCOMES})
            entry[outcome].append(check)
    return files, {Path(p).name for p in report["results"].get("parsing_errors", [])}


@pytest.fixture(scope="module")
def reports(checkov, tmp_path_factory) -> dict[str, tuple[dict, dict]]:
    """render -> (its checkov results, its results without the skip annotations): two checkov
    processes in all, run side by side."""
    texts = {render: rendered(render) for render in RENDERS}
    assert_renders_stay_apart(texts)
    root = tmp_path_factory.mktemp("checkov")
    for kind in ("annotated", "bare"):
        (root / kind).mkdir()
    for render, text in texts.items():
        copy = isolated(render, text)
        (root / "annotated" / file_name(render)).write_text(copy)
        (root / "bare" / file_name(render)).write_text(SKIP_ANNOTATION.sub("", copy))
    processes = {kind: start_checkov(checkov, root / kind) for kind in ("annotated", "bare")}
    (annotated, unparsed), (bare, bare_unparsed) = (
        by_file(kubernetes_report(processes[kind])) for kind in ("annotated", "bare")
    )
    results = {}
    for render in RENDERS:
        name = file_name(render)
        assert name not in unparsed | bare_unparsed, f"checkov could not parse {render}"
        results[render] = (annotated.get(name), bare.get(name))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("render", RENDERS)
def test_checkov_reports_no_failed_check(reports, render):
    annotated, bare = reports[render]
    assert annotated is not None and bare is not None, f"checkov reported nothing for {render}"
    failed = [(c["check_id"], c["resource"], c["check_name"]) for c in annotated["failed_checks"]]
    assert not failed, failed
    assert len(annotated["passed_checks"]) > 100

    skipped = annotated["skipped_checks"]
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 40, f"{check['check_id']} on {check['resource']}: reason too thin: {reason!r}"

    # Every skip is needed: without the annotations, exactly the skipped checks fail.
    failing_without = {(c["check_id"], c["resource"]) for c in bare["failed_checks"]}
    assert failing_without == {(c["check_id"], c["resource"]) for c in skipped}
