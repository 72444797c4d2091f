package main

import (
	"bytes"
	"context"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// runCLI runs warren in this process with the environment env (and no
// other) and returns what it printed.
func runCLI(t *testing.T, env map[string]string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	err = runEnv(ctx, args, lookup, &out, &errOut)
	return out.String(), errOut.String(), err
}

// TestFlagsAfterArguments: a flag counts wherever it stands, "--" ends the
// flags. Each case once went wrong: the flags after the message became
// part of it, or fib printed its usage.
func TestFlagsAfterArguments(t *testing.T) {
	t.Parallel()
	g := startFakeGateway(t)
	tests := []struct {
		name   string
		args   []string
		want   proto.Message // the request the gateway gets
		stdout string
	}{
		{
			name:   "send then --queue",
			args:   []string{"send", "--addr", g.addr, "hi there", "--queue", "other"},
			want:   &warrenv1.SendRequest{Queue: "other", Body: "hi there"},
			stdout: " [x] Sent \"hi there\"\n",
		},
		{
			name:   "log emit then --exchange and --routing-key",
			args:   []string{"log", "emit", "--addr", g.addr, "hello", "--exchange", "direct", "--routing-key", "error"},
			want:   &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_DIRECT, RoutingKey: "error", Body: "hello"},
			stdout: " [x] Sent error:hello\n",
		},
		{
			name:   "task submit then --key",
			args:   []string{"task", "submit", "--addr", g.addr, "job", "--key", "abc"},
			want:   &warrenv1.SubmitTaskRequest{Body: "job", IdempotencyKey: "abc"},
			stdout: " [x] Sent \"job\" (task abc)\n",
		},
		{
			name:   "fib then --addr",
			args:   []string{"fib", "30", "--addr", g.addr},
			want:   &warrenv1.FibonacciRequest{N: 30},
			stdout: "832040\n",
		},
		{
			name:   "-- ends the flags",
			args:   []string{"send", "--addr", g.addr, "--", "--queue", "other"},
			want:   &warrenv1.SendRequest{Queue: "hola", Body: "--queue other"},
			stdout: " [x] Sent \"--queue other\"\n",
		},
	}
	// One at a time: each case finds its request last in the gateway.
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, nil, tt.args...)
			if err != nil {
				t.Fatalf("warren %q: %v\n%s", tt.args, err, stderr)
			}
			if stdout != tt.stdout {
				t.Errorf("warren %q printed %q, want %q", tt.args, stdout, tt.stdout)
			}
			reqs := g.got()
			if len(reqs) == 0 || !proto.Equal(reqs[len(reqs)-1], tt.want) {
				t.Errorf("warren %q: the gateway got %v, want %v last", tt.args, reqs, tt.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Usage:\n  warren COMMAND\n"},
		{[]string{"--help"}, "Usage:\n  warren COMMAND\n"},
		{[]string{"help"}, "Usage:\n  warren COMMAND\n"},
		{[]string{"fib", "-h"}, "Usage:\n  warren fib N [flags]\n"},
		{[]string{"fib", "30", "--help"}, "Usage:\n  warren fib N [flags]\n"},
		{[]string{"help", "fib"}, "Usage:\n  warren fib N [flags]\n"},
		{[]string{"log", "--help"}, "Usage:\n  warren log COMMAND\n"},
		{[]string{"help", "log", "tail"}, "Usage:\n  warren log tail [BINDING_KEY...] [flags]\n"},
		{[]string{"task", "submit", "-h"}, "--key string"},
		{[]string{"dev", "--help"}, `--queue-type quorum|classic`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runCLI(t, nil, tt.args...)
			if err != nil || stderr != "" {
				t.Fatalf("warren %q: %v, stderr %q; want help on stdout and exit 0", tt.args, err, stderr)
			}
			if !strings.Contains(stdout, tt.want) {
				t.Errorf("warren %q printed\n%s\nwant it to contain %q", tt.args, stdout, tt.want)
			}
		})
	}
}

// TestUsageErrors: a command line that cannot run exits 2 with one line
// saying why (with the closest command or flag), and where to find help.
func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{nil, "warren: missing command: completion, dev, fib, gateway, log, receive, send, task, version or worker\n"},
		{[]string{"frobnicate"}, "warren: unknown command \"frobnicate\"\n"},
		{[]string{"fibb", "30"}, "warren: unknown command \"fibb\"; did you mean fib?\n"},
		{[]string{"task"}, "warren: task: missing command: stats, submit or watch\n"},
		{[]string{"task", "sumbit"}, "warren: task: unknown command \"sumbit\"; did you mean submit?\n"},
		{[]string{"log", "grep"}, "warren: log: unknown command \"grep\"\n"},
		{[]string{"help", "tial"}, "warren: help: unknown help topic \"tial\"\n"},
		{[]string{"help", "log", "tial"}, "warren: help: unknown help topic \"log tial\"; did you mean tail?\n"},
		{[]string{"fib", "--adr", "x", "30"}, "warren: fib: unknown flag: --adr; did you mean --addr?\n"},
		{[]string{"fib", "-addr", "x", "30"}, "warren: fib: unknown shorthand flag: 'a' in -addr; did you mean --addr?\n"},
		{[]string{"log", "tail", "--exchang", "direct"}, "warren: log tail: unknown flag: --exchang; did you mean --exchange?\n"},
		{[]string{"fib"}, "warren: fib: want 1 argument (N), got 0\n"},
		{[]string{"fib", "1", "2"}, "warren: fib: want 1 argument (N), got 2\n"},
		{[]string{"fib", "abc"}, "warren: fib: want a non-negative integer N, got \"abc\"\n"},
		{[]string{"fib", "--timeout", "soon", "1"}, "warren: fib: invalid argument \"soon\" for \"--timeout\" flag"},
		{[]string{"log", "emit", "--exchange", "headers"}, "warren: log emit: invalid argument \"headers\" for \"--exchange\" flag: want fanout, direct or topic\n"},
		{[]string{"log", "tail", "--exchange", "direct"}, "warren: log tail: the direct exchange needs at least one binding key\n"},
		{[]string{"log", "tail", "--exchange", "topic"}, "warren: log tail: the topic exchange needs at least one binding key\n"},
		{[]string{"gateway", "--reply-mode", "carrier-pigeon"}, "warren: gateway: invalid argument \"carrier-pigeon\" for \"--reply-mode\" flag: want queue or direct\n"},
		{[]string{"worker", "--queue-type", "stream"}, "warren: worker: invalid argument \"stream\" for \"--queue-type\" flag: want quorum or classic\n"},
		{[]string{"dev", "--log-level", "loud"}, "warren: dev: invalid argument \"loud\" for \"--log-level\" flag"},
		{[]string{"worker", "--fib=false", "--tasks=false"}, "warren: worker: no worker to run: --fib and --tasks are both false\n"},
		{[]string{"receive", "hola"}, "warren: receive: unexpected argument \"hola\"\n"},
		{[]string{"log", "tail", "--from", "yesterday", "#"}, "warren: log tail: --from \"yesterday\": want first, last, an offset or an RFC 3339 time"},
		{[]string{"log", "tail", "--from", "-3", "#"}, "warren: log tail: --from -3: offsets start at 0\n"},
		{[]string{"gateway", "--log-history-max-bytes", "12XB"}, "warren: gateway: invalid argument \"12XB\" for \"--log-history-max-bytes\" flag: \"12XB\" is not a size"},
		{[]string{"gateway", "--log-history", "--log-history-max-age", "10ms"}, "warren: gateway: --log-history-max-age 10ms is less than a second, the stream's unit\n"},
		{[]string{"gateway", "--log-history", "--log-history-segment-bytes", "0"}, "warren: gateway: --log-history-segment-bytes must be more than 0\n"},
		{[]string{"dev", "--log-history", "--log-history-direct-keys", "ok," + strings.Repeat("k", 256)}, "warren: dev: --log-history-direct-keys: "},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			stdout, stderr, err := runCLI(t, nil, tt.args...)
			if code := exitCode(err); code != 2 {
				t.Errorf("warren %q: exit %d (%v), want 2", tt.args, code, err)
			}
			if !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("warren %q: stderr %q, want it to start %q", tt.args, stderr, tt.want)
			}
			if !strings.Contains(stderr, "--help' for usage.\n") {
				t.Errorf("warren %q: stderr %q does not say where the usage is", tt.args, stderr)
			}
			if stdout != "" {
				t.Errorf("warren %q: stdout %q, want nothing", tt.args, stdout)
			}
		})
	}
}

// TestCallErrors: a failed call reads "warren: COMMAND: Code: message"
// and exits 1.
func TestCallErrors(t *testing.T) {
	t.Parallel()
	g := startFakeGateway(t)
	_, stderr, err := runCLI(t, nil, "fib", "--addr", g.addr, "100001")
	if got, want := stderr, "warren: fib: InvalidArgument: n must be ≤ 100000\n"; got != want {
		t.Errorf("stderr %q, want %q", got, want)
	}
	if code := exitCode(err); code != 1 {
		t.Errorf("exit %d, want 1", code)
	}

	_, stderr, err = runCLI(t, nil, "log", "emit", "--addr", freeAddr(t), "hi")
	if !strings.HasPrefix(stderr, "warren: log emit: Unavailable: ") || strings.Contains(stderr, "rpc error") || exitCode(err) != 1 {
		t.Errorf("emit to nobody: stderr %q, exit %d; want \"warren: log emit: Unavailable: …\", exit 1", stderr, exitCode(err))
	}
}

// TestEnvironment: every flag defaults to WARREN_<FLAG>; a flag on the
// command line wins; a bad value is a usage error of the command it
// belongs to only.
func TestEnvironment(t *testing.T) {
	t.Parallel()
	g := startFakeGateway(t)

	stdout, stderr, err := runCLI(t, map[string]string{"WARREN_ADDR": g.addr}, "fib", "30")
	if err != nil || stdout != "832040\n" {
		t.Errorf("WARREN_ADDR: %q, %v (%s); want 832040", stdout, err, stderr)
	}

	stdout, stderr, err = runCLI(t, map[string]string{"WARREN_ADDR": "127.0.0.1:1"}, "fib", "30", "--addr", g.addr)
	if err != nil || stdout != "832040\n" {
		t.Errorf("--addr over WARREN_ADDR: %q, %v (%s); want the flag's gateway to answer", stdout, err, stderr)
	}

	env := map[string]string{"WARREN_ADDR": g.addr, "WARREN_EXCHANGE": "topic", "WARREN_ROUTING_KEY": "kern.critical", "WARREN_QUEUE_TYPE": "bogus"}
	if _, stderr, err := runCLI(t, env, "log", "emit", "disk", "full"); err != nil {
		t.Fatalf("log emit from the environment: %v\n%s", err, stderr)
	}
	want := &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: "kern.critical", Body: "disk full"}
	if reqs := g.got(); !proto.Equal(reqs[len(reqs)-1], want) {
		t.Errorf("log emit from the environment sent %v, want %v", reqs[len(reqs)-1], want)
	}

	_, stderr, err = runCLI(t, map[string]string{"WARREN_QUEUE_TYPE": "bogus"}, "worker")
	if exitCode(err) != 2 || !strings.HasPrefix(stderr, "warren: worker: $WARREN_QUEUE_TYPE: want quorum or classic\n") {
		t.Errorf("bad WARREN_QUEUE_TYPE: stderr %q, exit %d; want a usage error naming it", stderr, exitCode(err))
	}

	stdout, _, _ = runCLI(t, map[string]string{"WARREN_LISTEN": "127.0.0.1:6000", "WARREN_FIB": "false"}, "dev", "--help")
	for _, want := range []string{`gRPC listen address (host:port); set by $WARREN_LISTEN (default "127.0.0.1:6000")`, "run the Fibonacci worker; set by $WARREN_FIB\n"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dev --help with WARREN_LISTEN and WARREN_FIB: no %q in\n%s", want, stdout)
		}
	}
}

// TestHelpHidesPasswords: help shows the URLs' defaults, from the
// environment or built in, with their passwords redacted.
func TestHelpHidesPasswords(t *testing.T) {
	t.Parallel()
	env := map[string]string{
		"WARREN_AMQP_URL":       "amqp://app:s3cret@rabbit-a:5672/prod, amqp://app:hunter2@rabbit-b/prod",
		"WARREN_MANAGEMENT_URL": "http://admin:pa55word@rabbit-a:15672",
	}
	for _, args := range [][]string{{"dev", "-h"}, {"gateway", "--help"}, {"help", "worker"}} {
		stdout, _, err := runCLI(t, env, args...)
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{"s3cret", "hunter2", "pa55word"} {
			if strings.Contains(stdout, secret) {
				t.Errorf("warren %q shows the password %q:\n%s", args, secret, stdout)
			}
		}
		if want := `amqp://app:xxxxx@rabbit-a:5672/prod,amqp://app:xxxxx@rabbit-b/prod`; !strings.Contains(stdout, want) {
			t.Errorf("warren %q: no %q in\n%s", args, want, stdout)
		}
	}
	stdout, _, _ := runCLI(t, nil, "gateway", "--help")
	if strings.Contains(stdout, "guest:guest") || !strings.Contains(stdout, `"amqp://guest:xxxxx@127.0.0.1:5672/"`) || !strings.Contains(stdout, `"http://guest:xxxxx@127.0.0.1:15672"`) {
		t.Errorf("gateway --help shows the built-in passwords, or not the redacted URLs:\n%s", stdout)
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"127.0.0.1:50051", "127.0.0.1:50051"},
		{"amqp://guest:guest@127.0.0.1:5672/", "amqp://guest:xxxxx@127.0.0.1:5672/"},
		{"amqp://guest@host/", "amqp://guest@host/"},
		{"amqp://a:b@h1/,amqp://c:d@h2/", "amqp://a:xxxxx@h1/,amqp://c:xxxxx@h2/"},
		{"amqp://a:b%zz@h1/", "xxxxx"},
	}
	for _, tt := range tests {
		if got := redact(tt.in); got != tt.want {
			t.Errorf("redact(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"version"}, {"--version"}} {
		stdout, _, err := runCLI(t, nil, args...)
		if err != nil || stdout != version()+"\n" || !strings.Contains(stdout, runtime.Version()) {
			t.Errorf("warren %q = %q, %v; want %q", args, stdout, err, version())
		}
	}
	bi := &debug.BuildInfo{GoVersion: "go1.99", Main: debug.Module{Version: "v1.2.3"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"},
	}}
	want := "warren version v1.2.3, revision 0123456789ab (modified), go1.99 " + runtime.GOOS + "/" + runtime.GOARCH
	if got := formatVersion(bi, true); got != want {
		t.Errorf("formatVersion = %q, want %q", got, want)
	}
}

func TestCompletion(t *testing.T) {
	t.Parallel()
	for shell, want := range map[string]string{"bash": "__start_warren", "zsh": "#compdef warren", "fish": "complete -c warren"} {
		stdout, _, err := runCLI(t, nil, "completion", shell)
		if err != nil || !strings.Contains(stdout, want) {
			t.Errorf("completion %s: %v; no %q in its %d bytes", shell, err, want, len(stdout))
		}
	}
	// Flag values complete too.
	stdout, _, err := runCLI(t, nil, "__complete", "log", "tail", "--exchange", "")
	if err != nil || !strings.HasPrefix(stdout, "fanout\ndirect\ntopic\n") {
		t.Errorf("completing --exchange: %q, %v", stdout, err)
	}
}

// TestSubscribedLine: the stream commands say they are subscribed on
// stderr only once the gateway sent the stream's header, which warren's
// gateway does once the queue is bound: a script may publish after it.
func TestSubscribedLine(t *testing.T) {
	t.Parallel()
	g := startFakeGatewayHeld(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"log", "tail", "--exchange", "direct", "warning", "error"}, "warren: log tail: subscribed to the direct exchange with binding keys warning, error\n"},
		{[]string{"log", "tail"}, "warren: log tail: subscribed to the fanout exchange\n"},
		{[]string{"task", "watch", "--task", "job-1"}, "warren: task watch: subscribed to the events of task job-1\n"},
		{[]string{"receive", "--queue", "q1"}, "warren: receive: subscribed to queue q1\n"},
	}
	type running struct {
		stderr *lockedBuffer
		cancel context.CancelFunc
		done   chan error
	}
	var rs []running
	for _, tt := range tests {
		ctx, cancel := context.WithCancel(context.Background())
		r := running{stderr: &lockedBuffer{}, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- run(ctx, append(tt.args, "--addr", g.addr), &lockedBuffer{}, r.stderr) }()
		rs = append(rs, r)
	}
	waitFor(t, "every stream to reach the gateway", func() bool { return len(g.got()) == len(tests) })
	time.Sleep(50 * time.Millisecond) // room for a line printed too early
	for i, r := range rs {
		if s := r.stderr.String(); s != "" {
			t.Errorf("warren %q printed %q before the gateway sent the header", tests[i].args, s)
		}
	}
	close(g.subscribe)
	for i, r := range rs {
		waitFor(t, "the subscribed line", func() bool { return strings.HasPrefix(r.stderr.String(), tests[i].want) })
		r.cancel()
		if err := <-r.done; err != nil {
			t.Errorf("warren %q after Ctrl-C: %v, want nil", tests[i].args, err)
		}
	}
}

// TestSubscribeTimeout: a gateway that never sends the header is given up
// on after --timeout.
func TestSubscribeTimeout(t *testing.T) {
	t.Parallel()
	g := startFakeGatewayHeld(t)
	t.Cleanup(func() { close(g.subscribe) })
	_, stderr, err := runCLI(t, nil, "log", "tail", "--addr", g.addr, "--timeout", "100ms")
	if exitCode(err) != 1 || stderr != "warren: log tail: DeadlineExceeded: not subscribed within 100ms\n" {
		t.Errorf("tail with no header: stderr %q, exit %d", stderr, exitCode(err))
	}
}

// TestParseFrom: log tail --from's forms become the request's start.
func TestParseFrom(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		from string
		want *warrenv1.SubscribeLogsRequest
	}{
		{"first", &warrenv1.SubscribeLogsRequest{Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_FIRST}}},
		{"last", &warrenv1.SubscribeLogsRequest{Start: &warrenv1.SubscribeLogsRequest_StartAt{StartAt: warrenv1.HistoryStart_HISTORY_START_LAST}}},
		{"0", &warrenv1.SubscribeLogsRequest{Start: &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: 0}}},
		{"4242", &warrenv1.SubscribeLogsRequest{Start: &warrenv1.SubscribeLogsRequest_StartOffset{StartOffset: 4242}}},
		{at.Format(time.RFC3339), &warrenv1.SubscribeLogsRequest{Start: &warrenv1.SubscribeLogsRequest_StartTime{StartTime: timestamppb.New(at)}}},
	} {
		req := &warrenv1.SubscribeLogsRequest{}
		if err := parseFrom(tc.from, req); err != nil {
			t.Fatalf("--from %s: %v", tc.from, err)
		}
		if !proto.Equal(req, tc.want) {
			t.Errorf("--from %s: request %v, want %v", tc.from, req, tc.want)
		}
	}
}
