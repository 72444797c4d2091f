package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
)

func TestLogFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		args    []string
		wantErr string // "": the command parses its flags and fails later
	}{
		{"bad format", nil, []string{"worker", "--log-format", "yaml"}, `invalid argument "yaml" for "--log-format" flag: want text or json`},
		{"bad format from the environment", map[string]string{"WARREN_LOG_FORMAT": "xml"}, []string{"gateway"}, "$WARREN_LOG_FORMAT: want text or json"},
		{"access log is a bool", nil, []string{"dev", "--access-log=maybe"}, `invalid argument "maybe" for "--access-log" flag`},
		{"worker has no access log", nil, []string{"worker", "--access-log=false"}, "unknown flag: --access-log"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, err := runCLI(t, tt.env, tt.args...)
			if err == nil || exitCode(err) != 2 || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("warren %q: %v (exit %d), stderr %q; want a usage error with %q", tt.args, err, exitCode(err), stderr, tt.wantErr)
			}
		})
	}
}

func TestLogFormats(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		format string
		check  func(line string) bool
	}{
		{"text", func(line string) bool { return strings.Contains(line, `level=WARN msg=hello key=value`) }},
		{"json", func(line string) bool {
			var m map[string]any
			return json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "hello" && m["key"] == "value" && m["level"] == "WARN"
		}},
	} {
		f := logFlags{logLevel: slog.LevelWarn, logFormat: tt.format}
		var buf bytes.Buffer
		log := slog.New(f.handler(&buf))
		log.Info("below the level")
		log.Warn("hello", "key", "value")
		if line := strings.TrimSpace(buf.String()); strings.Contains(line, "\n") || !tt.check(line) {
			t.Errorf("--log-format %s --log-level warn wrote %q, want one %s line with the warning", tt.format, buf.String(), tt.format)
		}
	}
}
