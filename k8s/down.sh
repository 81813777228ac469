#!/usr/bin/env bash
# Tear down what k8s/up.sh created. By default the whole local cluster is deleted (kind cluster
# or minikube profile). KEEP_CLUSTER=1 keeps the cluster and removes only the retail-etl releases,
# namespaces and volumes (generated Secrets and volumes are kept by `helm uninstall`, so the
# namespaces are deleted too).
#
# Settings: K8S_PROVIDER (kind|minikube), CLUSTER_NAME (default retail-etl), KEEP_CLUSTER=1,
#           ENVIRONMENTS (default "dev staging prod": every environment up.sh may have installed).
set -euo pipefail

PROVIDER="${K8S_PROVIDER:-kind}"
CLUSTER="${CLUSTER_NAME:-retail-etl}"
ENVIRONMENTS="${ENVIRONMENTS:-dev staging prod}"
RELEASE=retail-etl
PLATFORM_NS=retail-etl

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

case "$PROVIDER" in
  kind) CONTEXT="kind-$CLUSTER" ;;
  minikube) CONTEXT="$CLUSTER" ;;
  *) die "K8S_PROVIDER must be kind or minikube, not '$PROVIDER'" ;;
esac

if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
  if [ "$PROVIDER" = kind ]; then
    command -v kind >/dev/null 2>&1 || die "kind is not installed"
    if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
      log "deleting kind cluster $CLUSTER"
      kind delete cluster --name "$CLUSTER"
    else
      log "no kind cluster $CLUSTER"
    fi
  else
    command -v minikube >/dev/null 2>&1 || die "minikube is not installed"
    if minikube profile list -o json 2>/dev/null | grep -q "\"Name\":\"$CLUSTER\""; then
      log "deleting minikube profile $CLUSTER"
      minikube delete -p "$CLUSTER"
    else
      log "no minikube profile $CLUSTER"
    fi
  fi
  exit 0
fi

command -v kubectl >/dev/null 2>&1 || die "kubectl is not installed"
command -v helm >/dev/null 2>&1 || die "helm is not installed"
k() { kubectl --context "$CONTEXT" "$@"; }
h() { helm --kube-context "$CONTEXT" "$@"; }

# Environment releases first (their hooks and flow runs use the platform).
for ns in $(for env in $ENVIRONMENTS; do printf '%s ' "$RELEASE-$env"; done) "$PLATFORM_NS"; do
  if h status "$RELEASE" --namespace "$ns" >/dev/null 2>&1; then
    log "uninstalling release $RELEASE from $ns"
    h uninstall "$RELEASE" --namespace "$ns" --wait
  fi
  if k get namespace "$ns" >/dev/null 2>&1; then
    log "deleting namespace $ns (flow-run Jobs, kept Secrets and volumes)"
    k delete namespace "$ns" --wait=true
  fi
done
