"""The built image itself: the commands every workload of the chart runs start under the chart's
hardening (uid 10001, read-only root, no capabilities, /tmp the only writable place), it carries
the build id, and it leaves out what no workload runs."""

from __future__ import annotations

import pytest
from pods import docker

HARDENED = ["--rm", "--read-only", "--user", "10001:10001", "--cap-drop=ALL", "--security-opt", "no-new-privileges",
            "--tmpfs", "/tmp:mode=1777"]  # fmt: skip


def run_in_image(image: str, *command: str) -> str:
    done = docker("run", *HARDENED, "--entrypoint", command[0], image, *command[1:], check=False, timeout=120)
    assert done.returncode == 0, (
        f"{' '.join(command)}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    )
    return done.stdout


@pytest.mark.parametrize(
    "command",
    [
        ["retail-etl", "--help"],
        ["retail-etl", "register", "--help"],
        ["prefect", "version"],
        ["dask", "--version"],
        ["prefect", "worker", "start", "--help"],
        ["prefect", "server", "services", "start", "--help"],
        ["python", "-c", "import prefect_kubernetes, bokeh, retail_etl.orchestration.flows"],
        # the Redis backends a server with several replicas is configured with (the chart's HA mode)
        [
            "python",
            "-c",
            "import prefect_redis.messaging, prefect_redis.ordering, prefect_redis.lease_storage,"
            " prefect_redis.cleanup_queue",
        ],
    ],
    ids=lambda command: " ".join(command)[:40],
)
def test_every_workloads_command_starts_hardened(product_image, command):
    run_in_image(product_image, *command)


def test_every_native_library_loads(product_image):
    """Every shared object in the venv loads (the build strips them: a broken one fails here, not
    in the middle of a night's run)."""
    script = (
        "import ctypes, pathlib, sys\n"
        "site = next(pathlib.Path('/opt/venv/lib').glob('python3*/site-packages'))\n"
        "libraries = sorted(p for p in site.rglob('*.so*') if p.is_file())\n"
        "for path in libraries:\n"
        "    ctypes.CDLL(str(path))\n"
        "print(len(libraries))\n"
    )
    assert int(run_in_image(product_image, "python", "-c", script)) > 50


def test_the_image_carries_its_build_id(product_image):
    labels = docker("image", "inspect", "--format", '{{index .Config.Labels "org.opencontainers.image.revision"}}',
                    product_image).stdout.strip()  # fmt: skip
    stamped = run_in_image(product_image, "python", "-c", "import os; print(os.environ['RETAIL_ETL_BUILD'])").strip()
    assert stamped and stamped == labels


def test_no_build_tools_tests_or_caches_in_the_image(product_image):
    script = (
        "import importlib.util, pathlib\n"
        "site = next(pathlib.Path('/opt/venv/lib').glob('python3*/site-packages'))\n"
        "print(sum(1 for p in site.rglob('tests') if p.is_dir()), sum(1 for _ in site.rglob('*.pyi')),"
        " importlib.util.find_spec('pip') is not None, pathlib.Path('/root/.cache').exists())\n"
    )
    inspected = docker("run", "--rm", "--user", "0", "--entrypoint", "python", product_image, "-c", script)
    assert inspected.stdout.split() == ["0", "0", "False", "False"]
    assert docker("run", "--rm", "--entrypoint", "sh", product_image, "-c", "command -v gcc cc strip",
                  check=False).stdout.strip() == ""  # fmt: skip
