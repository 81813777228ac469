//go:build tools

// Package tools pins the Kubernetes programs the kind node image carries: the node's kubeadm,
// kubelet and kubectl, and the control-plane components that run as its static pods. Built by
// k8s/cluster-cache.sh with `go build`, the version stamped as Kubernetes' own build stamps it.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubeadm"
	_ "k8s.io/kubernetes/cmd/kubectl"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
