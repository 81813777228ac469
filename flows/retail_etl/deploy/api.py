"""The Prefect API that `register` and `promote` write to: configured, and answering.

Both commands change shared state, so unlike the pipeline commands they never start a
temporary server (whatever they wrote would vanish with the command): with no API
configured, or none answering, they stop before reading or writing anything.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import ApiNotConfigured, ApiUnreachable, RegistrationError, UnknownEnvironment

START_HINT = "start it (prefect server start) or set PREFECT_API_URL to a running one"


def configured_api_url() -> str | None:
    """PREFECT_API_URL as Prefect resolves it: the environment, .env/prefect.toml, then the active profile."""
    from prefect.settings import get_current_settings

    url = get_current_settings().api.url
    return str(url) if url else None


def require_api(wait_timeout: float = 0.0, interval: float = 1.0) -> str:
    """The configured API's URL once it answers its health check (retried for `wait_timeout`
    seconds: in the chart the server may still be starting); one-line errors otherwise."""
    from prefect.client.orchestration import get_client

    url = configured_api_url()
    if not url:
        raise ApiNotConfigured(
            "no Prefect API configured (PREFECT_API_URL is unset and the active profile sets none): "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api after `prefect server start`, "
            "or `prefect config set PREFECT_API_URL=<url>`; register and promote never use a temporary server"
        )
    deadline = time.monotonic() + wait_timeout
    while True:
        with get_client(sync_client=True) as client:
            problem = client.api_healthcheck()
        if problem is None:
            return url
        if time.monotonic() >= deadline:
            reason = " ".join(str(problem).split()) or type(problem).__name__
            waited = f" after {wait_timeout:.0f} s" if wait_timeout else ""
            raise ApiUnreachable(f"cannot reach the Prefect API at {url}{waited} ({reason}): {START_HINT}")
        time.sleep(interval)


@contextmanager
def api_connection() -> Iterator[None]:
    """Turn a connection lost half way (the server stopped) into the same one-line error."""
    import httpx

    try:
        yield
    except httpx.TransportError as error:
        url = configured_api_url()
        raise ApiUnreachable(f"lost the Prefect API at {url} ({type(error).__name__}: {error}): {START_HINT}") from None


def api_environments(page: int = 200) -> set[str]:
    """The environments the API's deployments are tagged for (``env:<name>``)."""
    from prefect.client.orchestration import get_client

    found: set[str] = set()
    offset = 0
    with api_connection(), get_client(sync_client=True) as client:
        while True:
            deployments = client.read_deployments(limit=page, offset=offset)
            found.update(tag[4:] for d in deployments for tag in d.tags if tag.startswith("env:"))
            if len(deployments) < page:
                return found
            offset += page


def require_environments(names: Iterable[str], prefect_file: str | Path | None = None) -> None:
    """Refuse an environment that neither prefect.yaml nor any deployment in the API knows, before
    anything is read or written for it (`--force` does not skip this: a typo is never a decision)."""
    from .project import Project

    known = api_environments()
    where = "the API's deployments"
    if prefect_file and Path(prefect_file).is_file():
        try:
            known.update(Project.load(prefect_file).environments())
            where = f"{prefect_file} and {where}"
        except RegistrationError:
            pass  # an unreadable prefect.yaml is the promotion's own concern
    for name in names:
        if name not in known:
            raise UnknownEnvironment(
                f"unknown environment {name}: known ones are {', '.join(sorted(known)) or 'none'}"
                f" (env:<name> tags in {where})"
            )
