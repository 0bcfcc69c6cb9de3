#!/usr/bin/env bash
# Prints the Kubernetes version of the envtest control plane, such as 1.37.2: the version of
# k8s.io/kubernetes that hack/controlplane/kube/go.mod requires, the one place it is written.
# The Makefile (ENVTEST_K8S_VERSION) and build.sh read it here; internal/testenv has it from
# `make generate` (hack/k8sversion); test/drift checks them and the docs against it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
v="$(awk '
	$1 == "require" && $2 == "(" { inreq = 1; next }
	inreq && $1 == ")" { inreq = 0; next }
	$1 == "require" && $2 == "k8s.io/kubernetes" { print $3 }
	inreq && $1 == "k8s.io/kubernetes" { print $2 }
' "$here/kube/go.mod")"
if [[ ! $v =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
	echo "k8s-version: no single k8s.io/kubernetes version required in $here/kube/go.mod (found '$v')" >&2
	exit 1
fi
echo "${v#v}"
