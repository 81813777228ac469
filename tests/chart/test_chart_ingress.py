"""The UI behind an Ingress calls the API at the Ingress host (prefect-helm's most reported problem
was a UI still calling http://localhost:4200/api): PREFECT_UI_API_URL is derived from the host and
TLS, an explicit prefectServer.uiApiUrl wins, and the release notes print the URL the UI uses."""

from __future__ import annotations

import pytest
from chartkit import CHART, container_env, one, render_chart, run_helm

INGRESS = {"enabled": True, "className": "nginx", "host": "prefect.example.com"}


def ui_api_url(values) -> str:
    deployment = one(render_chart(values), "Deployment", "retail-etl-server")
    return container_env(deployment["spec"]["template"]["spec"]["containers"][0])["PREFECT_UI_API_URL"]["value"]


@pytest.mark.parametrize(
    "server, expected",
    [
        ({}, "http://localhost:4200/api"),
        ({"service": {"port": 8080}}, "http://localhost:8080/api"),
        ({"ingress": INGRESS}, "http://prefect.example.com/api"),
        (
            {"ingress": {**INGRESS, "tls": {"enabled": True, "secretName": "prefect-tls"}}},
            "https://prefect.example.com/api",
        ),
        # TLS settings without the Ingress do not matter.
        (
            {"ingress": {"enabled": False, "host": "x.example.com", "tls": {"enabled": True}}},
            "http://localhost:4200/api",
        ),
        # An explicit value wins over the derived one.
        ({"ingress": INGRESS, "uiApiUrl": "https://ui.example.org/prefect/api"}, "https://ui.example.org/prefect/api"),
        ({"uiApiUrl": "/api"}, "/api"),
    ],
)
def test_ui_api_url_is_derived_from_the_ingress_or_set(server, expected):
    assert ui_api_url({"prefectServer": server}) == expected


def test_ingress_routes_the_host_to_the_server_with_tls():
    objects = render_chart(
        {"prefectServer": {"ingress": {**INGRESS, "tls": {"enabled": True, "secretName": "prefect-tls"}}}}
    )
    ingress = one(objects, "Ingress", "retail-etl-server")
    assert ingress["spec"]["tls"] == [{"hosts": ["prefect.example.com"], "secretName": "prefect-tls"}]
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "prefect.example.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "retail-etl-server", "port": {"name": "http"}}


def test_schema_rejects_a_ui_api_url_that_is_no_url():
    from chartkit import HelmError

    with pytest.raises(HelmError) as failure:
        render_chart({"prefectServer": {"uiApiUrl": "prefect.example.com/api"}})
    assert "uiApiUrl" in failure.value.stderr


def notes(*args: str) -> str:
    output = run_helm("install", "retail-etl", str(CHART), "--namespace", "retail-etl-dev", "--dry-run=client", *args)
    return output.stdout[output.stdout.index("NOTES:") :]


def test_notes_print_the_url_the_ui_calls():
    tls = notes(
        "--set",
        "prefectServer.ingress.enabled=true,prefectServer.ingress.host=prefect.example.com",
        "--set",
        "prefectServer.ingress.tls.enabled=true,prefectServer.ingress.tls.secretName=prefect-tls",
    )
    assert "Prefect UI and API (the UI calls https://prefect.example.com/api):" in tls
    assert "open https://prefect.example.com/" in tls
    assert "export PREFECT_API_URL=https://prefect.example.com/api" in tls
    assert "localhost:4200" not in tls

    plain = notes("--set", "prefectServer.service.port=8080")
    assert "Prefect UI and API (the UI calls http://localhost:8080/api):" in plain
    assert "port-forward svc/retail-etl-server 8080:8080" in plain
    assert "export PREFECT_API_URL=http://localhost:8080/api" in plain
