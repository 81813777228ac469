"""docker/Dockerfile, checked without a Docker engine: its shape, and its install step for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
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
    assert re.fullmatch(r"python:3\.12\.\d+-slim-\w+", base), base
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


def test_constraints_pin_every_dependency_exactly():
    text = (REPO / "docker" / "constraints.txt").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[^=\s]+", line) for line in lines), lines[:3]
    names = {line.split("==")[0].lower() for line in lines}
    assert {"prefect", "prefect-dask", "prefect-kubernetes", "prefect-redis", "redis"} <= names
    assert {"dask", "distributed", "pandas", "pyarrow"} <= names


def test_install_step_and_entrypoint_commands_work_in_a_clean_venv(tmp_path):
    """The Dockerfile's install arguments (every package pinned by docker/constraints.txt) in a new
    venv, then the commands the chart runs. uv installs them (the same pinned set as the image's pip,
    in a fraction of the time: CI budget); the image build itself runs pip."""
    install = re.search(r"/opt/venv/bin/pip install ([^\n]+)", re.sub(r"\\\n", " ", DOCKERFILE)).group(1)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    uv = Path(sys.executable).with_name("uv")
    done = subprocess.run(
        f"{uv} pip install --quiet --python {venv}/bin/python {install}",
        shell=True,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    bin_dir = venv / "bin"
    run_env = {**env, "PATH": f"{bin_dir}:{env['PATH']}", "PREFECT_HOME": str(tmp_path / "prefect")}
    for command in (
        ["retail-etl", "--help"],
        ["retail-etl", "register", "--help"],
        ["prefect", "version"],
        ["dask", "--version"],
        ["prefect", "worker", "start", "--help"],
        ["python", "-c", "import prefect_kubernetes, bokeh, retail_etl.orchestration.flows"],
        # the Redis backends a server with several replicas is configured with (the chart's HA mode)
        [
            "python",
            "-c",
            "import prefect_redis.messaging, prefect_redis.ordering, prefect_redis.lease_storage,"
            " prefect_redis.cleanup_queue",
        ],
        ["prefect", "server", "services", "start", "--help"],
    ):
        result = subprocess.run(command, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}{result.stderr[-2000:]}"
    assert (
        "Version:"
        in subprocess.run(["prefect", "version"], env=run_env, capture_output=True, text=True, cwd=tmp_path).stdout
    )
