package wire

import (
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/grpc/codes"
)

func TestExpiration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   time.Duration
		want string
	}{
		{"seconds", 2 * time.Second, "2000"},
		{"sub-millisecond rounds up to 1", 300 * time.Microsecond, "1"},
		{"negative is 1", -time.Second, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Expiration(tt.in); got != tt.want {
				t.Errorf("Expiration(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestDeadlineRoundTrip(t *testing.T) {
	t.Parallel()
	d := time.UnixMilli(1764100000123)
	h := amqp.Table{}
	SetDeadline(h, d)
	got, ok := Deadline(h)
	if !ok || !got.Equal(d) {
		t.Fatalf("Deadline = %v, %v; want %v, true", got, ok, d)
	}
}

func TestDeadlineForeignTypes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		value  any
		wantOK bool
		want   int64
	}{
		{"int32", int32(5), true, 5},
		{"decimal string", "1764100000123", true, 1764100000123},
		{"garbage string", "soon", false, 0},
		{"float", 1.5, false, 0},
		{"absent", nil, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := amqp.Table{}
			if tt.value != nil {
				h[HeaderDeadline] = tt.value
			}
			got, ok := Deadline(h)
			if ok != tt.wantOK || (ok && got.UnixMilli() != tt.want) {
				t.Errorf("Deadline = %v, %v; want %d, %v", got.UnixMilli(), ok, tt.want, tt.wantOK)
			}
		})
	}
}

func TestReplyError(t *testing.T) {
	t.Parallel()
	if _, _, ok := ReplyError(amqp.Table{}); ok {
		t.Error("ReplyError(no headers) reported an error")
	}
	if _, _, ok := ReplyError(nil); ok {
		t.Error("ReplyError(nil) reported an error")
	}
	code, msg, ok := ReplyError(ErrorHeaders(codes.InvalidArgument, "n too large"))
	if !ok || code != codes.InvalidArgument || msg != "n too large" {
		t.Errorf("ReplyError = %v, %q, %v; want InvalidArgument, %q, true", code, msg, ok, "n too large")
	}
	code, _, ok = ReplyError(amqp.Table{HeaderErrorCode: "BOGUS"})
	if !ok || code != codes.Unknown {
		t.Errorf("unknown code name: got %v, %v; want Unknown, true", code, ok)
	}
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if got := codeByName[CodeName(c)]; got != c {
			t.Errorf("code %v does not round-trip: got %v", c, got)
		}
	}
}
