#!/usr/bin/env bash
# Build, once per machine, everything a kind cluster needs on a machine that reaches no container
# registry and no release download site: programs from their Go modules, images from Debian's
# packages. What it makes (each step skipped when its result is already there):
#   $CACHE/bin/             kind, kubectl (and the node's kubeadm/kubelet), crictl, the runc wrapper
#   images                  registry.k8s.io/{kube-apiserver,kube-controller-manager,kube-scheduler,
#                           kube-proxy,etcd,coredns/coredns,pause} under the names kubeadm asks
#                           for; kube-router (NetworkPolicies), local-path-provisioner and its helper,
#                           MinIO under the chart's image name
#   retail-etl-kind-node:v$KUBERNETES_VERSION   the kind node image, every image above preloaded
# and makes dockerd run privileged containers on this machine (the runc wrapper, see
# k8s/tools/runc-without-sys-resource). Cold: about an hour on 2 cores; then seconds.
#
#   k8s/cluster-cache.sh            build what is missing
#   CACHE=/path k8s/cluster-cache.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${CACHE:-/var/cache/retail-etl-cluster}"
KUBERNETES_VERSION=1.34.4
KIND_VERSION=v0.33.0
ETCD_VERSION=v3.6.5
COREDNS_VERSION=v1.12.1
CRICTL_VERSION=v1.34.0
KUBE_ROUTER_VERSION=v2.1.0
LOCAL_PATH_VERSION=v0.0.30
# MinIO: the Go module proxy serves github.com/minio/minio at this commit only (none of its
# RELEASE.* tags, which are not semantic versions); built under the image name the chart asks for
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MINBASE=retail-etl-standin-minbase:bookworm
NODE_IMAGE="retail-etl-kind-node:v$KUBERNETES_VERSION"
export DOCKER_BUILDKIT=0 CGO_ENABLED=0 GOFLAGS=-buildvcs=false

BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/logs"
log() { printf '==> %s\n' "$*" >&2; }
# What the cache is made from: this script (the versions) and k8s/node, k8s/tools. Every image
# carries it as a label and $CACHE/inputs records it for the programs, so a change rebuilds
# what it touches instead of leaving a stale node image behind.
INPUTS=$( { cat "$ROOT/k8s/cluster-cache.sh"; find "$ROOT/k8s/node" "$ROOT/k8s/tools" -type f -print0 \
  | LC_ALL=C sort -z | xargs -0 cat; } | sha256sum | cut -c1-16)
LABEL=retail-etl.cluster-cache
has_image() {
  [ "$(docker image inspect --format "{{ index .Config.Labels \"$LABEL\" }}" "$1" 2>/dev/null)" = "$INPUTS" ]
}
if [ "$(cat "$CACHE/inputs" 2>/dev/null)" != "$INPUTS" ]; then
  log "the cache's inputs changed (k8s/cluster-cache.sh, k8s/node, k8s/tools): rebuilding its programs"
  find "$BIN" -mindepth 1 ! -name runc-without-sys-resource -delete
fi

# -- the engine, privileged containers, the base ----------------------------------------------
"$ROOT/.ci/image" --engine-only

runtime_wrapper() {
  local wrapper="$BIN/runc-without-sys-resource"
  if [ ! -x "$wrapper" ]; then
    log "building the runc wrapper"
    (cd "$ROOT/k8s/tools/runc-without-sys-resource" && go build -o "$wrapper" .)
  fi
  if docker run --rm --privileged "$MINBASE" true >/dev/null 2>&1; then
    return 0
  fi
  log "dockerd: default runtime $wrapper (privileged containers without CAP_SYS_RESOURCE)"
  python3 - "$wrapper" <<'PY'
import json, pathlib, sys
path = pathlib.Path("/etc/docker/daemon.json")
config = json.loads(path.read_text()) if path.exists() else {}
config.setdefault("runtimes", {})["runc-without-sys-resource"] = {"path": sys.argv[1]}
config["default-runtime"] = "runc-without-sys-resource"
path.parent.mkdir(parents=True, exist_ok=True)
path.write_text(json.dumps(config, indent=2) + "\n")
PY
  "$ROOT/.ci/image" --restart-engine
  docker run --rm --privileged "$MINBASE" true || { echo "error: privileged containers still fail" >&2; exit 1; }
}
runtime_wrapper

# -- programs from their Go modules -------------------------------------------------------------
# go_build PACKAGE VERSION NAME: build a program through a throwaway module that requires it (a
# module whose go.mod has replace directives cannot be `go install`ed directly)
go_build() {
  local target="$BIN/$3"
  [ -x "$target" ] && return 0
  log "building $3 from $1@$2"
  local scratch
  scratch=$(mktemp -d)
  (
    cd "$scratch"
    go mod init "retailetl.local/build-$3"
    go get "$1@$2"
    go build -trimpath -ldflags "-s -w" -o "$target" "$1"
  ) >"$CACHE/logs/$3.log" 2>&1 || { tail -n 30 "$CACHE/logs/$3.log" >&2; exit 1; }
  rm -rf "$scratch"
}
go_build sigs.k8s.io/kind "$KIND_VERSION" kind
go_build sigs.k8s.io/cri-tools/cmd/crictl "$CRICTL_VERSION" crictl
go_build go.etcd.io/etcd/server/v3 "$ETCD_VERSION" etcd
go_build github.com/coredns/coredns "$COREDNS_VERSION" coredns
go_build github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" kube-router
go_build github.com/rancher/local-path-provisioner "$LOCAL_PATH_VERSION" local-path-provisioner
go_build github.com/minio/minio "$MINIO_VERSION" minio

kubernetes_binaries() {
  local programs="kubeadm kubelet kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy"
  local missing=""
  for program in $programs; do [ -x "$BIN/$program" ] || missing="$missing $program"; done
  [ -z "$missing" ] && return 0
  log "building Kubernetes v$KUBERNETES_VERSION:$missing (k8s/node/kubernetes; the longest step)"
  local minor=${KUBERNETES_VERSION#*.}
  minor=${minor%%.*}
  local stamp="" key value
  for pair in "gitVersion=v$KUBERNETES_VERSION" "gitMajor=1" "gitMinor=$minor" "gitTreeState=clean" \
    "buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"; do
    key=${pair%%=*}
    value=${pair#*=}
    stamp="$stamp -X k8s.io/component-base/version.$key=$value -X k8s.io/client-go/pkg/version.$key=$value"
  done
  (
    cd "$ROOT/k8s/node/kubernetes"
    for program in $missing; do
      go build -trimpath -ldflags "-s -w $stamp" -o "$BIN/$program" "k8s.io/kubernetes/cmd/$program"
    done
  ) >"$CACHE/logs/kubernetes.log" 2>&1 || { tail -n 30 "$CACHE/logs/kubernetes.log" >&2; exit 1; }
}
kubernetes_binaries

pause_binary() {
  [ -x "$BIN/pause" ] && return 0
  log "building pause (k8s/node/pause)"
  (cd "$ROOT/k8s/node/pause" && go build -trimpath -ldflags "-s -w" -o "$BIN/pause" .)
}
pause_binary

# -- component images ----------------------------------------------------------------------------
# image NAME DOCKERFILE BINARY...: a small image holding the binaries, under the name the cluster asks for
image() {
  local name=$1 dockerfile=$2
  shift 2
  has_image "$name" && return 0
  log "image $name"
  local context
  context=$(mktemp -d)
  for binary in "$@"; do cp "$BIN/$binary" "$context/"; done
  docker build --quiet -t "$name" --label "$LABEL=$INPUTS" --build-arg MINBASE="$MINBASE" \
    -f "$ROOT/k8s/node/images/$dockerfile" "$context" >/dev/null
  rm -rf "$context"
}
images_kubeadm_lists() {
  "$BIN/kubeadm" config images list --kubernetes-version "v$KUBERNETES_VERSION" 2>/dev/null
}
for name in $(images_kubeadm_lists); do
  component=${name##*/}
  component=${component%%:*}
  case "$component" in
    kube-apiserver | kube-controller-manager | kube-scheduler) image "$name" static.Dockerfile "$component" ;;
    kube-proxy) image "$name" kube-proxy.Dockerfile kube-proxy ;;
    etcd) image "$name" static.Dockerfile etcd ;;
    coredns) image "$name" coredns.Dockerfile coredns ;;
    pause) image "$name" pause.Dockerfile pause ;;
    *) echo "error: kubeadm asks for an image this script cannot build: $name" >&2; exit 1 ;;
  esac
done
PAUSE_IMAGE=$(images_kubeadm_lists | grep /pause:)
image "retail-etl.local/kube-router:$KUBE_ROUTER_VERSION" kube-router.Dockerfile kube-router
image "retail-etl.local/local-path-provisioner:$LOCAL_PATH_VERSION" static.Dockerfile local-path-provisioner
image "retail-etl.local/local-path-helper:bookworm" helper.Dockerfile
# the chart's MinIO image reference (minio.image.repository and .tag in its values.yaml)
chart_minio_image() {
  awk '/^minio:/ {m=1} m && /^[a-z]/ && !/^minio:/ {m=0}
       m && /^    repository:/ {r=$2} m && /^    tag:/ {t=$2} END {print r ":" t}' "$ROOT/charts/retail-etl/values.yaml"
}
MINIO_IMAGE=$(chart_minio_image)
image "$MINIO_IMAGE" minio.Dockerfile minio

# -- the node image ------------------------------------------------------------------------------
node_image() {
  has_image "$NODE_IMAGE" && return 0
  log "node image $NODE_IMAGE"
  local context kind_files
  context=$(mktemp -d)
  kind_files="$(go env GOMODCACHE)/sigs.k8s.io/kind@$KIND_VERSION/images/base/files"
  [ -d "$kind_files" ] || go mod download "sigs.k8s.io/kind@$KIND_VERSION"
  # kind's node layout (entrypoint, systemd units, containerd and kubelet settings), from kind's module
  cp -r "$kind_files" "$context/kind-base"
  chmod -R u+w "$context/kind-base"
  mkdir -p "$context/bin"
  for program in kubeadm kubelet kubectl crictl; do cp "$BIN/$program" "$context/bin/"; done
  cp -r "$ROOT/k8s/node/files" "$context/files"
  printf 'v%s' "$KUBERNETES_VERSION" >"$context/files/kind/version"
  # the sandbox image we built; and no oom_score_adj below containerd's own: lowering it needs
  # CAP_SYS_RESOURCE, which the node does not have here (runc fails "can't get final child's PID")
  sed -i -e "s|sandbox_image = .*|sandbox_image = \"$PAUSE_IMAGE\"|" \
    -e "s|restrict_oom_score_adj = false|restrict_oom_score_adj = true|" "$context/kind-base/etc/containerd/config.toml"
  docker build --quiet -t "$NODE_IMAGE-bare" --build-arg MINBASE="$MINBASE" -f "$ROOT/k8s/node/Dockerfile" "$context" >/dev/null
  rm -rf "$context"

  log "preloading images into the node image"
  local preload
  mapfile -t preload < <(images_kubeadm_lists)
  preload+=(
    "retail-etl.local/kube-router:$KUBE_ROUTER_VERSION"
    "retail-etl.local/local-path-provisioner:$LOCAL_PATH_VERSION"
    "retail-etl.local/local-path-helper:bookworm"
    "$MINIO_IMAGE"
  )
  local builder
  builder=$(docker run -d --privileged --entrypoint sleep "$NODE_IMAGE-bare" infinity)
  # containerd in the background of the one shell that imports, waits for it and reaps it
  # (content only, --no-unpack: no snapshotter needed inside the build container)
  docker save "${preload[@]}" | docker exec -i "$builder" bash -c '
    set -e
    containerd >/tmp/containerd.log 2>&1 &
    daemon=$!
    for _ in $(seq 100); do ctr version >/dev/null 2>&1 && break; sleep 0.2; done
    ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests -
    kill "$daemon"
    wait "$daemon" || true
    rm -f /tmp/containerd.log'
  docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change "LABEL $LABEL=$INPUTS" "$builder" "$NODE_IMAGE" >/dev/null
  docker rm -f "$builder" >/dev/null
  docker rmi "$NODE_IMAGE-bare" >/dev/null
}
node_image

printf '%s\n' "$INPUTS" >"$CACHE/inputs"
log "cluster cache ready: $BIN, node image $NODE_IMAGE"
