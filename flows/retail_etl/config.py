"""Settings, read from `RETAIL_ETL_*` environment variables: the one reader of the environment.

Commands and flows call `load_settings()` once, at their entry, and pass values
down; nothing below reads the environment or writes it. The Helm chart sets the
same variables on flow-run Jobs and Dask workers, so the code has one
configuration path everywhere. S3 credentials are never settings: every S3
client takes them from the standard AWS chain (`AWS_ACCESS_KEY_ID`/
`AWS_SECRET_ACCESS_KEY`, `AWS_PROFILE`, web identity), so workload identity works
and no secret travels as a task argument.

>>> load_settings(regions="north, south").regions
['north', 'south']
>>> try:
...     load_settings(max_quantity=0)
... except ConfigurationError as error:
...     print(error)
invalid setting RETAIL_ETL_MAX_QUANTITY: Input should be greater than 0
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AliasChoices, BeforeValidator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .core.durations import parse_duration
from .errors import ConfigurationError

ENV_PREFIX = "RETAIL_ETL_"
#: Variables a Dask worker started by this process must see as this process does.
FORWARDED_PREFIXES = (ENV_PREFIX, "PREFECT_", "AWS_")


def _duration(value: Any) -> timedelta:
    try:
        return parse_duration(value)
    except ConfigurationError as error:
        raise ValueError(str(error)) from None


#: A duration setting: seconds, short forms (90s, 36h, 7d) or ISO 8601 (core.durations).
Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Settings(BaseSettings):
    """Everything that differs between a laptop and a cluster."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    landing: str = Field("./landing", description="Landing root: a path or s3://bucket/prefix.")
    warehouse: str = Field("./warehouse", description="Warehouse root: a path or s3://bucket/prefix.")

    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("RETAIL_ETL_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3-compatible endpoint (MinIO); unset means AWS.",
    )
    s3_region: str | None = Field(
        None, validation_alias=AliasChoices("RETAIL_ETL_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )

    dask_address: str | None = Field(None, description="Scheduler to use; unset starts a LocalCluster.")
    dask_workers: int | None = Field(
        None, ge=1, description="Worker processes of the temporary LocalCluster; unset: one per usable core."
    )
    dask_threads_per_worker: int | None = Field(
        None, ge=1, description="Threads per LocalCluster worker; unset: 1 (or the usable cores per set worker)."
    )
    backfill_concurrency: int = Field(
        2, ge=1, description="Days a backfill runs at once on its Dask cluster (each day still published alone)."
    )

    regions: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Allowed regions (comma-separated); unset accepts any non-empty region."
    )
    max_quantity: int = Field(10_000, gt=0, lt=2**53)
    max_unit_price: float = Field(100_000.0, gt=0, lt=1e9, description="Below 1e9 (prices are checked exactly).")

    max_record_lines: int = Field(
        100, ge=1, description="Physical lines a quoted field may span before its record is a run-away."
    )
    max_record_bytes: int = Field(
        1 << 20, ge=1, description="Bytes a quoted field may span before its record is a run-away."
    )

    io_retries: int = Field(3, ge=0, description="Retries of I/O tasks.")
    retry_delay_seconds: float = Field(2.0, ge=0, description="First retry delay; doubles each retry.")
    retry_jitter_factor: float = Field(0.5, ge=0)
    cache_expiration: Duration = Field(timedelta(days=7), description="How long extracted files stay cached.")

    batch_bytes: int = Field(32 * 2**20, gt=0, description="Landing bytes per validate-files task (Dask).")
    batch_files: int = Field(
        500, ge=1, description="Landing files per validate-files task at most (tiny files cost their parsing)."
    )
    bucket_bytes: int = Field(64 * 2**20, gt=0, description="Landing bytes per transaction_id bucket.")
    max_buckets: int = Field(64, ge=1, description="Upper bound on transaction_id buckets.")

    schedule_timezone: str = Field("UTC", description="Time zone of the daily schedule and run dates.")

    day_wait_seconds: float = Field(
        3600.0, ge=0, description="How long a run waits while another run publishes the same day."
    )
    day_lease_seconds: float = Field(
        120.0, ge=30, description="A run that stops renewing its hold on a day this long is taken for dead."
    )
    scratch_retention: Duration = Field(
        timedelta(days=1), description="Scratch of runs older than this is removed by the next run."
    )
    vacuum_retention: Duration = Field(
        timedelta(days=7), description="Replaced table files stay this long (time travel, rollback)."
    )

    environment: str = Field(
        "local",
        min_length=1,
        description="The environment this process runs in (dev, staging, prod): named in run names, "
        "artifact keys and every manifest.",
    )

    @field_validator("regions", mode="before")
    @classmethod
    def _split_regions(cls, value: Any) -> Any:
        return split_regions(value)

    def storage_options(self) -> dict[str, Any]:
        """fsspec options for s3:// URLs: endpoint and region (credentials come from the AWS chain)."""
        options: dict[str, Any] = {}
        if self.s3_endpoint_url:
            options["endpoint_url"] = self.s3_endpoint_url
        if self.s3_region:
            options["client_kwargs"] = {"region_name": self.s3_region}
        return options


def split_regions(value: Any) -> list[str] | None:
    """A comma-separated string or a list as a list of region names; None when nothing is left.

    >>> split_regions(" north,, south "), split_regions(""), split_regions(None)
    (['north', 'south'], None, None)
    """
    if isinstance(value, str):
        value = value.split(",")
    if value is None:
        return None
    return [str(part).strip() for part in value if str(part).strip()] or None


def load_settings(**overrides: Any) -> Settings:
    """Settings from this process's environment, with explicit overrides (e.g. command options).

    Invalid values end as a `ConfigurationError` naming the variable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as error:
        first = error.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "?"
        name = field if field.isupper() else f"{ENV_PREFIX}{field.upper()}"
        raise ConfigurationError(f"invalid setting {name}: {first['msg']}") from None


def forwarded_environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables a Dask worker started by this process needs (settings, Prefect, AWS)."""
    source = os.environ if environ is None else environ
    return {name: value for name, value in source.items() if name.startswith(FORWARDED_PREFIXES)}


def template_environment() -> dict[str, str]:
    """The environment for prefect.yaml's ``{{ $NAME }}`` templates, with our settings' defaults
    for RETAIL_ETL_* names it lacks."""
    settings = load_settings()
    defaults = {
        f"{ENV_PREFIX}{name.upper()}": str(value)
        for name, value in settings.model_dump().items()
        if isinstance(value, (str, int, float)) and not isinstance(value, bool)
    }
    return {**defaults, **os.environ}


def child_environment(**extra: str) -> dict[str, str]:
    """This process's environment plus `extra`, for a child process (nothing here is changed)."""
    return {**os.environ, **extra}
