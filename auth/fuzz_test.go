package auth

import (
	"testing"
	"time"

	"github.com/warrenrpc/warren/core"
)

// FuzzParse: no input crashes the parsers of the files.
func FuzzParse(f *testing.F) {
	f.Add([]byte(`{"name": "p", "allow_rules": [{"name": "a", "source": {"principals": ["*"]}}], "scopes": [{"principals": ["x"], "exchange": "e", "emit": ["a.#"]}]}`))
	f.Add([]byte(HashToken("t") + " alice\n"))
	f.Add([]byte(`{"keys": [{"kty": "EC", "crv": "P-256", "x": "AQ", "y": "AQ"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParsePolicy(b)
		_, _ = ParseTokens(b)
		if k, err := ParseJWKS(b); err == nil {
			_, _ = k.Verify(string(b), JWTClaims{}, time.Now())
		}
	})
}

// FuzzWithin: containment never crashes, a pattern is within itself, and
// a key the binding matches outside the scope means it is not within.
func FuzzWithin(f *testing.F) {
	f.Add("tenant.x.*", "tenant.x.#", "tenant.x.a")
	f.Add("#", "*.#", "")
	f.Add("a.#.b", "a.#", "a.b")
	f.Fuzz(func(t *testing.T, binding, scope, key string) {
		if len(binding) > 64 || len(scope) > 64 || core.CheckBindingKey("topic", binding) != nil || core.CheckBindingKey("topic", scope) != nil {
			return
		}
		if ok, err := within(binding, []string{binding}); err == nil && !ok {
			t.Errorf("within(%q, itself) = false", binding)
		}
		ok, err := within(binding, []string{scope})
		if err == nil && ok && core.MatchKey("topic", binding, key) && !core.MatchKey("topic", scope, key) {
			t.Errorf("within(%q, %q) = true, but %q matches the binding and not the scope", binding, scope, key)
		}
	})
}
