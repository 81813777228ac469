"""docker/Dockerfile, checked without a Docker engine: its shape and what it installs from. The
image itself is built by .ci/image and run by tests/containers."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "docker" / "Dockerfile").read_text()


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in lines]


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for name, argument in instructions():
        if name == "FROM":
            result.append([])
        if result:
            result[-1].append((name, argument))
    return result


def test_base_image_is_pinned_and_build_is_multi_stage():
    base = re.search(r"ARG PYTHON_IMAGE=(\S+)", DOCKERFILE).group(1)
    # the interpreter CI tests on (3.11), so the image runs the lock's exact pins
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", base), base
    assert len(stages()) == 2


def test_final_stage_is_non_root_with_fixed_uid_and_no_build_tools():
    final = stages()[-1]
    assert ("USER", "10001:10001") in final
    assert ("WORKDIR", "/opt/retail-etl") in final
    assert any(name == "COPY" and "prefect.yaml" in arg for name, arg in final)
    assert any(name == "COPY" and "--from=build /opt/venv" in arg for name, arg in final)
    run_lines = " ".join(arg for name, arg in final if name == "RUN")
    assert not re.search(r"apt-get install|gcc|build-essential|pip install", run_lines)


def test_final_stage_stamps_the_build_id_as_env_and_oci_labels():
    """`--build-arg RETAIL_ETL_BUILD=<sha>` reaches the code (env) and `docker inspect` (labels)."""
    final = stages()[-1]
    args = {arg.split("=", 1)[0] for name, arg in final if name == "ARG"}
    assert {"RETAIL_ETL_BUILD", "RETAIL_ETL_VERSION", "RETAIL_ETL_CREATED"} <= args
    env = " ".join(arg for name, arg in final if name == "ENV")
    assert re.search(r"\bRETAIL_ETL_BUILD=\$\{RETAIL_ETL_BUILD\}", env), env
    labels = " ".join(arg for name, arg in final if name == "LABEL")
    for label, arg in (
        ("revision", "RETAIL_ETL_BUILD"),
        ("version", "RETAIL_ETL_VERSION"),
        ("created", "RETAIL_ETL_CREATED"),
    ):
        assert f'org.opencontainers.image.{label}="${{{arg}}}"' in labels, label
    # declared after the install and the copies, so a new build id reuses their cached layers
    names = [name for name, _ in final]
    assert names.index("ARG") > max(number for number, name in enumerate(names) if name in {"RUN", "COPY"})


def test_everything_copied_exists_and_dockerignore_keeps_the_context_small():
    for name, argument in instructions():
        if name == "COPY" and "--from" not in argument:
            for source in argument.split()[:-1]:
                assert (REPO / source).exists(), source
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", "tests", "charts", ".venv"} <= set(ignored)


def test_the_image_installs_the_locked_set_with_hashes():
    """Every package of '.[kubernetes]' comes from requirements/image.txt (exported from uv.lock),
    hash-checked, with no resolution of its own; the package itself adds no dependency."""
    text = re.sub(r"\\\n", " ", DOCKERFILE)
    installs = re.findall(r"/opt/venv/bin/pip install ([^\n&]+)", text)
    assert [i.split() for i in installs] == [
        ["--no-deps", "--no-compile", "--require-hashes", "-r", "requirements/image.txt"],
        ["--no-deps", "--no-compile", "."],
    ]
    locked = (REPO / "requirements" / "image.txt").read_text()
    pins = re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+) \\\n\s+--hash=sha256:", locked, re.M)
    names = {name.lower() for name, _ in pins}
    assert {"prefect", "prefect-dask", "prefect-kubernetes", "prefect-redis", "redis"} <= names
    assert {"dask", "distributed", "pandas", "pyarrow", "deltalake"} <= names
    assert not names & {"pytest", "moto", "ruff", "mypy", "duckdb"}, "test and bench tools stay out of the image"
