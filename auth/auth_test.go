package auth

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/warrenrpc/warren/core"
)

func TestParseTokens(t *testing.T) {
	t.Parallel()
	good := HashToken("s3cret") + " tenant-x\n# a comment\n\n" + HashToken("other") + "\tspiffe://warren/admin\n"
	tok, err := ParseTokens([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]string{"s3cret": "tenant-x", "other": "spiffe://warren/admin"} {
		if got, ok := tok.Lookup(token); !ok || got != want {
			t.Errorf("Lookup(%q) = %q, %v; want %q", token, got, ok, want)
		}
	}
	for _, bad := range []string{"", "S3cret", "s3cret ", HashToken("s3cret")} {
		if got, ok := tok.Lookup(bad); ok {
			t.Errorf("Lookup(%q) = %q, want no principal", bad, got)
		}
	}

	tests := []struct {
		name, file, want string
	}{
		{"no principal", HashToken("a") + "\n", "no principal"},
		{"short hash", "abcd tenant\n", "64 characters"},
		{"not hex", strings.Repeat("z", 64) + " tenant\n", "not hex"},
		{"the token itself", "s3cret tenant\n", "64 characters"},
		{"duplicate", HashToken("a") + " x\n" + HashToken("a") + " y\n", "same hash as line 1"},
		{"binary garbage", "\x00\xff\xfe\x01 \x02", "64 characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseTokens([]byte(tt.file))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseTokens: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

func TestParsePolicyErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, policy, want string
	}{
		{"not JSON", `{"name": `, "unexpected EOF"},
		{"garbage", "\x00\x01", "invalid character"},
		{"no name", `{"allow_rules": [{"name": "a"}]}`, `"name" is not present`},
		{"no allow rules", `{"name": "p"}`, `"allow_rules" is not present`},
		{"rule without name", `{"name": "p", "allow_rules": [{}]}`, `"allow_rules" 0: "name" is not present`},
		{"unknown key", `{"name": "p", "allow_rules": [{"name": "a"}], "alow": 1}`, `unknown field "alow"`},
		{"grpc header", `{"name": "p", "allow_rules": [{"name": "a", "request": {"headers": [{"key": "grpc-timeout", "values": ["1"]}]}}]}`, `unsupported "key" grpc-timeout`},
		{"pseudo header", `{"name": "p", "allow_rules": [{"name": "a", "request": {"headers": [{"key": ":path", "values": ["1"]}]}}]}`, `unsupported "key" :path`},
		{"header without values", `{"name": "p", "allow_rules": [{"name": "a", "request": {"headers": [{"key": "x-tenant"}]}}]}`, `"values" is not present`},
		{"scope without exchange", `{"name": "p", "allow_rules": [{"name": "a"}], "scopes": [{"principals": ["x"], "emit": ["a"]}]}`, `"exchange" is not present`},
		{"scope without principals", `{"name": "p", "allow_rules": [{"name": "a"}], "scopes": [{"exchange": "e", "emit": ["a"]}]}`, `"principals" is not present`},
		{"bad pattern", `{"name": "p", "allow_rules": [{"name": "a"}], "scopes": [{"exchange": "e", "principals": ["x"], "emit": ["a.b#"]}]}`, `mixes * or #`},
		{"two values", `{"name": "p", "allow_rules": [{"name": "a"}]} {}`, "more than one JSON value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParsePolicy([]byte(tt.policy))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParsePolicy: %v, want an error saying %q", err, tt.want)
			}
		})
	}
}

// TestPolicyRules checks the rules' matching as grpc's policy format
// defines it: deny before allow, principals exact, prefix, suffix or any,
// paths, headers, and anonymous callers.
func TestPolicyRules(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(`{
	  "name": "p",
	  "deny_rules": [{"name": "no-bob", "source": {"principals": ["bob"]}},
	                 {"name": "no-delete", "request": {"paths": ["*/Delete"]}}],
	  "allow_rules": [
	    {"name": "open", "request": {"paths": ["/grpc.health.v1.Health/*"]}},
	    {"name": "any-authenticated", "source": {"principals": ["*"]}, "request": {"paths": ["/svc/Read"]}},
	    {"name": "spiffe-suffix", "source": {"principals": ["*/admin"]}},
	    {"name": "header", "source": {"principals": ["carol"]}, "request": {"paths": ["/svc/Write"], "headers": [{"key": "X-Tenant", "values": ["acme", "corp-*"]}]}}
	  ]}`))
	if err != nil {
		t.Fatal(err)
	}
	md := func(kv ...string) metadata.MD { return metadata.Pairs(kv...) }
	tests := []struct {
		principal, method string
		md                metadata.MD
		allowed           bool
		rule              string
	}{
		{"", "/grpc.health.v1.Health/Check", nil, true, "open"},
		{"", "/svc/Read", nil, false, ""},
		{"alice", "/svc/Read", nil, true, "any-authenticated"},
		{"alice", "/svc/Write", nil, false, ""},
		{"bob", "/grpc.health.v1.Health/Check", nil, false, "no-bob"},
		{"spiffe://warren/admin", "/svc/Write", nil, true, "spiffe-suffix"},
		{"spiffe://warren/admin", "/svc/Delete", nil, false, "no-delete"},
		{"carol", "/svc/Write", md("x-tenant", "acme"), true, "header"},
		{"carol", "/svc/Write", md("x-tenant", "corp-east"), true, "header"},
		{"carol", "/svc/Write", md("x-tenant", "evil"), false, ""},
		{"carol", "/svc/Write", nil, false, ""},
	}
	for _, tt := range tests {
		d := p.Authorize(Identity{Principal: tt.principal}, tt.method, tt.md)
		if d.Allowed != tt.allowed || d.Rule != tt.rule {
			t.Errorf("Authorize(%q, %s, %v) = %+v, want allowed %v by %q", tt.principal, tt.method, tt.md, d, tt.allowed, tt.rule)
		}
	}
}

func TestAllowKey(t *testing.T) {
	t.Parallel()
	p, err := ParsePolicy([]byte(`{"name": "p", "allow_rules": [{"name": "all"}], "scopes": [
	  {"principals": ["tenant-x"], "exchange": "topic_logs", "emit": ["tenant.x.#"], "subscribe": ["tenant.x.#"]},
	  {"principals": ["tenant-*"], "exchange": "topic_logs", "subscribe": ["public.*"]},
	  {"principals": ["ops"], "exchange": "logs", "emit": ["#"], "subscribe": ["#"]}
	]}`))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		principal string
		op        core.KeyOp
		exchange  string
		key       string
		ok        bool
	}{
		{"tenant-x", core.KeyEmit, "topic_logs", "tenant.x.a", true},
		{"tenant-x", core.KeyEmit, "topic_logs", "tenant.y.a", false},
		{"tenant-x", core.KeyEmit, "topic_logs", "public.a", false},
		{"tenant-x", core.KeySubscribe, "topic_logs", "public.a", true},
		{"tenant-y", core.KeySubscribe, "topic_logs", "public.*", true},
		{"tenant-y", core.KeySubscribe, "topic_logs", "public.#", false},
		{"tenant-y", core.KeyEmit, "topic_logs", "public.a", false},
		{"tenant-x", core.KeyEmit, "unscoped", "anything", true},
		{"", core.KeyEmit, "unscoped", "anything", true},
		{"", core.KeyEmit, "topic_logs", "tenant.x.a", false},
		// A fanout binding has the empty key, and receives everything.
		{"tenant-x", core.KeySubscribe, "logs", "", false},
		{"ops", core.KeySubscribe, "logs", "", true},
	}
	for _, tt := range tests {
		err := p.AllowKey(tt.principal, tt.op, tt.exchange, tt.key)
		if (err == nil) != tt.ok {
			t.Errorf("AllowKey(%q, %s, %q, %q) = %v, want allowed %v", tt.principal, tt.op, tt.exchange, tt.key, err, tt.ok)
		}
	}
}

// TestGuardAuthenticate covers the credentials the table test in package
// gateway does not: malformed authorization headers.
func TestGuardAuthenticate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(HashToken("good")+" alice\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, err := New(Config{TokensFile: tokens, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		header []string
		code   codes.Code
		want   string
	}{
		{"good token", []string{"Bearer good"}, codes.OK, "alice"},
		{"scheme in lower case", []string{"bearer good"}, codes.OK, "alice"},
		{"unknown token", []string{"Bearer bad"}, codes.Unauthenticated, "unknown bearer token"},
		{"basic auth", []string{"Basic YWxpY2U6cHc="}, codes.Unauthenticated, "malformed"},
		{"no token", []string{"Bearer "}, codes.Unauthenticated, "malformed"},
		{"two headers", []string{"Bearer good", "Bearer good"}, codes.Unauthenticated, "more than one"},
		{"no header", nil, codes.Unauthenticated, "no credential"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			md := metadata.MD{}
			for _, h := range tt.header {
				md.Append("authorization", h)
			}
			ctx, err := g.Authorize(metadata.NewIncomingContext(context.Background(), md), "/svc/M")
			if got := status.Code(err); got != tt.code {
				t.Fatalf("code %v (%v), want %v", got, err, tt.code)
			}
			if err != nil {
				if !strings.Contains(err.Error(), tt.want) {
					t.Errorf("error %q does not say %q", err, tt.want)
				}
				return
			}
			if got := Principal(ctx); got != tt.want {
				t.Errorf("Principal = %q, want %q", got, tt.want)
			}
			// Outside the interceptors, from the credentials alone.
			if got := g.CallPrincipal(metadata.NewIncomingContext(context.Background(), md)); got != tt.want {
				t.Errorf("CallPrincipal = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReloadKeepsLastGoodPolicy: a malformed policy is logged and
// ignored; a good one after it is taken.
func TestReloadKeepsLastGoodPolicy(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.json")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(file, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`{"name": "one", "allow_rules": [{"name": "a"}]}`)
	var logged strings.Builder
	g, err := New(Config{PolicyFile: file, ReloadInterval: 10 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(&syncWriter{w: &logged}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); g.Run(ctx) }()
	defer func() { cancel(); <-done }()

	write(`{"name": "two", "allow_rules": [`)
	time.Sleep(100 * time.Millisecond)
	if got := g.Policy().Name(); got != "one" {
		t.Errorf("after a malformed policy, %q in force, want one", got)
	}
	write(`{"name": "three", "allow_rules": [{"name": "a"}]}`)
	deadline := time.Now().Add(2 * time.Second)
	for g.Policy().Name() != "three" {
		if time.Now().After(deadline) {
			t.Fatalf("policy three not in force after 2s: %q", g.Policy().Name())
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done
	if !strings.Contains(logged.String(), "reload failed; keeping the last good one") {
		t.Errorf("log %q does not say why the reload failed", logged.String())
	}
}

func TestNewFailsOnBadFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("not a policy"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, cfg := range []Config{
		{PolicyFile: filepath.Join(dir, "missing")},
		{PolicyFile: bad},
		{TokensFile: bad},
	} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v) = nil error, want one", cfg)
		} else if errors.Is(err, os.ErrNotExist) != (cfg.PolicyFile == filepath.Join(dir, "missing")) {
			t.Errorf("New(%+v) = %v", cfg, err)
		}
	}
}
