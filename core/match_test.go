package core

import "testing"

func TestMatchKey(t *testing.T) {
	tests := []struct {
		kind, binding, key string
		want               bool
	}{
		{"fanout", "", "anything", true},
		{"fanout", "x", "", true},
		{"direct", "info", "info", true},
		{"direct", "info", "info.x", false},
		{"direct", "", "", true},
		{"direct", "*", "info", false},
		{"headers", "", "", false},
		{"topic", "", "", true},
		{"topic", "", "a", false},
		{"topic", "#", "", true},
		{"topic", "#", "a.b.c", true},
		{"topic", "#", ".", true},
		{"topic", "*", "", false},
		{"topic", "*", "a", true},
		{"topic", "*", "a.b", false},
		{"topic", "*", ".", false},
		{"topic", "*.*", ".", true},
		{"topic", "a.*", "a.", true},
		{"topic", "a.*", "a", false},
		{"topic", "a.#", "a", true},
		{"topic", "a.#", "a.b.c", true},
		{"topic", "a.#", "ab", false},
		{"topic", "#.a", "a", true},
		{"topic", "#.a", "x.y.a", true},
		{"topic", "#.a", "x.y.a.b", false},
		{"topic", "a.#.b", "a.b", true},
		{"topic", "a.#.b", "a.x.y.b", true},
		{"topic", "a.#.b", "a.x.b.c", false},
		{"topic", "a.#.b.#.c", "a.b.b.x.c.c", true},
		{"topic", "#.#", "", true},
		{"topic", "#.*", "", false},
		{"topic", "#.*", "a", true},
		{"topic", "*.#.*", "a", false},
		{"topic", "*.#.*", "a.b", true},
		{"topic", "a..b", "a..b", true},
		{"topic", "a.*.b", "a..b", true},
		{"topic", "a..b", "a.b", false},
		{"topic", "kern.*", "kern.critical", true},
		{"topic", "*.critical", "anonymous.critical", true},
		{"topic", "*.critical", "kern.critical.x", false},
		{"topic", "lazy.#", "lazy.orange.male.rabbit", true},
		{"topic", "*.*.rabbit", "quick.orange.rabbit", true},
		{"topic", "*.orange.*", "quick.orange.male.rabbit", false},
		{"topic", "a*", "a*", true}, // not a wildcard: a word of two characters
		{"topic", "a*", "ab", false},
	}
	for _, tt := range tests {
		if got := MatchKey(tt.kind, tt.binding, tt.key); got != tt.want {
			t.Errorf("MatchKey(%q, %q, %q) = %v, want %v", tt.kind, tt.binding, tt.key, got, tt.want)
		}
	}
}

func TestMatchKeyAllocatesNothing(t *testing.T) {
	var matched bool
	n := testing.AllocsPerRun(100, func() {
		matched = MatchKey("topic", "a.#.b.*.#.c", "a.x.y.b.z.q.c")
	})
	if !matched {
		t.Fatal("MatchKey(topic, a.#.b.*.#.c, a.x.y.b.z.q.c) = false, want true")
	}
	if n != 0 {
		t.Fatalf("MatchKey allocates %v times per call, want 0", n)
	}
}

func BenchmarkMatchKey(b *testing.B) {
	for b.Loop() {
		MatchKey("topic", "tenant.*.#.critical", "tenant.acme.kern.disk.critical")
	}
}
