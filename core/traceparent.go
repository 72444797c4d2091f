package core

import (
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// traceparentContext reads the span context of the W3C traceparent and
// tracestate in h as propagation.TraceContext's Extract does, with the same
// checks: the invalid context when there is none, or when the traceparent
// does not parse. It is the remote context a link needs, made with no
// context.Context around it.
func traceparentContext(h headers) trace.SpanContext {
	tp := h.Get("traceparent")
	if tp == "" {
		return trace.SpanContext{}
	}
	var ver [1]byte
	if !hexPart(ver[:], &tp, 2) || ver[0] == 0xff { // 0xff: forbidden version
		return trace.SpanContext{}
	}
	var scc trace.SpanContextConfig
	var flags [1]byte
	if !hexPart(scc.TraceID[:], &tp, 32) || !hexPart(scc.SpanID[:], &tp, 16) || !hexPart(flags[:], &tp, 2) {
		return trace.SpanContext{}
	}
	if ver[0] == 0 && (tp != "" || flags[0] > 3) {
		// Version 0 has no more fields and no other flags.
		return trace.SpanContext{}
	}
	scc.TraceFlags = trace.TraceFlags(flags[0]) & (trace.FlagsSampled | trace.FlagsRandom)
	// A tracestate that does not parse leaves the traceparent as it is,
	// as the specification says.
	scc.TraceState, _ = trace.ParseTraceState(h.Get("tracestate"))
	scc.Remote = true
	sc := trace.NewSpanContext(scc)
	if !sc.IsValid() {
		return trace.SpanContext{}
	}
	return sc
}

// hexPart decodes the next '-'-separated field of *s, which must be n
// lower-case hex digits, into dst, and moves *s past it.
func hexPart(dst []byte, s *string, n int) bool {
	part, rest, _ := strings.Cut(*s, "-")
	*s = rest
	if len(part) != n {
		return false
	}
	for i := 0; i < n; i += 2 {
		hi, ok1 := unhex(part[i])
		lo, ok2 := unhex(part[i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i/2] = hi<<4 | lo
	}
	return true
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
