"""Runtime settings, read from `RETAIL_ETL_*` environment variables.

The Helm chart sets the same variables on flow-run Jobs and Dask workers, so the
code has one configuration path everywhere.

>>> import os
>>> os.environ["RETAIL_ETL_REGIONS"] = "north, south"
>>> Settings().regions
['north', 'south']
>>> del os.environ["RETAIL_ETL_REGIONS"]
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """Everything that differs between a laptop and a cluster."""

    model_config = SettingsConfigDict(env_prefix="RETAIL_ETL_", extra="ignore")

    landing: str = Field("./landing", description="Landing root: a path or s3://bucket/prefix.")
    warehouse: str = Field("./warehouse", description="Warehouse root: a path or s3://bucket/prefix.")

    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=AliasChoices("RETAIL_ETL_S3_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        description="S3-compatible endpoint (MinIO); unset means AWS.",
    )
    s3_access_key_id: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RETAIL_ETL_S3_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_access_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("RETAIL_ETL_S3_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")
    )
    s3_region: str | None = Field(
        None, validation_alias=AliasChoices("RETAIL_ETL_S3_REGION", "AWS_REGION", "AWS_DEFAULT_REGION")
    )

    dask_address: str | None = Field(None, description="Scheduler to use; unset starts a LocalCluster.")
    dask_workers: int = Field(2, ge=1, description="Worker processes of the temporary LocalCluster.")
    dask_threads_per_worker: int = Field(1, ge=1)

    regions: Annotated[list[str] | None, NoDecode] = Field(
        None, description="Allowed regions (comma-separated); unset accepts any non-empty region."
    )
    max_quantity: int = Field(10_000, gt=0)
    max_unit_price: float = Field(100_000.0, gt=0)

    io_retries: int = Field(3, ge=0, description="Retries of I/O tasks.")
    retry_delay_seconds: float = Field(2.0, ge=0, description="First retry delay; doubles each retry.")
    retry_jitter_factor: float = Field(0.5, ge=0)
    cache_expiration: timedelta = Field(timedelta(days=7), description="How long extracted files stay cached.")

    batch_bytes: int = Field(32 * 2**20, gt=0, description="Landing bytes per validate-files task (Dask).")
    bucket_bytes: int = Field(64 * 2**20, gt=0, description="Landing bytes per transaction_id bucket.")
    max_buckets: int = Field(64, ge=1, description="Upper bound on transaction_id buckets.")

    schedule_timezone: str = Field("UTC", description="Time zone of the daily schedule and run dates.")

    @field_validator("regions", mode="before")
    @classmethod
    def _split_regions(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",")]
        if value is not None:
            value = [str(part).strip() for part in value if str(part).strip()] or None
        return value

    def storage_options(self, credentials: bool = True) -> dict[str, Any]:
        """fsspec options for s3:// URLs: endpoint and region, and credentials unless told not to."""
        options: dict[str, Any] = {}
        if self.s3_endpoint_url:
            options["endpoint_url"] = self.s3_endpoint_url
        if credentials and self.s3_access_key_id and self.s3_secret_access_key:
            options["key"] = self.s3_access_key_id.get_secret_value()
            options["secret"] = self.s3_secret_access_key.get_secret_value()
        if self.s3_region:
            options["client_kwargs"] = {"region_name": self.s3_region}
        return options

    def aws_environment(self) -> dict[str, str]:
        """The standard AWS variables for our S3 settings, for code that builds its own S3 client
        (Prefect's saved result-storage block holds no credentials)."""
        env: dict[str, str] = {}
        if self.s3_access_key_id and self.s3_secret_access_key:
            env["AWS_ACCESS_KEY_ID"] = self.s3_access_key_id.get_secret_value()
            env["AWS_SECRET_ACCESS_KEY"] = self.s3_secret_access_key.get_secret_value()
        if self.s3_region:
            env["AWS_DEFAULT_REGION"] = self.s3_region
        return env
