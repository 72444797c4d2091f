package tasksvc

import (
	"bytes"
	"context"
	"math"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// fuzzHeaderValue turns fuzzed inputs into a header value of one of the
// types amqp091-go decodes a field table into.
func fuzzHeaderValue(kind uint8, i int64, s string) any {
	switch kind % 10 {
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
		return uint8(i)
	case 6:
		return s
	case 7:
		return []byte(s)
	case 8:
		return float64(i)
	default:
		return nil
	}
}

// FuzzTaskAttempt: the attempt number comes from headers any publisher may
// set (warren-attempt, x-delivery-count). It is always a usable attempt
// number, which the worker republishes as an int32.
func FuzzTaskAttempt(f *testing.F) {
	f.Add(uint8(1), int64(2), "", uint8(9), int64(0), "")
	f.Add(uint8(6), int64(0), "abc", uint8(0), int64(math.MaxInt64), "")
	f.Add(uint8(0), int64(math.MaxInt64), "", uint8(0), int64(math.MaxInt64), "")
	f.Add(uint8(0), int64(math.MinInt64), "", uint8(6), int64(0), "-3")
	f.Add(uint8(6), int64(0), "99999999999999999999", uint8(6), int64(0), "7")
	f.Fuzz(func(t *testing.T, ak uint8, ai int64, as string, ck uint8, ci int64, cs string) {
		h := amqp.Table{}
		if v := fuzzHeaderValue(ak, ai, as); v != nil {
			h[HeaderAttempt] = v
		}
		if v := fuzzHeaderValue(ck, ci, cs); v != nil {
			h["x-delivery-count"] = v
		}
		got, _ := taskAttempt(h)
		if got < 1 || got > math.MaxInt32 {
			t.Fatalf("taskAttempt(%v) = %d, want 1..MaxInt32", h, got)
		}
		if n, ok := headerInt(h[HeaderAttempt]); ok && n >= 1 && got < min(n, math.MaxInt32) {
			t.Fatalf("taskAttempt(%v) = %d, below warren-attempt %d", h, got, n)
		}
	})
}

// FuzzSleep: the tutorial's handler counts one unit per "." of any
// body, and returns nil once it slept them.
func FuzzSleep(f *testing.F) {
	for _, s := range []string{"", "Hola...", "...", "\xff.\x00.", "no dots"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const unit = time.Nanosecond
		start := time.Now()
		if err := Sleep(unit)(context.Background(), body); err != nil {
			t.Fatalf("Sleep(%q) = %v", body, err)
		}
		if n := bytes.Count(body, []byte(".")); time.Since(start) < time.Duration(n)*unit {
			t.Fatalf("Sleep(%q) returned after %v, before its %d units", body, time.Since(start), n)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := Sleep(time.Hour)(ctx, body); err == nil {
			t.Fatalf("Sleep(%q) with a cancelled ctx = nil, want the ctx's error", body)
		}
	})
}
