package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/faultproxy"
)

// scraped is every line a test saw, from each source, to search for
// secrets.
type scraped struct {
	mu    sync.Mutex
	lines map[string][]string // source → lines
}

func (s *scraped) add(source, text string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lines == nil {
		s.lines = map[string][]string{}
	}
	for line := range strings.SplitSeq(text, "\n") {
		if line != "" {
			s.lines[source] = append(s.lines[source], line)
		}
	}
}

func (s *scraped) addProc(source string, p *proc) {
	s.add(source+" stdout", p.stdout.String())
	s.add(source+" stderr", p.stderr.String())
}

func randomSecret(t *testing.T, prefix string) string {
	t.Helper()
	var b [12]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return prefix + hex.EncodeToString(b[:])
}

// TestSecretsNeverAppear runs warren on a broker node of its own, with a
// user whose password the test chose, and with a bearer token in the
// environment, through every path that could print them: help whose
// defaults come from the environment, a failed dial, a bad password, a
// reconnect, a handler's panic, errors returned to gRPC callers and a
// shutdown. It scrapes every line of every output, and every status
// message, for the secrets, and checks that each path ran. With
// SECRETS_DUMP=1 in the environment it logs every line it scraped.
func TestSecretsNeverAppear(t *testing.T) {
	t.Parallel()
	node := brokertest.StartNode(t)
	password := randomSecret(t, "pw")
	// WARREN_TOKEN is the bearer token of the client commands once they
	// have --token; until then the environment carries it unused, and the
	// scrape checks it all the same.
	token := randomSecret(t, "tok")
	secrets := map[string]string{"password": password, "token": token}
	user := "warren-secrets"
	node.Ctl(t, "add_user", user, password)
	node.Ctl(t, "set_permissions", "-p", "/", user, ".*", ".*", ".*")
	u, err := amqp.ParseURI(node.URL)
	if err != nil {
		t.Fatal(err)
	}
	nodeAddr := net.JoinHostPort(u.Host, fmt.Sprint(u.Port))
	proxy, err := faultproxy.Start(nodeAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	goodURL := fmt.Sprintf("amqp://%s:%s@%s/", user, password, proxy.Addr())
	badURL := fmt.Sprintf("amqp://%s:%s-wrong@%s/", user, password, nodeAddr)
	deadURL := fmt.Sprintf("amqp://%s:%s@%s/", user, password, freeAddr(t))
	// The management API of the task statistics, unreachable, with the
	// password too.
	mgmtURL := fmt.Sprintf("http://%s:%s@%s", user, password, freeAddr(t))
	env := func(amqpURL string) []string {
		return []string{"WARREN_AMQP_URL=" + amqpURL, "WARREN_TOKEN=" + token, "WARREN_MANAGEMENT_URL=" + mgmtURL}
	}
	var out scraped
	paths := map[string]bool{}
	ran := func(path string, ok bool) {
		paths[path] = ok
		if !ok {
			t.Errorf("path %q did not run as the test expected", path)
		}
	}

	t.Run("help", func(t *testing.T) {
		for _, cmd := range []string{"gateway", "worker", "dev", "fib", "task"} {
			p := startProc(t, env(goodURL), cmd, "-h")
			if code := p.wait(t, 10*time.Second); code != 0 {
				t.Errorf("warren %s -h: exit %d", cmd, code)
			}
			out.addProc(cmd+" -h", p)
			if cmd == "gateway" {
				ran("help shows the environment's URL, redacted",
					strings.Contains(p.stdout.String(), "xxxxx@") && strings.Contains(p.stdout.String(), "set by $WARREN_AMQP_URL"))
			}
		}
	})

	t.Run("failed dial", func(t *testing.T) {
		p := startProc(t, env(deadURL), "worker", "--log-format", "json")
		p.waitLog(t, 2, "amqp connect failed", "connection refused")
		p.signal(t, syscall.SIGTERM)
		ran("failed dial exits cleanly", p.wait(t, 20*time.Second) == 0)
		out.addProc("worker, failed dial", p)
	})

	t.Run("bad password", func(t *testing.T) {
		p := startProc(t, env(badURL), "worker")
		p.waitLog(t, 1, "amqp connect failed", "login refused")
		p.signal(t, syscall.SIGTERM)
		ran("bad password exits cleanly", p.wait(t, 20*time.Second) == 0)
		out.addProc("worker, bad password", p)
	})

	t.Run("dev: calls, errors, reconnect, shutdown", func(t *testing.T) {
		addr := freeAddr(t)
		p := startProc(t, env(goodURL), "dev", "--listen", addr, "--heartbeat", "1s")
		defer out.addProc("dev", p)
		waitServing(t, addr)
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fib := warrenv1.NewFibonacciServiceClient(conn)
		callFib := func(n uint32) error {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			_, err := fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: n})
			if err != nil {
				out.add("status of Fibonacci", status.Convert(err).Message())
			}
			return err
		}
		// Client commands, with the token in their environment.
		for _, args := range [][]string{{"fib", "10"}, {"fib", "100001"}, {"task", "stats"}} {
			c := startProc(t, env(goodURL), append(args, "--addr", addr)...)
			c.wait(t, 20*time.Second)
			out.addProc(strings.Join(args, " "), c)
			if args[0] == "task" {
				ran("management API error returned to the caller", strings.Contains(c.stderr.String(), "warren: task stats: "))
			}
		}
		ran("invalid argument returned to the caller", status.Code(callFib(100001)).String() == "InvalidArgument")

		// Cut every connection and refuse new ones: calls fail, dials
		// fail; then let them reconnect.
		p.waitLog(t, 2, "amqp connected") // the gateway's and the workers'
		up := countLines(p.stderr.String(), "amqp connected")
		proxy.Refuse(true)
		if n := proxy.Drop(); n < 2 {
			t.Errorf("dropped %d connections, want the gateway's and the workers'", n)
		}
		p.waitLog(t, 2, "amqp connection lost")
		p.waitLog(t, 1, "amqp connect failed")
		ran("broker gone returned to the caller", status.Code(callFib(10)).String() == "Unavailable")
		proxy.Refuse(false)
		p.waitLog(t, up+2, "amqp connected")
		waitFor(t, "Fibonacci after the reconnect", func() bool { return callFib(10) == nil })
		ran("reconnect", true)

		p.signal(t, syscall.SIGTERM)
		ran("shutdown exits cleanly", p.wait(t, 30*time.Second) == 0)
		ran("shutdown logged", countLines(p.stderr.String(), "signal received") == 1 && countLines(p.stderr.String(), "gateway: drained") == 1)
		ran("access log", countLines(p.stderr.String(), "msg=call", "code=InvalidArgument") >= 2)
	})

	t.Run("handler panic", func(t *testing.T) {
		var logs lockedBuffer
		log := slog.New(slog.NewJSONHandler(&logs, nil))
		defer func() { out.add("panic logs", logs.String()) }()
		queue := "secrets-panic"
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		ssup := core.NewSupervisor(core.Config{URLs: []string{goodURL}, Name: "warren-secrets-server", Logger: log})
		core.NewServer(ssup, core.ServerConfig{Queue: core.QueueSpec{Name: queue}, Logger: log},
			core.HandlerFunc(func(context.Context, *amqp.Delivery) (amqp.Publishing, error) { panic("handler bug") }))
		csup := core.NewSupervisor(core.Config{URLs: []string{goodURL}, Name: "warren-secrets-client", Logger: log})
		client := core.NewClient(csup, core.ClientConfig{})
		wg.Go(func() { _ = ssup.Run(ctx) })
		wg.Go(func() { _ = csup.Run(ctx) })
		var err error
		waitFor(t, "the panicking handler's answer", func() bool {
			cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
			defer ccancel()
			_, err = client.Call(cctx, queue, amqp.Publishing{Body: []byte("boom")})
			return status.Code(core.Status(err)).String() == "Internal"
		})
		out.add("status of the panicking call", core.Status(err).Error())
		ran("panic logged", countLines(logs.String(), "core: handler panicked", "handler bug") == 1)
	})

	total := 0
	for source, lines := range out.lines {
		total += len(lines)
		for i, line := range lines {
			for name, secret := range secrets {
				if strings.Contains(line, secret) {
					t.Errorf("%s, line %d, shows the %s: %q", source, i+1, name, line)
				}
			}
		}
	}
	if os.Getenv("SECRETS_DUMP") != "" {
		for source, lines := range out.lines {
			for _, l := range lines {
				t.Logf("%s: %s", source, l)
			}
		}
	}
	t.Logf("scraped %d lines from %d sources for %d secrets; paths that ran: %d", total, len(out.lines), len(secrets), len(paths))
	if total < 50 {
		t.Errorf("scraped %d lines, want at least 50: the paths printed less than they should", total)
	}
}
