//go:build tools

// Package kube pins the Kubernetes commands that the envtest control plane needs.
package kube

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
