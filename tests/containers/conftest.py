"""Fixtures of the container tests: the images `.ci/image` builds, run on a real Docker engine.

Without those images (a laptop with no Docker engine, or `.ci/image` not run yet) the tests are
skipped with that reason; `.ci/run` builds them first and sets RETAIL_ETL_REQUIRE_IMAGES=1, so
there a missing image fails instead.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
# the test modules import pods (this folder) and chartkit (the chart tests' helpers)
sys.path[:0] = [str(HERE), str(HERE.parent / "chart")]

from chartkit import REPO  # noqa: E402
from pods import docker, image_exists, moto_image  # noqa: E402


def require_images(*names: str) -> None:
    engine = docker("info", check=False) if shutil.which("docker") else None
    missing = [name for name in names if engine is None or engine.returncode != 0 or not image_exists(name)]
    if not missing:
        return
    reason = (
        f"images {', '.join(missing)} not built (no Docker engine answers, or .ci/image was not run): "
        "run .ci/image first"
    )
    if os.environ.get("RETAIL_ETL_REQUIRE_IMAGES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def product_image() -> str:
    """The product's image under the name the chart renders by default (retail-etl:<appVersion>)."""
    app_version = re.search(r'^appVersion:\s*"?([^"\s]+)', (REPO / "charts/retail-etl/Chart.yaml").read_text(), re.M)
    name = f"retail-etl:{app_version.group(1)}"
    require_images(name)
    return name


@pytest.fixture(scope="session")
def s3_image() -> str:
    name = moto_image()
    require_images(name)
    return name
