"""The Helm path of promotion: an environment's values file names its build.

For Helm/GitOps users `k8s/values-<env>.yaml` is the truth: the release image runs the Prefect
worker, the Dask scheduler and workers, the flow-run Jobs and the registration hook, so moving
`image.repository/tag/digest` there moves all of them together. The lines are edited as text, so
comments and layout survive and the diff is what a reviewer sees in the pull request.

>>> parse_image_ref("ghcr.io/acme/retail-etl:abc123@sha256:00ff")
ImageRef(repository='ghcr.io/acme/retail-etl', tag='abc123', digest='sha256:00ff')
>>> print(rewrite_image("environment: dev\\n", ImageRef("retail-etl", "abc123", "")), end="")
environment: dev
<BLANKLINE>
# The promoted build (retail-etl promote rewrites these lines).
image:
  repository: retail-etl
  tag: "abc123"
  digest: ""
"""

from __future__ import annotations

import difflib
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import HelmUpgradeFailed, ValuesFileError

KEYS = ("repository", "tag", "digest")
_TOP_IMAGE = re.compile(r"^image:[ \t]*(#.*)?$")
_TOP_KEY = re.compile(r"^[A-Za-z_][\w.-]*:")


@dataclass(frozen=True)
class ImageRef:
    repository: str
    tag: str
    digest: str

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}" + (f"@{self.digest}" if self.digest else "")


def parse_image_ref(ref: str) -> ImageRef:
    """`repo[:tag][@digest]` split into its parts; a reference without a tag is refused (the chart
    would fall back to its appVersion and the promoted build would be lost)."""
    name, _, digest = ref.strip().partition("@")
    repository, tag = name, ""
    if ":" in name.rsplit("/", 1)[-1]:
        repository, tag = name.rsplit(":", 1)
    if not repository or not tag:
        raise ValuesFileError(f"image reference {ref!r} has no tag: give repository:tag[@digest]")
    if digest and not re.fullmatch(r"[a-z0-9]+:[0-9a-fA-F]+", digest):
        raise ValuesFileError(f"image reference {ref!r} has a malformed digest {digest!r}")
    return ImageRef(repository, tag, digest)


def _render(key: str, value: str) -> str:
    return value if key == "repository" else f'"{value}"'


def rewrite_image(text: str, image: ImageRef) -> str:
    """`text` with its top-level `image:` block set to `image` (keys added where missing, other
    lines and trailing comments untouched); a block is appended after `environment:` if none."""
    lines = text.splitlines(keepends=True)
    wanted = {"repository": image.repository, "tag": image.tag, "digest": image.digest}
    start = next((i for i, line in enumerate(lines) if _TOP_IMAGE.match(line.rstrip("\n"))), None)
    if start is None:
        if any(line.startswith("image:") for line in lines):
            raise ValuesFileError("the values file's top-level image is not a block: write it as image:\\n  tag: ...")
        block = ["\n", "# The promoted build (retail-etl promote rewrites these lines).\n", "image:\n"] + [
            f"  {key}: {_render(key, wanted[key])}\n" for key in KEYS
        ]
        after = next((i + 1 for i, line in enumerate(lines) if line.startswith("environment:")), len(lines))
        if after == len(lines) and lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join(lines[:after] + block + lines[after:])
    end = start + 1  # one past the last indented line of the block
    for index in range(start + 1, len(lines)):
        line = lines[index]
        if line.strip() and not line[0].isspace():
            if _TOP_KEY.match(line):
                break
            continue  # a column-0 comment: part of the block only if indented lines follow
        if line.strip():
            end = index + 1
    indent, last_key = "  ", start
    found: set[str] = set()
    key_line = re.compile(r"^(?P<indent>[ \t]+)(?P<key>repository|tag|digest):(?P<value>[^#\n]*?)(?P<rest>[ \t]*#.*)?$")
    for index in range(start + 1, end):
        match = key_line.match(lines[index].rstrip("\n"))
        if not match:
            continue
        key = match["key"]
        indent, last_key = match["indent"], index
        found.add(key)
        current = match["value"].strip().strip("\"'")
        if current != wanted[key]:
            newline = "\n" if lines[index].endswith("\n") else ""
            lines[index] = f"{indent}{key}: {_render(key, wanted[key])}{match['rest'] or ''}{newline}"
    missing = [f"{indent}{key}: {_render(key, wanted[key])}\n" for key in KEYS if key not in found]
    if missing and not lines[last_key].endswith("\n"):
        lines[last_key] += "\n"
    return "".join(lines[: last_key + 1] + missing + lines[last_key + 1 :])


def unified_diff(before: str, after: str, path: str | Path) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True), after.splitlines(keepends=True), f"a/{path}", f"b/{path}"
        )
    )


def helm_command(release: str, chart: str | Path, namespace: str, values_file: str | Path) -> list[str]:
    """The upgrade that rolls the rewritten values out (worker, Dask, flow-run Jobs and the hook)."""
    return ["helm", "upgrade", "--install", release, str(chart), "-n", namespace, "-f", str(values_file)]


def run_helm(command: list[str]) -> str:
    """Run `command` (from `helm_command`); HelmUpgradeFailed with helm's last line of stderr."""
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise HelmUpgradeFailed(
            "helm is not on PATH: install helm, or commit the rewritten values file and let GitOps sync it"
        ) from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise HelmUpgradeFailed(f"{' '.join(command)} failed ({result.returncode}): {last}")
    return result.stdout
