"""The typer application, its error handling and the options commands share.

Every command is wrapped by `reports_errors`: an error retail-etl raises on purpose ends
the command with one line on stderr and its family's exit code (see `errors`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from datetime import date
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ..core.dates import parse_date
from ..errors import RetailEtlError

HELP = """The `retail-etl` command line: generate, run, backfill, report, demo, register, promote, bench.

With no PREFECT_API_URL, a command that runs flows starts one temporary local Prefect server
(register and promote refuse instead: they need the API that keeps the deployments);
with no RETAIL_ETL_DASK_ADDRESS, one LocalCluster; both last as long as the command.
"""

app = typer.Typer(add_completion=False, no_args_is_help=True, help=HELP)
console = Console()
errors = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn RetailEtlError into one line on stderr and the error family's exit code."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except RetailEtlError as error:
            errors.print(f"[bold red]error:[/] {one_line(str(error))}", soft_wrap=True, highlight=False, markup=True)
            raise typer.Exit(error.exit_code) from None

    return wrapper  # type: ignore[return-value]


def one_line(message: str, limit: int = 2000) -> str:
    """A message as one bounded line of plain text (no terminal colour codes, no rich markup).

    >>> one_line("Generic S3 error\\n  \\x1b[31m-> PUT failed\\x1b[0m [503]")
    'Generic S3 error -> PUT failed [503]'
    """
    plain = " ".join(re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", message).split())
    return escape(plain[:limit] + ("..." if len(plain) > limit else ""))


def command(name: str | None = None) -> Callable[[F], F]:
    """Register a command of the app, with the shared error handling."""

    def register(function: F) -> F:
        app.command(name)(reports_errors(function))
        return function

    return register


def as_date(value: str | None) -> date | None:
    """A YYYY-MM-DD option value as a date; a usage error otherwise."""
    if value is None:
        return None
    try:
        return parse_date(value)
    except RetailEtlError as error:
        raise typer.BadParameter(str(error)) from None


def required_date(value: str) -> date:
    """A required YYYY-MM-DD option value as a date."""
    parsed = as_date(value)
    if parsed is None:
        raise typer.BadParameter("a date is required")
    return parsed


DateOption = Annotated[str | None, typer.Option("--date", help="Sale date, YYYY-MM-DD (default: yesterday).")]
LandingOption = Annotated[
    str | None, typer.Option(help="Landing root: path or s3://bucket/prefix [RETAIL_ETL_LANDING].")
]
WarehouseOption = Annotated[
    str | None, typer.Option(help="Warehouse root: path or s3://bucket/prefix [RETAIL_ETL_WAREHOUSE].")
]
