"""The build that produced this code: the image's stamped id (RETAIL_ETL_BUILD), else the package version."""

import os

from . import __version__


def build_id() -> str:
    return os.environ.get("RETAIL_ETL_BUILD") or f"{__version__}+local"
