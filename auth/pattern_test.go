package auth

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/warrenrpc/warren/core"
)

func TestWithin(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		binding string
		scope   []string
		want    bool
	}{
		{"same pattern", "tenant.x.#", []string{"tenant.x.#"}, true},
		{"star under hash", "tenant.x.*", []string{"tenant.x.#"}, true},
		{"literal under hash", "tenant.x.a.b", []string{"tenant.x.#"}, true},
		{"the prefix itself", "tenant.x", []string{"tenant.x.#"}, true},
		{"hash is everything", "#", []string{"tenant.x.#"}, false},
		{"other tenant", "tenant.y.#", []string{"tenant.x.#"}, false},
		{"star tenant", "tenant.*.#", []string{"tenant.x.#"}, false},
		{"shorter prefix", "tenant.#", []string{"tenant.x.#"}, false},
		{"star for literal", "*.x.#", []string{"tenant.x.#"}, false},
		{"hash under star", "tenant.x.#", []string{"tenant.x.*"}, false},
		{"star under star", "tenant.x.*", []string{"tenant.x.*"}, true},
		{"two stars under hash", "tenant.x.*.*", []string{"tenant.x.#"}, true},
		{"hash then literal", "tenant.x.#.error", []string{"tenant.x.#"}, true},
		{"hash in middle of scope", "a.b.c.z", []string{"a.#.z"}, true},
		{"hash vs hash middle", "a.#.z", []string{"a.#.z"}, true},
		{"hash middle too wide", "a.#", []string{"a.#.z"}, false},
		{"everything in everything", "#", []string{"#"}, true},
		{"star in everything", "*", []string{"#"}, true},
		{"empty key in hash", "", []string{"#"}, true},
		{"empty key not in star", "", []string{"*"}, false},
		{"hash needs the empty key", "#", []string{"*.#"}, false},
		{"a union covers what neither does", "#", []string{"", "*.#"}, true},
		{"union of two literals", "tenant.x.*", []string{"tenant.x.a", "tenant.x.b"}, false},
		{"union of tenants", "tenant.x.a", []string{"tenant.y.#", "tenant.x.#"}, true},
		{"empty words", "a..b", []string{"a.*.b"}, true},
		{"empty word is a word", "a.b", []string{"a.*.*"}, false},
		{"hash covers star before literal", "#.a", []string{"*.#"}, true},
		{"no scope", "a", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := within(tt.binding, tt.scope)
			if err != nil {
				t.Fatalf("within(%q, %q): %v", tt.binding, tt.scope, err)
			}
			if got != tt.want {
				t.Errorf("within(%q, %q) = %v, want %v", tt.binding, tt.scope, got, tt.want)
			}
		})
	}
}

// TestWithinAgreesWithMatchKey checks within against the definition on
// random patterns: a binding is within a scope when no key the binding
// matches (core.MatchKey) is matched by none of the scope's patterns.
// Keys are enumerated over the patterns' words and one other, up to a
// length past which a pattern of these sizes matches nothing new.
func TestWithinAgreesWithMatchKey(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"a", "b", "*", "#"}
	pattern := func() string {
		n := rng.IntN(4)
		ws := make([]string, n)
		for i := range ws {
			ws[i] = words[rng.IntN(len(words))]
		}
		return strings.Join(ws, ".")
	}
	var keys []string
	var gen func(prefix []string, n int)
	gen = func(prefix []string, n int) {
		keys = append(keys, strings.Join(prefix, "."))
		if n == 0 {
			return
		}
		for _, w := range []string{"a", "b", "c"} {
			gen(append(prefix, w), n-1)
		}
	}
	gen(nil, 8)
	agreeTrue, agreeFalse := 0, 0
	for range 1500 {
		binding := pattern()
		scope := []string{pattern()}
		if rng.IntN(2) == 0 {
			scope = append(scope, pattern())
		}
		want := true
		for _, k := range keys {
			if !core.MatchKey("topic", binding, k) {
				continue
			}
			if !emitAllowed(k, scope) {
				want = false
				break
			}
		}
		got, err := within(binding, scope)
		if err != nil {
			t.Fatalf("within(%q, %q): %v", binding, scope, err)
		}
		if got != want {
			t.Fatalf("within(%q, %q) = %v, want %v", binding, scope, got, want)
		}
		if got {
			agreeTrue++
		} else {
			agreeFalse++
		}
	}
	if agreeTrue < 100 || agreeFalse < 100 {
		t.Errorf("the random patterns are lopsided: %d within, %d not; want at least 100 of each", agreeTrue, agreeFalse)
	}
}

func TestWithinLongPatterns(t *testing.T) {
	t.Parallel()
	// Many #s with words between them: the walk stays small (or gives
	// up, refusing), and never says yes to a binding that is not within.
	scope := []string{strings.Repeat("#.a.", 40) + "#"}
	binding := strings.Repeat("#.*.", 40) + "#"
	ok, err := within(binding, scope)
	if ok {
		t.Fatalf("within(%q, %q) = true, want false", binding, scope)
	}
	t.Logf("err = %v", err)
}
