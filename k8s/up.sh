#!/usr/bin/env bash
# Bring retail-etl up on a local Kubernetes cluster, from nothing to deployments ready to run:
#   1. check the tools (kind or minikube, kubectl, helm, docker),
#   2. create the cluster (kind by default; K8S_PROVIDER=minikube uses minikube),
#   3. build the retail-etl image and load it into the cluster,
#   4. install the platform release (Prefect server + MinIO) in namespace retail-etl,
#   5. copy the MinIO credentials into each environment namespace as its S3 secret,
#   6. install one release per environment (worker + Dask + registration) in retail-etl-<env>,
#   7. print how to open the UI and the MinIO console and how to trigger a run.
# Safe to re-run: every step is create-if-missing or `helm upgrade --install`.
#
# Settings (environment variables):
#   K8S_PROVIDER        kind (default) or minikube
#   CLUSTER_NAME        cluster / minikube profile name (default retail-etl)
#   ENVIRONMENTS        environments to install, space-separated (default "dev"; e.g. "dev staging prod")
#   IMAGE_TAG           tag of the retail-etl image (default: the chart's appVersion)
#   BUILD_ID            build id stamped into the image as RETAIL_ETL_BUILD and its OCI revision label
#                       (default: the short git SHA of the checkout, "-dirty" with uncommitted changes)
#   SKIP_BUILD=1        do not build the image (it must already exist locally)
#   HELM_TIMEOUT        per-release wait (default 10m)
#   MINIKUBE_START_ARGS extra `minikube start` flags (default "--cni=calico --cpus=4 --memory=8g";
#                       calico makes minikube enforce NetworkPolicies)
# On a machine with no container registry (k8s/cluster-cache.sh builds the first two):
#   KIND_NODE_IMAGE     the kind node image to create the cluster from (e.g. retail-etl-kind-node:v1.34.4)
#   PYTHON_IMAGE        the Python base the image is built on (e.g. retail-etl-standin-python:bookworm)
#   S3_ENDPOINT_URL     use this S3 store instead of installing MinIO (its image is in a registry);
#                       the keys come from AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the buckets
#                       landing and warehouse-<env> must exist
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CHART="$ROOT/charts/retail-etl"
PROVIDER="${K8S_PROVIDER:-kind}"
CLUSTER="${CLUSTER_NAME:-retail-etl}"
ENVIRONMENTS="${ENVIRONMENTS:-dev}"
HELM_TIMEOUT="${HELM_TIMEOUT:-10m}"
MINIKUBE_START_ARGS="${MINIKUBE_START_ARGS:---cni=calico --cpus=4 --memory=8g}"
RELEASE=retail-etl
PLATFORM_NS=retail-etl

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed: $2"; }

default_tag() {
  sed -n 's/^appVersion:[[:space:]]*"\{0,1\}\([^"]*\)"\{0,1\}[[:space:]]*$/\1/p' "$CHART/Chart.yaml"
}
IMAGE_TAG="${IMAGE_TAG:-$(default_tag)}"
[ -n "$IMAGE_TAG" ] || die "cannot read appVersion from $CHART/Chart.yaml; set IMAGE_TAG"
[ "$IMAGE_TAG" != latest ] || die "IMAGE_TAG must be a pinned tag, not latest"
IMAGE="retail-etl:$IMAGE_TAG"

# The build id: what every manifest, artifact and deployment of this image names as its build.
default_build_id() {
  local sha
  sha="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)" || return 0
  if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    sha="$sha-dirty"
  fi
  printf '%s' "$sha"
}
BUILD_ID="${BUILD_ID:-$(default_build_id)}"

# -- 1. tools ---------------------------------------------------------------------------------
case "$PROVIDER" in
  kind) need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
  minikube) need minikube "https://minikube.sigs.k8s.io/docs/start/" ;;
  *) die "K8S_PROVIDER must be kind or minikube, not '$PROVIDER'" ;;
esac
need kubectl "https://kubernetes.io/docs/tasks/tools/"
need helm "https://helm.sh/docs/intro/install/"
need docker "https://docs.docker.com/get-docker/"
docker info >/dev/null 2>&1 || die "the docker daemon is not reachable (is Docker running?)"
for env in $ENVIRONMENTS; do
  [ -f "$ROOT/k8s/values-$env.yaml" ] || die "no k8s/values-$env.yaml for environment '$env'"
done

# -- 2. cluster --------------------------------------------------------------------------------
if [ "$PROVIDER" = kind ]; then
  CONTEXT="kind-$CLUSTER"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    log "kind cluster $CLUSTER exists"
  else
    log "creating kind cluster $CLUSTER"
    kind create cluster --name "$CLUSTER" --config "$ROOT/k8s/kind.yaml" --wait 180s \
      ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"}
  fi
else
  CONTEXT="$CLUSTER"
  if minikube -p "$CLUSTER" status >/dev/null 2>&1; then
    log "minikube profile $CLUSTER is running"
  else
    log "starting minikube profile $CLUSTER"
    # shellcheck disable=SC2086 # MINIKUBE_START_ARGS is a list of flags
    minikube start -p "$CLUSTER" $MINIKUBE_START_ARGS
  fi
fi
k() { kubectl --context "$CONTEXT" "$@"; }
h() { helm --kube-context "$CONTEXT" "$@"; }
k get nodes >/dev/null || die "cannot reach the cluster through context $CONTEXT"

# -- 3. image ----------------------------------------------------------------------------------
if [ "${SKIP_BUILD:-0}" = 1 ]; then
  log "using the existing image $IMAGE"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE does not exist locally (unset SKIP_BUILD)"
else
  log "building $IMAGE (build ${BUILD_ID:-unstamped})"
  docker build -f "$ROOT/docker/Dockerfile" -t "$IMAGE" \
    ${PYTHON_IMAGE:+--build-arg PYTHON_IMAGE="$PYTHON_IMAGE"} \
    --build-arg RETAIL_ETL_BUILD="$BUILD_ID" \
    --build-arg RETAIL_ETL_VERSION="$IMAGE_TAG" \
    --build-arg RETAIL_ETL_CREATED="$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    "$ROOT"
fi
log "loading $IMAGE into the cluster"
if [ "$PROVIDER" = kind ]; then
  kind load docker-image "$IMAGE" --name "$CLUSTER"
else
  minikube -p "$CLUSTER" image load "$IMAGE"
fi

# -- namespaces and cluster identity -----------------------------------------------------------
ensure_namespace() {
  k create namespace "$1" --dry-run=client -o yaml | k apply -f - >/dev/null
}
ensure_namespace "$PLATFORM_NS"
for env in $ENVIRONMENTS; do ensure_namespace "$RELEASE-$env"; done
# Prefect's cluster identity for events; passed in so the worker needs no access to kube-system.
CLUSTER_UID="$(k get namespace kube-system -o jsonpath='{.metadata.uid}')"

# -- 4. platform release -----------------------------------------------------------------------
S3_ENDPOINT_URL="${S3_ENDPOINT_URL:-}"
platform_s3=()
env_s3=()
if [ -n "$S3_ENDPOINT_URL" ]; then
  [ -n "${AWS_ACCESS_KEY_ID:-}" ] && [ -n "${AWS_SECRET_ACCESS_KEY:-}" ] \
    || die "S3_ENDPOINT_URL needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (the keys of that store)"
  platform_s3=(--set minio.enabled=false)
  env_s3=(--set-string s3.endpointUrl="$S3_ENDPOINT_URL")
fi
log "installing the platform release (Prefect server${S3_ENDPOINT_URL:-" + MinIO"}) in namespace $PLATFORM_NS"
h upgrade --install "$RELEASE" "$CHART" --namespace "$PLATFORM_NS" \
  -f "$ROOT/k8s/values-platform.yaml" --set-string image.tag="$IMAGE_TAG" "${platform_s3[@]}" \
  --wait --timeout "$HELM_TIMEOUT"

# -- 5. S3 credentials for the environments ----------------------------------------------------
s3_key() {  # the platform MinIO's keys, or those of the external store
  if [ -n "$S3_ENDPOINT_URL" ]; then
    printf '%s' "${!1}"
  else
    k -n "$PLATFORM_NS" get secret "$RELEASE-minio" -o "jsonpath={.data.$1}" | base64 --decode
  fi
}
for env in $ENVIRONMENTS; do
  log "copying the S3 credentials into $RELEASE-$env as Secret $RELEASE-s3"
  # printf is a shell builtin: the keys never appear on a command line.
  printf 'AWS_ACCESS_KEY_ID=%s\nAWS_SECRET_ACCESS_KEY=%s\n' "$(s3_key AWS_ACCESS_KEY_ID)" "$(s3_key AWS_SECRET_ACCESS_KEY)" \
    | k -n "$RELEASE-$env" create secret generic "$RELEASE-s3" --from-env-file=/dev/stdin --dry-run=client -o yaml \
    | k apply -f - >/dev/null
done

# -- 6. environment releases -------------------------------------------------------------------
for env in $ENVIRONMENTS; do
  log "installing the $env release (worker + Dask + registration) in namespace $RELEASE-$env"
  h upgrade --install "$RELEASE" "$CHART" --namespace "$RELEASE-$env" \
    -f "$ROOT/k8s/values-$env.yaml" --set-string image.tag="$IMAGE_TAG" "${env_s3[@]}" \
    --set-string worker.clusterUid="$CLUSTER_UID" \
    --wait --timeout "$HELM_TIMEOUT"
done

log "waiting for the rollouts"
for ns in "$PLATFORM_NS" $(for env in $ENVIRONMENTS; do printf '%s ' "$RELEASE-$env"; done); do
  k -n "$ns" wait --for=condition=Available deployment --all --timeout=300s >/dev/null
  k -n "$ns" rollout status statefulset --timeout=300s >/dev/null 2>&1 || true
  k -n "$ns" get pods -l "app.kubernetes.io/instance=$RELEASE"
done

# -- 7. next steps -----------------------------------------------------------------------------
first_env="${ENVIRONMENTS%% *}"
cat <<NEXT

retail-etl is up ($PROVIDER cluster $CLUSTER, context $CONTEXT, image $IMAGE).

Prefect UI:
  kubectl --context $CONTEXT -n $PLATFORM_NS port-forward svc/$RELEASE-server 4200:4200
  open http://localhost:4200

MinIO console (user = AWS_ACCESS_KEY_ID, password = AWS_SECRET_ACCESS_KEY):
  kubectl --context $CONTEXT -n $PLATFORM_NS port-forward svc/$RELEASE-minio 9001:9001
  open http://localhost:9001
  kubectl --context $CONTEXT -n $PLATFORM_NS get secret $RELEASE-minio -o jsonpath='{.data.AWS_ACCESS_KEY_ID}' | base64 --decode; echo
  kubectl --context $CONTEXT -n $PLATFORM_NS get secret $RELEASE-minio -o jsonpath='{.data.AWS_SECRET_ACCESS_KEY}' | base64 --decode; echo

Land one synthetic day in s3://landing (runs in the cluster, with the environment's S3 settings):
  kubectl --context $CONTEXT -n $RELEASE-$first_env exec deploy/$RELEASE-dask-worker -- retail-etl generate --date 2024-01-15

Trigger a run (with the UI port-forward running; or use the deployment's Run button in the UI):
  export PREFECT_API_URL=http://localhost:4200/api
  prefect deployment run 'daily-sales-etl/daily-sales-etl-$first_env' --param run_date=2024-01-15
  kubectl --context $CONTEXT -n $RELEASE-$first_env get jobs,pods -l retail-etl/role=flow-run --watch

Tear everything down with k8s/down.sh.
NEXT
