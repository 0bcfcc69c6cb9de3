//go:build tools

// Package etcd pins the etcd server that the envtest control plane needs.
package etcd

import _ "go.etcd.io/etcd/server/v3"
