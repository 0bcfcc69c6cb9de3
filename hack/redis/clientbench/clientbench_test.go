// Package clientbench compares two Redis clients for the gateway's shared store on one
// EVALSHA round trip (a script of the shared store's shape: read a field, decide, write it,
// set a TTL) against a real redis-server on loopback: github.com/redis/go-redis/v9, which the
// gateway uses, and github.com/redis/rueidis with its auto-pipelining. It is a module of its
// own so that the client not chosen stays out of the offerfeed module (BENCHMARKS.md).
//
//	cd hack/redis/clientbench && go test -bench . -benchtime 2s -cpu 1,2,8
package clientbench

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/redis/rueidis"

	"github.com/offerfeed/offerfeed/internal/redistest"
)

const script = `
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('HGET', KEYS[1], 't')) or now
if tat < now then tat = now end
if tat - now > 1000 then return {0, tat} end
redis.call('HSET', KEYS[1], 't', tat + 10)
redis.call('PEXPIRE', KEYS[1], 60000)
return {1, tat + 10}
`

var keys = func() []string {
	k := make([]string, 1000)
	for i := range k {
		k[i] = "of:{bench:" + strconv.Itoa(i) + "}"
	}
	return k
}()

func BenchmarkGoRedis(b *testing.B) {
	srv := redistest.Start(b)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr})
	defer c.Close()
	s := redis.NewScript(script)
	ctx := context.Background()
	if err := s.Load(ctx, c).Err(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Run(ctx, c, []string{keys[i%len(keys)]}, i).Int64Slice(); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

func BenchmarkRueidis(b *testing.B) {
	srv := redistest.Start(b)
	c, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{srv.Addr}, DisableCache: true})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	s := rueidis.NewLuaScript(script)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			if _, err := s.Exec(ctx, c, []string{keys[i%len(keys)]}, []string{strconv.Itoa(i)}).AsIntSlice(); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}
