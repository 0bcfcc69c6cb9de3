//go:build !unix

package gateway

import "testing"

type cpuClock struct{}

func startCPU() cpuClock { return cpuClock{} }

// report reports nothing where getrusage is missing.
func (cpuClock) report(*testing.B) {}
