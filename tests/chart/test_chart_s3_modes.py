"""S3 in every installation mode: bundled MinIO, an external S3-compatible endpoint, AWS S3 with
static keys, AWS S3 with workload identity (k8s/examples/<mode>.yaml).

For each mode the flow-run Job is built as the worker builds it (flowrun.py) and compared with the
Dask workers and the registration Job: the same endpoint (or none), region and credential source
must reach all three, or flow and tasks would read and write different stores.
"""

from __future__ import annotations

import os

import kubernetes_validate
import pytest
from chartkit import (
    KUBERNETES_VERSIONS,
    HelmError,
    container_env,
    example_modes,
    find,
    one,
    render_chart,
    render_example,
)
from flowrun import flow_run_jobs, job_container, registration_arguments

from retail_etl.config import load_settings

ROLE_ARN = "arn:aws:iam::123456789012:role/retail-etl-prod"

# mode -> (environment, namespace, endpoint or None, region or None, credentials Secret or None,
# annotations of the S3 clients' ServiceAccounts)
EXPECTED = {
    "minio-bundled": (
        "dev",
        "retail-etl-dev",
        "http://retail-etl-minio.retail-etl-dev.svc.cluster.local:9000",
        None,
        "retail-etl-minio",
        {},
    ),
    "external-s3": ("dev", "retail-etl-dev", "https://s3.storage.example.com", "us-east-1", "retail-etl-s3", {}),
    "aws-s3-static-keys": ("prod", "retail-etl-prod", None, "eu-west-1", "retail-etl-s3", {}),
    "aws-eks-irsa": ("prod", "retail-etl-prod", None, "eu-west-1", None, {"eks.amazonaws.com/role-arn": ROLE_ARN}),
}
S3_CLIENT_ACCOUNTS = ["retail-etl-flow-run", "retail-etl-dask-worker", "retail-etl-registration"]


def s3_view(container: dict) -> tuple:
    """What decides which store a container talks to, and as whom: endpoint, region, credentials."""
    env = container_env(container)
    literal = sorted(name for name, entry in env.items() if name.startswith("AWS_") and "value" in entry)
    return (
        (env.get("RETAIL_ETL_S3_ENDPOINT_URL") or {}).get("value"),
        (env.get("RETAIL_ETL_S3_REGION") or {}).get("value"),
        tuple(ref["secretRef"]["name"] for ref in container.get("envFrom", [])),
        literal,
    )


def use_pod_environment(job: dict, monkeypatch) -> None:
    """This process's RETAIL_ETL_*/AWS_* variables become exactly the flow-run container's literal ones."""
    for name in list(os.environ):
        if name.startswith(("RETAIL_ETL_", "AWS_")):
            monkeypatch.delenv(name)
    for entry in job_container(job)["env"]:
        if "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])


def test_every_mode_has_an_example():
    assert set(EXPECTED) <= set(example_modes()), "a mode of this module has no k8s/examples/<mode>.yaml"


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_flow_runs_dask_workers_and_registration_share_one_store(mode):
    environment, namespace, endpoint, region, secret, annotations = EXPECTED[mode]
    objects = render_example(mode)
    expected = (endpoint, region, (secret,) if secret else (), [])

    dask = one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["template"]["spec"]
    registration = one(objects, "Job", "retail-etl-register")["spec"]["template"]["spec"]
    assert s3_view(dask["containers"][0]) == expected
    assert s3_view(registration["containers"][0]) == expected

    for job in flow_run_jobs(objects, environment):
        for version in KUBERNETES_VERSIONS:
            kubernetes_validate.validate(job, version, strict=True)
        assert job["metadata"]["namespace"] == namespace
        pod = job["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "retail-etl-flow-run"
        assert pod["automountServiceAccountToken"] is False
        container = job_container(job)
        assert s3_view(container) == expected
        if endpoint is None:
            # prefect.yaml's in-cluster MinIO default must not survive the merge.
            assert "RETAIL_ETL_S3_ENDPOINT_URL" not in container_env(container)
        if secret is None:
            assert "envFrom" not in container
            assert not [e for e in container["env"] if e["name"].startswith("AWS_")]

    # The three S3 clients run as ServiceAccounts of this release, with the identity's annotations.
    assert dask["serviceAccountName"] == "retail-etl-dask-worker"
    assert registration["serviceAccountName"] == "retail-etl-registration"
    for name in S3_CLIENT_ACCOUNTS:
        account = one(objects, "ServiceAccount", name)
        assert account["metadata"]["namespace"] == namespace
        assert (account["metadata"].get("annotations") or {}) == annotations
        assert account["automountServiceAccountToken"] is False
    # ... and only they: the server, the scheduler and the worker get no cloud identity.
    for account in find(objects, "ServiceAccount"):
        if account["metadata"]["name"] not in S3_CLIENT_ACCOUNTS:
            assert not account["metadata"].get("annotations"), account["metadata"]["name"]

    # No Secret with S3 keys is rendered or referenced with workload identity.
    if secret is None:
        assert not [s for s in find(objects, "Secret") if "AWS_ACCESS_KEY_ID" in (s.get("data") or {})]


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_the_program_in_the_flow_run_pod_uses_the_configured_store(mode, monkeypatch):
    """The settings the flow run's own code derives from its pod's environment: the endpoint and
    region the chart set, and no credential of any kind in the S3 options (no key, no secret, no
    anon), so s3fs/botocore take them from the AWS chain: the Secret's AWS_* variables, or the
    web identity of the pod's ServiceAccount."""
    environment, _, endpoint, region, _, _ = EXPECTED[mode]
    (job, *_) = flow_run_jobs(render_example(mode), environment)

    use_pod_environment(job, monkeypatch)
    options = load_settings().storage_options()
    assert options.get("endpoint_url") == endpoint
    assert (options.get("client_kwargs") or {}).get("region_name") == region
    assert not {"key", "secret", "token", "anon", "profile"} & set(options)


def test_without_the_nulls_prefect_yaml_would_send_aws_flow_runs_to_minio():
    """The control: the registration Job's nulls are what keeps prefect.yaml's in-cluster MinIO
    endpoint out of an AWS release's flow runs (prefect-kubernetes drops null env values)."""
    objects = render_example("aws-s3-static-keys")
    _, job_variables = registration_arguments(objects)
    assert job_variables["env"]["RETAIL_ETL_S3_ENDPOINT_URL"] is None
    without = {**job_variables, "env": {k: v for k, v in job_variables["env"].items() if v is not None}}
    (job, *_) = flow_run_jobs(objects, "prod", overrides=without)
    leaked = container_env(job_container(job))["RETAIL_ETL_S3_ENDPOINT_URL"]["value"]
    assert leaked == "http://retail-etl-minio.retail-etl.svc.cluster.local:9000"


def test_registration_nulls_every_release_owned_setting_it_leaves_unset():
    """Each RETAIL_ETL_* setting the chart manages is set from values or removed, never inherited."""
    owned = {
        "RETAIL_ETL_S3_ENDPOINT_URL",
        "RETAIL_ETL_S3_REGION",
        "RETAIL_ETL_REGIONS",
        "RETAIL_ETL_DASK_ADDRESS",
        "RETAIL_ETL_MAX_RECORD_LINES",
        "RETAIL_ETL_MAX_RECORD_BYTES",
        "RETAIL_ETL_BATCH_FILES",
        "RETAIL_ETL_BACKFILL_CONCURRENCY",
    }
    bare = {"minio": {"enabled": False}, "dask": {"enabled": False}, "s3": {"existingSecret": "s3"}}
    _, job_variables = registration_arguments(render_chart(bare))
    assert {k for k, v in job_variables["env"].items() if v is None} == owned
    full = {
        **bare,
        "dask": {"enabled": True},
        "s3": {"existingSecret": "s3", "endpointUrl": "https://s3.example.com", "region": "eu-west-1"},
        "etl": {
            "regions": "north",
            "maxRecordLines": 50,
            "maxRecordBytes": 4194304,
            "batchFiles": 200,
            "backfillConcurrency": 3,
        },
    }
    _, job_variables = registration_arguments(render_chart(full))
    assert owned <= set(job_variables["env"])
    assert not [k for k, v in job_variables["env"].items() if v is None]


def test_etl_limits_reach_every_etl_process_under_the_programs_names(monkeypatch):
    """etl.maxRecordLines/maxRecordBytes/batchFiles/backfillConcurrency become the variables config.py
    reads (checked by loading the settings from the rendered values), in flow runs, Dask workers and
    registration."""
    values = {"etl": {"maxRecordLines": 50, "maxRecordBytes": 4194304, "batchFiles": 200, "backfillConcurrency": 3}}
    objects = render_chart(values)
    dask = container_env(
        one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["template"]["spec"]["containers"][0]
    )
    registration = container_env(
        one(objects, "Job", "retail-etl-register")["spec"]["template"]["spec"]["containers"][0]
    )
    (job, *_) = flow_run_jobs(objects, "dev")
    flow_run = container_env(job_container(job))
    names = [
        "RETAIL_ETL_MAX_RECORD_LINES",
        "RETAIL_ETL_MAX_RECORD_BYTES",
        "RETAIL_ETL_BATCH_FILES",
        "RETAIL_ETL_BACKFILL_CONCURRENCY",
    ]
    for env in (dask, registration, flow_run):
        assert [env[n]["value"] for n in names] == ["50", "4194304", "200", "3"]
    for name in names:
        monkeypatch.setenv(name, flow_run[name]["value"])
    settings = load_settings()
    assert (settings.max_record_lines, settings.max_record_bytes, settings.batch_files) == (50, 4194304, 200)
    assert settings.backfill_concurrency == 3
    # 0 (the default) sets nothing: the program keeps its own defaults.
    defaults = container_env(
        one(render_chart(), "Deployment", "retail-etl-dask-worker")["spec"]["template"]["spec"]["containers"][0]
    )
    assert not set(names) & set(defaults)


def test_workload_identity_without_annotations_is_pod_identity():
    """EKS Pod Identity: the association lives in AWS, so no annotation is needed and none is set."""
    objects = render_chart(
        {"minio": {"enabled": False}, "s3": {"region": "eu-west-1", "workloadIdentity": {"enabled": True}}}
    )
    for name in S3_CLIENT_ACCOUNTS:
        assert not one(objects, "ServiceAccount", name)["metadata"].get("annotations")
    assert (
        "envFrom"
        not in one(objects, "Deployment", "retail-etl-dask-worker")["spec"]["template"]["spec"]["containers"][0]
    )


def test_component_annotations_win_over_workload_identity_ones():
    objects = render_chart(
        {
            "minio": {"enabled": False},
            "s3": {
                "workloadIdentity": {
                    "enabled": True,
                    "serviceAccountAnnotations": {"eks.amazonaws.com/role-arn": ROLE_ARN, "team": "etl"},
                }
            },
            "dask": {"worker": {"serviceAccount": {"annotations": {"eks.amazonaws.com/role-arn": "arn:other"}}}},
        }
    )
    annotations = one(objects, "ServiceAccount", "retail-etl-dask-worker")["metadata"]["annotations"]
    assert annotations == {"eks.amazonaws.com/role-arn": "arn:other", "team": "etl"}


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"minio": {"enabled": False}},
            "s3.existingSecret (or s3.accessKeyId and s3.secretAccessKey) is required when minio.enabled=false, "
            "unless the pods get S3 credentials from workload identity: set s3.workloadIdentity.enabled=true",
        ),
        (
            {"minio": {"enabled": False}, "s3": {"existingSecret": "s3", "workloadIdentity": {"enabled": True}}},
            "s3.workloadIdentity.enabled=true takes no keys: unset s3.existingSecret, s3.accessKeyId and "
            "s3.secretAccessKey",
        ),
        (
            {
                "minio": {"enabled": False},
                "s3": {"accessKeyId": "AKID", "secretAccessKey": "x", "workloadIdentity": {"enabled": True}},
            },
            "s3.workloadIdentity.enabled=true takes no keys",
        ),
        (
            {"s3": {"workloadIdentity": {"enabled": True}}},
            "s3.workloadIdentity.enabled=true requires minio.enabled=false",
        ),
    ],
    ids=["no-credentials", "identity-and-secret", "identity-and-keys", "identity-and-minio"],
)
def test_s3_guards(values, message):
    with pytest.raises(HelmError) as failure:
        render_chart(values)
    assert message in failure.value.stderr


@pytest.mark.parametrize(
    "mode, method", [("aws-eks-irsa", "assume-role-with-web-identity"), ("aws-s3-static-keys", "env")]
)
def test_s3fs_in_the_flow_run_pod_takes_credentials_from_the_pods_identity(mode, method, monkeypatch, tmp_path):
    """s3fs/botocore, given the flow-run pod's environment, resolve credentials from the AWS chain:
    with workload identity from what EKS injects next to the ServiceAccount's role annotation
    (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE), with static keys from the Secret's variables. The
    credentials are resolved lazily, so no AWS endpoint is contacted."""

    import s3fs
    from fsspec.asyn import sync

    (job, *_) = flow_run_jobs(render_example(mode), EXPECTED[mode][0])
    use_pod_environment(job, monkeypatch)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    if job_container(job).get("envFrom"):
        # What the referenced Secret provides in the pod.
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    else:
        token = tmp_path / "token"
        token.write_text("eyJhbGciOiJSUzI1NiJ9.e30.signature")
        monkeypatch.setenv("AWS_ROLE_ARN", ROLE_ARN)
        monkeypatch.setenv("AWS_WEB_IDENTITY_TOKEN_FILE", str(token))
    fs = s3fs.S3FileSystem(**load_settings().storage_options(), skip_instance_cache=True)
    sync(fs.loop, fs.set_session)
    credentials = sync(fs.loop, fs.session.get_credentials)
    assert credentials is not None and credentials.method == method
