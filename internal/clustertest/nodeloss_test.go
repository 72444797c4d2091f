package clustertest

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// kills is how many times each kind of node is killed: WARREN_CLUSTER_KILLS,
// default 2 (make test's size).
func kills(t *testing.T) int {
	if s := os.Getenv("WARREN_CLUSTER_KILLS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("WARREN_CLUSTER_KILLS=%q: want a positive count", s)
		}
		return n
	}
	return 2
}

// processed records the tasks the workers ran, by body.
type processed struct {
	mu    sync.Mutex
	count map[string]int
}

func (p *processed) handler(_ context.Context, body []byte) error {
	p.mu.Lock()
	p.count[string(body)]++
	p.mu.Unlock()
	return nil
}

func (p *processed) times(id string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count[id]
}

// kill is one kill -9 of a node.
type kill struct {
	kind      string // the fault
	node      *brokertest.ClusterNode
	at        time.Time
	gatewayOn bool      // the gateway was connected to the node
	restart   time.Time // when the test began to start the node again
}

const (
	killGatewayNode = "kill -9 the gateway's node"
	killTaskLeader  = "kill -9 the task queue's leader"
)

// TestNodeLossUnderLoad runs a gateway and two workers on a three-node
// cluster of the test's own, by three URLs each, with Fibonacci callers,
// task submitters and log subscriptions busy throughout, and kills with
// SIGKILL, WARREN_CLUSTER_KILLS times each (default 2), the node the
// gateway is connected to and the node that leads the task queue,
// restarting the node after each kill. It checks that:
//   - every Fibonacci call that failed failed with UNAVAILABLE, and the
//     calls in flight on a lost connection failed at once (within 2 s of the
//     kill), never at their deadline;
//   - new calls succeed within 5 s of every kill;
//   - every task confirmed to its caller is processed at least once, and
//     every submission that was not confirmed failed with UNAVAILABLE;
//   - subscriptions on the gateway's lost node end with UNAVAILABLE, and
//     the ones subscribed again receive logs;
//   - health goes NOT_SERVING when the gateway's node dies, and back.
//
// It logs the table the README shows.
func TestNodeLossUnderLoad(t *testing.T) {
	n := kills(t)
	began := time.Now()
	cluster := brokertest.StartCluster(t, 3)
	t.Logf("cluster of 3 nodes up in %v", time.Since(began).Round(time.Second))
	urls := cluster.URLs()
	rotate := func(k int) []string { return append(slices.Clone(urls[k:]), urls[:k]...) }
	rpcQueue, taskQueue, events, logs := name("rpc"), name("tasks"), name("events"), name("logs")

	backoff := core.Config{MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	done := &processed{count: map[string]int{}}
	for k := 1; k <= 2; k++ {
		amqpCfg := backoff
		amqpCfg.URLs = rotate(k)
		amqpCfg.Name = fmt.Sprintf("warren-cluster-worker-%d", k)
		warrentest.StartWorkers(t, worker.Config{AMQP: amqpCfg},
			fibsvc.NewWorker(fibsvc.WorkerConfig{Queue: rpcQueue, Logger: warrentest.QuietLog}),
			tasksvc.NewWorker(tasksvc.WorkerConfig{
				Queue: taskQueue, EventsExchange: events, Logger: warrentest.QuietLog,
				Handler: done.handler,
			}))
	}
	conns := &connLog{}
	gwAMQP := backoff
	gwAMQP.URLs = rotate(0)
	gwAMQP.Logger = slog.New(conns)
	gw := warrentest.StartGateway(t, gateway.Config{AMQP: gwAMQP},
		fibsvc.New(fibsvc.Config{Queue: rpcQueue}),
		tasksvc.New(tasksvc.Config{Queue: taskQueue, EventsExchange: events, Logger: warrentest.QuietLog}),
		logsvc.New(logsvc.Config{
			FanoutExchange: logs + ".fanout", DirectExchange: logs + ".direct", TopicExchange: logs + ".topic",
			Logger: warrentest.QuietLog,
		}),
	)
	fib := warrenv1.NewFibonacciServiceClient(gw.Conn)
	waitCall := func(what string) {
		t.Helper()
		warrentest.Eventually(t, 30*time.Second, what, func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			_, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
			return err == nil
		})
	}
	waitCall("a first Fibonacci call")

	var fibCalls, taskCalls calls
	subs := &subscriptions{}
	health := &healthLog{}
	ld := newLoad()
	ld.fib(fib, 4, &fibCalls)
	ld.tasks(warrenv1.NewTaskServiceClient(gw.Conn), 2, "task", &taskCalls)
	ld.subscribe(warrenv1.NewLogServiceClient(gw.Conn), 2, subs)
	ld.watchHealth(gw.Conn, health)
	stopped := false
	defer func() {
		if !stopped {
			ld.stop()
		}
	}()
	time.Sleep(time.Second)

	// steady waits until every node runs, both queues have all three
	// members online, and a call succeeds: a kill before the last killed
	// node has caught up could take a majority away.
	steady := func() {
		t.Helper()
		warrentest.Eventually(t, 60*time.Second, "all three members of the queues online", func() bool {
			for _, q := range []string{taskQueue, rpcQueue} {
				if _, online := cluster.QuorumStatus(t, q, nil); online != 3 {
					return false
				}
			}
			return true
		})
		warrentest.Eventually(t, 30*time.Second, "gateway connected", gw.Connected)
		waitCall("a call before the next kill")
	}

	var ks []kill
	for _, kind := range []string{killGatewayNode, killTaskLeader} {
		for i := range n {
			// A test that times out panics and leaves its nodes
			// running: stop in time for the cleanup instead.
			if d, ok := t.Deadline(); ok && time.Until(d) < 3*time.Minute {
				t.Fatalf("%s #%d: less than 3m left before the test's -timeout; stopping so that the cluster is removed (a kill and restart takes about 30s here)", kind, i+1)
			}
			steady()
			var target *brokertest.ClusterNode
			gwNode := nodeOf(cluster, conns.current())
			if kind == killGatewayNode {
				target = gwNode
			} else {
				target, _ = cluster.QuorumStatus(t, taskQueue, nil)
			}
			if target == nil {
				t.Fatalf("%s #%d: no node to kill (gateway on %q)", kind, i+1, conns.current())
			}
			k := kill{kind: kind, node: target, at: time.Now(), gatewayOn: target == gwNode}
			target.Kill9(t)
			ks = append(ks, k)
			// Let the survivors serve for a while before the node
			// comes back: at least until calls succeed again.
			time.Sleep(2 * time.Second)
			var lastErr error
			warrentest.Eventually(t, 30*time.Second, "calls succeed after the kill", func() bool {
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				defer cancel()
				_, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
				if err != nil && (lastErr == nil || err.Error() != lastErr.Error()) {
					t.Logf("%s #%d: a call %v after the kill: %v", kind, i+1, time.Since(k.at).Round(100*time.Millisecond), err)
				}
				lastErr = err
				return err == nil
			})
			ks[len(ks)-1].restart = time.Now()
			target.Start(t)
			t.Logf("%s #%d: killed %s (gateway on it: %v), restarted it %v after the kill",
				kind, i+1, target.Name, k.gatewayOn, time.Since(k.at).Round(100*time.Millisecond))
		}
	}
	steady()
	time.Sleep(time.Second)
	end := time.Now()
	ld.stop()
	stopped = true

	// Every confirmed task must be processed; give the workers time. A
	// task still unprocessed then counts as lost in the table, and fails
	// the test.
	tasks := taskCalls.snapshot()
	unprocessed := func() int {
		n := 0
		for _, c := range tasks {
			if c.code == codes.OK && done.times(c.id) == 0 {
				n++
			}
		}
		return n
	}
	for wait := time.Now().Add(60 * time.Second); unprocessed() > 0 && time.Now().Before(wait); {
		time.Sleep(50 * time.Millisecond)
	}
	if lost := unprocessed(); lost > 0 {
		t.Errorf("%d confirmed tasks were not processed within 60s of the end: lost", lost)
	}

	fibs := fibCalls.snapshot()
	hs := health.snapshot()
	ended := subs.ended.snapshot()
	type row struct {
		label                             string
		kills                             int
		detect, recover, inflight, health []time.Duration
		failed                            map[codes.Code]int
		ok                                int
		rejoinFailed                      map[codes.Code]int // while the killed node came back
		subsEnded, subsRefused            map[codes.Code]int
		submitted, confirmed, done, lost  int
		failedDone                        int
		taskFailed                        map[codes.Code]int
	}
	var rows []*row
	rowOf := func(k kill) *row {
		label := k.kind
		if k.kind == killTaskLeader {
			if k.gatewayOn {
				label += ", the gateway's node too"
			} else {
				label += ", not the gateway's"
			}
		}
		for _, r := range rows {
			if r.label == label {
				return r
			}
		}
		r := &row{label: label, failed: map[codes.Code]int{}, subsEnded: map[codes.Code]int{}, subsRefused: map[codes.Code]int{}, rejoinFailed: map[codes.Code]int{}, taskFailed: map[codes.Code]int{}}
		rows = append(rows, r)
		return r
	}
	var dups, before int
	for _, c := range tasks {
		if done.times(c.id) > 1 {
			dups++
		}
		if c.start.Before(ks[0].at) {
			before++
		}
	}
	for i, k := range ks {
		r := rowOf(k)
		winEnd := end
		if i+1 < len(ks) {
			winEnd = ks[i+1].at
		}
		in := func(t time.Time) bool { return !t.Before(k.at) && t.Before(winEnd) }
		// Until the node's restart began: the kill's own effect.
		lost := func(t time.Time) bool { return !t.Before(k.at) && t.Before(k.restart) }
		r.kills++
		// Detection: the first failure a caller saw, or the gateway's
		// connection loss, whichever came first.
		detect := time.Duration(-1)
		first := func(d time.Duration) {
			if detect < 0 || d < detect {
				detect = d
			}
		}
		if e, ok := conns.after(k.at, false); ok && in(e.at) {
			first(e.at.Sub(k.at))
		}
		var lastFailStart time.Time
		var inflightMax time.Duration = -1
		for _, c := range fibs {
			if !in(c.end) {
				continue
			}
			if c.code == codes.OK {
				r.ok++
				continue
			}
			r.failed[c.code]++
			if !lost(c.end) {
				r.rejoinFailed[c.code]++
				continue
			}
			first(c.end.Sub(k.at))
			if c.start.After(lastFailStart) {
				lastFailStart = c.start
			}
			if c.start.Before(k.at) {
				inflightMax = max(inflightMax, c.end.Sub(k.at))
				if c.code != codes.Unavailable {
					t.Errorf("%s #%d: a call in flight at the kill failed with %v after %v; want UNAVAILABLE", k.kind, i+1, c.code, c.end.Sub(k.at))
				}
			}
		}
		logFailures(t, fmt.Sprintf("%s #%d: Fibonacci", k.kind, i+1), k.at, k.restart, fibs, in)
		logFailures(t, fmt.Sprintf("%s #%d: SubmitTask", k.kind, i+1), k.at, k.restart, tasks, in)
		if inflightMax >= 0 {
			r.inflight = append(r.inflight, inflightMax)
			if inflightMax > 2*time.Second {
				t.Errorf("%s #%d: a call in flight at the kill failed %v after it; want at once", k.kind, i+1, inflightMax)
			}
		}
		// Tasks, by the kill in whose window they were submitted.
		for _, c := range tasks {
			if in(c.end) && c.code != codes.OK {
				first(c.end.Sub(k.at))
			}
			if !in(c.start) {
				continue
			}
			r.submitted++
			got := done.times(c.id)
			if c.code == codes.OK {
				r.confirmed++
				if got > 0 {
					r.done++
				} else {
					r.lost++
				}
				continue
			}
			r.taskFailed[c.code]++
			if got > 0 {
				r.failedDone++
			}
			if c.code != codes.Unavailable {
				t.Errorf("task %s failed with %v; want UNAVAILABLE", c.id, c.code)
			}
		}
		if detect >= 0 {
			r.detect = append(r.detect, detect)
		}
		// Recovery: the end of the first successful call that started
		// after the kill and after every call that failed before the
		// node's restart began.
		recovered := time.Duration(-1)
		for _, c := range fibs {
			if c.code == codes.OK && !c.start.Before(k.at) && c.start.After(lastFailStart) && lost(c.end) {
				recovered = c.end.Sub(k.at)
				break
			}
		}
		r.recover = append(r.recover, recovered)
		if recovered < 0 || recovered > 5*time.Second {
			t.Errorf("%s #%d: new calls succeed %v after the kill; want within 5s", k.kind, i+1, ms(recovered))
		}
		// Health: NOT_SERVING after the kill, and for how long.
		wentDown := false
		for j, h := range hs {
			if in(h.at) && h.status != healthpb.HealthCheckResponse_SERVING {
				back := end
				for _, h2 := range hs[j+1:] {
					if h2.status == healthpb.HealthCheckResponse_SERVING {
						back = h2.at
						break
					}
				}
				r.health = append(r.health, back.Sub(h.at))
				if back.Sub(h.at) > 10*time.Second {
					t.Errorf("%s #%d: health NOT_SERVING for %v after the kill; want SERVING again within 10s", k.kind, i+1, ms(back.Sub(h.at)))
				}
				wentDown = true
				break
			}
		}
		if k.gatewayOn && !wentDown {
			t.Errorf("%s #%d: health did not go NOT_SERVING when the gateway's node died", k.kind, i+1)
		}
		heldEnded := 0
		for _, e := range ended {
			if !in(e.end) {
				continue
			}
			if e.id == "held" {
				r.subsEnded[e.code]++
				heldEnded++
			} else {
				r.subsRefused[e.code]++
			}
			if e.code != codes.Unavailable {
				t.Errorf("%s #%d: a subscription ended with %v; want UNAVAILABLE", k.kind, i+1, e.code)
			}
		}
		if k.gatewayOn && heldEnded == 0 {
			t.Errorf("%s #%d: no subscription ended when the gateway's node died", k.kind, i+1)
		}
	}
	for _, r := range rows {
		for c, cnt := range r.failed {
			if c != codes.Unavailable {
				t.Errorf("%s: %d Fibonacci calls failed with %v; want UNAVAILABLE", r.label, cnt, c)
			}
		}
	}
	subs.mu.Lock()
	received, lastRecv := subs.received, subs.lastRecv
	subs.mu.Unlock()
	if lastRecv.Before(ks[len(ks)-1].at) {
		t.Errorf("the subscriptions received nothing after the last kill (%d logs in all)", received)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "node loss under load (%d kills of each kind; 4 Fibonacci callers, 2 task submitters, 2 log subscriptions throughout; %v in all):\n", n, time.Since(began).Round(time.Second))
	fmt.Fprintf(&b, "| fault | kills | detect p50 / max | recover p50 / max | in-flight calls failed within (max) | calls ok / failed, how (of them while the node came back) | health NOT_SERVING for (max) | held subscriptions ended; resubscriptions refused | tasks submitted / confirmed / processed / lost | not confirmed, failed how (processed anyway) |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|---|\n")
	var total struct{ submitted, confirmed, done int }
	for _, c := range tasks {
		total.submitted++
		if c.code == codes.OK {
			total.confirmed++
			if done.times(c.id) > 0 {
				total.done++
			}
		}
	}
	for _, r := range rows {
		var nf int
		for _, c := range r.failed {
			nf += c
		}
		healthCol := "stayed SERVING"
		if len(r.health) > 0 {
			healthCol = fmt.Sprintf("%d times (%s)", len(r.health), ms(slices.Max(r.health)))
		}
		inflight := "none failed"
		if len(r.inflight) > 0 {
			inflight = ms(slices.Max(r.inflight))
		}
		var nr int
		for _, c := range r.rejoinFailed {
			nr += c
		}
		fmt.Fprintf(&b, "| %s | %d | %s / %s | %s / %s | %s | %d / %d: %s (%d) | %s | %s; refused %s | %d / %d / %d / %d | %s (%d) |\n",
			r.label, r.kills, ms(percentile(r.detect, 50)), ms(percentile(r.detect, 100)),
			ms(percentile(r.recover, 50)), ms(percentile(r.recover, 100)), inflight,
			r.ok, nf, codeCounts(r.failed), nr, healthCol, codeCounts(r.subsEnded), codeCounts(r.subsRefused),
			r.submitted, r.confirmed, r.done, r.lost, codeCounts(r.taskFailed), r.failedDone)
	}
	fmt.Fprintf(&b, "all tasks: %d submitted (%d before the first kill), %d confirmed, %d of them processed, %d processed more than once (at least once allows it); logs received by the subscriptions: %d",
		total.submitted, before, total.confirmed, total.done, dups, received)
	t.Log(b.String())
	fmt.Println(b.String())
}

// nodeOf is the cluster node whose host:port the (redacted) URL names.
func nodeOf(c *brokertest.Cluster, raw string) *brokertest.ClusterNode {
	u, err := url.Parse(raw)
	if err != nil || raw == "" {
		return nil
	}
	for _, n := range c.Nodes {
		if nu, err := url.Parse(n.URL); err == nil && nu.Host == u.Host {
			return n
		}
	}
	return nil
}

// taskID matches the task ids in SubmitTask's errors.
var taskID = regexp.MustCompile(`\b[0-9a-f]{32}\b`)

// logFailures logs, for the calls that ended in a kill's window, each
// distinct error with its count and when (after the kill) it first and
// last happened.
func logFailures(t *testing.T, what string, killed, restart time.Time, cs []call, in func(time.Time) bool) {
	type span struct {
		n           int
		first, last time.Duration
	}
	byMsg := map[string]*span{}
	var order []string
	for _, c := range cs {
		if c.err == nil || !in(c.end) {
			continue
		}
		d := c.end.Sub(killed)
		msg := taskID.ReplaceAllString(c.err.Error(), "<id>")
		s := byMsg[msg]
		if s == nil {
			s = &span{first: d}
			byMsg[msg] = s
			order = append(order, msg)
		}
		s.n++
		s.last = d
	}
	for _, m := range order {
		s := byMsg[m]
		t.Logf("%s: %d calls failed %v-%v after the kill (the node's restart began %v after it): %s", what, s.n, ms(s.first), ms(s.last), ms(restart.Sub(killed)), m)
	}
}
