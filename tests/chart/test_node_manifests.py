"""The manifests kind applies from the node image k8s/cluster-cache.sh builds
(k8s/node/files/kind/manifests): what the real cluster found wrong in them, kept from coming back.
"""

from __future__ import annotations

import re

import yaml
from chartkit import K8S

MANIFESTS = K8S / "node" / "files" / "kind" / "manifests"
CACHE_SCRIPT = (K8S / "cluster-cache.sh").read_text()
# the ServiceAccount local-path-provisioner runs its helper pods with unless told otherwise
HELPER_ACCOUNT = "local-path-provisioner-service-account"


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / name).read_text()) if doc]


def images(doc: object) -> list[str]:
    """Every `image:` value in a document, the helper pod template (a string) included."""
    if isinstance(doc, dict):
        return [image for key, value in doc.items() for image in ([value] if key == "image" else images(value))]
    if isinstance(doc, list):
        return [image for item in doc for image in images(item)]
    if isinstance(doc, str) and "image:" in doc:
        return images(yaml.safe_load(doc))
    return []


def preloaded() -> set[str]:
    """The retail-etl.local images the script builds and preloads, with its versions filled in."""
    versions = dict(re.findall(r"^([A-Z_]+_VERSION)=(\S+)$", CACHE_SCRIPT, re.M))
    names = re.findall(r'^image "(retail-etl\.local/[^"]+)"', CACHE_SCRIPT, re.M)
    return {re.sub(r"\$([A-Z_]+)", lambda m: versions[m.group(1)], name) for name in names}


def test_every_image_is_one_the_cache_builds_and_none_is_pulled():
    for name in ("default-cni.yaml", "default-storage.yaml"):
        for doc in documents(name):
            for image in images(doc):
                assert image in preloaded(), f"{name}: {image} is not built by k8s/cluster-cache.sh"
    pull_policies = re.findall(r"imagePullPolicy: (\S+)", "".join(p.read_text() for p in MANIFESTS.glob("*.yaml")))
    assert pull_policies and set(pull_policies) == {"Never"}


def test_local_path_provisioner_runs_as_the_account_its_helper_pods_use():
    docs = documents("default-storage.yaml")
    accounts = {doc["metadata"]["name"] for doc in docs if doc["kind"] == "ServiceAccount"}
    assert accounts == {HELPER_ACCOUNT}
    (deployment,) = [doc for doc in docs if doc["kind"] == "Deployment"]
    assert deployment["spec"]["template"]["spec"]["serviceAccountName"] == HELPER_ACCOUNT
    for binding in [doc for doc in docs if doc["kind"] in ("RoleBinding", "ClusterRoleBinding")]:
        assert {subject["name"] for subject in binding["subjects"]} <= accounts, binding["metadata"]["name"]


def test_network_policies_are_enforced_with_iptables_not_an_nftables_queue():
    (daemonset,) = [doc for doc in documents("default-cni.yaml") if doc["kind"] == "DaemonSet"]
    args = daemonset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--run-firewall=true" in args
    assert {"--run-router=false", "--run-service-proxy=false", "--enable-cni=false"} <= set(args)
