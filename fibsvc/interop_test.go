package fibsvc_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/fibsvc"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/interop"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/worker"
)

// fib1000 is fib(1000), 209 digits: more than a float64 holds.
const fib1000 = "43466557686937456435688527675040625802564660517371780402481729089536555417949051890403879840079255169295922593080322634775209689623239873322471161642996440906533187938298969649928516003704476137795166849228875"

// TestInteropTutorialRPC: the RPC tutorial's rpc_server and rpc_client,
// in every language, beside warren's worker and gateway, on a queue each
// side declares as its own config says (today's tutorials and warren's
// default: a durable quorum queue; the older tutorials and
// core.QueueClassic: a plain classic one), whichever declares it first.
// Both directions run in both orders: the tutorial's client against
// warren's worker, and warren's gateway against the tutorial's server.
// Warren must declare the queue as the tutorial does (it warns when it
// finds other properties), and the tutorial program must not die of a
// 406.
func TestInteropTutorialRPC(t *testing.T) {
	interop.Matrix(t, func(t *testing.T, c interop.Case) {
		queue := brokertest.Name(t, "rpc")
		var warns interop.Warnings
		// startWarrenWorker runs warren's worker and waits until the queue
		// has consumers in all.
		startWarrenWorker := func(consumers int) *warrentest.Workers {
			t.Helper()
			w := fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, QueueType: c.WarrenType(), Logger: warns.Logger()})
			ws := warrentest.StartWorkers(t, worker.Config{}, w)
			brokertest.WaitConsumers(t, queue, consumers)
			return ws
		}
		clientCallsWarren := func() {
			t.Helper()
			out := interop.Run(t, c.Command(t, "rpc_client", queue, "4", "30", "1000"))
			for _, want := range []string{" [.] Got 3", " [.] Got 832040", " [.] Got " + fib1000} {
				if !slices.Contains(strings.Split(out, "\n"), want) {
					t.Errorf("rpc_client output lacks %q:\n%s", want, out)
				}
			}
		}
		gatewayCallsServer := func(gw *rpcTestGateway, server *interop.Proc) {
			t.Helper()
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			resp, err := gw.fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 30})
			if err != nil {
				t.Fatalf("Fibonacci(30) via rpc_server: %v", err)
			}
			if resp.GetValue() != "832040" {
				t.Errorf("Fibonacci(30) via rpc_server = %s, want 832040", resp.GetValue())
			}
			server.Expect(t, " [.] fib(30)")
		}

		if c.WarrenFirst {
			ws := startWarrenWorker(1)
			clientCallsWarren()
			server := interop.Start(t, c.Command(t, "rpc_server", queue))
			server.Expect(t, "Awaiting RPC requests")
			brokertest.WaitConsumers(t, queue, 2)
			ws.Stop() // the tutorial's server alone consumes
			brokertest.WaitConsumers(t, queue, 1)
			gatewayCallsServer(startRPCGateway(t, gwConfig{RPCQueue: queue}), server)
		} else {
			server := interop.Start(t, c.Command(t, "rpc_server", queue))
			server.Expect(t, "Awaiting RPC requests")
			brokertest.WaitConsumers(t, queue, 1)
			gatewayCallsServer(startRPCGateway(t, gwConfig{RPCQueue: queue}), server)
			startWarrenWorker(2)
			server.Stop() // warren's worker alone consumes
			brokertest.WaitConsumers(t, queue, 1)
			clientCallsWarren()
		}
		warns.WantNone(t)
		c.WantQueue(t, queue, false)
	})
}
