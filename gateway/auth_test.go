package gateway_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/auth"
	"github.com/warrenrpc/warren/fibsvc"
	"github.com/warrenrpc/warren/gateway"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
	"github.com/warrenrpc/warren/logsvc"
)

// secured is a gateway with TLS, mutual TLS, bearer tokens and a policy,
// serving Fibonacci (without a worker) and the log service on exchanges
// of the test's own.
type secured struct {
	*warrentest.Gateway
	dir                   string
	ca, wrongCA           *warrentest.PKI
	policyFile, topic     string
	tokens                map[string]string // caller → token
	certs                 map[string][2]string
	serverCert, serverKey string
	guard                 *auth.Guard
}

// The tokens of the callers. They live only in the test; the file holds
// their hashes.
var testTokens = map[string]string{
	"tenant-x": "tok-x-4f1c", "tenant-y": "tok-y-9a2e", "admin": "tok-admin-77d0", "reader": "tok-reader-1b3b",
}

const policyTemplate = `{
  "name": "warren-test",
  "deny_rules": [
    {"name": "banned", "source": {"principals": ["banned"]}}
  ],
  "allow_rules": [
    {"name": "health-open", "request": {"paths": ["/grpc.health.v1.Health/*"]}},
    {"name": "admin", "source": {"principals": ["admin", "spiffe://warren/admin"]}},
    {"name": "tenants-logs", "source": {"principals": ["tenant-*", "spiffe://warren/tenant/*"]},
     "request": {"paths": ["/warren.v1.LogService/EmitLog", "/warren.v1.LogService/SubscribeLogs"]}},
    {"name": "reader", "source": {"principals": ["reader"]}, "request": {"paths": ["/warren.v1.LogService/SubscribeLogs"]}}
  ],
  "scopes": [
    {"name": "x", "principals": ["tenant-x", "spiffe://warren/tenant/x"], "exchange": "TOPIC", "emit": ["tenant.x.#"], "subscribe": ["tenant.x.#"]},
    {"name": "y", "principals": ["tenant-y"], "exchange": "TOPIC", "emit": ["tenant.y.#"], "subscribe": ["tenant.y.#"]},
    {"name": "admin", "principals": ["admin"], "exchange": "TOPIC", "emit": ["#"], "subscribe": ["#"]},
    {"name": "reader", "principals": ["reader"], "exchange": "TOPIC", "subscribe": ["tenant.*.a"]}
  ]
}`

func startSecured(t *testing.T) *secured {
	t.Helper()
	dir := t.TempDir()
	s := &secured{dir: dir, ca: warrentest.NewPKI(t, dir, "ca"), wrongCA: warrentest.NewPKI(t, dir, "wrong"), certs: map[string][2]string{}, tokens: testTokens}
	s.serverCert, s.serverKey = s.ca.Issue(warrentest.Leaf{Name: "server", CN: "warren-gateway", Server: true})
	for _, l := range []warrentest.Leaf{
		{Name: "cert-x", URI: "spiffe://warren/tenant/x", CN: "ignored-when-a-SAN-exists"},
		{Name: "cert-y", CN: "tenant-y"},
		{Name: "cert-expired", CN: "tenant-x", Expired: true},
	} {
		c, k := s.ca.Issue(l)
		s.certs[l.Name] = [2]string{c, k}
	}
	c, k := s.wrongCA.Issue(warrentest.Leaf{Name: "cert-wrong-ca", CN: "tenant-x"})
	s.certs["cert-wrong-ca"] = [2]string{c, k}

	var lines []string
	for principal, tok := range testTokens {
		lines = append(lines, auth.HashToken(tok)+" "+principal)
	}
	tokensFile := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokensFile, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := brokertest.Name(t, "logs")
	s.topic = logs + ".topic"
	s.policyFile = filepath.Join(dir, "policy.json")
	s.writePolicy(t, policyTemplate)

	tlsCfg, err := gateway.NewTLS(gateway.TLSFiles{CertFile: s.serverCert, KeyFile: s.serverKey, ClientCAFile: s.ca.CAFile, ClientCertOptional: true, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	guard, err := auth.New(auth.Config{PolicyFile: s.policyFile, TokensFile: tokensFile, Logger: quietLog})
	if err != nil {
		t.Fatal(err)
	}
	s.guard = guard
	s.Gateway = warrentest.StartGatewayTCP(t, gateway.Config{TLS: tlsCfg, Auth: guard},
		fibsvc.New(fibsvc.Config{Queue: brokertest.Name(t, "rpc")}),
		logsvc.New(logsvc.Config{FanoutExchange: logs + ".fanout", DirectExchange: logs + ".direct", TopicExchange: s.topic, Logger: quietLog}),
	)
	return s
}

func (s *secured) writePolicy(t testing.TB, policy string) {
	t.Helper()
	policy = strings.ReplaceAll(policy, "TOPIC", s.topic)
	tmp := s.policyFile + ".tmp"
	if err := os.WriteFile(tmp, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.policyFile); err != nil {
		t.Fatal(err)
	}
}

// caller is how a test call authenticates.
type caller struct {
	name   string
	token  string // bearer token
	cert   string // a key of secured.certs
	expect string // the principal the policy sees; "" anonymous
}

var callers = []caller{
	{name: "token x", token: testTokens["tenant-x"], expect: "tenant-x"},
	{name: "token y", token: testTokens["tenant-y"], expect: "tenant-y"},
	{name: "token admin", token: testTokens["admin"], expect: "admin"},
	{name: "token reader", token: testTokens["reader"], expect: "reader"},
	{name: "cert x (URI SAN)", cert: "cert-x", expect: "spiffe://warren/tenant/x"},
	{name: "cert y (CN)", cert: "cert-y", expect: "tenant-y"},
	{name: "no credential"},
	{name: "garbage token", token: "garbage"},
}

// dial connects as c over TLS.
func (s *secured) dial(t testing.TB, c caller) *grpc.ClientConn {
	t.Helper()
	var certFile, keyFile string
	if c.cert != "" {
		certFile, keyFile = s.certs[c.cert][0], s.certs[c.cert][1]
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(warrentest.ClientTLS(t, s.ca.CAFile, certFile, keyFile)))}
	conn, err := grpc.NewClient(s.Addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func withToken(ctx context.Context, token string) context.Context {
	if token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
}

// tenantOf is the tenant whose keys a principal owns in the test policy;
// "*" for admin.
func tenantOf(principal string) string {
	switch principal {
	case "tenant-x", "spiffe://warren/tenant/x":
		return "x"
	case "tenant-y":
		return "y"
	case "admin":
		return "*"
	}
	return ""
}

// The test's own statement of the policy, written from the policy's
// intent rather than with the code under test: which code a call gets.
func expectCode(c caller, method, key string) codes.Code {
	if c.token == "garbage" {
		return codes.Unauthenticated
	}
	p := c.expect
	switch method {
	case "Health/Check":
		return codes.OK
	case "Fibonacci":
		switch {
		case p == "":
			return codes.Unauthenticated
		case p != "admin":
			return codes.PermissionDenied
		}
		return codes.Unavailable // allowed; no worker consumes the queue
	}
	if p == "" {
		return codes.Unauthenticated
	}
	tenant := tenantOf(p)
	if p == "reader" {
		if method == "EmitLog" {
			return codes.PermissionDenied // no allow rule
		}
		// tenant.*.a: the binding's second word may be anything, the
		// rest must be as written.
		w := strings.Split(key, ".")
		if len(w) == 3 && w[0] == "tenant" && w[1] != "#" && w[2] == "a" {
			return codes.OK
		}
		return codes.PermissionDenied
	}
	if tenant == "*" {
		return codes.OK
	}
	// A tenant's keys start with tenant.<tenant>, as whole words, with no
	// wildcard among the two.
	if key == "tenant."+tenant || strings.HasPrefix(key, "tenant."+tenant+".") {
		return codes.OK
	}
	return codes.PermissionDenied
}

// TestAuthorizationTable calls the secured gateway as every caller, for
// every method and key: authentication by token and by certificate,
// method rules, and routing-key scopes on emit and on subscribe.
func TestAuthorizationTable(t *testing.T) {
	s := startSecured(t)
	emitKeys := []string{"tenant.x.a", "tenant.y.a", "tenant.x", "other.a", ""}
	bindKeys := []string{"tenant.x.#", "tenant.x.*", "tenant.y.a", "#", "tenant.*.a", "tenant.x"}
	type call struct {
		method, key string
	}
	var calls []call
	for _, k := range emitKeys {
		calls = append(calls, call{"EmitLog", k})
	}
	for _, k := range bindKeys {
		calls = append(calls, call{"SubscribeLogs", k})
	}
	calls = append(calls, call{"Health/Check", ""}, call{"Fibonacci", ""})

	var cases, allowed, denied atomic.Int64
	for _, c := range callers {
		conn := s.dial(t, c)
		logs := warrenv1.NewLogServiceClient(conn)
		fib := warrenv1.NewFibonacciServiceClient(conn)
		health := healthpb.NewHealthClient(conn)
		for _, cl := range calls {
			t.Run(fmt.Sprintf("%s/%s/%q", c.name, cl.method, cl.key), func(t *testing.T) {
				ctx, cancel := context.WithTimeout(withToken(context.Background(), c.token), 5*time.Second)
				defer cancel()
				var err error
				switch cl.method {
				case "EmitLog":
					_, err = logs.EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: cl.key, Body: "hello"})
				case "SubscribeLogs":
					var st grpc.ServerStreamingClient[warrenv1.SubscribeLogsResponse]
					st, err = logs.SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, BindingKeys: []string{cl.key}})
					if err == nil {
						// The header comes once the queue is bound;
						// a refusal ends the stream instead.
						var md metadata.MD
						if md, err = st.Header(); err == nil && len(md.Get(logsvc.QueueHeader)) == 0 {
							_, err = st.Recv()
						}
					}
				case "Health/Check":
					_, err = health.Check(ctx, &healthpb.HealthCheckRequest{})
				case "Fibonacci":
					_, err = fib.Fibonacci(ctx, &warrenv1.FibonacciRequest{N: 10})
				}
				want := expectCode(c, cl.method, cl.key)
				if got := status.Code(err); got != want {
					t.Errorf("%s as %s: code %v (%v), want %v", cl.method, c.name, got, err, want)
				}
				cases.Add(1)
				if want == codes.Unauthenticated || want == codes.PermissionDenied {
					denied.Add(1)
				} else {
					allowed.Add(1)
				}
			})
		}
	}
	t.Logf("authorization table: %d cases (%d allowed, %d denied), %d callers × %d calls", cases.Load(), allowed.Load(), denied.Load(), len(callers), len(calls))
	if cases.Load() < 100 {
		t.Errorf("the table has %d cases, want at least 100", cases.Load())
	}
}

// subscribe opens a SubscribeLogs stream on the topic exchange as
// tenant x and waits until its queue is bound.
func subscribe(t testing.TB, ctx context.Context, conn *grpc.ClientConn, key string) grpc.ServerStreamingClient[warrenv1.SubscribeLogsResponse] {
	t.Helper()
	st, err := warrenv1.NewLogServiceClient(conn).SubscribeLogs(ctx, &warrenv1.SubscribeLogsRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, BindingKeys: []string{key}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Header(); err != nil {
		t.Fatalf("subscribe %q: %v", key, err)
	}
	return st
}

func emit(t testing.TB, conn *grpc.ClientConn, ctx context.Context, key string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := warrenv1.NewLogServiceClient(conn).EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: key, Body: "hello"}); err != nil {
		t.Fatalf("emit %q: %v", key, err)
	}
}

// recvKey receives one message, within 5 seconds, and returns its key.
func recvKey(t testing.TB, st grpc.ServerStreamingClient[warrenv1.SubscribeLogsResponse]) string {
	t.Helper()
	got := make(chan string, 1)
	go func() {
		m, err := st.Recv()
		if err != nil {
			got <- "error: " + err.Error()
			return
		}
		got <- m.GetRoutingKey()
	}()
	tm := time.NewTimer(5 * time.Second)
	defer tm.Stop()
	select {
	case k := <-got:
		return k
	case <-tm.C:
		t.Fatal("no message within 5s")
	}
	return ""
}

// TestPolicyReload: a changed policy takes effect for new calls within a
// second, without cutting the streams already open; a malformed one is
// ignored and the last good one stays.
func TestPolicyReload(t *testing.T) {
	s := startSecured(t)
	x := caller{cert: "cert-x"}
	conn := s.dial(t, x)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sub := subscribe(t, ctx, conn, "tenant.x.#")

	// Tenant x loses the log service.
	s.writePolicy(t, strings.Replace(policyTemplate, `"tenant-*", "spiffe://warren/tenant/*"`, `"tenant-y"`, 1))
	start := time.Now()
	var took time.Duration
	for {
		_, err := warrenv1.NewLogServiceClient(conn).EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: "tenant.x.probe", Body: "p"})
		if status.Code(err) == codes.PermissionDenied {
			took = time.Since(start)
			break
		}
		if time.Since(start) > time.Second {
			t.Fatalf("a second after the policy changed, a call it denies got %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("policy reload took effect after %v", took.Round(time.Millisecond))
	// The probes emitted before the reload may be in the stream; the
	// admin's message after it must come too.
	emit(t, s.dial(t, callers[2]), withToken(ctx, testTokens["admin"]), "tenant.x.after-reload")
	for {
		k := recvKey(t, sub)
		if k == "tenant.x.after-reload" {
			break
		}
		if k != "tenant.x.probe" {
			t.Fatalf("the open stream received %q, want tenant.x.after-reload", k)
		}
	}

	// A malformed policy changes nothing.
	if err := os.WriteFile(s.policyFile, []byte(`{"name": "broken", "allow_rules": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * auth.DefaultReloadInterval)
	_, err := warrenv1.NewLogServiceClient(conn).EmitLog(ctx, &warrenv1.EmitLogRequest{Exchange: warrenv1.LogExchange_LOG_EXCHANGE_TOPIC, RoutingKey: "tenant.x.a"})
	wantCode(t, err, codes.PermissionDenied)
	if got := s.guard.Policy().Name(); got != "warren-test" {
		t.Errorf("policy in force %q, want the last good one, warren-test", got)
	}
}
