package route_test

import (
	"runtime"
	"testing"
	"time"

	inventoryv1 "github.com/warrenrpc/warren/examples/inventory/gen/inventory/v1"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// BenchmarkIdleSubscribeStreams: the goroutine stack that 1,000 idle
// streams of a subscribe route (the example's WatchLevels) hold, both ends
// in this process (the gateway's handler goroutine and the client's), per
// stream: what keeping the handler goroutine shallow saves
// (grpcstream.Offload and Sender).
func BenchmarkIdleSubscribeStreams(b *testing.B) {
	const n = 1000
	for range b.N {
		prefix := queuePrefix(b)
		_, client := startInventory(b, prefix)
		stacks := func() uint64 {
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			return ms.StackInuse
		}
		time.Sleep(200 * time.Millisecond)
		s0, g0 := stacks(), runtime.NumGoroutine()
		for range n {
			if _, err := watchFrom(warrentest.Ctx(b), client, &inventoryv1.WatchLevelsRequest{BindingKeys: []string{"x.y"}}); err != nil {
				b.Fatal(err)
			}
		}
		time.Sleep(500 * time.Millisecond)
		perStream := float64(stacks()-s0) / n / 1024
		b.ReportMetric(perStream, "stack-KiB/stream")
		b.ReportMetric(0, "ns/op")
		b.Logf("%d idle WatchLevels streams: %.2f KiB of goroutine stack per stream (both ends), %.2f goroutines per stream",
			n, perStream, float64(runtime.NumGoroutine()-g0)/n)
	}
}
