package logsvc

import (
	"strings"
	"testing"

	"github.com/warrenrpc/warren/core"
	warrenv1 "github.com/warrenrpc/warren/gen/warren/v1"
)

// FuzzBindingKeys: SubscribeLogs checks binding keys from any client before
// they reach the broker (where a key over 255 bytes would make amqp091-go
// close the whole connection).
func FuzzBindingKeys(f *testing.F) {
	for _, k := range []string{"*.orange.*", "lazy.#", "#", "kern*", "a..b", "", "#.#", strings.Repeat("x", 256), "\xff.*"} {
		f.Add(int32(warrenv1.LogExchange_LOG_EXCHANGE_TOPIC), k, "")
		f.Add(int32(warrenv1.LogExchange_LOG_EXCHANGE_DIRECT), k, "warning")
	}
	f.Add(int32(99), "x", "")
	f.Add(int32(-1), "", "")
	cfg := Config{}.withDefaults()
	f.Fuzz(func(t *testing.T, e int32, k1, k2 string) {
		keys := []string{k1}
		if k2 != "" {
			keys = append(keys, k2)
		}
		ex, err := cfg.exchange(warrenv1.LogExchange(e))
		if err != nil {
			if e >= 0 && e <= 3 {
				t.Fatalf("exchange(%d): %v", e, err)
			}
			return
		}
		got, err := cfg.bindingKeys(ex, keys)
		if err != nil {
			return
		}
		if ex.kind == "fanout" {
			if len(got) != 1 || got[0] != "" {
				t.Fatalf("fanout binding keys %q, want one empty key", got)
			}
			return
		}
		for _, k := range got {
			if len(k) > core.MaxKeyLen {
				t.Fatalf("accepted a %d-byte key", len(k))
			}
			if ex.kind != "topic" {
				continue
			}
			for w := range strings.SplitSeq(k, ".") {
				if w != "*" && w != "#" && strings.ContainsAny(w, "*#") {
					t.Fatalf("accepted topic key %q with word %q", k, w)
				}
			}
		}
		if err := core.CheckRoutingKey(k1); (err == nil) != (len(k1) <= core.MaxKeyLen) {
			t.Fatalf("core.CheckRoutingKey(%d bytes) = %v", len(k1), err)
		}
	})
}
