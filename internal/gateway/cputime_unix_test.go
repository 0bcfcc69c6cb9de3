//go:build unix

package gateway

import (
	"syscall"
	"testing"
	"time"
)

// cpuClock is the CPU time (user and system) the process used, read with getrusage.
type cpuClock struct{ start time.Duration }

func cpuNow() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func startCPU() cpuClock { return cpuClock{cpuNow()} }

// report adds the metric cpu-ns/op: the CPU time the process used since startCPU, per op (of
// every thread, so with -cpu 2 both cores' time; set-up before startCPU is not counted).
func (c cpuClock) report(b *testing.B) {
	b.ReportMetric(float64(cpuNow()-c.start)/float64(b.N), "cpu-ns/op")
}
