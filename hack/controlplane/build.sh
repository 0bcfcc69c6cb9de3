#!/usr/bin/env bash
# Builds the envtest control plane (kube-apiserver, kubectl, etcd) from Go modules into the
# directory where setup-envtest would put downloaded binaries, so envtest finds them without
# KUBEBUILDER_ASSETS. Binaries already there are not rebuilt.
#
#   hack/controlplane/build.sh            # build what is missing, print the asset directory
#
# The Kubernetes version is the one kube/go.mod requires (k8s-version.sh); ENVTEST_K8S_VERSION,
# when set, must name the same.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
version="$("$here/k8s-version.sh")"
if [[ -n "${ENVTEST_K8S_VERSION:-}" && "$ENVTEST_K8S_VERSION" != "$version" ]]; then
	echo "controlplane: ENVTEST_K8S_VERSION=$ENVTEST_K8S_VERSION, but $here/kube/go.mod builds Kubernetes $version" >&2
	exit 1
fi
dir="${ENVTEST_ASSETS_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/kubebuilder-envtest/k8s/${version}-$(go env GOOS)-$(go env GOARCH)}"
mkdir -p "$dir"

# build NAME MODULE_DIR PACKAGE
build() {
	local name=$1 mod=$2 pkg=$3
	if [[ -x "$dir/$name" ]]; then
		echo "controlplane: $name present in $dir" >&2
		return
	fi
	echo "controlplane: building $name from $pkg (first build takes minutes; later builds use the Go build cache)" >&2
	local start=$SECONDS tmp="$dir/.$name.tmp"
	(
		cd "$here/$mod"
		CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp" "$pkg"
	) &
	local pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 15
		kill -0 "$pid" 2>/dev/null && echo "controlplane: ... $name still building ($((SECONDS - start))s)" >&2
	done
	wait "$pid"
	mv "$tmp" "$dir/$name"
	echo "controlplane: built $name in $((SECONDS - start))s" >&2
}

build etcd etcd go.etcd.io/etcd/server/v3
build kube-apiserver kube k8s.io/kubernetes/cmd/kube-apiserver
build kubectl kube k8s.io/kubernetes/cmd/kubectl
echo "$dir"
