package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/auth"
	"github.com/warrenrpc/warren/internal/brokertest"
	"github.com/warrenrpc/warren/internal/warrentest"
)

// TestDevWithTLSAndPolicy: warren dev with TLS, mutual TLS, tokens and a
// policy; the client commands with --tls-ca and a token (flag or
// $WARREN_TOKEN), a client certificate, or nothing.
func TestDevWithTLSAndPolicy(t *testing.T) {
	t.Parallel()
	url := brokertest.Require(t)
	dir := t.TempDir()
	ca := warrentest.NewPKI(t, dir, "ca")
	cert, key := ca.Issue(warrentest.Leaf{Name: "server", CN: "warren", Server: true})
	clientCert, clientKey := ca.Issue(warrentest.Leaf{Name: "alice", CN: "alice"})
	tokens := filepath.Join(dir, "tokens")
	policy := filepath.Join(dir, "policy.json")
	write := func(path, s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(tokens, auth.HashToken("t0ken-bob")+" bob\n")
	write(policy, `{"name": "cli", "allow_rules": [
	  {"name": "health", "request": {"paths": ["/grpc.health.v1.Health/*"]}},
	  {"name": "fib", "source": {"principals": ["bob", "alice"]}, "request": {"paths": ["/warren.v1.FibonacciService/*"]}}]}`)

	addr := freeAddr(t)
	ents := newEntities(t)
	runInBackground(t, append([]string{"dev", "--listen", addr, "--amqp-url", url, "--log-level", "error",
		"--tls-cert", cert, "--tls-key", key, "--tls-client-ca", ca.CAFile, "--auth-tokens", tokens, "--auth-policy", policy}, ents.flags()...)...)

	fib := []string{"fib", "--addr", addr, "--tls-ca", ca.CAFile, "--timeout", "2s", "10"}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, _, err := runCLI(t, nil, append(fib, "--token", "t0ken-bob")...)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("warren dev with TLS never answered: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	tests := []struct {
		name   string
		env    map[string]string
		args   []string
		stdout string
		stderr string // its start
	}{
		{name: "token flag", args: append(fib, "--token", "t0ken-bob"), stdout: "55\n"},
		{name: "token from the environment", env: map[string]string{"WARREN_TOKEN": "t0ken-bob"}, args: fib, stdout: "55\n"},
		{name: "client certificate", args: append(fib, "--tls-cert", clientCert, "--tls-key", clientKey), stdout: "55\n"},
		{name: "no credential", args: fib, stderr: "warren: fib: Unauthenticated: auth: no credential"},
		{name: "wrong token", args: append(fib, "--token", "nope"), stderr: "warren: fib: Unauthenticated: auth: unknown bearer token"},
		{name: "plaintext", args: []string{"fib", "--addr", addr, "--timeout", "2s", "10"}, stderr: "warren: fib: Unavailable: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, err := runCLI(t, tt.env, tt.args...)
			if tt.stdout != "" && (err != nil || stdout != tt.stdout) {
				t.Errorf("warren %q: %q, %v (%s); want %q", tt.args, stdout, err, stderr, tt.stdout)
			}
			if tt.stderr != "" && (err == nil || !strings.HasPrefix(stderr, tt.stderr)) {
				t.Errorf("warren %q: stderr %q, want it to start %q", tt.args, stderr, tt.stderr)
			}
		})
	}
}

// TestSecurityFlags: the flags that go together, and a token that would
// cross the network in clear.
func TestSecurityFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"fib", "--tls-cert", "c.pem", "1"}, "warren: fib: --tls-cert and --tls-key go together\n"},
		{[]string{"fib", "--addr", "gateway.example:50051", "--token", "t", "1"}, "warren: fib: --token needs TLS (--tls-ca) to gateway.example:50051: the token would cross the network in clear\n"},
		{[]string{"gateway", "--tls-key", "k.pem"}, "warren: gateway: --tls-cert and --tls-key go together\n"},
		{[]string{"dev", "--tls-client-ca", "ca.pem"}, "warren: dev: --tls-client-ca needs --tls-cert and --tls-key\n"},
		{[]string{"gateway", "--auth-jwt-audience", "warren"}, "warren: gateway: --auth-jwt-issuer and --auth-jwt-audience need --auth-jwks\n"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCLI(t, nil, tt.args...)
			if code := exitCode(err); code != 2 || !strings.HasPrefix(stderr, tt.want) {
				t.Errorf("warren %q: exit %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
			}
		})
	}
	// Files that do not load are errors, not usage errors.
	_, stderr, err := runCLI(t, nil, "gateway", "--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem")
	if exitCode(err) != 1 || !strings.Contains(stderr, "no such file") {
		t.Errorf("missing certificate: exit %d, stderr %q; want 1 and the file's error", exitCode(err), stderr)
	}
}

// TestHelpHidesTheToken: $WARREN_TOKEN sets --token, and help never shows
// it.
func TestHelpHidesTheToken(t *testing.T) {
	t.Parallel()
	stdout, _, err := runCLI(t, map[string]string{"WARREN_TOKEN": "sup3r-secret"}, "fib", "--help")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stdout, "sup3r-secret") || !strings.Contains(stdout, `set by $WARREN_TOKEN (default "xxxxx")`) {
		t.Errorf("fib --help with WARREN_TOKEN:\n%s", stdout)
	}
}
