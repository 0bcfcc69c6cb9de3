package gateway

import (
	"fmt"
	"hash/maphash"
	"net/http/httptest"
	"net/url"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/offerfeed/offerfeed/pkg/gatewayconfig"
)

// BenchmarkDrawHeldAccept is the cost of a held accept: ten drivers accept one offer at once
// through ServeHTTP (a goroutine each), with an in-memory offer service that answers 200. In
// "draw" the ten are held, the window closes (fake clock), the first candidate is forwarded
// and wins, nine are answered 409 lost-draw; in "no-draw" (no fairness) the ten are forwarded.
// Per accept, wall time; the goroutine start and the wait for the ten to be held included.
func BenchmarkDrawHeldAccept(b *testing.B) {
	const group = 10
	for _, mode := range []string{"draw", "no-draw"} {
		b.Run(mode, func(b *testing.B) {
			clock := newFakeClock()
			u, _ := url.Parse("http://upstream.invalid")
			g, err := New(Options{Upstream: u, Transport: cannedTransport{`{"ok":true}`}, Clock: clock,
				MaxTrackedDrivers: 10_000, PodLabels: map[string]string{"app": "offer-service"}})
			if err != nil {
				b.Fatal(err)
			}
			p := fairPolicy("Random")
			p.Accept.MaxAccepts, p.Accept.Window = 0, 0
			if mode == "no-draw" {
				p.Accept.Fairness = nil
				p.Accept.MaxAccepts, p.Accept.Window = 10_000, dur("1s")
			}
			if err := g.Apply(configOf(p)); err != nil {
				b.Fatal(err)
			}
			t := g.active.Load().policy.draws
			drivers := make([]string, 10_000)
			for i := range drivers {
				drivers[i] = fmt.Sprint("driver-", i)
			}
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				offer := "o" + strconv.Itoa(i)
				path := "/offers/" + offer + "/accept"
				for j := 0; j < group; j++ {
					wg.Add(1)
					go func(d string) {
						defer wg.Done()
						r := httptest.NewRequest("POST", path, nil)
						r.Header.Set("X-Driver-Id", d)
						g.ServeHTTP(httptest.NewRecorder(), r)
					}(drivers[(i+j)%len(drivers)])
				}
				if t != nil {
					id := maphash.String(g.seed, offer)
					for {
						t.mu.Lock()
						d := t.open[id]
						n := 0
						if d != nil {
							n = len(d.cands)
						}
						t.mu.Unlock()
						if n == group {
							break
						}
						runtime.Gosched()
					}
				}
				clock.Advance(3 * time.Second)
				wg.Wait()
			}
		})
	}
}

// BenchmarkDrawBookkeeping is the draw's own work per held accept, without HTTP: ten
// candidates join one offer's draw, the window closes (award order, the first signalled),
// the first wins and the nine others are signalled lost.
func BenchmarkDrawBookkeeping(b *testing.B) {
	const group = 10
	for _, award := range []gatewayconfig.Award{gatewayconfig.AwardRandom, gatewayconfig.AwardLeastRecentlyWon} {
		b.Run(string(award), func(b *testing.B) {
			clock := newFakeClock()
			u, _ := url.Parse("http://upstream.invalid")
			g, err := New(Options{Upstream: u, Clock: clock, PodLabels: map[string]string{"app": "offer-service"}})
			if err != nil {
				b.Fatal(err)
			}
			if err := g.Apply(configOf(fairPolicy(award))); err != nil {
				b.Fatal(err)
			}
			t := g.active.Load().policy.draws
			var cs [group]*candidate
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += group {
				id := uint64(i) * 0x9E3779B97F4A7C15
				now := g.nowNS()
				var d *draw
				for j := range cs {
					d, cs[j], _ = t.join(id, uint64(i+j)*0xBF58476D1CE4E5B9, 0, -1, now)
				}
				clock.Advance(3 * time.Second) // closes the window: order, signal the first
				for _, c := range cs {
					if c.state == candTrying {
						<-c.turn
						t.settle(d, c, true)
						break
					}
				}
				for _, c := range cs {
					select {
					case <-c.turn:
					default:
					}
				}
			}
		})
	}
}
