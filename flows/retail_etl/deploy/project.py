"""prefect.yaml as a project: YAML anchors and ``{{ $NAME }}`` templates resolved, deployments
grouped by environment (tag ``env:<name>``), and the flows their entrypoints name.

>>> resolve_env_templates({"tz": "{{ $TZ_NAME }}"}, {"TZ_NAME": "Europe/Paris"})
{'tz': 'Europe/Paris'}
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config import template_environment
from ..errors import RegistrationError, UnknownEnvironment

_ENV_TEMPLATE = re.compile(r"\{\{\s*\$([A-Z0-9_]+)\s*\}\}")


def resolve_env_templates(value: Any, env: Mapping[str, str]) -> Any:
    """Replace ``{{ $NAME }}`` (prefect.yaml's environment syntax) with values from `env`."""
    if isinstance(value, str):

        def substitute(match: re.Match) -> str:
            name = match.group(1)
            if name not in env:
                raise RegistrationError(f"prefect.yaml uses {{{{ ${name} }}}} but {name} is not set")
            return env[name]

        return _ENV_TEMPLATE.sub(substitute, value)
    if isinstance(value, dict):
        return {key: resolve_env_templates(item, env) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve_env_templates(item, env) for item in value]
    return value


def deep_merge(base: dict, override: Mapping) -> dict:
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


@dataclass
class Project:
    """prefect.yaml, with YAML anchors and ``{{ $VAR }}`` templates resolved."""

    path: Path
    data: dict = field(repr=False)

    @classmethod
    def load(cls, path: str | Path, env: Mapping[str, str] | None = None) -> Project:
        path = Path(path).resolve()
        if not path.is_file():
            raise RegistrationError(f"{path} does not exist")
        raw = yaml.safe_load(path.read_text()) or {}
        return cls(path=path, data=resolve_env_templates(raw, env if env is not None else template_environment()))

    @property
    def root(self) -> Path:
        return self.path.parent

    @property
    def deployments(self) -> list[dict]:
        return list(self.data.get("deployments") or [])

    def environments(self) -> list[str]:
        return sorted(
            {tag.split(":", 1)[1] for d in self.deployments for tag in d.get("tags", []) if tag.startswith("env:")}
        )

    def for_environment(self, environment: str) -> list[dict]:
        chosen = [d for d in self.deployments if f"env:{environment}" in d.get("tags", [])]
        if not chosen:
            raise UnknownEnvironment(
                f"unknown environment {environment}: no deployment in {self.path} is tagged env:{environment};"
                f" known ones are {', '.join(self.environments())}"
            )
        return chosen

    def with_schedule_timezone(self, zone: str | None) -> Project:
        """This project with every schedule, and the flow runs' RETAIL_ETL_SCHEDULE_TIMEZONE, in
        `zone` (prefect.yaml's literal zone when None: plain `prefect deploy` uses that one)."""
        if not zone:
            return self
        data = copy.deepcopy(self.data)
        for deployment in data.get("deployments") or []:
            for schedule in deployment.get("schedules") or []:
                schedule["timezone"] = zone
            env = (deployment.get("work_pool") or {}).get("job_variables", {}).get("env")
            if isinstance(env, dict) and "RETAIL_ETL_SCHEDULE_TIMEZONE" in env:
                env["RETAIL_ETL_SCHEDULE_TIMEZONE"] = zone
        return Project(path=self.path, data=data)

    def pull_steps(self, working_directory: str | None = None) -> list[dict]:
        steps = copy.deepcopy(self.data.get("pull") or [])
        if working_directory:
            for step in steps:
                for name, options in step.items():
                    if name.endswith("set_working_directory"):
                        options["directory"] = working_directory
        return steps


def load_entrypoint(project: Project, entrypoint: str):
    """The flow object an entrypoint names, imported the way Prefect's runner will."""
    from prefect.flows import load_flow_from_entrypoint

    path, _, name = entrypoint.partition(":")
    if path.endswith(".py"):  # a file path, relative to prefect.yaml
        return load_flow_from_entrypoint(f"{project.root / path}:{name}")
    return load_flow_from_entrypoint(entrypoint)  # a module path, e.g. retail_etl.orchestration.flows:daily_sales_etl
