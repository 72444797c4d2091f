package wire

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Header names. They are plain application headers (no "x-" prefix, which
// RabbitMQ reserves for its own arguments).
const (
	// HeaderDeadline is the absolute deadline of the call that caused a
	// request, as Unix milliseconds (an AMQP long). A worker skips a request
	// whose deadline has passed.
	HeaderDeadline = "warren-deadline"
	// HeaderErrorCode marks a reply as an error. Its value is the gRPC code
	// name, such as "INVALID_ARGUMENT", so foreign clients can read it.
	HeaderErrorCode = "warren-error-code"
	// HeaderErrorMessage is the human-readable error of an error reply.
	HeaderErrorMessage = "warren-error-message"
	// HeaderErrorStatus carries an error reply's whole status, details
	// included: a google.rpc.Status in its protobuf encoding, base64 (as
	// gRPC's binary metadata travels). It is optional; when present and
	// well-formed, it is the error, and its code and message match the
	// two headers above.
	HeaderErrorStatus = "warren-error-status-bin"
	// HeaderQueue is the gRPC response header a subscription sends once
	// its queue is bound and consumed from: its value is the queue's
	// name. A client that must not miss what is published right after it
	// subscribed waits for it.
	HeaderQueue = "warren-queue"
	// HeaderStreamSeq numbers the replies of a streaming call, from 0, as
	// an AMQP long: the caller checks that none is missing or repeated.
	HeaderStreamSeq = "warren-stream-seq"
	// HeaderStreamEnd, true, marks the reply that ends a streaming call.
	// Its body is empty; the error headers, if any, are the stream's
	// status, and without them the stream succeeded.
	HeaderStreamEnd = "warren-stream-end"
)

// StreamSeq reads HeaderStreamSeq: an integer of any AMQP type, or its
// decimal text.
func StreamSeq(h amqp.Table) (int64, bool) { return integer(h[HeaderStreamSeq]) }

// StreamEnd reports whether HeaderStreamEnd marks h's reply as the last
// of its stream: true, or a non-zero integer (some clients have no
// boolean header type).
func StreamEnd(h amqp.Table) bool {
	switch v := h[HeaderStreamEnd].(type) {
	case bool:
		return v
	case nil:
		return false
	default:
		n, ok := integer(v)
		return ok && n != 0
	}
}

// Content types warren sets.
const (
	// ContentTypeText is the content type of the tutorials' decimal bodies.
	ContentTypeText = "text/plain"
	// ContentTypeProtobuf is the content type of a routed method's
	// messages: the protobuf encoding of the message the AMQP type
	// property names.
	ContentTypeProtobuf = "application/protobuf"
	// ContentTypeJSON is the content type of a routed method's messages
	// in protobuf's JSON mapping (the route's codec says which).
	ContentTypeJSON = "application/json"
)

// Expiration renders a remaining time as an AMQP per-message TTL: whole
// milliseconds, at least 1 (a TTL of 0 means "expire unless delivered at
// once", which is not what a caller with time left wants).
func Expiration(remaining time.Duration) string {
	ms := remaining.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return strconv.FormatInt(ms, 10)
}

// SetDeadline stores d in h under HeaderDeadline.
func SetDeadline(h amqp.Table, d time.Time) {
	h[HeaderDeadline] = d.UnixMilli()
}

// Deadline reads HeaderDeadline. It reports false when the header is absent
// or not an integer; foreign publishers may send any type.
func Deadline(h amqp.Table) (time.Time, bool) {
	ms, ok := integer(h[HeaderDeadline])
	if !ok {
		return time.Time{}, false
	}
	return time.UnixMilli(ms), true
}

// integer reads a header that holds an integer: of one of the types
// amqp091-go decodes integers into, or as decimal text.
func integer(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case int:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint8:
		return int64(v), true
	case string:
		n, err := strconv.ParseInt(v, 10, 64)
		return n, err == nil
	}
	return 0, false
}

// ErrorHeaders returns the headers of an error reply.
func ErrorHeaders(code codes.Code, msg string) amqp.Table {
	return amqp.Table{
		HeaderErrorCode:    CodeName(code),
		HeaderErrorMessage: msg,
	}
}

// StatusHeaders returns the headers of an error reply carrying st; its
// details, if any, travel in HeaderErrorStatus.
func StatusHeaders(st *status.Status) amqp.Table {
	h := ErrorHeaders(st.Code(), st.Message())
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			h[HeaderErrorStatus] = base64.StdEncoding.EncodeToString(b)
		}
	}
	return h
}

// ReplyStatus reads an error reply as a status, details included. It
// reports ok false for a successful reply. A HeaderErrorStatus that is not
// base64 of a google.rpc.Status, or says another code than
// HeaderErrorCode, is ignored: the code and message headers still make
// the error.
func ReplyStatus(h amqp.Table) (st *status.Status, ok bool) {
	code, msg, ok := ReplyError(h)
	if !ok {
		return nil, false
	}
	if enc, isString := h[HeaderErrorStatus].(string); isString {
		var p spb.Status
		if b, err := base64.StdEncoding.DecodeString(enc); err == nil && proto.Unmarshal(b, &p) == nil && codes.Code(p.GetCode()) == code {
			p.Message = msg
			return status.FromProto(&p), true
		}
	}
	return status.New(code, msg), true
}

// ReplyError reads an error reply. It reports ok false for a successful
// reply (no HeaderErrorCode). An unknown code name, and "OK" (an error
// reply is never a success), become codes.Unknown.
func ReplyError(h amqp.Table) (code codes.Code, msg string, ok bool) {
	raw, present := h[HeaderErrorCode]
	if !present {
		return codes.OK, "", false
	}
	name, _ := raw.(string)
	code, known := codeByName[name]
	if !known || code == codes.OK {
		code = codes.Unknown
	}
	msg, _ = h[HeaderErrorMessage].(string)
	if msg == "" {
		msg = fmt.Sprintf("worker error %v", raw)
	}
	return code, msg, true
}

// CodeName is the canonical upper-case name of a gRPC code, as used in the
// gRPC specification ("INVALID_ARGUMENT").
func CodeName(c codes.Code) string {
	if name, ok := nameByCode[c]; ok {
		return name
	}
	return "UNKNOWN"
}

var nameByCode = map[codes.Code]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

var codeByName = func() map[string]codes.Code {
	m := make(map[string]codes.Code, len(nameByCode))
	for c, n := range nameByCode {
		m[n] = c
	}
	return m
}()
