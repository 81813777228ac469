"""The Helm path: the values file's image lines rewritten as text (checked as a diff), and the
real helm rendering every retail-etl container with the promoted image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from retail_etl.deploy.values import ImageRef, helm_command, parse_image_ref, rewrite_image, run_helm, unified_diff
from retail_etl.errors import HelmUpgradeFailed, ValuesFileError

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "chart"))

import chartkit  # noqa: E402  (the real helm)

IMAGE = ImageRef("ghcr.io/acme/retail-etl", "1.2.0-g3f2a9c1", "sha256:" + "ab" * 32)


def test_rewrite_of_staging_values_is_an_added_block_and_nothing_else():
    before = (REPO / "k8s" / "values-staging.yaml").read_text()
    after = rewrite_image(before, IMAGE)
    diff = unified_diff(before, after, "k8s/values-staging.yaml")
    added = [line for line in diff.splitlines() if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in diff.splitlines() if line.startswith("-") and not line.startswith("---")]
    assert removed == []
    assert added[-3:] == [
        "+  repository: ghcr.io/acme/retail-etl",
        '+  tag: "1.2.0-g3f2a9c1"',
        f'+  digest: "{IMAGE.digest}"',
    ]
    assert yaml.safe_load(after)["image"] == {"repository": IMAGE.repository, "tag": IMAGE.tag, "digest": IMAGE.digest}
    assert rewrite_image(after, IMAGE) == after  # a second promotion of the same build changes nothing


def test_rewrite_keeps_comments_and_changes_only_the_differing_lines():
    before = (
        "environment: staging\n"
        "image:\n"
        "  # the registry\n"
        "  repository: ghcr.io/acme/retail-etl  # do not change by hand\n"
        '  tag: "1.1.0"   # promoted\n'
        "  pullPolicy: IfNotPresent\n"
        "# next section\n"
        "etl:\n"
        "  warehouse: s3://warehouse-staging\n"
    )
    after = rewrite_image(before, IMAGE)
    assert [line for line in unified_diff(before, after, "v.yaml").splitlines()[3:] if line[0] in "+-"] == [
        '-  tag: "1.1.0"   # promoted',
        '+  tag: "1.2.0-g3f2a9c1"   # promoted',
        f'+  digest: "{IMAGE.digest}"',
    ]
    assert after.splitlines()[4:7] == [
        '  tag: "1.2.0-g3f2a9c1"   # promoted',
        f'  digest: "{IMAGE.digest}"',
        "  pullPolicy: IfNotPresent",
    ]


def test_image_references():
    assert parse_image_ref("retail-etl:abc") == ImageRef("retail-etl", "abc", "")
    assert parse_image_ref("localhost:5000/retail-etl:abc") == ImageRef("localhost:5000/retail-etl", "abc", "")
    with pytest.raises(ValuesFileError, match="has no tag"):
        parse_image_ref("localhost:5000/retail-etl")
    with pytest.raises(ValuesFileError, match="malformed digest"):
        parse_image_ref("retail-etl:abc@nothex")
    with pytest.raises(ValuesFileError, match="not a block"):
        rewrite_image("image: retail-etl:abc\n", IMAGE)


def test_helm_renders_the_promoted_image_everywhere(tmp_path):
    values = tmp_path / "values-staging.yaml"
    values.write_text(rewrite_image((REPO / "k8s" / "values-staging.yaml").read_text(), IMAGE))
    text = chartkit.render_chart_text(values_files=[values], namespace="retail-etl-staging")
    expected = f"{IMAGE.repository}:{IMAGE.tag}@{IMAGE.digest}"
    ours = [
        line.split("image:", 1)[1].strip().strip("\"'")
        for line in text.splitlines()
        if line.strip().startswith("image:") and "retail-etl" in line
    ]
    assert ours and set(ours) == {expected}, set(ours)
    assert "retail-etl:0." not in text  # no container left on the chart's appVersion


def test_helm_command_and_a_failing_upgrade(tmp_path):
    command = helm_command("retail-etl", "charts/retail-etl", "retail-etl-staging", "k8s/values-staging.yaml")
    assert command == [
        "helm",
        "upgrade",
        "--install",
        "retail-etl",
        "charts/retail-etl",
        "-n",
        "retail-etl-staging",
        "-f",
        "k8s/values-staging.yaml",
    ]
    command[0] = chartkit.helm_binary()
    command[4] = str(tmp_path / "no-chart")
    with pytest.raises(HelmUpgradeFailed) as failed:
        run_helm(command)
    assert "\n" not in str(failed.value) and "no-chart" in str(failed.value)
    with pytest.raises(HelmUpgradeFailed, match="not on PATH"):
        run_helm(["/nonexistent/helm", "upgrade"])
    assert subprocess.run([chartkit.helm_binary(), "version"], capture_output=True).returncode == 0
