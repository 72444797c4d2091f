package wire

import (
	"context"
	"encoding/base64"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/google/go-cmp/cmp"
)

func TestMetadataTravelsButTransportKeysAndCredentials(t *testing.T) {
	t.Parallel()
	md := metadata.MD{
		"tenant":        {"acme"},
		"trace-bin":     {"\x00\x01\xff"},
		"multi":         {"a", "b"},
		":authority":    {"gw:50051"},
		"content-type":  {"application/grpc"},
		"user-agent":    {"grpc-go"},
		"grpc-timeout":  {"1S"},
		"authorization": {"Bearer secret"},
		"cookie":        {"session=1"},
	}
	h := amqp.Table{}
	SetMetadata(h, md)
	want := amqp.Table{
		"warren-md-tenant":    "acme",
		"warren-md-trace-bin": base64.StdEncoding.EncodeToString([]byte("\x00\x01\xff")),
		"warren-md-multi":     []any{"a", "b"},
	}
	if diff := cmp.Diff(want, h); diff != "" {
		t.Errorf("headers (-want +got):\n%s", diff)
	}
	back := Metadata(h)
	wantMD := metadata.MD{"tenant": {"acme"}, "trace-bin": {"\x00\x01\xff"}, "multi": {"a", "b"}}
	if diff := cmp.Diff(wantMD, back); diff != "" {
		t.Errorf("metadata read back (-want +got):\n%s", diff)
	}
}

func TestMetadataFromForeignHeadersSkipsWhatCannotBeMetadata(t *testing.T) {
	t.Parallel()
	h := amqp.Table{
		"warren-md-ok":            "yes",
		"warren-md-Upper":         "no: gRPC keys are lower-case",
		"warren-md-sp ace":        "no",
		"warren-md-":              "no key",
		"warren-md-number":        int32(7),
		"warren-md-mixed":         []any{"a", int32(1)},
		"warren-md-bad-bin":       "not base64!",
		"warren-md-grpc-x":        "reserved",
		"warren-md-authorization": "credentials never come from a header",
		"other":                   "not metadata",
	}
	got := Metadata(h)
	if diff := cmp.Diff(metadata.MD{"ok": {"yes"}}, got); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
}

func TestStatusWithDetailsTravels(t *testing.T) {
	t.Parallel()
	st, err := status.New(codes.FailedPrecondition, "not enough stock").WithDetails(&errdetails.PreconditionFailure{
		Violations: []*errdetails.PreconditionFailure_Violation{{Type: "STOCK", Subject: "tea", Description: "3 left"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ReplyStatus(StatusHeaders(st))
	if !ok {
		t.Fatal("ReplyStatus: not an error reply")
	}
	if diff := cmp.Diff(st.Proto(), got.Proto(), protocmp.Transform()); diff != "" {
		t.Errorf("status (-sent +read):\n%s", diff)
	}
	// Without details, no status header: the code and message say it all.
	if h := StatusHeaders(status.New(codes.NotFound, "no tea")); h[HeaderErrorStatus] != nil {
		t.Errorf("headers %v carry a status without details", h)
	}
}

func TestReplyStatusIgnoresABadStatusHeader(t *testing.T) {
	t.Parallel()
	other, _ := proto.Marshal(status.New(codes.Internal, "other code").Proto())
	for name, v := range map[string]any{
		"not base64":   "!!!",
		"not a status": base64.StdEncoding.EncodeToString([]byte{0xff, 0xff}),
		"another code": base64.StdEncoding.EncodeToString(other),
		"not a string": int32(1),
	} {
		h := ErrorHeaders(codes.NotFound, "no tea")
		h[HeaderErrorStatus] = v
		st, ok := ReplyStatus(h)
		if !ok || st.Code() != codes.NotFound || st.Message() != "no tea" || len(st.Details()) != 0 {
			t.Errorf("%s: ReplyStatus = %v, %v; want NOT_FOUND: no tea", name, st, ok)
		}
	}
}

func FuzzMetadata(f *testing.F) {
	f.Add("warren-md-tenant", "acme", uint8(7), int64(0))
	f.Add("warren-md-x-bin", "AAEC", uint8(7), int64(0))
	f.Add("warren-md-multi", "a", uint8(12), int64(0))
	f.Fuzz(func(t *testing.T, key, s string, kind uint8, i int64) {
		v := fuzzHeaderValue(kind, i, s, 0)
		if kind%13 == 12 {
			v = []any{s, fuzzHeaderValue(kind/13, i, s, 0)}
		}
		md := Metadata(amqp.Table{key: v})
		for k, vs := range md {
			if !validKey(k) || !forwarded(k) || len(vs) == 0 {
				t.Fatalf("Metadata gave key %q values %q", k, vs)
			}
		}
		// What it read travels again unchanged.
		h := amqp.Table{}
		SetMetadata(h, md)
		if diff := cmp.Diff(md, Metadata(h)); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}

func FuzzReplyStatus(f *testing.F) {
	st, _ := status.New(codes.Aborted, "x").WithDetails(&errdetails.ErrorInfo{Reason: "R"})
	b, _ := proto.Marshal(st.Proto())
	f.Add("ABORTED", "x", base64.StdEncoding.EncodeToString(b))
	f.Add("NOT_FOUND", "", "")
	f.Fuzz(func(t *testing.T, code, msg, enc string) {
		st, ok := ReplyStatus(amqp.Table{HeaderErrorCode: code, HeaderErrorMessage: msg, HeaderErrorStatus: enc})
		if !ok || st.Code() == codes.OK || st.Message() == "" {
			t.Fatalf("ReplyStatus = %v, %v; want an error with a message", st, ok)
		}
	})
}

func TestStreamMarkers(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v     any
		seq   int64
		seqOK bool
		isEnd bool
	}{
		{int64(3), 3, true, true}, {int32(0), 0, true, false}, {uint8(1), 1, true, true},
		{"12", 12, true, true}, {"x", 0, false, false}, {true, 0, false, true}, {false, 0, false, false},
		{nil, 0, false, false}, {1.5, 0, false, false},
	} {
		h := amqp.Table{HeaderStreamSeq: tt.v, HeaderStreamEnd: tt.v}
		if seq, ok := StreamSeq(h); seq != tt.seq || ok != tt.seqOK {
			t.Errorf("StreamSeq(%#v) = %d, %v; want %d, %v", tt.v, seq, ok, tt.seq, tt.seqOK)
		}
		if got := StreamEnd(h); got != tt.isEnd {
			t.Errorf("StreamEnd(%#v) = %v, want %v", tt.v, got, tt.isEnd)
		}
	}
}

func FuzzStreamMarkers(f *testing.F) {
	f.Add(uint8(0), int64(1), "1")
	f.Add(uint8(7), int64(0), "-9223372036854775808")
	f.Add(uint8(10), int64(0), "")
	f.Fuzz(func(t *testing.T, kind uint8, i int64, s string) {
		v := fuzzHeaderValue(kind, i, s, 0)
		h := amqp.Table{HeaderStreamSeq: v, HeaderStreamEnd: v}
		seq, ok := StreamSeq(h)
		if ok && StreamEnd(h) != (seq != 0) {
			t.Fatalf("%#v: an integer header is the end when not zero: seq %d, end %v", v, seq, StreamEnd(h))
		}
	})
}

// TestWithIncoming: a call's metadata is put in its context only when a
// key of it travels to workers, and Incoming reads it back as it was.
func TestWithIncoming(t *testing.T) {
	ctx := context.Background()
	transport := metadata.MD{":authority": {"x"}, "content-type": {"application/grpc"}, "user-agent": {"grpc-go"}, "authorization": {"Bearer s"}}
	if got := WithIncoming(ctx, transport); got != ctx || Incoming(got) != nil {
		t.Errorf("metadata of gRPC's own keys and credentials only: context changed, Incoming = %v", Incoming(got))
	}
	if got := Incoming(ctx); got != nil {
		t.Errorf("Incoming of a bare context = %v, want nil", got)
	}
	md := metadata.MD{"user-agent": {"grpc-go"}, "tenant": {"acme"}}
	got := Incoming(WithIncoming(ctx, md))
	if len(got) != 2 || got["tenant"][0] != "acme" {
		t.Errorf("Incoming = %v, want %v", got, md)
	}
	h := amqp.Table{}
	SetMetadata(h, got)
	if len(h) != 1 || h[HeaderMetadataPrefix+"tenant"] != "acme" {
		t.Errorf("headers from Incoming's metadata = %v, want only the tenant", h)
	}
}
