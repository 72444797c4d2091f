package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/warrenrpc/warren/internal/brokertest"
)

// runLogged runs a warren command in this process, with the environment
// env and no other, until the test ends, and returns what it logs.
func runLogged(t *testing.T, env map[string]string, args ...string) *lockedBuffer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stderr := &lockedBuffer{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	wg.Go(func() {
		if err := runEnv(ctx, args, lookup, &lockedBuffer{}, stderr); err != nil {
			t.Errorf("warren %s: %v", strings.Join(args, " "), err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return stderr
}

// privateEntities are the entity flags of a warren server on a node of the
// test's own, where no other test declares anything.
func privateEntities(prefix string) []string {
	return []string{
		"--rpc-queue", prefix + ".rpc", "--task-queue", prefix + ".tasks",
		"--events-exchange", prefix + ".events", "--logs-exchange", prefix + ".logs",
		"--direct-logs-exchange", prefix + ".direct_logs", "--topic-logs-exchange", prefix + ".topic_logs",
	}
}

// TestAMQPTLS runs warren dev against a TLS-enabled node of its own
// (about 10 s to start) and calls Fibonacci through it: with PLAIN over
// amqps:// from flags, and with EXTERNAL, the user named by a client
// certificate, from the environment; and runs a gateway that cannot
// verify the broker, which logs why, without the password, and answers
// calls with UNAVAILABLE at once.
func TestAMQPTLS(t *testing.T) {
	node := brokertest.StartTLSNode(t)
	secret := make([]byte, 12)
	_, _ = rand.Read(secret)
	password := "pw-" + hex.EncodeToString(secret)
	node.AddUser(t, "tls-plain", password)
	node.AddUser(t, "warren-client", "")
	dir := t.TempDir()
	cert, key := node.CA.Issue(t, dir, "client", brokertest.CertSpec{CommonName: "warren-client"})
	other := brokertest.NewCA(t, dir, "other-ca")
	_, port, _ := net.SplitHostPort(node.TLSAddr)

	t.Run("plain from flags", func(t *testing.T) {
		t.Parallel()
		addr := freeAddr(t)
		logs := runLogged(t, nil, append([]string{"dev", "--listen", addr,
			"--amqp-url", "amqps://tls-plain:" + password + "@localhost:" + port + "/",
			"--amqp-ca", node.CA.File}, privateEntities("plain")...)...)
		waitServing(t, addr)
		out, err := call("fib", "--addr", addr, "30")
		if err != nil || out != "832040\n" {
			t.Errorf("fib 30 = %q, %v; want 832040", out, err)
		}
		if strings.Contains(logs.String(), password) {
			t.Errorf("the log holds the password:\n%s", logs)
		}
	})

	t.Run("external from the environment", func(t *testing.T) {
		t.Parallel()
		addr := freeAddr(t)
		runLogged(t, map[string]string{
			"WARREN_AMQP_URL":  "amqps://localhost:" + port + "/",
			"WARREN_AMQP_CA":   node.CA.File,
			"WARREN_AMQP_CERT": cert,
			"WARREN_AMQP_KEY":  key,
		}, append([]string{"dev", "--listen", addr}, privateEntities("external")...)...)
		waitServing(t, addr)
		out, err := call("fib", "--addr", addr, "30")
		if err != nil || out != "832040\n" {
			t.Errorf("fib 30 = %q, %v; want 832040", out, err)
		}
		lines := node.Connections(t, "user", "auth_mechanism", "ssl", "client_properties")
		for _, name := range []string{"warren-gateway", "warren-worker"} {
			found := false
			for _, l := range lines {
				found = found || strings.HasPrefix(l, "warren-client\tEXTERNAL\ttrue\t") && strings.Contains(l, `"`+name+`"`)
			}
			if !found {
				t.Errorf("the broker's connections (user, mechanism, ssl, client properties):\n%s\nwant %s's as warren-client with EXTERNAL over TLS", strings.Join(lines, "\n"), name)
			}
		}
	})

	t.Run("wrong CA", func(t *testing.T) {
		t.Parallel()
		addr := freeAddr(t)
		logs := runLogged(t, nil, append([]string{"gateway", "--listen", addr,
			"--amqp-url", "amqps://tls-plain:" + password + "@localhost:" + port + "/",
			"--amqp-ca", other.File}, privateEntities("wrongca")...)...)
		waitFor(t, "a failed dial in the log", func() bool { return strings.Contains(logs.String(), "amqp connect failed") })
		start := time.Now()
		var err error
		for {
			// The gateway listens once it has started; until then the
			// call fails to connect.
			_, err = call("fib", "--addr", addr, "--timeout", "5s", "30")
			if err != nil && strings.Contains(err.Error(), "Unavailable: core: not connected to the broker") {
				break
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("fib 30 = %v, want Unavailable: core: not connected to the broker", err)
			}
			time.Sleep(20 * time.Millisecond)
		}
		got := logs.String()
		if !strings.Contains(got, `err="dial: TLS: the broker's certificate does not verify`) || !strings.Contains(got, "x509: certificate signed by unknown authority") {
			t.Errorf("log:\n%s\nwant the failed verification of the broker's certificate", got)
		}
		if strings.Contains(got, password) {
			t.Errorf("the log holds the password:\n%s", got)
		}
		t.Logf("fib: %v\nlog: %s", err, strings.SplitN(got[strings.Index(got, "level=WARN"):], "\n", 2)[0])
	})
}

// TestAMQPTLSFlagErrors: TLS flags that cannot work stop the command
// before it dials, saying why.
func TestAMQPTLSFlagErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := brokertest.NewCA(t, dir, "ca")
	cert, key := ca.Issue(t, dir, "client", brokertest.CertSpec{CommonName: "c"})
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const amqps = "amqps://localhost:1/"
	tests := []struct {
		args     []string
		want     string
		wantCode int
	}{
		{[]string{"gateway", "--amqp-url", amqps, "--amqp-cert", cert}, "warren: gateway: --amqp-cert and --amqp-key go together\n", 2},
		{[]string{"worker", "--amqp-url", amqps, "--amqp-key", key}, "warren: worker: --amqp-cert and --amqp-key go together\n", 2},
		{[]string{"dev", "--amqp-ca", ca.File}, "warren: dev: --amqp-ca, --amqp-cert and --amqp-key are for amqps:// URLs, and --amqp-url has none\n", 2},
		{[]string{"gateway", "--amqp-url", amqps, "--amqp-auth", "external"}, "warren: gateway: --amqp-auth external needs an amqps:// URL and a client certificate (--amqp-cert, --amqp-key)\n", 2},
		{[]string{"gateway", "--amqp-auth", "kerberos"}, "warren: gateway: invalid argument \"kerberos\" for \"--amqp-auth\" flag: want auto, plain or external\n", 2},
		{[]string{"gateway", "--amqp-url", amqps, "--amqp-ca", filepath.Join(dir, "missing.pem")}, "warren: gateway: --amqp-ca: open " + filepath.Join(dir, "missing.pem") + ": no such file or directory\n", 1},
		{[]string{"gateway", "--amqp-url", amqps, "--amqp-ca", notPEM}, "warren: gateway: --amqp-ca " + notPEM + ": no PEM certificate in it\n", 1},
		{[]string{"worker", "--amqp-url", amqps, "--amqp-cert", cert, "--amqp-key", cert}, "warren: worker: --amqp-cert " + cert + ", --amqp-key " + cert + ": tls: found a certificate rather than a key in the PEM for the private key\n", 1},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCLI(t, nil, tt.args...)
			if code := exitCode(err); code != tt.wantCode {
				t.Errorf("exit %d (%v), want %d", code, err, tt.wantCode)
			}
			if !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("stderr %q, want it to start %q", stderr, tt.want)
			}
		})
	}
}
