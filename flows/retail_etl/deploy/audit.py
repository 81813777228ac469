"""The append-only record of promotions, kept in the target environment's own warehouse.

Each promotion (forced or not, rollbacks too) writes one JSON object to
``<warehouse>/_promotions/<UTC timestamp>-<build>.json`` with an exclusive create, so a record is
never overwritten, and sends the same object to Prefect's event feed (resource
``retail-etl.environment.<env>``) where the UI shows it. A rollback finds the image of an earlier
build in these records.

>>> record_name("2024-01-16T06:00:00.000001Z", "1.0.1+g3f2a/x")
'20240116T060000.000001Z-1.0.1+g3f2a_x.json'
"""

from __future__ import annotations

import getpass
import json
import posixpath
import re
import socket
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..errors import AuditError, RetailEtlError
from ..io.storage import create_exclusive, list_folder, location, read_json, storage_access

FOLDER = "_promotions"
EVENT = "retail-etl.promotion"


@dataclass
class PromotionRecord:
    """Who promoted what, when, from where, past which gate."""

    source_env: str
    target_env: str
    build: str
    previous_build: str | None
    image: str | None
    gate_run_id: str | None
    gate_state: str | None
    forced: bool
    kind: str  # "api" (deployments written), "values-file", "values-file+helm"
    rollback: bool = False
    who: str = field(default_factory=lambda: f"{_user()}@{socket.gethostname()}")
    when: str = field(default_factory=lambda: datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    deployments: dict[str, dict] = field(default_factory=dict)  # family -> flow_name, image, entrypoint

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no USER and no passwd entry (a bare container)
        return "unknown"


def record_name(when: str, build: str) -> str:
    stamp = when.replace("-", "").replace(":", "")
    return f"{stamp}-{re.sub(r'[^A-Za-z0-9._+-]', '_', build)}.json"


def write_record(root_url: str, record: PromotionRecord, options: Mapping[str, Any] | None) -> str:
    """Write `record` under `root_url`/_promotions; returns its URL. AuditError if it cannot be
    written (the caller then changes nothing: no promotion goes unrecorded)."""
    root = location(root_url, options)
    path = root.join(FOLDER, record_name(record.when, record.build))
    data = json.dumps(record.to_json(), indent=2, sort_keys=True).encode()
    try:
        with storage_access("write the promotion record", root.url_of(path)):
            created = create_exclusive(root.fs, path, data)
    except (RetailEtlError, OSError) as error:
        raise AuditError(f"cannot record the promotion under {root.url_of(path)}: {error}; nothing promoted") from None
    if not created:
        raise AuditError(f"promotion record {root.url_of(path)} already exists; nothing promoted, try again")
    return str(root.url_of(path))


def read_records(root_url: str, options: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every promotion record under `root_url`, oldest first."""
    root = location(root_url, options)
    folder = root.join(FOLDER)
    names = sorted(posixpath.basename(name) for name in list_folder(root.fs, folder))
    return [read_json(root.fs, posixpath.join(folder, name)) for name in names if name.endswith(".json")]


def emit(record: PromotionRecord) -> None:
    """The record in Prefect's event feed (best effort: the warehouse record is the durable one)."""
    from prefect.events import emit_event

    emit_event(
        event=EVENT + (".forced" if record.forced else ""),
        resource={"prefect.resource.id": f"retail-etl.environment.{record.target_env}"},
        payload=record.to_json(),
    )
