// Command loadgen runs the gateway's loopback load test (package internal/loadtest) and prints
// a Markdown report: throughput and added latency of the gateway against a plain
// httputil.ReverseProxy and the offer service direct, and a bot flood.
//
//	go run ./cmd/loadgen
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/offerfeed/offerfeed/internal/loadtest"
)

func main() {
	cfg := loadtest.DefaultConfig()
	flag.IntVar(&cfg.Drivers, "drivers", cfg.Drivers, "distinct drivers of the throughput and latency phases")
	flag.IntVar(&cfg.Concurrency, "concurrency", cfg.Concurrency, "closed-loop workers of the throughput phase")
	flag.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of each throughput and latency measurement")
	flag.IntVar(&cfg.Rate, "rate", cfg.Rate, "requests per second of the latency phase")
	flag.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds of the throughput and latency phases")
	flag.IntVar(&cfg.Humans, "humans", cfg.Humans, "humans of the flood phase")
	flag.DurationVar(&cfg.HumanInterval, "human-interval", cfg.HumanInterval, "how often each human polls")
	flag.IntVar(&cfg.Bots, "bots", cfg.Bots, "bots of the flood phase")
	flag.IntVar(&cfg.BotFactor, "bot-factor", cfg.BotFactor, "bots' total rate as a multiple of the humans' total rate")
	flag.DurationVar(&cfg.FloodDuration, "flood-duration", cfg.FloodDuration, "length of each flood measurement")
	flag.IntVar(&cfg.UpstreamSlots, "upstream-slots", cfg.UpstreamSlots, "requests the limited offer service serves at a time")
	flag.DurationVar(&cfg.UpstreamWork, "upstream-work", cfg.UpstreamWork, "time the limited offer service takes per request")
	flag.StringVar(&cfg.Phases, "phases", cfg.Phases, "phases to run: throughput,latency,flood")
	flag.StringVar(&cfg.RedisAddr, "redis", cfg.RedisAddr, "host:port of a Redis (loopback; flushed) for an added target: the gateway with shared state")
	flag.DurationVar(&cfg.RedisTimeout, "redis-timeout", cfg.RedisTimeout, "the shared gateway's timeout per Redis call (0: the default, 20ms)")
	cpuProfile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	flag.Parse()
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := loadtest.Run(cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		pprof.StopCPUProfile()
		os.Exit(1) //nolint:gocritic // exitAfterDefer: the profile is stopped just above
	}
}
