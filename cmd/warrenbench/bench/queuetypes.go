package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"runtime"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/worker"
)

// queueTypes are the types QueueTypes compares: the older tutorials'
// and today's (warren's default).
var queueTypes = []core.QueueType{core.QueueClassic, core.QueueQuorum}

// typedSubject is one measurement of QueueTypes: what (raw-rpc,
// gateway-rpc, raw-confirmed, SubmitTask) on a queue of typ at
// concurrency c.
type typedSubject struct {
	what string
	typ  core.QueueType
	c    int
	call callFunc
}

func (s typedSubject) key() string { return fmt.Sprintf("%s/%s/%d", s.what, s.typ, s.c) }

// QueueTypes measures Fibonacci RPC (warren's gateway with its default
// reply queue, at concurrency 1 and 64) and SubmitTask (confirmed and
// persistent, at 64) on a classic and on a quorum queue, each next to its
// raw amqp091-go baseline on a queue of the same type, in the same rounds,
// and prints warren against raw for each type and quorum against classic
// for each subject: what the default queue type costs.
func QueueTypes(ctx context.Context, w io.Writer, o Options) error {
	o = o.withDefaults()
	conn, err := amqp.Dial(o.URL)
	if err != nil {
		return err
	}
	defer conn.Close()
	admin, err := conn.Channel()
	if err != nil {
		return err
	}
	var subjects []typedSubject
	taskQueues := map[core.QueueType]string{}
	for _, typ := range queueTypes {
		prefix := fmt.Sprintf("warren.bench.%s.%d", typ, os.Getpid())
		rpc, tasks := prefix+".rpc", prefix+".tasks"
		taskQueues[typ] = tasks
		defer deleteEntities(o.URL, rpc, rpc)
		defer deleteEntities(o.URL, tasks, tasks)

		stop, err := startTypedWorker(o.URL, rpc, typ)
		if err != nil {
			return err
		}
		defer stop()
		gw, err := startGateway(o.URL, rpc, gatewaySetup{mode: core.ReplyQueue})
		if err != nil {
			return err
		}
		defer gw.close()
		raw, err := newRawClient(o.URL, rpc, core.ReplyQueue)
		if err != nil {
			return err
		}
		defer raw.close()

		// The work queue as a worker declares it; no worker consumes it.
		if _, err := core.DeclareQueue(conn, core.QueueSpec{Name: tasks, Durable: true, Type: typ}, quiet); err != nil {
			return err
		}
		pub, err := newRawConfirmed(o.URL, tasks)
		if err != nil {
			return err
		}
		defer pub.conn.Close()
		tgw, err := startTaskGateway(o.URL, tasks)
		if err != nil {
			return err
		}
		defer tgw.close()

		for _, c := range []int{1, 64} {
			subjects = append(subjects,
				typedSubject{"raw-rpc", typ, c, raw.call},
				typedSubject{"gateway-rpc", typ, c, gw.call})
		}
		subjects = append(subjects,
			typedSubject{"raw-confirmed", typ, taskWindow, pub.call},
			typedSubject{"SubmitTask", typ, taskWindow, tgw.call})
	}
	// Each round measures a subject on both types back to back.
	perType := len(subjects) / len(queueTypes)
	order := make([]typedSubject, 0, len(subjects))
	for i := range perType {
		for j := range queueTypes {
			order = append(order, subjects[j*perType+i])
		}
	}

	results := map[string][]Result{}
	fmt.Fprintf(w, "\nQueue types: Fibonacci RPC (n=%d, reply queue) and SubmitTask (persistent, confirmed) on a classic and a quorum queue, raw amqp091-go on the same type; GOMAXPROCS=%d, %v per measurement, %d rounds, medians\n",
		benchN, runtime.GOMAXPROCS(0), o.Duration, o.Rounds)
	for round := range o.Rounds {
		for _, s := range order {
			r := load(ctx, s.c, o.Duration, s.call)
			if s.what == "raw-confirmed" || s.what == "SubmitTask" {
				if _, err := admin.QueuePurge(taskQueues[s.typ], false); err != nil {
					return err
				}
			}
			if r.Err != nil {
				return fmt.Errorf("%s on %s at concurrency %d: %w", s.what, s.typ, s.c, r.Err)
			}
			results[s.key()] = append(results[s.key()], r)
			fmt.Fprintf(w, "  round %d  %-14s %-8s c=%-3d %9.0f calls/s  p50 %8v\n", round+1, s.what, s.typ, s.c, r.Rate, r.P50.Round(time.Microsecond))
		}
	}
	reportQueueTypes(w, o, subjects, results)
	return nil
}

// reportQueueTypes prints the medians and the ratios, each taken within a
// round and then the median over rounds (every subject ran in every
// round).
func reportQueueTypes(w io.Writer, o Options, subjects []typedSubject, results map[string][]Result) {
	fmt.Fprintln(w, "medians:")
	for _, s := range subjects {
		r := median(results[s.key()])
		fmt.Fprintf(w, "  %-14s %-8s c=%-3d %9.0f calls/s  p50 %8v\n", s.what, s.typ, s.c, r.Rate, r.P50.Round(time.Microsecond))
	}
	key := func(what string, typ core.QueueType, c int) string {
		return typedSubject{what: what, typ: typ, c: c}.key()
	}
	rate := func(r Result) float64 { return r.Rate }
	p50 := func(r Result) float64 { return float64(r.P50) }
	ratio := func(label, a, b string, f func(Result) float64) {
		xs := make([]float64, o.Rounds)
		for i := range xs {
			xs[i] = f(results[a][i]) / f(results[b][i])
		}
		fmt.Fprintf(w, "  %-50s %.2f\n", label, medianOf(xs))
	}
	fmt.Fprintln(w, "ratios (per round, then the median over rounds):")
	for _, typ := range queueTypes {
		ratio(fmt.Sprintf("%s: gateway-rpc / raw-rpc, c=64 calls/s", typ), key("gateway-rpc", typ, 64), key("raw-rpc", typ, 64), rate)
		ratio(fmt.Sprintf("%s: gateway-rpc / raw-rpc, c=1 p50", typ), key("gateway-rpc", typ, 1), key("raw-rpc", typ, 1), p50)
		ratio(fmt.Sprintf("%s: SubmitTask / raw-confirmed, c=64 calls/s", typ), key("SubmitTask", typ, taskWindow), key("raw-confirmed", typ, taskWindow), rate)
	}
	q, c := core.QueueQuorum, core.QueueClassic
	for _, what := range []string{"raw-rpc", "gateway-rpc"} {
		ratio("quorum / classic: "+what+", c=64 calls/s", key(what, q, 64), key(what, c, 64), rate)
		ratio("quorum / classic: "+what+", c=1 p50", key(what, q, 1), key(what, c, 1), p50)
	}
	for _, what := range []string{"raw-confirmed", "SubmitTask"} {
		ratio("quorum / classic: "+what+", c=64 calls/s", key(what, q, taskWindow), key(what, c, taskWindow), rate)
	}
}

// startTypedWorker runs warren's Fibonacci worker on queue, declared as
// typ.
func startTypedWorker(url, queue string, typ core.QueueType) (stop func(), err error) {
	g := worker.NewGroup(worker.Config{AMQP: core.Config{URLs: []string{url}, Name: "warren-bench-worker-" + string(typ)}, Logger: quiet},
		fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: queue, QueueType: typ}))
	return runGroup(g, "worker")
}
