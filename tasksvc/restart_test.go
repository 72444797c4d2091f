package tasksvc_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/faultproxy"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/tasksvc"
	"github.com/warrenrpc/warren/worker"
)

// Confirmed tasks survive a broker restart: a gateway and a tasks worker,
// each with a connection of its own, on a broker they share with nobody;
// tasks are submitted from many goroutines while the broker breaks.
// Every task confirmed to its caller must be processed at least once, and
// every task not confirmed must have been reported to its caller as
// UNAVAILABLE (it may still have been processed: a publishing that reached
// the queue before the confirm was lost).

// faultAMQP reconnects fast and notices a dead peer within seconds.
var faultAMQP = core.Config{Heartbeat: time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond}

// processed records the bodies a worker's handler ran, with counts.
type processed struct {
	mu   sync.Mutex
	runs map[string]int
}

func (p *processed) handler(ctx context.Context, body []byte) error {
	p.mu.Lock()
	p.runs[string(body)]++
	p.mu.Unlock()
	return ctx.Err()
}

func (p *processed) snapshot() map[string]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := make(map[string]int, len(p.runs))
	for k, v := range p.runs {
		m[k] = v
	}
	return m
}

// startFaultWorker runs a tasks worker on url until cleanup.
func startFaultWorker(t testing.TB, url string, n names, p *processed) {
	t.Helper()
	w := tasksvc.NewWorker(tasksvc.WorkerConfig{
		Queue: n.queue, EventsExchange: n.events, WorkerID: "restart",
		Prefetch: 64, Handler: p.handler,
	})
	amqpCfg := faultAMQP
	amqpCfg.URLs = []string{url}
	warrentest.StartWorkers(t, worker.Config{AMQP: amqpCfg}, w)
}

// startFaultGateway serves the Service through url until cleanup.
func startFaultGateway(t testing.TB, url string, n names) *warrentest.Gateway {
	t.Helper()
	amqpCfg := faultAMQP
	amqpCfg.URLs = []string{url}
	return warrentest.StartGateway(t, gateway.Config{AMQP: amqpCfg}, tasksvc.New(n.config()))
}

// waitFor waits up to 60s: a broker node restarts in seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	warrentest.Eventually(t, 60*time.Second, what, cond)
}

// taskOutcomes is what every SubmitTask call was told, by body.
type taskOutcomes struct {
	mu    sync.Mutex
	codes map[string]codes.Code
	msgs  map[codes.Code]string // one message per code, for the log
}

func (o *taskOutcomes) record(body string, err error) {
	c := status.Code(err)
	o.mu.Lock()
	defer o.mu.Unlock()
	o.codes[body] = c
	if _, ok := o.msgs[c]; !ok && err != nil {
		o.msgs[c] = status.Convert(err).Message()
	}
}

// submitUntil submits uniquely numbered tasks from workers goroutines until
// stop is closed, recording every outcome. Calls are paced a little so the
// submissions spread over the whole fault.
func submitUntil(client warrenv1.TaskServiceClient, workers int, prefix string, o *taskOutcomes, confirmed *atomic.Int64, stop <-chan struct{}) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf("%s %d", prefix, next.Add(1))
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := client.SubmitTask(ctx, &warrenv1.SubmitTaskRequest{Body: body})
				cancel()
				o.record(body, err)
				if err == nil {
					confirmed.Add(1)
				} else {
					time.Sleep(5 * time.Millisecond) // an outage fails fast; don't spin
				}
			}
		})
	}
	wg.Wait()
}

// checkTaskOutcomes waits until every confirmed task was processed, then
// checks the outcomes and logs the figures.
func checkTaskOutcomes(t *testing.T, fault string, o *taskOutcomes, p *processed) {
	t.Helper()
	o.mu.Lock()
	outcomes := o.codes
	o.mu.Unlock()
	var confirmedBodies []string
	failed := 0
	byCode := map[codes.Code]int{}
	for body, c := range outcomes {
		byCode[c]++
		switch c {
		case codes.OK:
			confirmedBodies = append(confirmedBodies, body)
		case codes.Unavailable:
			failed++
		default:
			t.Errorf("task %q: got code %v (%s), want OK or UNAVAILABLE", body, c, o.msgs[c])
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	var runs map[string]int
	var lost []string
	for {
		runs = p.snapshot()
		lost = lost[:0]
		for _, b := range confirmedBodies {
			if runs[b] == 0 {
				lost = append(lost, b)
			}
		}
		if len(lost) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(lost) > 0 {
		t.Errorf("%d confirmed tasks never processed (30s after the fault), e.g. %q", len(lost), lost[:min(5, len(lost))])
	}
	time.Sleep(200 * time.Millisecond) // room for stray redeliveries
	runs = p.snapshot()
	duplicates, failedButRun, strangers := 0, 0, 0
	for body, n := range runs {
		if n > 1 {
			duplicates++
		}
		c, ok := outcomes[body]
		switch {
		case !ok:
			strangers++
		case c != codes.OK:
			failedButRun++
		}
	}
	if strangers > 0 {
		t.Errorf("%d processed tasks were never submitted", strangers)
	}
	if len(outcomes) < 1000 {
		t.Errorf("got %d submissions, want at least 1000", len(outcomes))
	}
	if failed == 0 {
		t.Errorf("no submission failed: the %s did not hit the submissions", fault)
	}
	t.Logf("%s: submitted %d, confirmed %d, failed %d (UNAVAILABLE; %d of them processed anyway), processed %d, duplicates %d, lost 0 of confirmed: %v",
		fault, len(outcomes), len(confirmedBodies), failed, failedButRun, len(runs), duplicates, len(lost) == 0)
	if msg, ok := o.msgs[codes.Unavailable]; ok {
		t.Logf("%s: an UNAVAILABLE said: %s", fault, msg)
	}
}

func TestFaultConfirmedTasksSurviveBrokerRestart(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNode(t)
	n := newNames(t)
	p := &processed{runs: map[string]int{}}
	startFaultWorker(t, node.URL, n, p)
	gw := startFaultGateway(t, node.URL, n)
	client := warrenv1.NewTaskServiceClient(gw.Conn)

	o := &taskOutcomes{codes: map[string]codes.Code{}, msgs: map[codes.Code]string{}}
	var confirmed atomic.Int64
	stop := make(chan struct{})
	submitted := make(chan struct{})
	go func() {
		defer close(submitted)
		submitUntil(client, 32, "task", o, &confirmed, stop)
	}()

	waitFor(t, "300 tasks confirmed before the restart", func() bool { return confirmed.Load() >= 300 })
	restart := time.Now()
	node.Ctl(t, "stop_app")
	stopped := time.Now()
	node.Ctl(t, "start_app")
	if err := node.WaitUp(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	before := confirmed.Load()
	waitFor(t, "gateway reconnected", gw.Connected)
	waitFor(t, "300 tasks confirmed after the restart", func() bool { return confirmed.Load() >= before+300 })
	recovered := time.Now()
	close(stop)
	<-submitted
	t.Logf("restart: stop_app took %v, start_app until the port answered %v, confirmed again %v after that",
		stopped.Sub(restart).Round(time.Millisecond), up.Sub(stopped).Round(time.Millisecond), recovered.Sub(up).Round(time.Millisecond))
	checkTaskOutcomes(t, "broker restart", o, p)
}

// TestFaultConfirmedTasksSurviveProxyFaults: the same check when the
// gateway's connection is cut by a proxy (FIN or RST) three times while
// tasks are submitted; the worker connects to the broker directly.
func TestFaultConfirmedTasksSurviveProxyFaults(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		fault func(*faultproxy.Proxy) int
	}{
		{"drop", (*faultproxy.Proxy).Drop},
		{"reset", (*faultproxy.Proxy).Reset},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			proxy, url := brokertest.Proxy(t)
			n := newNames(t)
			p := &processed{runs: map[string]int{}}
			startFaultWorker(t, brokertest.Require(t), n, p)
			gw := startFaultGateway(t, url, n)
			client := warrenv1.NewTaskServiceClient(gw.Conn)

			o := &taskOutcomes{codes: map[string]codes.Code{}, msgs: map[codes.Code]string{}}
			var confirmed atomic.Int64
			stop := make(chan struct{})
			submitted := make(chan struct{})
			go func() {
				defer close(submitted)
				submitUntil(client, 32, "task", o, &confirmed, stop)
			}()
			for i := range 3 {
				before := confirmed.Load()
				waitFor(t, "300 more tasks confirmed", func() bool { return confirmed.Load() >= before+300 })
				if n := tt.fault(proxy); n == 0 {
					t.Errorf("fault %d: the proxy had no connection to cut", i+1)
				}
			}
			before := confirmed.Load()
			waitFor(t, "300 tasks confirmed after the last fault", func() bool { return confirmed.Load() >= before+300 })
			close(stop)
			<-submitted
			checkTaskOutcomes(t, "proxy "+tt.name+" x3", o, p)
		})
	}
}
