"""Deployments: prefect.yaml as a project, registration of an environment (what the chart's
hook Job runs) and promotion of a tested build, sharing one way to write a deployment.

Sits on top: may import `orchestration`, `io`, `core`, `contract`, `config` and `errors`.
"""
