package wire

import (
	"strconv"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
)

// fuzzHeaderValue turns fuzzed inputs into a header value of one of the
// types amqp091-go decodes a field table into.
func fuzzHeaderValue(kind uint8, i int64, s string, f float64) any {
	switch kind % 12 {
	case 0:
		return i
	case 1:
		return int32(i)
	case 2:
		return int16(i)
	case 3:
		return int8(i)
	case 4:
		return uint32(i)
	case 5:
		return uint16(i)
	case 6:
		return uint8(i)
	case 7:
		return s
	case 8:
		return []byte(s)
	case 9:
		return f
	case 10:
		return i%2 == 0
	default:
		return amqp.Table{"v": s}
	}
}

// FuzzDeadline: a worker reads warren-deadline from any publisher.
func FuzzDeadline(f *testing.F) {
	f.Add(uint8(0), int64(1_700_000_000_000), "", 0.0)
	f.Add(uint8(1), int64(-1), "", 0.0)
	f.Add(uint8(7), int64(0), "1700000000000", 0.0)
	f.Add(uint8(7), int64(0), "soon", 0.0)
	f.Add(uint8(7), int64(0), "-9223372036854775808", 0.0)
	f.Add(uint8(9), int64(0), "", 1.5)
	f.Add(uint8(11), int64(0), "x", 0.0)
	f.Fuzz(func(t *testing.T, kind uint8, i int64, s string, fl float64) {
		v := fuzzHeaderValue(kind, i, s, fl)
		got, ok := Deadline(amqp.Table{HeaderDeadline: v})
		var want int64
		switch n := v.(type) {
		case int64:
			want = n
		case int32:
			want = int64(n)
		case int16:
			want = int64(n)
		case int8:
			want = int64(n)
		case uint32:
			want = int64(n)
		case uint16:
			want = int64(n)
		case uint8:
			want = int64(n)
		case string:
			p, err := strconv.ParseInt(n, 10, 64)
			if err != nil {
				if ok {
					t.Fatalf("Deadline(%q) = %v, true; want false", n, got)
				}
				return
			}
			want = p
		default:
			if ok {
				t.Fatalf("Deadline(%T %v) = %v, true; want false", v, v, got)
			}
			return
		}
		if !ok || got.UnixMilli() != want {
			t.Fatalf("Deadline(%T %v) = %v (%d ms), %v; want %d ms", v, v, got, got.UnixMilli(), ok, want)
		}
		// What SetDeadline writes reads back the same.
		h := amqp.Table{}
		SetDeadline(h, got)
		if back, ok := Deadline(h); !ok || !back.Equal(time.UnixMilli(want)) {
			t.Fatalf("round trip of %d ms: %v, %v", want, back, ok)
		}
	})
}

// FuzzReplyError: the gateway reads error replies from any worker,
// including tutorial servers and strangers.
func FuzzReplyError(f *testing.F) {
	f.Add(true, uint8(7), "INVALID_ARGUMENT", "n too large", int64(0))
	f.Add(true, uint8(7), "OK", "", int64(0))
	f.Add(true, uint8(7), "WAT", "", int64(0))
	f.Add(true, uint8(0), "", "", int64(3))
	f.Add(false, uint8(7), "", "", int64(0))
	f.Add(true, uint8(8), "UNAVAILABLE", "\xff", int64(0))
	f.Fuzz(func(t *testing.T, present bool, kind uint8, name, msg string, i int64) {
		h := amqp.Table{HeaderErrorMessage: msg}
		if present {
			h[HeaderErrorCode] = fuzzHeaderValue(kind, i, name, 0)
		}
		code, gotMsg, ok := ReplyError(h)
		if ok != present {
			t.Fatalf("ReplyError(%v) ok = %v, want %v", h, ok, present)
		}
		if !ok {
			return
		}
		if code == codes.OK {
			t.Fatalf("ReplyError(%v) = OK: an error reply must be an error", h)
		}
		if gotMsg == "" {
			t.Fatalf("ReplyError(%v): empty message", h)
		}
		if s, isString := h[HeaderErrorCode].(string); isString && CodeName(code) != s && code != codes.Unknown {
			t.Fatalf("ReplyError code name %q read as %v", s, code)
		}
	})
}
