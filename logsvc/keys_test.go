package logsvc

import (
	"strings"
	"testing"
	"time"

	"github.com/warrenrpc/warren/core"
)

func TestCheckTopicBindingKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		ok   bool
	}{
		{"tutorial Q1", "*.orange.*", true},
		{"tutorial Q2 rabbit", "*.*.rabbit", true},
		{"tutorial Q2 lazy", "lazy.#", true},
		{"everything", "#", true},
		{"facility", "kern.*", true},
		{"severity", "*.critical", true},
		{"plain words", "kern.critical", true},
		{"empty key", "", true},
		{"empty words", "a..b", true},
		{"255 bytes", strings.Repeat("a", 255), true},
		{"256 bytes", strings.Repeat("a", 256), false},
		{"star in word", "kern.crit*", false},
		{"hash in word", "#kern", false},
		{"double hash", "lazy.##", false},
		{"star hash", "*#", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := core.CheckBindingKey("topic", tc.key)
			if (err == nil) != tc.ok {
				t.Errorf("CheckBindingKey(topic, %.20q): got %v, want ok=%v", tc.key, err, tc.ok)
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	t.Parallel()
	c := Config{}.withDefaults()
	for _, tc := range []struct{ name, got, want string }{
		{"fanout", c.FanoutExchange, "logs"},
		{"direct", c.DirectExchange, "direct_logs"},
		{"topic", c.TopicExchange, "topic_logs"},
		{"overflow", c.Overflow, "drop-head"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"prefetch", c.Prefetch, 1024},
		{"max length", c.MaxLength, 10000},
		{"overflow check", c.OverflowCheck, time.Second},
		{"max binding keys", c.MaxBindingKeys, 64},
		{"default timeout", c.DefaultTimeout, 10 * time.Second},
		{"emit window", c.EmitWindow, 512},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.name, tc.got, tc.want)
		}
	}
}
